"""Clip sampling rules, checked against hand-computed indices.

Running example: a 100-frame video, T=4 frames, sampling rate 2. At 30 fps (= target) the
window is W = 4*2 = 8 frames and the slack D = 100 - 8 = 92. In-window offsets are
j*(W-1)/(T-1) = 0, 7/3, 14/3, 7.
"""

import numpy as np
import pytest

from video_ats.data import sampling


class FixedUniform:
    """An rng stand-in whose uniform(low, high) returns low + fraction*(high - low)."""

    def __init__(self, fraction):
        self.fraction = fraction
        self.calls = []

    def uniform(self, low, high):
        self.calls.append((low, high))
        return low + self.fraction * (high - low)


def test_window_scales_with_the_video_fps():
    assert sampling.clip_window(30, 8, 32, 30) == 256  # TimeSformer 8x32 at 30 fps
    assert sampling.clip_window(15, 8, 32, 30) == 128
    assert sampling.clip_window(25, 4, 2, 30) == pytest.approx(20 / 3)


def test_single_test_clip_with_start_rule_begins_at_frame_zero():
    indices = sampling.test_clip_indices(100, 30, 4, 2, 30, clip_index=0, num_clips=1, position="start")
    assert indices.tolist() == [0, 2, 4, 7]
    assert indices.dtype == np.int64


def test_start_rule_places_clip_k_at_k_over_n_of_the_slack():
    # starts 0, 92/3, 184/3 = 0, 30.67, 61.33; 92/3 + 7/3 = 33 exactly.
    clips = [
        sampling.test_clip_indices(100, 30, 4, 2, 30, clip_index=k, num_clips=3, position="start").tolist()
        for k in range(3)
    ]
    assert clips == [[0, 2, 4, 7], [30, 33, 35, 37], [61, 63, 66, 68]]


def test_middle_rule_puts_a_single_clip_in_the_middle():
    # start = 92 / 2 = 46
    indices = sampling.test_clip_indices(100, 30, 4, 2, 30, clip_index=0, num_clips=1, position="middle")
    assert indices.tolist() == [46, 48, 50, 53]


def test_middle_rule_spreads_several_clips_over_the_whole_slack():
    # starts 0, 46, 92
    clips = [
        sampling.test_clip_indices(100, 30, 4, 2, 30, clip_index=k, num_clips=3, position="middle").tolist()
        for k in range(3)
    ]
    assert clips == [[0, 2, 4, 7], [46, 48, 50, 53], [92, 94, 96, 99]]


def test_low_fps_video_uses_a_shorter_window():
    # 15 fps: W = 4*2*15/30 = 4, offsets 0, 1, 2, 3
    indices = sampling.test_clip_indices(100, 15, 4, 2, 30, clip_index=0, num_clips=1, position="start")
    assert indices.tolist() == [0, 1, 2, 3]


def test_short_video_repeats_its_last_frame():
    # 5 frames, W = 8: D = 0, offsets 0, 2.33, 4.67, 7 clamp to 4
    assert sampling.test_clip_indices(5, 30, 4, 2, 30, 0, 1, "start").tolist() == [0, 2, 4, 4]
    assert sampling.test_clip_indices(1, 30, 4, 2, 30, 0, 1, "middle").tolist() == [0, 0, 0, 0]


def test_train_window_starts_uniformly_in_the_slack():
    low = FixedUniform(0.0)
    assert sampling.train_clip_indices(100, 30, 4, 2, 30, low).tolist() == [0, 2, 4, 7]
    assert low.calls == [(0.0, 92.0)]
    high = FixedUniform(1.0)
    assert sampling.train_clip_indices(100, 30, 4, 2, 30, high).tolist() == [92, 94, 96, 99]
    half = FixedUniform(0.5)
    assert sampling.train_clip_indices(100, 30, 4, 2, 30, half).tolist() == [46, 48, 50, 53]


def test_train_clip_of_a_short_video_starts_at_zero_without_drawing():
    rng = FixedUniform(0.5)
    assert sampling.train_clip_indices(5, 30, 4, 2, 30, rng).tolist() == [0, 2, 4, 4]
    assert rng.calls == []


def test_random_train_clips_keep_the_window_shape():
    rng = np.random.default_rng(0)
    starts = []
    for _ in range(200):
        indices = sampling.train_clip_indices(100, 30, 4, 2, 30, rng)
        # floor(s + 7/3) - floor(s) is 2 or 3 and the span floor(s + 7) - floor(s) is 7
        assert np.diff(indices).tolist() in ([2, 2, 3], [2, 3, 2], [3, 2, 2])
        starts.append(indices[0])
    assert min(starts) <= 5 and max(starts) >= 87  # the whole slack [0, 92] is used


def test_one_frame_clip_takes_the_window_start():
    assert sampling.test_clip_indices(100, 30, 1, 8, 30, 0, 1, "middle").tolist() == [46]


def test_unknown_position_and_out_of_range_clip_are_errors():
    with pytest.raises(ValueError, match="clip position 'end'"):
        sampling.test_clip_indices(100, 30, 4, 2, 30, 0, 1, "end")
    with pytest.raises(ValueError, match=r"clip_index 3 outside \[0, 3\)"):
        sampling.test_clip_indices(100, 30, 4, 2, 30, 3, 3, "start")


def test_timesformer_8x32_on_a_10_second_kinetics_clip():
    # W = 256, D = 300 - 256 = 44, offsets j * 255 / 7 = 0, 36.4, 72.9, 109.3, 145.7, 182.1, 218.6, 255
    start = sampling.test_clip_indices(300, 30, 8, 32, 30, 0, 1, "start")
    middle = sampling.test_clip_indices(300, 30, 8, 32, 30, 0, 1, "middle")  # start 22
    assert start.tolist() == [0, 36, 72, 109, 145, 182, 218, 255]
    assert middle.tolist() == [22, 58, 94, 131, 167, 204, 240, 277]
