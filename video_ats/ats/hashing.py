"""Reproducible randomness that does not depend on a clip's batch mates.

The ``random`` sampler must give a clip the same tokens whether it runs alone or in a batch,
and the same tokens on every run with the same seed. A global RNG gives neither, so the
random keys are a counter-based hash of (seed, stage, clip content, token position),
computed with exact integer arithmetic.
"""

from __future__ import annotations

import torch
from torch import Tensor

_MASK32 = 0xFFFFFFFF


def _mix32(x: Tensor) -> Tensor:
    """A 32-bit integer finaliser (xor-shift-multiply) on int64 tensors holding uint32 values.

    Multipliers stay below 2**31 so the int64 products never overflow.
    """
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x2C1B3C6D) & _MASK32
    x = x ^ (x >> 16)
    return x


def content_key(video: Tensor) -> Tensor:
    """A 31-bit integer per clip, a function of the clip's pixel values only.

    Args:
        video: (B, ...) finite float input.
    Returns:
        (B,) int64.
    """
    flat = video.detach().reshape(video.shape[0], -1)
    stride = max(1, flat.shape[1] // 4096)
    quantized = torch.round(flat[:, ::stride].double() * 256.0).long() & 0xFFFF
    position = _mix32(torch.arange(quantized.shape[1], device=video.device, dtype=torch.long) + 1) & 0x7FFF
    return _mix32((quantized * position).sum(dim=1)) & 0x7FFFFFFF


def frame_keys(clip_keys: Tensor, num_frames: int) -> Tensor:
    """One key per frame of each clip, for samplers that draw per frame (``frame`` scope).

    Args:
        clip_keys: (B,) int64, e.g. `content_key` of each clip.
    Returns:
        (B, num_frames) int64, a hash of (clip key, frame index).
    """
    frame_index = torch.arange(num_frames, device=clip_keys.device, dtype=torch.long)
    return _mix32(clip_keys[:, None] * 31 + frame_index)


def hashed_uniform(keys: Tensor, num: int, salt: int) -> Tensor:
    """Uniform numbers in [0, 1) indexed by (row key, column, salt).

    Args:
        keys: (R,) int64 per-row keys (e.g. `content_key` of the clip, combined with a frame).
        num: number of columns.
    Returns:
        (R, num) float64.
    """
    column = torch.arange(num, device=keys.device, dtype=torch.long)
    x = _mix32(keys.unsqueeze(-1) ^ _mix32(torch.tensor(salt & _MASK32, device=keys.device)))
    x = _mix32(x + _mix32(column + 0x1E3779B1))
    return x.double() / float(1 << 32)
