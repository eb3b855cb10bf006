"""Multi-view score aggregation, with hand-computed scores.

Views: video 0 -> [1, 0], [3, 2]; video 1 -> [0, 2], [0, 4]; video 2 -> one ok view and one
failed view.
"""

import math

import pytest
import torch

from video_ats.data.views import aggregate_views

SCORES = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 2.0], [5.0, 5.0], [0.0, 4.0], [0.0, 0.0]])
VIDEO = torch.tensor([0, 1, 0, 2, 1, 2])
OK = torch.tensor([True, True, True, True, True, False])


def test_sum_of_logits_per_video_excludes_videos_with_a_failed_view():
    result = aggregate_views(SCORES, VIDEO, OK, "sum_logits")
    assert result.video_index.tolist() == [0, 1]
    assert result.scores.tolist() == [[4.0, 2.0], [0.0, 6.0]]
    assert result.excluded.tolist() == [2]


def test_mean_and_max_of_logits():
    assert aggregate_views(SCORES, VIDEO, OK, "mean_logits").scores.tolist() == [[2.0, 1.0], [0.0, 3.0]]
    assert aggregate_views(SCORES, VIDEO, OK, "max_logits").scores.tolist() == [[3.0, 2.0], [0.0, 4.0]]


def test_mean_of_softmax():
    e = math.e
    video0 = [e / (e + 1), 1 / (e + 1)]  # softmax([1, 0]) == softmax([3, 2])
    video1 = [(1 / (1 + e**2) + 1 / (1 + e**4)) / 2, (e**2 / (1 + e**2) + e**4 / (1 + e**4)) / 2]
    scores = aggregate_views(SCORES, VIDEO, OK, "mean_softmax").scores
    assert scores[0].tolist() == pytest.approx(video0)
    assert scores[1].tolist() == pytest.approx(video1)


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="aggregation 'vote' is not one of"):
        aggregate_views(SCORES, VIDEO, OK, "vote")
