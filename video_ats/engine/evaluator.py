"""Multi-view evaluation: every view through the model, views aggregated per video, metrics,
GFLOPs per clip from the kept tokens, kept tokens per ATS stage, and throughput.

Distributed runs shard the views; rank 0 gathers every view, orders them by (video, view) and
aggregates exactly as a single process does.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Dict, List, NamedTuple, Optional

import numpy as np
import torch

from ..data import aggregate_views
from ..flops import gflops_from_stats
from .distributed import DistContext, all_gather_objects
from .metrics import accuracy_report
from .progress import progress_bar


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ViewOutputs(NamedTuple):
    """What one forward of a batch of views gives: logits float64 (B, K) and gflops float64 (B,)
    on the CPU; kept and positions float64 (S, B), the tokens (positions x frames) and spatial
    positions each ATS stage kept (None without ATS); blocks, the ATS block of each stage;
    seconds, the forward's wall time."""

    logits: torch.Tensor
    gflops: torch.Tensor
    kept: Optional[torch.Tensor]
    positions: Optional[torch.Tensor]
    blocks: List[int]
    seconds: float


@torch.no_grad()
def forward_views(model: torch.nn.Module, videos: torch.Tensor, device: torch.device,
                  autocast_dtype: Optional[torch.dtype] = None) -> ViewOutputs:
    """One forward of views (B, C, T, H, W) of a model the caller has put in eval mode;
    ``model.ats_stats`` stays that of this forward. Each view is charged the GFLOPs of its own
    kept tokens (`gflops_from_stats`)."""
    autocast = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None
                else nullcontext())
    videos = videos.to(device, non_blocking=True)
    _synchronize(device)
    start = time.perf_counter()
    with autocast:
        output = model(videos)
    _synchronize(device)
    seconds = time.perf_counter() - start
    stats = getattr(model, "ats_stats", [])
    gflops = gflops_from_stats(model, stats, len(videos)).double().cpu()
    kept = positions = None
    if stats:
        kept = torch.stack([stage["frame_kept"].sum(dim=1) for stage in stats]).double().cpu()
        positions = torch.stack([stage["kept"] for stage in stats]).double().cpu()
    return ViewOutputs(output.double().cpu(), gflops, kept, positions, [int(stage["block"]) for stage in stats],
                       seconds)


@torch.no_grad()
def run_views(model: torch.nn.Module, loader, context: DistContext, progress: bool = True,
              autocast_dtype: Optional[torch.dtype] = None, description: str = "test") -> Dict[str, object]:
    """Run every view of this rank's shard; failed views (``ok`` False) are recorded, not run.

    Returns a dict of numpy arrays over this rank's views: video_index, view_index, ok, logits
    (float64, NaN rows for failed views), gflops (per view, NaN for failed views), kept and
    positions (stages x views: tokens and spatial positions kept), blocks (ATS block of each
    stage), plus forward_seconds.
    """
    model.eval()
    rows: Dict[str, List] = {"video_index": [], "view_index": [], "ok": [], "logits": [], "gflops": [], "kept": [],
                             "positions": []}
    blocks: List[int] = []
    forward_seconds = 0.0
    bar = progress_bar(loader, desc=description, enabled=progress and context.is_main, unit="batch", leave=False)
    for batch in bar:
        ok = batch["ok"].bool()
        count = len(ok)
        logits = torch.full((count, 0), float("nan"), dtype=torch.float64)
        gflops = torch.full((count,), float("nan"), dtype=torch.float64)
        kept = positions = None
        if ok.any():
            outputs = forward_views(model, batch["video"][ok], context.device, autocast_dtype)
            forward_seconds += outputs.seconds
            logits = torch.full((count, outputs.logits.shape[1]), float("nan"), dtype=torch.float64)
            logits[ok] = outputs.logits
            gflops[ok] = outputs.gflops
            if outputs.blocks:
                blocks = outputs.blocks
                kept = torch.full((len(blocks), count), float("nan"), dtype=torch.float64)
                kept[:, ok] = outputs.kept
                positions = torch.full((len(blocks), count), float("nan"), dtype=torch.float64)
                positions[:, ok] = outputs.positions
        rows["video_index"].append(batch["video_index"].numpy())
        rows["view_index"].append(batch["view_index"].numpy())
        rows["ok"].append(ok.numpy())
        rows["logits"].append(logits.numpy())
        rows["gflops"].append(gflops.numpy())
        rows["kept"].append(None if kept is None else kept.numpy())
        rows["positions"].append(None if positions is None else positions.numpy())
    return {"rows": rows, "blocks": blocks, "forward_seconds": forward_seconds}


def concatenate_views(parts: List[Dict[str, object]]) -> Dict[str, np.ndarray]:
    """One array per field over the `run_views` results of several ranks (in the order given):
    video_index, view_index, ok, gflops (V,), logits (V, classes), kept and positions
    (stages, V; NaN for views that did not run), blocks (list)."""
    rows = [part["rows"] for part in parts]
    num_classes = max((a.shape[1] for r in rows for a in r["logits"]), default=0)
    blocks = next((part["blocks"] for part in parts if part["blocks"]), [])
    out = {}
    for key in ("video_index", "view_index", "ok", "gflops"):
        arrays = [a for r in rows for a in r[key]]
        out[key] = np.concatenate(arrays) if arrays else np.zeros(0)
    logits = []
    for r in rows:
        for array in r["logits"]:
            if array.shape[1] != num_classes:
                array = np.full((array.shape[0], num_classes), np.nan)
            logits.append(array)
    out["logits"] = np.concatenate(logits) if logits else np.zeros((0, num_classes))
    for key in ("kept", "positions"):
        arrays = []
        for r in rows:
            for index, array in enumerate(r[key]):
                views = len(r["ok"][index])
                arrays.append(np.full((len(blocks), views), np.nan) if array is None else array)
        out[key] = np.concatenate(arrays, axis=1) if arrays else np.zeros((len(blocks), 0))
    out["blocks"] = blocks
    return out


def evaluate(model: torch.nn.Module, loader, context: DistContext, *, ensemble_method: str, views_per_video: int,
             labels: List[int], progress: bool = True,
             autocast_dtype: Optional[torch.dtype] = None, description: str = "test") -> Optional[dict]:
    """Evaluate and return the results on rank 0 (None on other ranks).

    Args:
        ensemble_method: an aggregation of `video_ats.data.aggregate_views` (``mean_softmax`` or
            ``sum_logits`` for the test protocols).
        labels: label of every video of the dataset (-1 when unknown).
    Returns:
        The metrics and statistics described in docs/training.md, with ``per_video`` arrays
        (video_index, label, scores) for ensembling.
    """
    wall_start = time.perf_counter()
    local = run_views(model, loader, context, progress, autocast_dtype, description)
    wall_seconds = time.perf_counter() - wall_start
    gathered = all_gather_objects(context, local)
    if not context.is_main:
        return None
    views = concatenate_views(gathered)
    order = np.lexsort((views["view_index"], views["video_index"]))
    for key in ("video_index", "view_index", "ok", "gflops", "logits"):
        views[key] = views[key][order]
    views["kept"], views["positions"] = views["kept"][:, order], views["positions"][:, order]

    ok = torch.from_numpy(views["ok"].astype(bool))
    video_index = torch.from_numpy(views["video_index"].astype(np.int64))
    logits = torch.from_numpy(views["logits"]).nan_to_num(0.0)
    per_video = aggregate_views(logits.double(), video_index, ok, method=ensemble_method)
    labels_tensor = torch.as_tensor(labels, dtype=torch.long)[per_video.video_index]
    report = accuracy_report(per_video.scores, labels_tensor)

    good = views["ok"].astype(bool) & ~np.isin(views["video_index"], per_video.excluded.numpy())
    gflops = views["gflops"][good]
    kept, positions = views["kept"][:, good], views["positions"][:, good]
    forward_seconds = sum(part["forward_seconds"] for part in gathered)
    num_views_run = int(views["ok"].sum())
    result = {
        **report,
        "num_videos": int(len(per_video.video_index)),
        "num_failed_videos": int(len(per_video.excluded)),
        "failed_video_indices": per_video.excluded.tolist(),
        "num_videos_total": int(len(set(views["video_index"].tolist()))),
        "views_per_video": int(views_per_video),
        "ensemble_method": ensemble_method,
        "gflops_per_view_mean": float(gflops.mean()) if len(gflops) else float("nan"),
        "gflops_per_view_percentiles": {str(p): float(np.percentile(gflops, p)) if len(gflops) else float("nan")
                                        for p in (0, 5, 25, 50, 75, 95, 100)},
        "gflops_per_video_mean": float(gflops.mean()) * views_per_video if len(gflops) else float("nan"),
        "clips_per_second": num_views_run / forward_seconds if forward_seconds > 0 else float("nan"),
        "wall_clips_per_second": num_views_run / wall_seconds if wall_seconds > 0 else float("nan"),
        "kept_tokens_per_stage": [
            {"block": int(block), "mean_kept_tokens": float(np.nanmean(kept[i])) if kept.shape[1] else float("nan"),
             "mean_kept_positions": float(np.nanmean(positions[i])) if kept.shape[1] else float("nan")}
            for i, block in enumerate(views["blocks"])],
        "per_video": {"video_index": per_video.video_index.numpy(), "label": labels_tensor.numpy(),
                      "scores": per_video.scores.numpy()},
    }
    return result
