"""The ATS step inside a spatial attention layer, shared by TimeSformer and XViT.

Both backbones run spatial attention as one sequence per frame, ``[CLS] + P patches``, so an
ATS layer sees q, k, v of shape (B, T, h, 1+P, d_h). This module scores the patch positions
from the CLS rows, samples them, and compacts the position axis. Tokens stay aligned across
frames (a slot is the same spatial position in every frame), which TimeSformer's temporal
attention and XViT's temporal shift both need.

Axis names: B clips, T frames, h heads, P position slots currently present, d_h head width.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Optional

import torch
from torch import Tensor

from ..ats import (ATSOptions, attention_received, frame_keys, grid_points, hashed_uniform, normalize_scores,
                   sample_tokens, token_budget, token_scores)


@dataclass
class TokenState:
    """Bookkeeping that travels beside the tokens from block to block.

    token_valid: (B, T, P) bool, False for a slot that holds no token in that frame (batch
        padding, or a position this frame dropped in ``frame`` scope); None when every slot is
        valid, which is the fast path without masks.
    per_frame: True when validity can differ between frames of a position (``frame`` scope).
    positions: (B, P) long, original spatial position of each slot, -1 for batch padding.
    clip_keys: (B,) long content keys for the ``random`` sampler (None unless it is used).
    packed_slots: (S,) long, the flat indices into B x P of the slots that hold a token, when
        padding is a large enough share of the batch (``pack_min_padding``) for the row-wise
        layers to run on those rows only (see `pack` / `unpack`); None otherwise.
    pack_min_padding: the share of padding in the batch from which the next ATS stage packs
        (the model's option of that name; 1.0 never packs, 0.0 packs whenever a clip is padded).
    reference_positions: P0, the positions per frame entering the model's first ATS stage (a
        plain int, the same for every clip): the grid size of the ``official`` its rule at
        every stage. The models set it to all patch positions of a frame, since no block
        before the first ATS stage drops any.
    """

    token_valid: Optional[Tensor]
    per_frame: bool
    positions: Tensor
    clip_keys: Optional[Tensor] = None
    packed_slots: Optional[Tensor] = None
    pack_min_padding: float = 0.1
    reference_positions: Optional[int] = None

    def key_mask(self) -> Optional[Tensor]:
        """Key mask for per-frame spatial attention: (B, T, 1, 1, 1+P) bool, CLS always valid."""
        if self.token_valid is None:
            return None
        cls = torch.ones_like(self.token_valid[..., :1])
        return torch.cat([cls, self.token_valid], dim=-1)[:, :, None, None, :]


@dataclass
class Selection:
    """What one ATS stage kept.

    index: (B, P') long, the slots of the incoming position axis that are kept, in their
        original order; padded entries point at slot 0 and are marked by ``slot_valid``.
    slot_valid: (B, P') bool, False for batch padding.
    token_valid: (B, T, P') bool per-frame validity, or None when every slot is valid.
    kept: (B,) long, positions kept per clip (the union over frames in ``frame`` scope).
    frame_kept: (B, T) long, positions kept per frame.
    packed_slots: (S,) long flat indices into B x P' of the valid slots, or None (see
        `TokenState`).
    """

    index: Tensor
    slot_valid: Tensor
    token_valid: Optional[Tensor]
    kept: Tensor
    frame_kept: Tensor
    packed_slots: Optional[Tensor] = None


def select_positions(q: Tensor, k: Tensor, v: Tensor, scale: float, state: TokenState, options: ATSOptions,
                     block_index: int) -> Selection:
    """Score, budget and sample the patch positions of one ATS layer.

    Args:
        q, k, v: (B, T, h, 1+P, d_h) spatial-attention queries, keys and values (k and v as
            the attention uses them, i.e. after XViT's temporal shift).
        state: validity of the incoming slots.
    Returns:
        The `Selection`. Costs one host sync (the largest kept count sets the new width).
    """
    batch, frames, _, length, _ = k.shape
    num_slots = length - 1
    token_valid = state.token_valid
    if token_valid is None:
        token_valid = torch.ones(batch, frames, num_slots, dtype=torch.bool, device=k.device)
    if options.sampler == "random":
        frame_scores = token_valid.to(torch.float32)                           # the scores go unused
    else:
        key_valid = torch.cat([torch.ones_like(token_valid[..., :1]), token_valid], dim=-1)
        received = attention_received(q, k, scale, options.score, key_valid)  # (B, T, h, 1+P)
        frame_scores = token_scores(received, v, options.score, token_valid)   # (B, T, P)

    if options.scope == "tube":
        rows_valid = token_valid.any(dim=1)                                    # (B, P)
        rows_scores = frame_scores.sum(dim=1)
        row_keys = state.clip_keys
    else:
        rows_valid = token_valid.reshape(batch * frames, num_slots)
        rows_scores = frame_scores.reshape(batch * frames, num_slots)
        row_keys = None
        if state.clip_keys is not None:
            row_keys = frame_keys(state.clip_keys, frames).reshape(-1)

    if options.grid == "official":
        # The same number of grid points in every row and stage, however many positions remain.
        if state.reference_positions is None:
            raise RuntimeError("the official grid needs TokenState.reference_positions (the model sets it)")
        budget = grid_points(state.reference_positions, options.ratio, options.num_tokens, options.min_tokens)
    else:
        budget = token_budget(rows_valid.sum(dim=-1), options.ratio, options.num_tokens, options.min_tokens)
    probabilities = normalize_scores(rows_scores, rows_valid)
    random_keys = None
    if options.sampler == "random":
        random_keys = _random_keys(row_keys, rows_valid, options.seed, block_index)
    keep = sample_tokens(options.sampler, probabilities, budget, rows_valid, random_keys, options.grid)

    if options.scope == "tube":
        keep_frames = keep[:, None, :] & token_valid                            # (B, T, P)
        union = keep
    else:
        keep_frames = keep.reshape(batch, frames, num_slots)
        union = keep_frames.any(dim=1)
    return _compact(union, keep_frames, per_frame=options.scope == "frame", pack_min_padding=state.pack_min_padding)


def _random_keys(row_keys: Optional[Tensor], rows_valid: Tensor, seed: int, block_index: int) -> Tensor:
    if row_keys is None:
        raise RuntimeError("the random sampler needs clip keys; the model computes them from the input")
    salt = (int(seed) * 1_000_003 + int(block_index)) & 0xFFFFFFFF
    return hashed_uniform(row_keys, rows_valid.shape[-1], salt)


# The default of the models' ``pack_min_padding`` option: run the row-wise layers (LayerNorm,
# linear layers, MLP) on the valid rows only when at least this share of the padded batch is
# padding. Packing costs a few memory passes per block (a gather and a scatter of d-wide rows,
# about 1 % of a token's linear-layer time by our estimate), so it pays well below this; 10 %
# is a conservative, untuned choice.
DEFAULT_PACK_MIN_PADDING = 0.1


def check_pack_min_padding(value: float) -> float:
    """``value`` as a float in [0, 1]; raises ValueError naming the option otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"pack_min_padding must be a number in [0, 1] (1 never packs, 0 packs whenever a clip "
                         f"is padded), got {value!r}")
    return float(value)


def _compact(union: Tensor, keep_frames: Tensor, per_frame: bool, pack_min_padding: float) -> Selection:
    """Move kept slots to the front (original order kept) and cut the axis to the widest clip.

    This is the stage's one host synchronisation: the new width, and whether to pack (when at
    least ``pack_min_padding`` of the widest-clip layout would be padding).
    """
    kept = union.sum(dim=-1)
    widest, narrowest, total = (int(x) for x in torch.stack([kept.max(), kept.min(), kept.sum()]).tolist())
    index = torch.argsort((~union).to(torch.uint8), dim=-1, stable=True)[:, :widest]
    slot_valid = torch.arange(widest, device=union.device) < kept[:, None]
    index = index.masked_fill(~slot_valid, 0)
    frames = keep_frames.shape[1]
    if per_frame:
        token_valid = keep_frames.gather(2, index[:, None, :].expand(-1, frames, -1)) & slot_valid[:, None, :]
    elif narrowest < widest:
        token_valid = slot_valid[:, None, :].expand(-1, frames, -1)
    else:
        token_valid = None
    packed_slots = None
    if total < (1.0 - pack_min_padding) * widest * len(kept):
        packed_slots = torch.nonzero_static(slot_valid.reshape(-1), size=total).squeeze(-1)
    return Selection(index=index, slot_valid=slot_valid, token_valid=token_valid, kept=kept,
                     frame_kept=keep_frames.sum(dim=-1), packed_slots=packed_slots)


def pack(x: Tensor, rows: Tensor, lead_ndim: int) -> Tensor:
    """The listed rows of ``x``: (*lead, *row) -> (R, *row), lead = the first ``lead_ndim`` axes.

    Args:
        rows: (R,) long flat indices into the lead axes.
    """
    return x.reshape(-1, *x.shape[lead_ndim:]).index_select(0, rows)


def unpack(packed: Tensor, rows: Tensor, lead_shape) -> Tensor:
    """Inverse of `pack`: (R, *row) -> (*lead_shape, *row), zeros in the rows not listed."""
    out = packed.new_zeros((prod(lead_shape),) + tuple(packed.shape[1:]))
    return out.index_copy_(0, rows, packed).view(*lead_shape, *packed.shape[1:])


def token_rows(packed_slots: Tensor, batch: int, frames: int, slots: int) -> Tensor:
    """Rows of a (B, T, 1+P') per-frame layout (CLS first) for every CLS and packed slot.

    Args:
        packed_slots: (S,) flat indices into B x P' (`TokenState.packed_slots`).
    Returns:
        (B T + S T,) long flat indices into B x T x (1+P').
    """
    length = 1 + slots
    cls_rows = torch.arange(batch * frames, device=packed_slots.device) * length
    clip, slot = packed_slots // slots, packed_slots % slots
    frame_ids = torch.arange(frames, device=packed_slots.device)
    patch_rows = ((clip * frames)[:, None] + frame_ids) * length + 1 + slot[:, None]
    return torch.cat([cls_rows, patch_rows.reshape(-1)])


def gather_queries(q: Tensor, index: Tensor) -> Tensor:
    """The CLS query plus the queries of the kept slots.

    Args:
        q: (B, T, h, 1+P, d_h); index: (B, P') long.
    Returns:
        (B, T, h, 1+P', d_h) (a view of a new (B, T, 1+P', h, d_h) tensor).
    """
    by_token = q.transpose(-3, -2)                                   # (B, T, 1+P, h, d_h), a view
    return gather_slots(by_token, with_cls(index), axis=2).transpose(-3, -2)


def with_cls(index: Tensor) -> Tensor:
    """Slot indices (B, P') over P patches -> indices (B, 1+P') over [CLS] + P tokens."""
    return torch.cat([torch.zeros_like(index[:, :1]), index + 1], dim=1)


def gather_slots(x: Tensor, index: Tensor, axis: int) -> Tensor:
    """Gather the kept slots of a token tensor along its position axis.

    Done as one row gather (index_select over the flattened leading axes), which copies whole
    rows of the trailing axes; torch.gather with a broadcast index walks element by element
    and was 2-7x slower on these shapes.

    Args:
        x: (B, *frames, P, *features): clips on axis 0, position slots on ``axis``.
        index: (B, P') long, slots to keep per clip.
    Returns:
        (B, *frames, P', *features).
    """
    batch, slots = x.shape[0], x.shape[axis]
    frames, features = x.shape[1:axis], x.shape[axis + 1:]
    groups = batch * prod(frames)
    first_row = torch.arange(groups, device=x.device).view(batch, -1, 1) * slots    # (B, prod(frames), 1)
    rows = (first_row + index[:, None, :]).reshape(-1)
    picked = x.reshape(groups * slots, -1).index_select(0, rows)
    return picked.view(batch, *frames, index.shape[1], *features)


def next_state(state: TokenState, selection: Selection) -> TokenState:
    """The bookkeeping after an ATS stage."""
    positions = state.positions.gather(1, selection.index).masked_fill(~selection.slot_valid, -1)
    return TokenState(token_valid=selection.token_valid, per_frame=state.per_frame, positions=positions,
                      clip_keys=state.clip_keys, packed_slots=selection.packed_slots,
                      pack_min_padding=state.pack_min_padding, reference_positions=state.reference_positions)


def stage_stats(block_index: int, state_before: TokenState, selection: Selection, positions_after: Tensor) -> dict:
    """What `model.ats_stats` records for one stage (tensors detached, on the model's device)."""
    if state_before.token_valid is None:
        incoming = torch.full_like(selection.kept, state_before.positions.shape[1])
    else:
        incoming = state_before.token_valid.any(dim=1).sum(dim=-1)
    stats = {
        "block": block_index,
        "input_positions": incoming.detach(),
        "kept": selection.kept.detach(),
        "kept_positions": positions_after.detach(),
        "frame_kept": selection.frame_kept.detach(),
    }
    if selection.token_valid is not None:
        stats["token_valid"] = selection.token_valid.detach()
    return stats
