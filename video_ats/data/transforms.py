"""Spatial transforms for clips, in plain torch (no torchvision).

Frames travel as (T, C, H, W) float in [0, 1] between the steps (the layout
``F.interpolate`` wants) and leave :func:`train_transform` / :func:`test_transform` as
normalized (C, T, H, W) float32.

Rules (PySlowFast conventions, restated):

- Short-side resize to ``size``: the short side becomes ``size``, the long side
  ``floor(long * size / short)``; bilinear, ``align_corners=False``, no antialiasing (as the
  official loaders). A frame whose short side already equals ``size`` is left untouched.
- Training: short side to a random integer in ``[min_scale, max_scale]`` (both included), a
  random ``crop_size`` square (top and left uniform over every position that fits), a
  horizontal flip with probability 0.5, normalization.
- Testing: short side to ``crop_size``, then ``num_crops`` squares: 1 = the center crop,
  3 = first / center / last along the long side (left / center / right for landscape and
  square frames, top / center / bottom for portrait), normalization. The center offset is
  ``ceil((L - crop_size) / 2)`` and the last crop ends at the border, as in PySlowFast.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

NUM_CROPS_CHOICES = (1, 3)


def to_float_frames(frames: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
    """uint8 RGB frames (T, H, W, C) -> float32 (T, C, H, W) in [0, 1]."""
    frames = torch.as_tensor(frames)
    return rearrange(frames, "t h w c -> t c h w").float().div_(255.0)


def short_side_size(height: int, width: int, size: int) -> Tuple[int, int]:
    """(new_height, new_width) with the short side ``size`` and the long side
    ``floor(long * size / short)`` (integer arithmetic, so no float rounding)."""
    if height <= width:
        return size, width * size // height
    return height * size // width, size


def short_side_resize(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(T, C, H, W) -> (T, C, H', W') with min(H', W') == size (see module rules)."""
    height, width = frames.shape[-2:]
    if min(height, width) == size:
        return frames
    new_size = short_side_size(height, width, size)
    return F.interpolate(frames, size=new_size, mode="bilinear", align_corners=False)


def random_short_side_scale(frames: torch.Tensor, min_size: int, max_size: int, rng) -> torch.Tensor:
    """Short-side resize to an integer drawn uniformly from [min_size, max_size]."""
    return short_side_resize(frames, int(rng.integers(min_size, max_size + 1)))


def random_crop_box(height: int, width: int, crop_size: int, rng) -> Tuple[int, int]:
    """(top, left) of a random crop_size square inside a height x width frame."""
    _check_fits(height, width, crop_size)
    top = int(rng.integers(0, height - crop_size + 1))
    left = int(rng.integers(0, width - crop_size + 1))
    return top, left


def spatial_crops(height: int, width: int, crop_size: int, num_crops: int) -> list:
    """(top, left) of the test crops of a height x width frame.

    num_crops 1: [center]; 3: [first, center, last] along the long side (left, center,
    right when width >= height; top, center, bottom otherwise). The other axis is centered.
    """
    if num_crops not in NUM_CROPS_CHOICES:
        raise ValueError(f"num_crops must be one of {NUM_CROPS_CHOICES}, got {num_crops}")
    _check_fits(height, width, crop_size)
    center_top = -(-(height - crop_size) // 2)  # ceil division
    center_left = -(-(width - crop_size) // 2)
    if num_crops == 1:
        return [(center_top, center_left)]
    if height > width:
        return [(0, center_left), (center_top, center_left), (height - crop_size, center_left)]
    return [(center_top, 0), (center_top, center_left), (center_top, width - crop_size)]


def crop(frames: torch.Tensor, top: int, left: int, crop_size: int) -> torch.Tensor:
    """(..., H, W) -> (..., crop_size, crop_size) starting at (top, left)."""
    return frames[..., top : top + crop_size, left : left + crop_size]


def horizontal_flip(frames: torch.Tensor) -> torch.Tensor:
    """Mirror (..., H, W) along W."""
    return frames.flip(-1)


def normalize(frames: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(T, C, H, W) -> (frames - mean[c]) / std[c] per channel c."""
    mean_t = torch.as_tensor(mean, dtype=frames.dtype).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=frames.dtype).view(1, -1, 1, 1)
    return (frames - mean_t) / std_t


def train_transform(
    frames,
    *,
    crop_size: int,
    jitter_scales: Tuple[int, int],
    random_flip: bool,
    mean: Sequence[float],
    std: Sequence[float],
    rng,
) -> torch.Tensor:
    """Training augmentation: uint8 (T, H, W, C) -> float32 (C, T, crop_size, crop_size)."""
    clip = random_short_side_scale(to_float_frames(frames), jitter_scales[0], jitter_scales[1], rng)
    top, left = random_crop_box(clip.shape[-2], clip.shape[-1], crop_size, rng)
    clip = crop(clip, top, left, crop_size)
    if random_flip and rng.random() < 0.5:
        clip = horizontal_flip(clip)
    return rearrange(normalize(clip, mean, std), "t c h w -> c t h w").contiguous()


def test_transform(
    frames,
    *,
    crop_size: int,
    spatial_index: int,
    num_crops: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """Test view: uint8 (T, H, W, C) -> float32 (C, T, crop_size, crop_size), the
    ``spatial_index``-th of :func:`spatial_crops` after resizing the short side to crop_size."""
    clip = short_side_resize(to_float_frames(frames), crop_size)
    top, left = spatial_crops(clip.shape[-2], clip.shape[-1], crop_size, num_crops)[spatial_index]
    clip = crop(clip, top, left, crop_size)
    return rearrange(normalize(clip, mean, std), "t c h w -> c t h w").contiguous()


test_transform.__test__ = False  # not a pytest test when imported into a test module


def _check_fits(height: int, width: int, crop_size: int) -> None:
    if crop_size > min(height, width):
        raise ValueError(f"crop {crop_size} does not fit in a {height}x{width} frame")
