"""GFLOPs: fvcore counting that sees attention, and the per-clip counter for ATS.

Convention (fvcore's, and the published TimeSformer / XViT numbers'): one multiply-add is one
FLOP, GFLOPs = 1e9 multiply-adds. Counted: linear layers, the patch-embedding convolution and
the attention matmuls (q k^T and A v, plus the CLS row that ATS scores with). Not counted:
LayerNorm (fvcore counts 5 FLOPs per element, the published numbers do not; 0.1 % of
TimeSformer 8x224), softmax, GELU, additions, gathers and sorting.

Two ways to the same number:

- `fvcore_gflops` traces the model with fvcore (torch.jit.trace) and adds a handle for
  ``aten::scaled_dot_product_attention``, which fvcore skips. It counts a whole batch, padding
  included, so a clip is counted on its own by passing it alone. Full-size models are traced
  on the meta device (no activations are allocated).
- `gflops_from_stats` / `clip_gflops` compute the same sums in closed form from the token
  widths each block saw, read from ``model.ats_stats``: no tracing, one small tensor
  expression per block, so it can run after every batch of a validation set. A clip is
  charged for its own kept positions only, never for the padding of its batch. In ``frame``
  scope a clip computes, and is charged for, the union of the positions kept by its frames.
"""

from __future__ import annotations

import contextlib
import types
import warnings
from math import prod
from typing import Iterator, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models.timesformer import TimeSformer
from .models.xvit import XViT

__all__ = ["fvcore_gflops", "clip_gflops", "gflops_from_stats", "model_gflops", "count_parameters"]


# ---------------------------------------------------------------------------------------------
# fvcore


def _shape(value) -> List[int]:
    from fvcore.nn.jit_handles import get_shape

    return get_shape(value)


def _sdpa_macs(inputs, outputs) -> int:
    """aten::scaled_dot_product_attention(q, k, v, ...): q k^T and A v.

    q (..., L, E), k (..., S, E), v (..., S, Ev) -> prod(...) * L * S * (E + Ev). A mask does
    not change the count: the kernel computes the masked entries too.
    """
    q, k, v = (_shape(value) for value in inputs[:3])
    return prod(q[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])


def _baddbmm_macs(inputs, outputs) -> int:
    """aten::baddbmm(input, batch1 (n, a, b), batch2 (n, b, c), ...) -> n * a * b * c."""
    batch1, batch2 = _shape(inputs[1]), _shape(inputs[2])
    return prod(batch1) * batch2[-1]


def _no_macs(inputs, outputs) -> int:
    return 0


# Ops that cost multiply-adds and that fvcore 0.1.5 has no handle for.
EXTRA_HANDLES = {
    "aten::scaled_dot_product_attention": _sdpa_macs,
    "aten::baddbmm": _baddbmm_macs,
}
# fvcore counts these by default; the published numbers do not.
NORM_OPS = ("aten::layer_norm", "aten::group_norm", "aten::batch_norm", "aten::instance_norm")


def fvcore_gflops(model: nn.Module, x: Tensor, include_norms: bool = False) -> float:
    """GFLOPs of one forward of ``model`` on the batch ``x``, counted by fvcore.

    Args:
        model: any module; it is traced in eval mode (its mode is restored afterwards).
        x: the input batch, e.g. (B, 3, T, H, W). A meta tensor (with the model built under
            ``torch.device("meta")``) counts without allocating activations; models with
            ATS need real tensors (which positions are kept depends on the values).
        include_norms: also count LayerNorm etc. the fvcore way (5 FLOPs per element).
    Returns:
        GFLOPs (1e9 multiply-adds) of the whole batch, padding included.
    """
    from fvcore.nn import FlopCountAnalysis

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings(), _traceable_on_meta(model, x.is_meta):
            warnings.simplefilter("ignore")          # tracer warnings about data-dependent shapes
            analysis = FlopCountAnalysis(model, x)
            for name, handle in EXTRA_HANDLES.items():
                analysis.set_op_handle(name, handle)
            if not include_norms:
                for name in NORM_OPS:
                    analysis.set_op_handle(name, _no_macs)   # (a None handle would not replace fvcore's)
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            analysis.tracer_warnings("none")
            total = analysis.total()
    finally:
        model.train(was_training)
    return total / 1e9


@contextlib.contextmanager
def _traceable_on_meta(model: nn.Module, active: bool) -> Iterator[None]:
    """Let torch.jit.trace run the patch embedding on meta tensors.

    PyTorch's meta convolution checks shapes with ``torch._check`` and fails under the tracer.
    A patch embedding (kernel == stride, no padding) is a matmul over flattened patches with
    the same multiply-adds, so on meta it is traced as that (fvcore files it under
    ``linear`` instead of ``conv``; the total is unchanged).
    """
    if not active:
        yield
        return
    patched = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and _is_patchify(module):
            module.forward = types.MethodType(_patchify_as_matmul, module)
            patched.append(module)
        elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            raise ValueError(f"cannot count {module} on the meta device; pass a real tensor")
    try:
        yield
    finally:
        for module in patched:
            del module.forward


def _is_patchify(conv: nn.Conv2d) -> bool:
    return (tuple(conv.kernel_size) == tuple(conv.stride) and tuple(conv.padding) == (0, 0)
            and tuple(conv.dilation) == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros")


def _patchify_as_matmul(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, d, H/p, W/p), the convolution written as a linear layer over patches."""
    n, c, h, w = x.shape
    ph, pw = conv.kernel_size
    patches = x.reshape(n, c, h // ph, ph, w // pw, pw).permute(0, 2, 4, 1, 3, 5).flatten(3)
    out = F.linear(patches, conv.weight.flatten(1), conv.bias)
    return out.permute(0, 3, 1, 2)


# ---------------------------------------------------------------------------------------------
# The closed form


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_gflops(model: nn.Module) -> float:
    """GFLOPs per clip of ``model`` with every token kept (ATS off), in closed form, no forward."""
    one = torch.ones(1, dtype=torch.float64)
    return float(_per_clip_macs(model, _full_widths(model, one))[0]) / 1e9


def gflops_from_stats(model: nn.Module, ats_stats: Sequence[dict], batch_size: int) -> Tensor:
    """GFLOPs per clip of a forward already done, from its ``model.ats_stats``.

    Args:
        model: the TimeSformer or XViT that ran the forward.
        ats_stats: ``model.ats_stats`` of that forward (empty for a model without ATS).
        batch_size: B, the clips of that forward.
    Returns:
        (B,) float64 GFLOPs per clip, on the device of the stats (CPU without ATS). Each
        clip is charged for the positions it kept, never for its batch's padding.
    """
    if not ats_stats:
        return torch.full((batch_size,), model_gflops(model), dtype=torch.float64)
    device = ats_stats[0]["kept"].device
    widths = _full_widths(model, torch.ones(batch_size, dtype=torch.float64, device=device))
    options = getattr(model, "ats", None)
    score = "cls_vnorm" if options is None else options.score
    if options is not None and options.sampler == "random":
        score = None                       # the random sampler does not score (no CLS-row matmul)
    by_block = {int(stage["block"]): stage for stage in ats_stats}
    current = widths[0][0]
    for index in range(len(widths)):
        stage = by_block.get(index)
        kept = current if stage is None else stage["kept"].to(torch.float64)
        if kept.shape != (batch_size,):
            raise ValueError(f"ats_stats of block {index} has {tuple(kept.shape)} kept counts, "
                             f"expected ({batch_size},); pass the stats of a forward of {batch_size} clips")
        widths[index] = (current, kept, None if stage is None else score)
        current = kept
    return _per_clip_macs(model, widths) / 1e9


@torch.no_grad()
def clip_gflops(model: nn.Module, x: Tensor) -> Tensor:
    """Run ``model`` on ``x`` (eval, no grad) and return the GFLOPs each clip cost, (B,) float64.

    Equals `fvcore_gflops` of each clip run alone (tested within 1 %); no tracing.
    """
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
    return gflops_from_stats(model, model.ats_stats, x.shape[0])


def _full_widths(model: nn.Module, ones: Tensor) -> list:
    """Per block (positions in, positions out, ATS score or None) with every position kept."""
    positions = ones * model.patch_embed.num_patches
    return [(positions, positions, None) for _ in model.blocks]


def _linear(layer: nn.Linear, tokens):
    return tokens * layer.in_features * layer.out_features


def _mlp(mlp: nn.Module, tokens):
    return _linear(mlp.fc1, tokens) + _linear(mlp.fc2, tokens)


def _score_macs(score: Optional[str], frames: int, keys, dim: int):
    """The scoring matmul of an ATS stage: the CLS row (T (1+P) d), or the full matrix."""
    if score is None:
        return 0.0
    if score == "self_attn":
        return frames * keys * keys * dim
    return frames * keys * dim


def _patch_embed_macs(model: nn.Module) -> float:
    conv = model.patch_embed.proj
    per_output = conv.in_channels * prod(conv.kernel_size) * conv.out_channels
    return model.num_frames * model.patch_embed.num_patches * per_output


def _per_clip_macs(model: nn.Module, widths: list) -> Tensor:
    """Multiply-adds per clip given, per block, (positions in, positions out, score) (B,) each."""
    frames, dim = model.num_frames, model.embed_dim
    total = torch.zeros_like(widths[0][0]) + _patch_embed_macs(model)
    if isinstance(model, TimeSformer):
        for block, (p_in, p_out, score) in zip(model.blocks, widths):
            temporal_tokens = p_in * frames
            total = total + _linear(block.temporal_attn.qkv, temporal_tokens)
            total = total + p_in * frames * frames * 2 * dim                       # T x T per position
            total = total + _linear(block.temporal_attn.proj, temporal_tokens)
            total = total + _linear(block.temporal_fc, temporal_tokens)
            keys, queries = 1 + p_in, 1 + p_out                                     # per frame, CLS copy
            total = total + _linear(block.attn.qkv, frames * keys)
            total = total + _score_macs(score, frames, keys, dim)
            total = total + frames * queries * keys * 2 * dim
            total = total + _linear(block.attn.proj, frames * queries)
            total = total + _mlp(block.mlp, 1 + frames * p_out)
        if isinstance(model.head, nn.Linear):
            total = total + _linear(model.head, 1)
        return total
    if isinstance(model, XViT):
        for block, (p_in, p_out, score) in zip(model.blocks, widths):
            keys, queries = 1 + p_in, 1 + p_out                                     # per frame, own CLS
            total = total + _linear(block.attn.qkv, frames * keys)
            total = total + _score_macs(score, frames, keys, dim)
            total = total + frames * queries * keys * 2 * dim
            total = total + _linear(block.attn.proj, frames * queries)
            total = total + _mlp(block.mlp, frames * queries)
        head = model.consensus
        if model.consensus_type == "avg":
            return total + _linear(head.fc, 1)                                      # Linear of the frame mean
        sequence = 1 + frames                                                       # head CLS + frames
        for block in head.temporal_encoder:
            total = total + _linear(block.attn.qkv, sequence) + sequence * sequence * 2 * dim
            total = total + _linear(block.attn.proj, sequence) + _mlp(block.mlp, sequence)
        total = total + sum(_linear(layer, 1) for layer in head.mlp_head if isinstance(layer, nn.Linear))
        return total
    raise TypeError(f"no closed-form GFLOPs for {type(model).__name__}; use fvcore_gflops")


# ---------------------------------------------------------------------------------------------
# Over a dataset


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
    from torch.utils.data import DataLoader

    from .data import collate_views
    from .engine.builders import build_dataset, video_subset

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
    from .config import build_model_from_cfg

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
        try:
            from . import load_checkpoint   # the checkpoint module (imported only when asked for)
        except ImportError:
            raise ValueError("MODEL.PRETRAINED is set but this checkout has no video_ats.load_checkpoint") from None
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
        raise ValueError(f"unknown source {source!r}; valid sources are ['dataset', 'random', 'none']")
    counted = gflops_over_batches(model, batches, torch.device(device),
                                  None if source == "random" else (max_videos * views if max_videos else None))
    totals = per_video_totals(counted["per_view"], counted["video_index"])
    report["ats"] = {"options": model.ats.to_dict(), "clips": label,
                     "gflops_per_view": distribution(counted["per_view"]),
                     "gflops_per_video": distribution(totals),
                     "saving": 1 - counted["per_view"].mean().item() / per_view if len(counted["per_view"]) else None}
    return report
