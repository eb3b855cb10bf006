"""Accuracy metrics over per-video scores (pure functions)."""

from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor


def topk_accuracy(scores: Tensor, labels: Tensor, k: int) -> float:
    """Percentage of rows whose label is among the k highest scores (k capped at the class count).

    Args:
        scores: (V, C); labels: (V,) long.
    """
    if len(labels) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices
    return 100.0 * (top == labels[:, None]).any(dim=1).double().mean().item()


def mean_class_accuracy(scores: Tensor, labels: Tensor) -> float:
    """Mean over the classes present in ``labels`` of each class's top-1 accuracy (percent)."""
    if len(labels) == 0:
        return float("nan")
    correct = (scores.argmax(dim=1) == labels).double()
    classes = labels.unique()
    per_class = torch.stack([correct[labels == c].mean() for c in classes])
    return 100.0 * per_class.mean().item()


def accuracy_report(scores: Tensor, labels: Tensor) -> Dict[str, float]:
    """top1, top5 and mean_class_acc over the videos with a label (label >= 0)."""
    labelled = labels >= 0
    scores, labels = scores[labelled], labels[labelled]
    return {"top1": topk_accuracy(scores, labels, 1), "top5": topk_accuracy(scores, labels, 5),
            "mean_class_acc": mean_class_accuracy(scores, labels), "num_labelled_videos": int(labelled.sum())}
