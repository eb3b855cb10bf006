"""GFLOPs over a dataset: per view and per video, as tools/flops.py reports them.

The closed-form counter (`video_ats.flops.clip_gflops`) run over the views of a config's test
set (or over random clips, labelled so), summed per video, and summarised (mean, spread,
percentiles). It lives on the engine floor because it reads datasets through the config.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..checkpoint import load_checkpoint
from ..config import build_model_from_cfg
from ..data import collate_views
from ..flops import clip_gflops, count_parameters, fvcore_gflops, model_gflops
from .builders import build_dataset, video_subset

# Where the clips of the ATS distribution come from (`flops_report`'s ``source``).
CLIP_SOURCES = ("none", "dataset", "random")


def views_per_video(cfg) -> int:
    """Views of the test protocol: temporal clips x spatial crops (TimeSformer / XViT: 1 x 3)."""
    return int(cfg.TEST.NUM_ENSEMBLE_VIEWS) * int(cfg.TEST.NUM_SPATIAL_CROPS)


@torch.no_grad()
def gflops_over_batches(model: nn.Module, batches, device: Optional[torch.device] = None,
                        max_views: Optional[int] = None) -> dict:
    """Per-view GFLOPs of every view the batches hold, from one forward per batch.

    Args:
        batches: iterable of dicts with ``video`` (B, C, T, H, W) and optionally
            ``video_index`` (B,) and ``ok`` (B,) bool (views that failed to decode are skipped),
            as `video_ats.data.collate_views` makes them.
        max_views: stop after this many views.
    Returns:
        {"per_view": (V,) float64, "video_index": (V,) long (-1 where the batch had none)}.
    """
    device = device or next(model.parameters()).device
    model.eval()
    values, videos = [], []
    seen = 0
    for batch in batches:
        video = batch["video"].to(device)
        per_view = clip_gflops(model, video).cpu()
        index = batch.get("video_index")
        index = torch.full((video.shape[0],), -1, dtype=torch.long) if index is None else index.long().cpu()
        ok = batch.get("ok")
        if ok is not None:
            per_view, index = per_view[ok.cpu()], index[ok.cpu()]
        values.append(per_view)
        videos.append(index)
        seen += len(per_view)
        if max_views is not None and seen >= max_views:
            break
    per_view = torch.cat(values)[:max_views] if values else torch.zeros(0, dtype=torch.float64)
    video_index = torch.cat(videos)[:max_views] if videos else torch.zeros(0, dtype=torch.long)
    return {"per_view": per_view, "video_index": video_index}


def per_video_totals(per_view: Tensor, video_index: Tensor) -> Tensor:
    """GFLOPs per video: the sum over the views of each video, (number of videos,) float64."""
    if (video_index < 0).any():
        raise ValueError("per-video totals need the video_index of every view")
    _, inverse = torch.unique(video_index, return_inverse=True)
    return torch.zeros(int(inverse.max()) + 1, dtype=torch.float64).index_add_(0, inverse, per_view.double())


def distribution(values: Tensor) -> dict:
    """Mean, spread and percentiles of a 1-D tensor of GFLOPs."""
    values = values.double()
    if values.numel() == 0:
        return {"count": 0}
    quantiles = torch.quantile(values, torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=torch.float64))
    summary = {"count": int(values.numel()), "mean": values.mean().item(),
               "std": values.std().item() if values.numel() > 1 else 0.0,
               "min": values.min().item(), "max": values.max().item()}
    summary.update({f"p{int(q * 100)}": v.item() for q, v in zip((0.05, 0.25, 0.5, 0.75, 0.95), quantiles)})
    return summary


def test_view_batches(cfg, num_frames: int, batch_size: int, num_workers: int = 0, max_videos: Optional[int] = None):
    """The test views of the config's dataset (``DATA.*``, ``TEST.*``) as collated batches.

    The same dataset `tools/test.py` reads (paths relative to DATA.PATH_TO_DATA_DIR, shipped
    class lists), with ``num_frames`` per view; ``max_videos`` draws a seeded random subset.
    """
    cfg = cfg.clone()
    cfg.defrost()
    cfg.DATA.NUM_FRAMES = int(num_frames)
    dataset = video_subset(build_dataset(cfg, "test"), max_videos, seed=cfg.SEED)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      collate_fn=collate_views)


def random_view_batches(model: nn.Module, num_views: int, batch_size: int, views_per_video: int, seed: int = 0):
    """Random-normal clips standing in for a dataset (GFLOPs of random input, not of data)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (3, model.num_frames, model.img_size, model.img_size)
    for start in range(0, num_views, batch_size):
        count = min(batch_size, num_views - start)
        index = torch.arange(start, start + count)
        yield {"video": torch.randn((count,) + shape, generator=generator), "video_index": index // views_per_video}


def flops_report(cfg, source: str = "none", batch_size: int = 8, max_videos: Optional[int] = None,
                 random_views: int = 0, with_fvcore: bool = False, num_workers: int = 0,
                 device: str = "cpu", log=print) -> dict:
    """Parameters and GFLOPs per view and per video of the model a config describes.

    Args:
        source: for ATS, where the clips come from: ``dataset`` (the config's test set),
            ``random`` (``random_views`` random clips, labelled so) or ``none``.
        with_fvcore: also count the model without ATS with fvcore on the meta device.
    Returns:
        A JSON-able dict (see tools/flops.py).
    """
    views = views_per_video(cfg)
    plain_cfg = cfg.clone()
    plain_cfg.defrost()
    plain_cfg.ATS.ENABLE = False
    with torch.device("meta"):
        plain = build_model_from_cfg(plain_cfg)
    per_view = model_gflops(plain)
    report = {"model": cfg.MODEL.NAME, "num_classes": cfg.MODEL.NUM_CLASSES,
              "parameters": count_parameters(plain), "views_per_video": views,
              "views": f"{cfg.TEST.NUM_ENSEMBLE_VIEWS} clip(s) x {cfg.TEST.NUM_SPATIAL_CROPS} crop(s)",
              "convention": "1 multiply-add = 1 FLOP (fvcore); linear + conv + attention matmuls; no LayerNorm",
              "no_ats": {"gflops_per_view": per_view, "gflops_per_video": per_view * views}}
    if with_fvcore:
        shape = (1, 3, plain.num_frames, plain.img_size, plain.img_size)
        report["no_ats"]["fvcore_gflops_per_view"] = fvcore_gflops(plain, torch.empty(shape, device="meta"))
    if not cfg.ATS.ENABLE or source == "none":
        return report
    torch.manual_seed(cfg.SEED)
    model = build_model_from_cfg(cfg)
    if cfg.MODEL.PRETRAINED:
        load_checkpoint(model, cfg.MODEL.PRETRAINED, source=cfg.MODEL.PRETRAINED_SOURCE)
    else:
        log("[flops] MODEL.PRETRAINED is empty: random weights; ATS keeps counts that depend on the weights")
    model.to(device).eval()
    if source == "dataset":
        batches = test_view_batches(cfg, model.num_frames, batch_size, num_workers, max_videos)
        label = f"test set {cfg.DATA.TEST_ANNOTATION}"
    elif source == "random":
        batches = random_view_batches(model, random_views, batch_size, views)
        label = f"RANDOM INPUT ({random_views} random-normal clips, not a dataset)"
    else:
        raise ValueError(f"unknown source {source!r}; valid sources are {list(CLIP_SOURCES)}")
    counted = gflops_over_batches(model, batches, torch.device(device),
                                  None if source == "random" else (max_videos * views if max_videos else None))
    totals = per_video_totals(counted["per_view"], counted["video_index"])
    report["ats"] = {"options": model.ats.to_dict(), "clips": label,
                     "gflops_per_view": distribution(counted["per_view"]),
                     "gflops_per_video": distribution(totals),
                     "saving": 1 - counted["per_view"].mean().item() / per_view if len(counted["per_view"]) else None}
    return report
