"""Significance scores: how much each patch token matters to the CLS token.

All functions are pure and batched. Shapes use ``...`` for any leading batch axes (clips,
frames), ``h`` for heads, ``N`` for patch tokens and ``d_h`` for the head width; index 0 of
a key axis of length 1+N is the CLS token.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def cls_attention(q_cls: Tensor, k: Tensor, scale: float, key_valid: Optional[Tensor] = None) -> Tensor:
    """The CLS row of the attention matrix, without materialising the N x N matrix.

    Args:
        q_cls: (..., h, 1, d_h) the CLS query.
        k: (..., h, 1+N, d_h) all keys.
        key_valid: (..., 1+N) bool, False for padded or dropped keys.
    Returns:
        (..., h, 1+N) softmax(q_cls . k^T * scale), zero on invalid keys.
    """
    logits = (q_cls.float() @ k.float().transpose(-2, -1)).squeeze(-2) * scale
    if key_valid is not None:
        logits = logits.masked_fill(~key_valid.unsqueeze(-2), float("-inf"))
    return logits.softmax(dim=-1)


def full_attention(q: Tensor, k: Tensor, scale: float, key_valid: Optional[Tensor] = None) -> Tensor:
    """The whole attention matrix (only the ``self_attn`` ablation needs it).

    Args:
        q, k: (..., h, 1+N, d_h).
        key_valid: (..., 1+N) bool.
    Returns:
        (..., h, 1+N, 1+N) row-stochastic attention.
    """
    logits = (q.float() @ k.float().transpose(-2, -1)) * scale
    if key_valid is not None:
        logits = logits.masked_fill(~key_valid[..., None, None, :], float("-inf"))
    return logits.softmax(dim=-1)


def value_norms(v: Tensor) -> Tensor:
    """L2 norm of each token's value vector with the heads concatenated.

    Args:
        v: (..., h, 1+N, d_h).
    Returns:
        (..., 1+N).
    """
    return v.float().pow(2).sum(dim=(-3, -1)).sqrt()


def token_scores(attention_received: Tensor, v: Tensor, score: str, token_valid: Optional[Tensor] = None) -> Tensor:
    """Unnormalised significance of each patch token.

    ``cls_vnorm``: s_j = (sum_h a_h[j]) * ||v_j||;  ``cls``: s_j = sum_h a_h[j];
    ``self_attn``: like ``cls_vnorm`` but ``attention_received`` is the attention every
    valid query pays token j, summed over queries.

    Args:
        attention_received: (..., h, 1+N) attention paid to each key (CLS row, or the column
            sums of the full matrix for ``self_attn``).
        v: (..., h, 1+N, d_h) values (ignored for ``cls``).
        token_valid: (..., N) bool, False for tokens that must score 0.
    Returns:
        (..., N) non-negative scores of the patch tokens (CLS excluded).
    """
    scores = attention_received.sum(dim=-2)[..., 1:]
    if score in ("cls_vnorm", "self_attn"):
        scores = scores * value_norms(v)[..., 1:]
    elif score != "cls":
        raise ValueError(f"unknown ATS score {score!r}; valid scores are ['cls_vnorm', 'cls', 'self_attn']")
    if token_valid is not None:
        scores = scores.masked_fill(~token_valid, 0.0)
    return scores


def attention_received(q: Tensor, k: Tensor, scale: float, score: str, key_valid: Tensor) -> Tensor:
    """Attention each key receives, in the form ``token_scores`` expects.

    For ``cls`` and ``cls_vnorm`` this is the CLS row; for ``self_attn`` the sum over all
    valid queries of the full attention matrix.

    Args:
        q, k: (..., h, 1+N, d_h); key_valid: (..., 1+N) bool (also marks valid queries).
    Returns:
        (..., h, 1+N).
    """
    if score == "self_attn":
        attention = full_attention(q, k, scale, key_valid)
        attention = attention * key_valid[..., None, :, None].to(attention.dtype)
        return attention.sum(dim=-2)
    return cls_attention(q[..., :1, :], k, scale, key_valid)


def normalize_scores(scores: Tensor, token_valid: Tensor) -> Tensor:
    """Scores as a distribution over the valid tokens of each row (float64).

    A row whose scores are all zero falls back to the uniform distribution over its valid
    tokens, so sampling never divides by zero.

    Args:
        scores: (..., N) non-negative; token_valid: (..., N) bool.
    Returns:
        (..., N) float64 summing to 1 over valid tokens (0 where no token is valid).
    """
    scores = scores.double().masked_fill(~token_valid, 0.0)
    total = scores.sum(dim=-1, keepdim=True)
    uniform = token_valid.double() / token_valid.sum(dim=-1, keepdim=True).clamp_min(1)
    return torch.where(total > 0, scores / total.clamp_min(torch.finfo(torch.float64).tiny), uniform)
