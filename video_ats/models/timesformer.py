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

import re
from typing import Collection, Dict, FrozenSet, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..ats import ATSOptions, content_key
from .costs import attention_matmul_macs, linear_macs, mlp_macs
from .layers import Attention, DropPath, Mlp, PatchEmbed, check_video, drop_path_rates, init_vit_weights, linear
from .preset import Preset
from .token_selection import (DEFAULT_PACK_MIN_PADDING, TokenState, check_pack_min_padding, gather_queries,
                              gather_slots, next_state, pack, select_positions, stage_stats, token_rows, unpack)


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
    ``pack_min_padding`` (an attribute, read at every forward) is the share of padding in an
    ATS batch from which the row-wise layers run on the kept tokens only (1.0: never).

    The class also carries what the rest of the toolkit needs to know about the family (the
    checkpoint loader, the GFLOPs counter, the optimiser): the paper's ATS blocks, the
    classifier and embedding keys, how the official code resizes the position embedding, how
    an image ViT initialises it, and the multiply-adds of a block.
    """

    # The ATS paper's stages for TimeSformer (0-based blocks).
    default_ats_blocks: Tuple[int, ...] = (3, 4, 5)
    # The checkpoint key of the time embedding (resized over T by the loader).
    time_embed_key = "time_embed"
    # The official forward resizes pos_embed for another input size by 2-D nearest interpolation.
    pos_embed_interpolation = "nearest"

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 400,
                 num_frames: int = 8, embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1,
                 pack_min_padding: float = DEFAULT_PACK_MIN_PADDING, ats: Optional[dict] = None):
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
        self.num_features = embed_dim
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.ats = None if ats is None else ATSOptions.from_dict(ats, depth, self.default_ats_blocks)
        self.pack_min_padding = check_pack_min_padding(pack_min_padding)
        self.ats_stats: List[dict] = []
        self._init_weights()

    def _init_weights(self) -> None:
        init_vit_weights(self)
        # Temporal attention starts as an identity residual (the official zero init of temporal_fc).
        for block in self.blocks:
            nn.init.zeros_(block.temporal_fc.weight)
            nn.init.zeros_(block.temporal_fc.bias)

    def no_weight_decay(self) -> FrozenSet[str]:
        """Parameter names the optimiser exempts from weight decay besides norms and biases."""
        return frozenset({"pos_embed", "cls_token", "time_embed"})

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised classifier for ``num_classes`` (0: none, the forward
        returns the features)."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)

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
                           positions=positions, clip_keys=clip_keys, pack_min_padding=self.pack_min_padding,
                           reference_positions=positions.shape[1])
        stats = []
        for index, block in enumerate(self.blocks):
            stage = ats if ats is not None and index in ats.blocks else None
            cls, x, state, stage_stats = block(cls, x, state, stage, index)
            if stage_stats is not None:
                stats.append(stage_stats)
        self.ats_stats = stats
        return self.norm(cls[:, 0])

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        """(B, d) -> logits (B, num_classes), or with ``pre_logits`` the features the
        classifier reads, (B, num_features) (here the CLS features themselves)."""
        return features if pre_logits else self.head(features)

    def forward(self, video: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(video))

    # --- Facts for the GFLOPs counter (video_ats.flops) ------------------------------------------

    def block_macs(self, index: int, positions_in, positions_out):
        """Multiply-adds per clip of block ``index`` when ``positions_in`` spatial positions
        enter it and ``positions_out`` leave its spatial attention (ATS scoring not included).

        Temporal attention runs over the T frames of each incoming position; spatial attention
        per frame over [CLS copy] + positions, its queries cut to the kept ones; the MLP over
        the CLS and every kept token. Counts may be numbers or (B,) float64 tensors.
        """
        block, frames, dim = self.blocks[index], self.num_frames, self.embed_dim
        temporal_tokens = positions_in * frames
        macs = linear_macs(block.temporal_attn.qkv, temporal_tokens)
        macs = macs + attention_matmul_macs(positions_in, frames, frames, dim)
        macs = macs + linear_macs(block.temporal_attn.proj, temporal_tokens)
        macs = macs + linear_macs(block.temporal_fc, temporal_tokens)
        keys, queries = 1 + positions_in, 1 + positions_out
        macs = macs + linear_macs(block.attn.qkv, frames * keys)
        macs = macs + attention_matmul_macs(frames, queries, keys, dim)
        macs = macs + linear_macs(block.attn.proj, frames * queries)
        return macs + mlp_macs(block.mlp, 1 + frames * positions_out)

    def head_macs(self) -> float:
        """Multiply-adds per clip of the classifier."""
        return linear_macs(self.head, 1) if isinstance(self.head, nn.Linear) else 0

    # --- Facts for the checkpoint loader (video_ats.checkpoint) ----------------------------------

    @staticmethod
    def classifier_keys(*states: Collection[str]) -> Tuple[str, str]:
        """The classifier's (weight, bias) keys."""
        return ("head.weight", "head.bias")

    @staticmethod
    def owns_state(keys: Collection[str]) -> bool:
        """Whether a state dict in this toolkit's names is a TimeSformer's."""
        return "time_embed" in keys or any(".temporal_attn." in key for key in keys)

    @staticmethod
    def from_image_vit(image_keys: Collection[str], model_keys: Collection[str]
                       ) -> Tuple[Dict[str, str], List[str], List[str]]:
        """How an image ViT (in this toolkit's names) initialises a TimeSformer, the official way.

        Returns:
            (copied: model key -> image key, every block's ``attn`` and ``norm1`` also into
            ``temporal_attn`` and ``temporal_norm1``; zeros: ``time_embed`` and every
            ``temporal_fc``, so each block starts as the image block; own: the classifier,
            which keeps the model's initialisation).
        """
        copied = {}
        for key in image_keys:
            match = re.match(r"blocks\.(\d+)\.(attn|norm1)\.(.+)$", key)
            if match:
                copied[f"blocks.{match.group(1)}.temporal_{match.group(2)}.{match.group(3)}"] = key
        zeros = [key for key in model_keys if key == "time_embed" or ".temporal_fc." in key]
        own = [key for key in model_keys if key in TimeSformer.classifier_keys()]
        return copied, zeros, own


_KINETICS = dict(mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225))   # the official TimeSformer configs
_VIT_B16 = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, qkv_bias=True)

# Full-size presets follow the official configs (TimeSformer_divST_8x32_224, _16x16_448, _96x4_224).
PRESETS = (
    Preset("timesformer_base", TimeSformer, dict(_VIT_B16, num_frames=8, img_size=224, drop_path_rate=0.1),
           train_jitter_scales=(256, 320), description="TimeSformer 8 x 224 (divided space-time)", **_KINETICS),
    Preset("timesformer_hr", TimeSformer, dict(_VIT_B16, num_frames=16, img_size=448, drop_path_rate=0.1),
           train_jitter_scales=(448, 512), description="TimeSformer-HR 16 x 448", **_KINETICS),
    Preset("timesformer_large", TimeSformer, dict(_VIT_B16, num_frames=96, img_size=224, drop_path_rate=0.1),
           train_jitter_scales=(256, 320), description="TimeSformer-L 96 x 224", **_KINETICS),
    # CPU-sized, trained from scratch here (the demo, the tests, the synthetic-data study).
    Preset("timesformer_tiny", TimeSformer,
           dict(patch_size=8, embed_dim=96, depth=6, num_heads=4, mlp_ratio=4.0, qkv_bias=True, num_frames=8,
                img_size=64, drop_path_rate=0.0),
           train_jitter_scales=(64, 80), description="TimeSformer 8 x 64, 6 blocks of 96 (CPU size)", **_KINETICS),
)
