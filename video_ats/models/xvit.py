"""XViT: space-time mixing attention (Bulat et al., NeurIPS 2021), ATS built in.

Computed as the official code (1adrianb/video-transformers) computes it: each frame is its own
ViT sequence [CLS] + P patches with a per-frame CLS; the position embedding is added to every
token, then a temporal embedding per frame of a group of ``temp_embed_frames`` frames (the
official ViT keeps its default of 8 whatever the clip length, so a 16-frame clip gets the 8
embeddings twice). Keys and values are shifted within segments of ``num_segments`` frames (the
Kinetics setting of 8 makes a 16-frame clip two independent 8-frame groups). In every block the keys and values are shifted over time on the concatenated
head channels: channels [0, fold) come from frame t+1, [fold, 2 fold) from frame t-1 (zeros
at the edges of a segment), fold = embed_dim / shift_div; queries are not shifted. The
per-frame CLS features pass a dropout and a one-block temporal transformer with its own CLS
(the "consensus" head, the official ``CONSENSUS_TYPE: vit``), then an MLP head; or, with
``consensus="avg"`` (the official ``CONSENSUS_TYPE: avg``), one Linear classifies each frame and the
logits are averaged over the frames.

ATS runs in the attention of the chosen blocks (the paper's 3..11): the CLS rows of all frames
score the spatial positions, the sampled positions are kept in every frame (``tube``) or per
frame (``frame``), and only their queries are attended.
"""

from __future__ import annotations

from typing import Collection, Dict, FrozenSet, List, Optional, Tuple

import torch
from einops import rearrange
from torch import Tensor, nn

from ..ats import ATSOptions, content_key
from .costs import attention_matmul_macs, linear_macs, mlp_macs
from .layers import Attention, DropPath, Mlp, PatchEmbed, check_video, drop_path_rates, init_vit_weights, linear
from .preset import Preset
from .token_selection import (DEFAULT_PACK_MIN_PADDING, TokenState, check_pack_min_padding, gather_queries,
                              gather_slots, next_state, pack, select_positions, stage_stats, token_rows, unpack,
                              with_cls)


def temporal_shift(x: Tensor, num_segments: int, fold: int) -> Tensor:
    """Shift channel groups of keys or values across neighbouring frames of a segment.

    Args:
        x: (B, T, h, N, d_h) with T a multiple of ``num_segments``; channel c of head i is
            channel i*d_h + c of the concatenated width.
        fold: channels taken from each neighbour.
    Returns:
        (B, T, h, N, d_h): channels [0, fold) from frame t+1, [fold, 2 fold) from frame t-1,
        zeros where the neighbour is outside the segment, the rest unchanged.
    """
    batch, frames, heads, tokens, head_dim = x.shape
    channels = rearrange(x, "b (g s) h n c -> (b g) s n (h c)", s=num_segments)
    out = torch.zeros_like(channels)
    out[:, :-1, :, :fold] = channels[:, 1:, :, :fold]
    out[:, 1:, :, fold:2 * fold] = channels[:, :-1, :, fold:2 * fold]
    out[..., 2 * fold:] = channels[..., 2 * fold:]
    return rearrange(out, "(b g) s n (h c) -> b (g s) h n c", b=batch, h=heads)


def shift_keys_values_(qkv: Tensor, num_segments: int, fold: int) -> Tensor:
    """`temporal_shift` of the keys and values, in place on the qkv projection.

    Only the 2 x fold shifted channels of k and v move (two small copies and two fills);
    building shifted copies of the whole of k and v cost a full pass over both.

    Args:
        qkv: (B, T, N, 3d), channels [q | k | v], heads concatenated in each.
    Returns:
        ``qkv``, with k and v shifted within segments of ``num_segments`` frames.
    """
    batch, frames, tokens, width = qkv.shape
    dim = width // 3
    kv = qkv.view(batch, frames // num_segments, num_segments, tokens, 3, dim)[..., 1:, :]   # (B, G, S, N, 2, d)
    kv[:, :, :-1, ..., :fold] = kv[:, :, 1:, ..., :fold].clone()              # from frame t+1
    kv[:, :, -1, ..., :fold] = 0
    kv[:, :, 1:, ..., fold:2 * fold] = kv[:, :, :-1, ..., fold:2 * fold].clone()   # from frame t-1
    kv[:, :, 0, ..., fold:2 * fold] = 0
    return qkv


class SpaceTimeMixingBlock(nn.Module):
    """Pre-norm ViT block whose attention mixes keys and values of neighbouring frames."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, shift_div: int = 8, num_segments: int = 8):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.num_segments = num_segments
        self.fold = dim // shift_div

    def forward(self, x: Tensor, state: TokenState, ats: Optional[ATSOptions] = None,
                block_index: int = 0) -> Tuple[Tensor, TokenState, Optional[dict]]:
        """One block.

        Args:
            x: (B, T, 1+P, d) per-frame sequences, CLS first.
            state: slot validity and positions.
            ats: options when this block samples tokens, else None.
        Returns:
            x (B, T, 1+P', d), the new state, and this stage's stats (or None).
        """
        batch, frames, length, dim = x.shape
        if self._packs(state):           # the linear layers see only the rows that hold tokens
            rows = token_rows(state.packed_slots, batch, frames, length - 1)
            qkv = unpack(linear(self.norm1(pack(x, rows, 3)), self.attn.qkv), rows, x.shape[:3])
        else:
            qkv = linear(self.norm1(x), self.attn.qkv)                          # (B, T, 1+P, 3d)
        key_mask = state.key_mask()
        if state.per_frame and key_mask is not None:
            # A position dropped in a frame gives its neighbours zeros, as a clip edge does.
            qkv[..., dim:] *= key_mask[:, :, 0, 0, :, None].to(qkv.dtype)
        q, k, v = self.attn.split_heads(shift_keys_values_(qkv, self.num_segments, self.fold))  # (B, T, h, 1+P, d_h)
        stats = None
        if ats is not None:
            selection = select_positions(q, k, v, self.attn.scale, state, ats, block_index)
            q = gather_queries(q, selection.index)
            x = gather_slots(x, with_cls(selection.index), axis=2)
            new_state = next_state(state, selection)
            stats = stage_stats(block_index, state, selection, new_state.positions)
            state = new_state
        if self.drop_path.active:
            residual = self.attn.attend(q, k, v, key_mask)                      # (B, T, 1+P', d)
            length = residual.shape[2]
            x = x + self.drop_path(residual.reshape(batch * frames, length, dim)).reshape(batch, frames, length, dim)
            x = x + self.drop_path(self.mlp(self.norm2(x)).reshape(batch * frames, length, dim)).reshape(x.shape)
        elif self._packs(state):
            rows = token_rows(state.packed_slots, batch, frames, x.shape[2] - 1)
            heads = pack(self.attn.attend_heads(q, k, v, key_mask), rows, 3)  # (R, d)
            tokens = self.attn.project(heads, residual=pack(x, rows, 3))
            x = unpack(self.mlp(self.norm2(tokens), residual=tokens), rows, x.shape[:3])
            if not state.per_frame:
                return x, state, stats          # unpack left the padding at zero
        else:
            x = self.attn.attend(q, k, v, key_mask, residual=x)                 # (B, T, 1+P', d)
            x = self.mlp(self.norm2(x), residual=x)
        valid = state.key_mask()
        if valid is not None:
            x = x * valid[:, :, 0, 0, :, None].to(x.dtype)
        return x, state, stats

    def _packs(self, state: TokenState) -> bool:
        # Drop path drops whole clips; it needs the clip layout.
        return state.packed_slots is not None and not self.drop_path.active


class TemporalHeadBlock(nn.Module):
    """The consensus head's transformer block: pre-norm, LayerNorm eps 1e-5, qkv without bias."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias=False, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class TemporalHead(nn.Module):
    """One transformer block over the per-frame CLS features with its own CLS, then an MLP head.

    ``mlp_head`` indices (0 LayerNorm, 1 Linear, 2 GELU, 3 Dropout, 4 Linear) match the official
    ``consensus.mlp_head`` keys.
    """

    def __init__(self, dim: int, num_heads: int, num_classes: int, mlp_dim: Optional[int] = None,
                 num_layers: int = 1, dropout: float = 0.5):
        super().__init__()
        mlp_dim = mlp_dim or dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.temporal_encoder = nn.Sequential(*[TemporalHeadBlock(dim, num_heads) for _ in range(num_layers)])
        self.mlp_head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout),
                                      nn.Linear(mlp_dim, num_classes))

    def forward(self, frame_features: Tensor, pre_logits: bool = False) -> Tensor:
        """(B, T, d) -> logits (B, num_classes), or with ``pre_logits`` the input of the last
        Linear (B, mlp_dim)."""
        cls = self.cls_token.expand(frame_features.shape[0], -1, -1)
        x = self.temporal_encoder(torch.cat([cls, frame_features], dim=1))[:, 0]
        for layer in self.mlp_head[:-1]:
            x = layer(x)
        return x if pre_logits else self.mlp_head[-1](x)


class FrameAverageHead(nn.Module):
    """The official ``avg`` consensus: a Linear per frame, logits averaged over the frames.

    Computed as the Linear of the frames' mean feature, which is the same number (a Linear
    commutes with the mean) for one matrix product instead of T. ``fc`` is the official
    ``new_fc`` (or ``base_model.head`` when the official dropout rate is 0), initialised as
    there: normal with std 0.001, zero bias.
    """

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(dim, num_classes)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.fc.weight, std=0.001)
        nn.init.zeros_(self.fc.bias)

    def forward(self, frame_features: Tensor, pre_logits: bool = False) -> Tensor:
        """(B, T, d) -> logits (B, num_classes), or with ``pre_logits`` the frames' mean (B, d)."""
        pooled = frame_features.mean(dim=1)
        return pooled if pre_logits else self.fc(pooled)


# The official CONSENSUS_TYPE values this toolkit builds (MODEL.CONSENSUS).
CONSENSUS_TYPES = ("vit", "avg")


class XViT(nn.Module):
    """XViT for clips of shape (B, 3, num_frames, img_size, img_size).

    ``forward`` returns logits (B, num_classes); after each forward ``ats_stats`` lists, per ATS
    stage, the kept position count per clip and the kept positions (see docs/models.md).
    ``pack_min_padding`` is as in `TimeSformer`.

    The class also carries what the rest of the toolkit needs to know about the family: the
    paper's ATS blocks, the classifier and embedding keys (which depend on the consensus head),
    how the official code resizes the position embedding, how an image ViT initialises it, and
    the multiply-adds of a block and of the head.
    """

    # The ATS paper's stages for XViT (0-based blocks).
    default_ats_blocks: Tuple[int, ...] = tuple(range(3, 12))
    # The checkpoint key of the temporal embedding (resized over T by the loader).
    time_embed_key = "temp_embed"
    # The official forward computes F.interpolate(scale_factor=img_size / 224, mode="bicubic").
    pos_embed_interpolation = "bicubic"

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 400,
                 num_frames: int = 16, num_segments: int = 8, shift_div: int = 8, embed_dim: int = 768,
                 depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 head_dropout: float = 0.5, head_mlp_dim: Optional[int] = None, temp_embed_frames: Optional[int] = None,
                 consensus: str = "vit", pack_min_padding: float = DEFAULT_PACK_MIN_PADDING,
                 ats: Optional[dict] = None):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} must be a multiple of patch_size {patch_size}")
        temp_embed_frames = temp_embed_frames or num_segments
        for name, group in (("num_segments", num_segments), ("temp_embed_frames", temp_embed_frames)):
            if num_frames % group:
                raise ValueError(f"num_frames {num_frames} must be a multiple of {name} {group}")
        if consensus not in CONSENSUS_TYPES:
            raise ValueError(f"consensus {consensus!r} must be one of {CONSENSUS_TYPES}")
        if embed_dim % shift_div or 2 * (embed_dim // shift_div) > embed_dim:
            raise ValueError(f"shift_div {shift_div} must divide embed_dim {embed_dim} and be at least 2")
        self.img_size, self.patch_size, self.in_chans = img_size, patch_size, in_chans
        self.num_frames, self.num_segments, self.num_classes = num_frames, num_segments, num_classes
        self.embed_dim, self.depth = embed_dim, depth
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        self.temp_embed = nn.Parameter(torch.zeros(1, temp_embed_frames, 1, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.ModuleList([
            SpaceTimeMixingBlock(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, rate,
                                 shift_div, num_segments)
            for rate in drop_path_rates(drop_path_rate, depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head_drop = nn.Dropout(head_dropout)
        self.consensus_type = consensus
        if consensus == "vit":
            self.consensus = TemporalHead(embed_dim, num_heads, num_classes, head_mlp_dim, dropout=head_dropout)
            self.num_features = head_mlp_dim or embed_dim
        else:
            self.consensus = FrameAverageHead(embed_dim, num_classes)
            self.num_features = embed_dim
        self.ats = None if ats is None else ATSOptions.from_dict(ats, depth, self.default_ats_blocks)
        self.pack_min_padding = check_pack_min_padding(pack_min_padding)
        self.ats_stats: List[dict] = []
        self._init_weights()

    def _init_weights(self) -> None:
        init_vit_weights(self)
        if isinstance(self.consensus, FrameAverageHead):
            self.consensus.reset_parameters()

    def no_weight_decay(self) -> FrozenSet[str]:
        """Parameter names the optimiser exempts from weight decay besides norms and biases."""
        head = {"consensus.cls_token"} if self.consensus_type == "vit" else set()
        return frozenset({"pos_embed", "cls_token", "temp_embed"} | head)

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised last Linear for ``num_classes`` (0: none, the forward
        returns the features): the consensus head's ``mlp_head.4`` (initialised as every ViT
        Linear), or the ``avg`` head's ``fc`` (normal, std 0.001, as the official code)."""
        self.num_classes = num_classes
        classifier = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0 and self.consensus_type == "vit":
            nn.init.trunc_normal_(classifier.weight, std=0.02)
            nn.init.zeros_(classifier.bias)
        if self.consensus_type == "vit":
            self.consensus.mlp_head[-1] = classifier
        else:
            self.consensus.fc = classifier
            if num_classes > 0:
                self.consensus.reset_parameters()

    def ats_blocks(self) -> Tuple[int, ...]:
        return () if self.ats is None else self.ats.blocks

    def forward_features(self, video: Tensor) -> Tensor:
        """(B, 3, T, H, W) -> normalised per-frame CLS features (B, T, d)."""
        check_video(video, self.in_chans, self.num_frames, self.img_size, self.patch_size)
        batch = video.shape[0]
        patches = self.patch_embed(video)                                     # (B, T, P, d)
        cls = self.cls_token.expand(batch, self.num_frames, 1, -1)
        x = self.pos_drop(torch.cat([cls, patches], dim=2) + self.pos_embed)
        x = rearrange(x, "b (g s) n d -> b g s n d", s=self.temp_embed.shape[1]) + self.temp_embed[:, None]
        x = rearrange(x, "b g s n d -> b (g s) n d")
        ats = self.ats
        positions = torch.arange(x.shape[2] - 1, device=x.device).expand(batch, -1)
        clip_keys = content_key(video) if ats is not None and ats.sampler == "random" else None
        state = TokenState(token_valid=None, per_frame=ats is not None and ats.scope == "frame",
                           positions=positions, clip_keys=clip_keys, pack_min_padding=self.pack_min_padding,
                           reference_positions=positions.shape[1])
        stats = []
        for index, block in enumerate(self.blocks):
            stage = ats if ats is not None and index in ats.blocks else None
            x, state, stage_stats = block(x, state, stage, index)
            if stage_stats is not None:
                stats.append(stage_stats)
        self.ats_stats = stats
        return self.norm(x[:, :, 0])

    def forward_head(self, frame_features: Tensor, pre_logits: bool = False) -> Tensor:
        """(B, T, d) -> logits (B, num_classes), or with ``pre_logits`` the features the last
        Linear reads, (B, num_features)."""
        return self.consensus(self.head_drop(frame_features), pre_logits=pre_logits)

    def forward(self, video: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(video))

    # --- Facts for the GFLOPs counter (video_ats.flops) ------------------------------------------

    def block_macs(self, index: int, positions_in, positions_out):
        """Multiply-adds per clip of block ``index`` when ``positions_in`` spatial positions
        enter it and ``positions_out`` leave its attention (ATS scoring not included): per
        frame, [own CLS] + positions as keys, the queries cut to the kept ones, the MLP over
        the kept tokens. Counts may be numbers or (B,) float64 tensors."""
        block, frames, dim = self.blocks[index], self.num_frames, self.embed_dim
        keys, queries = 1 + positions_in, 1 + positions_out
        macs = linear_macs(block.attn.qkv, frames * keys)
        macs = macs + attention_matmul_macs(frames, queries, keys, dim)
        macs = macs + linear_macs(block.attn.proj, frames * queries)
        return macs + mlp_macs(block.mlp, frames * queries)

    def head_macs(self) -> float:
        """Multiply-adds per clip of the consensus head: the ``avg`` head's Linear of the frame
        mean, or the temporal block over [head CLS] + T frame features and the MLP head."""
        head = self.consensus
        if self.consensus_type == "avg":
            return linear_macs(head.fc, 1) if isinstance(head.fc, nn.Linear) else 0
        sequence = 1 + self.num_frames
        macs = 0
        for block in head.temporal_encoder:
            macs = macs + linear_macs(block.attn.qkv, sequence) + attention_matmul_macs(1, sequence, sequence,
                                                                                         self.embed_dim)
            macs = macs + linear_macs(block.attn.proj, sequence) + mlp_macs(block.mlp, sequence)
        return macs + sum(linear_macs(layer, 1) for layer in head.mlp_head if isinstance(layer, nn.Linear))

    # --- Facts for the checkpoint loader (video_ats.checkpoint) ----------------------------------

    @staticmethod
    def classifier_keys(*states: Collection[str]) -> Tuple[str, str]:
        """The classifier's (weight, bias) keys: the ``avg`` head's ``consensus.fc`` when any of
        ``states`` (key collections) has it, else the consensus head's last Linear."""
        if any("consensus.fc.weight" in state for state in states):
            return ("consensus.fc.weight", "consensus.fc.bias")
        return ("consensus.mlp_head.4.weight", "consensus.mlp_head.4.bias")

    @staticmethod
    def owns_state(keys: Collection[str]) -> bool:
        """Whether a state dict in this toolkit's names is an XViT's."""
        return "temp_embed" in keys or any(key.startswith("consensus.") for key in keys)

    @staticmethod
    def from_image_vit(image_keys: Collection[str], model_keys: Collection[str]
                       ) -> Tuple[Dict[str, str], List[str], List[str]]:
        """How an image ViT (in this toolkit's names) initialises an XViT: nothing copied,
        ``temp_embed`` zeros, the consensus head keeps the model's own initialisation.

        Returns:
            (copied: model key -> image key, zeros: model keys, own: model keys).
        """
        zeros = [key for key in model_keys if key == "temp_embed"]
        own = [key for key in model_keys if key.startswith("consensus.")]
        return {}, zeros, own


_XVIT_KINETICS = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), train_jitter_scales=(256, 320))
_VIT_B16 = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, qkv_bias=True)

# The official Kinetics configs group frames in segments of 8 (NUM_SEGMENTS: 8) for every length.
PRESETS = (
    Preset("xvit_b16_8", XViT, dict(_VIT_B16, num_frames=8, num_segments=8, shift_div=8, img_size=224),
           description="XViT-B/16 8 x 224", **_XVIT_KINETICS),
    Preset("xvit_b16_16", XViT, dict(_VIT_B16, num_frames=16, num_segments=8, shift_div=8, img_size=224),
           description="XViT-B/16 16 x 224 (two segments of 8 frames)", **_XVIT_KINETICS),
    Preset("xvit_b16_32", XViT, dict(_VIT_B16, num_frames=32, num_segments=8, shift_div=8, img_size=224),
           description="XViT-B/16 32 x 224 (four segments of 8 frames)", **_XVIT_KINETICS),
    # CPU-sized, trained from scratch here (the tests and the synthetic-data study).
    Preset("xvit_tiny", XViT,
           dict(patch_size=8, embed_dim=96, depth=12, num_heads=4, mlp_ratio=4.0, qkv_bias=True, num_frames=8,
                num_segments=8, shift_div=8, img_size=64, drop_path_rate=0.0),
           mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), train_jitter_scales=(64, 80),
           description="XViT 8 x 64, 12 blocks of 96 (CPU size)"),
)
