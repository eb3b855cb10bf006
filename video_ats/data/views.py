"""Multi-view score aggregation: per-view scores -> one score per video.

Methods (see docs/data.md for which codebase uses which):

- ``"sum_logits"``: sum of the views' raw outputs (PySlowFast / official TimeSformer and XViT
  ``TestMeter``, ``ENSEMBLE_METHOD="sum"``).
- ``"mean_softmax"``: mean of the views' softmax probabilities (the papers; mmaction2
  ``average_clips="prob"``).
- ``"mean_logits"``: mean of raw outputs (mmaction2 ``average_clips="score"``).
- ``"max_logits"``: elementwise maximum of raw outputs (PySlowFast ``"max"``).

A video is excluded when any of its views has ``ok=False`` (it could not be decoded); the
excluded video indices are returned so every result can report them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

AGGREGATIONS = ("sum_logits", "mean_softmax", "mean_logits", "max_logits")


class VideoScores(NamedTuple):
    """video_index int64 (V,), sorted; scores float (V, K); excluded int64 (E,), sorted."""

    video_index: torch.Tensor
    scores: torch.Tensor
    excluded: torch.Tensor


def aggregate_views(
    scores: torch.Tensor,
    video_index: torch.Tensor,
    ok: torch.Tensor,
    method: str = "sum_logits",
) -> VideoScores:
    """Aggregate view scores per video.

    scores: float (N, K), one row per view (any order, views of a video may be split across
        batches and concatenated). video_index: int (N,). ok: bool (N,).
    Returns :class:`VideoScores` over the videos whose views are all ok.
    """
    if method not in AGGREGATIONS:
        raise ValueError(f"aggregation {method!r} is not one of {AGGREGATIONS}")
    if scores.ndim != 2 or video_index.shape != scores.shape[:1] or ok.shape != scores.shape[:1]:
        raise ValueError(
            f"need scores (N, K), video_index (N,), ok (N,); got {tuple(scores.shape)}, "
            f"{tuple(video_index.shape)}, {tuple(ok.shape)}"
        )
    excluded = torch.unique(video_index[~ok.bool()])
    keep = ~torch.isin(video_index, excluded)
    videos, position = torch.unique(video_index[keep], return_inverse=True)
    kept = scores[keep].float()
    if method == "mean_softmax":
        kept = kept.softmax(dim=-1)
    out = kept.new_zeros(len(videos), scores.shape[1])
    if method == "max_logits":
        rows = position[:, None].expand_as(kept)
        out = out.scatter_reduce_(0, rows, kept, "amax", include_self=False)
    else:
        out = out.index_add_(0, position, kept)
        if method != "sum_logits":
            counts = torch.bincount(position, minlength=len(videos)).clamp_min(1)
            out = out / counts.unsqueeze(1)
    return VideoScores(videos, out, excluded)
