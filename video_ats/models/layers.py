"""The building blocks shared by both backbones: patch embedding, attention, MLP, drop path.

Module and parameter names follow the official TimeSformer / XViT code (``patch_embed.proj``,
``attn.qkv``, ``attn.proj``, ``mlp.fc1``, ``mlp.fc2``) so their checkpoints map by prefix.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .linear_kernels import linear, resolve_kernel


class PatchEmbed(nn.Module):
    """Per-frame non-overlapping patches: (B, C, T, H, W) -> (B, T, P, d), P = (H/p)(W/p) in row-major order."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768):
        super().__init__()
        self.img_size = img_size
        self.patch_size = patch_size
        self.grid_size = img_size // patch_size
        self.num_patches = self.grid_size ** 2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, video: Tensor) -> Tensor:
        frames = rearrange(video, "b c t h w -> (b t) c h w")
        patches = self.proj(frames)
        return rearrange(patches, "(b t) d gh gw -> b t (gh gw) d", b=video.shape[0])


def init_vit_weights(model: nn.Module) -> None:
    """The ViT initialization both official codes use: position embedding and CLS token
    truncated normal (std 0.02), every Linear truncated normal with zero bias, LayerNorm 1 / 0."""
    nn.init.trunc_normal_(model.pos_embed, std=0.02)
    nn.init.trunc_normal_(model.cls_token, std=0.02)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class Mlp(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout, applied token-wise."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    # On the oneDNN path, large inputs run in chunks of this many rows, so that each chunk's
    # hidden activations (rows x 4d) stay in cache between fc1 and fc2 instead of making a
    # round trip through memory (5 % more GEMM throughput at 12,608 rows; bit-identical, the
    # layers are row-wise). The default path gained nothing from it (-1 to -3 % at one thread).
    CHUNK_ROWS = 1024

    def forward(self, x: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        """(..., d) -> (..., d); with ``residual``, residual + MLP(x) (fused on the fast path)."""
        if self.drop.p and self.training:
            out = self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
            return out if residual is None else residual + out
        rows = x.reshape(-1, x.shape[-1])
        if residual is None or len(rows) < 2 * self.CHUNK_ROWS or resolve_kernel(x, self.fc1, "gelu")[0] != "onednn":
            return linear(linear(x, self.fc1, "gelu"), self.fc2, residual=residual)
        residual_rows = residual.reshape(len(rows), -1)
        out = torch.empty_like(residual_rows)
        for start in range(0, len(rows), self.CHUNK_ROWS):
            chunk = slice(start, start + self.CHUNK_ROWS)
            out[chunk] = linear(linear(rows[chunk], self.fc1, "gelu"), self.fc2, residual=residual_rows[chunk])
        return out.view(residual.shape)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection, computed by SDPA.

    ``qkv`` rows are ordered [q; k; v], heads concatenated within each, as in the official code.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)

    def qkv_heads(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """(..., N, d) -> q, k, v each (..., h, N, d_h)."""
        return self.split_heads(linear(x, self.qkv))

    def split_heads(self, qkv: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The qkv projection (..., N, 3d) -> q, k, v each (..., h, N, d_h), views of it."""
        qkv = qkv.unflatten(-1, (3, self.num_heads, self.head_dim))
        q, k, v = qkv.movedim(-3, 0).transpose(-3, -2).unbind(0)
        return q, k, v

    def attend(self, q: Tensor, k: Tensor, v: Tensor, attn_mask: Optional[Tensor] = None,
               residual: Optional[Tensor] = None) -> Tensor:
        """softmax(q k^T * scale) v with heads merged and projected.

        Args:
            q: (..., h, Nq, d_h); k, v: (..., h, Nk, d_h).
            attn_mask: bool, broadcastable to (..., h, Nq, Nk), True where attention is allowed.
            residual: None, or (..., Nq, d) added to the output (fused on the fast path;
                only without output dropout).
        Returns:
            (..., Nq, d).
        """
        return self.project(self.attend_heads(q, k, v, attn_mask), residual)

    def attend_heads(self, q: Tensor, k: Tensor, v: Tensor, attn_mask: Optional[Tensor] = None) -> Tensor:
        """softmax(q k^T * scale) v with the heads merged, before the projection: (..., Nq, d)."""
        lead = q.shape[:-3]
        q, k, v = (t.reshape(-1, *t.shape[-3:]) for t in (q, k, v))
        if attn_mask is not None:
            attn_mask = attn_mask.reshape(-1, *attn_mask.shape[-3:])
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.attn_drop if self.training else 0.0)
        out = out.transpose(-3, -2).flatten(-2)
        return out.reshape(*lead, *out.shape[-2:])

    def project(self, heads: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        """The output projection (and dropout) of merged heads (..., N, d), plus ``residual``."""
        if self.proj_drop.p and self.training:
            out = self.proj_drop(self.proj(heads))
            return out if residual is None else residual + out
        return linear(heads, self.proj, residual=residual)

    def forward(self, x: Tensor, attn_mask: Optional[Tensor] = None) -> Tensor:
        """(..., N, d) -> (..., N, d)."""
        return self.attend(*self.qkv_heads(x), attn_mask=attn_mask)


class DropPath(nn.Module):
    """Stochastic depth: zero a whole residual branch per sample (rows of dim 0) in training."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    @property
    def active(self) -> bool:
        """False when this is the identity (eval, or rate 0), so a residual add may be fused."""
        return self.training and self.drop_prob > 0.0

    def forward(self, x: Tensor) -> Tensor:
        if not self.active:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


def drop_path_rates(rate: float, depth: int) -> list:
    """Linearly increasing stochastic-depth rates over the blocks, as in the official code."""
    if depth == 1:
        return [float(rate)]
    return [rate * i / (depth - 1) for i in range(depth)]


def check_video(video: Tensor, in_chans: int, num_frames: int, img_size: int, patch_size: int) -> None:
    """Raise ValueError unless ``video`` is a finite float (B, in_chans, num_frames, img_size, img_size).

    NaN or Inf anywhere in the input is refused rather than turned into a prediction (this is
    one host sync per forward; see docs/models.md).
    """
    expected = f"(B, {in_chans}, {num_frames}, {img_size}, {img_size})"
    if not isinstance(video, Tensor):
        raise ValueError(f"expected a video tensor of shape {expected}, got {type(video).__name__}")
    if video.ndim != 5:
        raise ValueError(f"expected a video tensor of shape {expected} (B, C, T, H, W), got shape {tuple(video.shape)}")
    _, c, t, h, w = video.shape
    if c != in_chans:
        raise ValueError(f"expected {in_chans} channels, shape {expected}, got shape {tuple(video.shape)}")
    if t != num_frames:
        raise ValueError(f"expected {num_frames} frames (the time embedding has {num_frames}), shape {expected}, "
                         f"got shape {tuple(video.shape)}; rebuild the model with num_frames={t} to change it")
    if h % patch_size or w % patch_size:
        raise ValueError(f"spatial size {h}x{w} is not a multiple of the patch size {patch_size}; expected {expected}")
    if (h, w) != (img_size, img_size):
        raise ValueError(f"expected spatial size {img_size}x{img_size} (what the position embedding covers), "
                         f"shape {expected}, got shape {tuple(video.shape)}; rebuild with img_size to change it")
    if not video.is_floating_point():
        raise ValueError(f"expected a float video tensor, got dtype {video.dtype}")
    if video.is_meta:
        return                      # shapes only (GFLOPs counting): there are no values to check
    if not bool(torch.isfinite(video).all()):
        raise ValueError("the input video contains NaN or Inf values; refusing to predict from it")
