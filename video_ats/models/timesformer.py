"""TimeSformer with divided space-time attention (Bertasius et al., ICML 2021), ATS built in.

Computed as the official code computes it: one CLS token; patch tokens ordered [CLS] + (h w t)
(time fastest), which this module holds as a (B, P, T, d) tensor; per block, temporal
attention over the T tokens of each position (CLS excluded) followed by ``temporal_fc``
after drop path, then spatial attention per frame with the CLS copied into every frame and
its T outputs averaged, then the MLP. Parameter names match the official checkpoint keys
(without their ``model.`` prefix).

ATS runs in the spatial attention of the chosen blocks (the paper's 3, 4, 5): the CLS rows of
the T frames score the spatial positions, the sampled positions are kept in every frame, and
only their queries are attended (output = A[kept] V).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..ats import ATSOptions, content_key
from .layers import Attention, DropPath, Mlp, PatchEmbed, check_video, drop_path_rates, init_vit_weights, linear
from .token_selection import (TokenState, gather_queries, gather_slots, next_state, pack, select_positions,
                              stage_stats, token_rows, unpack)

DEFAULT_ATS_BLOCKS = (3, 4, 5)


class DividedSpaceTimeBlock(nn.Module):
    """Temporal attention -> temporal_fc -> spatial attention (optionally ATS) -> MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.temporal_norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.temporal_attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.temporal_fc = nn.Linear(dim, dim)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, cls: Tensor, x: Tensor, state: TokenState, ats: Optional[ATSOptions] = None,
                block_index: int = 0) -> Tuple[Tensor, Tensor, TokenState, Optional[dict]]:
        """One block.

        Args:
            cls: (B, 1, d) the CLS token.
            x: (B, P, T, d) patch tokens (P position slots, zero where invalid).
            state: slot validity and positions.
            ats: options when this block samples tokens, else None.
        Returns:
            cls (B, 1, d), x (B, P', T, d), the new state, and this stage's stats (or None).
        """
        valid = _token_mask(state)                                               # (B, P, T, 1) or None
        x = self._temporal(x, state, valid)

        # Spatial attention per frame over [CLS copy] + P patches.
        batch, _, frames, dim = x.shape
        per_frame = torch.cat([cls[:, None].expand(batch, frames, 1, dim), x.transpose(1, 2)], dim=2)  # (B, T, 1+P, d)
        if state.packed_slots is not None:      # the qkv projection of the rows that hold tokens only
            rows = token_rows(state.packed_slots, batch, frames, per_frame.shape[2] - 1)
            qkv = unpack(linear(self.norm1(pack(per_frame, rows, 3)), self.attn.qkv), rows, per_frame.shape[:3])
        else:
            qkv = linear(self.norm1(per_frame), self.attn.qkv)
        q, k, v = self.attn.split_heads(qkv)                                    # (B, T, h, 1+P, d_h)
        key_mask = state.key_mask()
        stats = None
        if ats is not None:
            selection = select_positions(q, k, v, self.attn.scale, state, ats, block_index)
            q = gather_queries(q, selection.index)
            x = gather_slots(x, selection.index, axis=1)
            new_state = next_state(state, selection)
            stats = stage_stats(block_index, state, selection, new_state.positions)
            state = new_state
            valid = _token_mask(state)
        heads = self.attn.attend_heads(q, k, v, key_mask)                       # (B, T, 1+P', d)
        kept_slots = heads.shape[2] - 1
        if state.packed_slots is not None:
            rows = token_rows(state.packed_slots, batch, frames, kept_slots)
            residual = unpack(self.attn.project(pack(heads, rows, 3)), rows, heads.shape[:3])
        else:
            residual = self.attn.project(heads)
        residual = self.drop_path(residual.reshape(batch * frames, kept_slots + 1, dim))
        residual = residual.reshape(batch, frames, kept_slots + 1, dim)
        cls = cls + residual[:, :, :1].mean(dim=1)
        x = x + residual[:, :, 1:].transpose(1, 2)
        if valid is not None and not (self._packs_mlp(state) and not state.per_frame):
            x = x * valid                      # (a packed MLP leaves zeros in the padding anyway)

        cls, x = self._mlp(cls, x, state, valid)
        return cls, x, state, stats

    def _temporal(self, x: Tensor, state: TokenState, valid: Optional[Tensor]) -> Tensor:
        """Temporal attention over the T tokens of each position, CLS excluded: (B, P, T, d) -> same.

        With ``state.packed_slots`` only the slots that hold tokens are computed.
        """
        batch, slots, frames, dim = x.shape
        rows = state.packed_slots
        by_position = x.reshape(batch * slots, frames, dim)
        temporal_mask = None
        if state.per_frame and valid is not None:
            frame_valid = valid.reshape(batch * slots, frames)
            frame_valid = frame_valid | ~frame_valid.any(dim=-1, keepdim=True)   # no fully masked rows
            temporal_mask = frame_valid[:, None, None, :]
        if rows is not None:
            by_position = by_position.index_select(0, rows)                      # (S, T, d)
            temporal_mask = None if temporal_mask is None else temporal_mask.index_select(0, rows)
        residual = self.temporal_attn(self.temporal_norm1(by_position), temporal_mask)
        if self.drop_path.active:
            by_position = by_position + self.temporal_fc(self.drop_path(residual))
        else:
            by_position = linear(residual, self.temporal_fc, residual=by_position)
        if rows is None:
            x = by_position.reshape(batch, slots, frames, dim)
        else:
            x = unpack(by_position, rows, (batch, slots))
        if valid is not None and (rows is None or state.per_frame):
            x = x * valid
        return x

    def _packs_mlp(self, state: TokenState) -> bool:
        # Drop path drops whole clips; it needs the clip layout.
        return state.packed_slots is not None and not self.drop_path.active

    def _mlp(self, cls: Tensor, x: Tensor, state: TokenState, valid: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """MLP over the CLS (B, 1, d) and every patch token (B, P, T, d)."""
        batch, slots, frames, dim = x.shape
        if self._packs_mlp(state):
            rows = state.packed_slots
            cls = self.mlp(self.norm2(cls), residual=cls)
            patches = pack(x, rows, 2)                                            # (S, T, d)
            x = unpack(self.mlp(self.norm2(patches), residual=patches), rows, (batch, slots))
            return cls, (x * valid if state.per_frame else x)
        tokens = torch.cat([cls, x.reshape(batch, slots * frames, dim)], dim=1)
        if self.drop_path.active:
            tokens = tokens + self.drop_path(self.mlp(self.norm2(tokens)))
        else:
            tokens = self.mlp(self.norm2(tokens), residual=tokens)
        cls, x = tokens[:, :1], tokens[:, 1:].reshape(batch, slots, frames, dim)
        return cls, (x if valid is None else x * valid)


def _token_mask(state: TokenState) -> Optional[Tensor]:
    """(B, P, T, 1) validity of the tokens in the (B, P, T, d) layout, or None when all are valid."""
    return None if state.token_valid is None else state.token_valid.transpose(1, 2).unsqueeze(-1)


class TimeSformer(nn.Module):
    """TimeSformer (divided space-time) for clips of shape (B, 3, num_frames, img_size, img_size).

    ``forward`` returns logits (B, num_classes); after each forward ``ats_stats`` lists, per ATS
    stage, the kept position count per clip and the kept positions (see docs/models.md).
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 400,
                 num_frames: int = 8, embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1, ats: Optional[dict] = None):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} must be a multiple of patch_size {patch_size}")
        self.img_size, self.patch_size, self.in_chans = img_size, patch_size, in_chans
        self.num_frames, self.num_classes, self.embed_dim, self.depth = num_frames, num_classes, embed_dim, depth
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        self.time_embed = nn.Parameter(torch.zeros(1, num_frames, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        self.time_drop = nn.Dropout(drop_rate)
        self.blocks = nn.ModuleList([
            DividedSpaceTimeBlock(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, rate)
            for rate in drop_path_rates(drop_path_rate, depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.ats = None if ats is None else ATSOptions.from_dict(ats, depth, DEFAULT_ATS_BLOCKS)
        self.ats_stats: List[dict] = []
        self._init_weights()

    def _init_weights(self) -> None:
        init_vit_weights(self)
        # Temporal attention starts as an identity residual (the official zero init of temporal_fc).
        for block in self.blocks:
            nn.init.zeros_(block.temporal_fc.weight)
            nn.init.zeros_(block.temporal_fc.bias)

    def no_weight_decay(self) -> Sequence[str]:
        return ("pos_embed", "cls_token", "time_embed")

    def ats_blocks(self) -> Tuple[int, ...]:
        return () if self.ats is None else self.ats.blocks

    def forward_features(self, video: Tensor) -> Tensor:
        """(B, 3, T, H, W) -> normalised CLS features (B, d)."""
        check_video(video, self.in_chans, self.num_frames, self.img_size, self.patch_size)
        batch = video.shape[0]
        patches = self.patch_embed(video) + self.pos_embed[:, None, 1:]       # (B, T, P, d)
        cls = self.pos_drop(self.cls_token + self.pos_embed[:, :1]).expand(batch, -1, -1)
        patches = self.pos_drop(patches).transpose(1, 2)                       # (B, P, T, d)
        x = self.time_drop(patches + self.time_embed[:, None])
        ats = self.ats
        positions = torch.arange(x.shape[1], device=x.device).expand(batch, -1)
        clip_keys = content_key(video) if ats is not None and ats.sampler == "random" else None
        state = TokenState(token_valid=None, per_frame=ats is not None and ats.scope == "frame",
                           positions=positions, clip_keys=clip_keys, reference_positions=positions.shape[1])
        stats = []
        for index, block in enumerate(self.blocks):
            stage = ats if ats is not None and index in ats.blocks else None
            cls, x, state, stage_stats = block(cls, x, state, stage, index)
            if stage_stats is not None:
                stats.append(stage_stats)
        self.ats_stats = stats
        return self.norm(cls[:, 0])

    def forward_head(self, features: Tensor) -> Tensor:
        """(B, d) -> logits (B, num_classes)."""
        return self.head(features)

    def forward(self, video: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(video))
