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

    Equals `fvcore_gflops` of each clip run alone (tested to a relative 1e-9); no tracing.
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


def score_macs(score: Optional[str], frames: int, keys, dim: int):
    """The scoring matmul of an ATS stage over per-frame sequences of ``keys`` tokens: the CLS
    row (T keys d) for ``cls`` / ``cls_vnorm``, the full matrix for ``self_attn``, nothing
    for the unscored ``random`` sampler (``score`` None)."""
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
    """Multiply-adds per clip given, per block, (positions in, positions out, score) (B,) each.

    The blocks' and the head's costs are the model's own (``block_macs``, ``head_macs``: see
    `video_ats.models.TimeSformer`); the ATS scoring runs in the per-frame spatial attention
    over [CLS] + positions, the same in every backbone.
    """
    if not (hasattr(model, "block_macs") and hasattr(model, "head_macs")):
        raise TypeError(f"no closed-form GFLOPs for {type(model).__name__} (it has no block_macs / head_macs); "
                        f"use fvcore_gflops")
    total = torch.zeros_like(widths[0][0]) + _patch_embed_macs(model)
    for index, (positions_in, positions_out, score) in enumerate(widths):
        total = total + model.block_macs(index, positions_in, positions_out)
        total = total + score_macs(score, model.num_frames, 1 + positions_in, model.embed_dim)
    return total + model.head_macs()
