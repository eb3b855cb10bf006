"""Choosing which tokens to keep, given their scores and a budget.

Every sampler is batched over rows (clips, or frames of clips) with a per-row budget, runs in
O(N log N) per row, and returns a boolean keep mask. No Python loop over rows, no host sync.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def inverse_transform_sampling(probabilities: Tensor, budget: Tensor) -> Tensor:
    """Inverse transform sampling on the sorted CDF with the fixed (2k-1)/(2K) grid.

    Sort the probabilities ascending, take their cumulative sum c, and for k = 1..K pick the
    first sorted index i with c_i >= (2k-1)/(2K). Tokens picked more than once are kept once,
    so a row keeps K' <= K tokens; any token with probability >= 1/K is always kept.

    Args:
        probabilities: (R, N) rows summing to 1 over valid tokens, 0 on invalid tokens.
        budget: (R,) long, K per row (0 keeps nothing).
    Returns:
        (R, N) bool keep mask.
    """
    rows, num_tokens = probabilities.shape
    sorted_probabilities, order = probabilities.double().sort(dim=-1, stable=True)
    cdf = sorted_probabilities.cumsum(dim=-1)
    k = torch.arange(1, num_tokens + 1, device=probabilities.device, dtype=torch.float64)
    budget_f = budget.clamp_min(1).to(torch.float64).unsqueeze(-1)
    grid = (2 * k - 1) / (2 * budget_f)                                   # (R, N), k beyond K unused
    sorted_index = torch.searchsorted(cdf, grid).clamp_max(num_tokens - 1)
    picked = order.gather(-1, sorted_index)
    in_budget = (k.unsqueeze(0) <= budget.unsqueeze(-1)).to(torch.float32)
    hits = torch.zeros(rows, num_tokens, device=probabilities.device).scatter_add_(-1, picked, in_budget)
    return hits > 0


def _keep_highest(priority: Tensor, budget: Tensor, token_valid: Tensor) -> Tensor:
    """Keep the ``budget`` valid tokens of highest priority in each row (ties: lower index)."""
    priority = priority.masked_fill(~token_valid, float("-inf"))
    order = priority.argsort(dim=-1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order))
    return (rank < budget.unsqueeze(-1)) & token_valid


def topk_sampling(scores: Tensor, budget: Tensor, token_valid: Tensor) -> Tensor:
    """Keep the K highest-scoring valid tokens of each row (a fixed count, no adaptivity).

    Args:
        scores: (R, N); budget: (R,) long; token_valid: (R, N) bool.
    Returns:
        (R, N) bool keep mask with exactly min(K, N_valid) True per row.
    """
    return _keep_highest(scores.double(), budget, token_valid)


def random_sampling(random_keys: Tensor, budget: Tensor, token_valid: Tensor) -> Tensor:
    """Keep K valid tokens chosen uniformly at random, given uniform random keys.

    The keys come from the caller (see `video_ats.ats.hashing.hashed_uniform`) so the choice
    is reproducible and independent of the other rows in the batch.

    Args:
        random_keys: (R, N) i.i.d. uniform numbers; budget: (R,) long; token_valid: (R, N).
    Returns:
        (R, N) bool keep mask with exactly min(K, N_valid) True per row.
    """
    return _keep_highest(random_keys, budget, token_valid)


def sample_tokens(sampler: str, scores: Tensor, budget: Tensor, token_valid: Tensor,
                  random_keys: Optional[Tensor] = None) -> Tensor:
    """Dispatch to a sampler by name.

    Args:
        scores: (R, N) probabilities (normalised, as `normalize_scores` returns).
        budget: (R,) long; token_valid: (R, N) bool; random_keys: (R, N) for ``random``.
    Returns:
        (R, N) bool keep mask (always a subset of ``token_valid``).
    """
    if sampler == "its":
        return inverse_transform_sampling(scores, budget) & token_valid
    if sampler == "topk":
        return topk_sampling(scores, budget, token_valid)
    if sampler == "random":
        if random_keys is None:
            raise ValueError("the random sampler needs random_keys")
        return random_sampling(random_keys, budget, token_valid)
    raise ValueError(f"unknown ATS sampler {sampler!r}; valid samplers are ['its', 'topk', 'random']")
