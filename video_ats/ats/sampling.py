"""Choosing which tokens to keep, given their scores and a budget.

Every sampler is batched over rows (clips, or frames of clips) with a per-row budget, runs in
O(N log N) per row, and returns a boolean keep mask. No Python loop over rows, no host sync.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from .options import GRIDS, SAMPLERS, check_grid


def inverse_transform_sampling(probabilities: Tensor, budget: Union[Tensor, int], grid: str = "midpoint",
                               token_valid: Optional[Tensor] = None) -> Tensor:
    """Inverse transform sampling on the sorted CDF, with one of two grids.

    Both rules sort the probabilities of a row ascending and take their cumulative sum c; a
    token picked by several grid points is kept once, so a row keeps K' <= (grid points)
    tokens and fewer when its scores are peaked.

    ``midpoint`` (this project's default: the ATS paper's grid read as the textbook inverse
    CDF): K = ``budget`` points (2k-1)/(2K), k = 1..K, each picking the first sorted index i
    with c_i >= the point. Any token with probability >= 1/K is always kept.

    ``official`` (the rule of the released ATS code, ``ats_block.py``): c is min-max
    normalised, ĉ = (c - c_min) / (c_max - c_min); G = ``budget`` points are spaced evenly from
    the smallest positive ĉ to 1, both included (a single point sits at 1), and each picks the
    sorted index whose ĉ is nearest (ties: the lower index). G is a number of grid points, not
    a cap on the tokens, and may exceed N. The lowest-scoring token has ĉ = 0 and is never kept
    unless zero-probability tokens sort below it (in the released code: dropped or padded
    tokens); a row with one token of positive probability keeps it.

    ``token_valid`` marks the tokens a row has; the others are absent, not zero-probability
    tokens: with ``official`` they take no part in c_min. The models pass it so that batch
    padding does not change a clip's selection (the released code lets it: a clip padded to a
    wider batch mate can keep its lowest token). ``midpoint`` is the same either way.

    Args:
        probabilities: (R, N) rows summing to 1 over valid tokens, 0 on invalid tokens.
        budget: (R,) long grid points per row (0 keeps nothing), or one int for every row.
            With ``official`` a tensor costs one host synchronisation (the widest grid); an
            int costs none.
        grid: ``midpoint`` or ``official``.
        token_valid: (R, N) bool, or None when every token is present.
    Returns:
        (R, N) bool keep mask, never True on a zero-probability token.
    """
    if grid == "midpoint":
        if not isinstance(budget, Tensor):
            budget = torch.full(probabilities.shape[:1], int(budget), dtype=torch.long, device=probabilities.device)
        return _midpoint_grid(probabilities, budget)
    if grid == "official":
        return _official_grid(probabilities, budget, token_valid)
    raise ValueError(f"unknown ATS grid {grid!r}; valid grids are {list(GRIDS)}")


def _midpoint_grid(probabilities: Tensor, budget: Tensor) -> Tensor:
    """The ``midpoint`` rule of `inverse_transform_sampling`; budget (R,) <= N."""
    rows, num_tokens = probabilities.shape
    sorted_probabilities, order = probabilities.double().sort(dim=-1, stable=True)
    cdf = sorted_probabilities.cumsum(dim=-1)
    k = torch.arange(1, num_tokens + 1, device=probabilities.device, dtype=torch.float64)
    budget_f = budget.clamp_min(1).to(torch.float64).unsqueeze(-1)
    grid = (2 * k - 1) / (2 * budget_f)                                   # (R, N), k beyond K unused
    sorted_index = torch.searchsorted(cdf, grid).clamp_max(num_tokens - 1)
    picked = order.gather(-1, sorted_index)
    in_budget = (k.unsqueeze(0) <= budget.unsqueeze(-1)).to(torch.float32)
    hits = torch.zeros(rows, num_tokens, device=probabilities.device, dtype=torch.float32)
    hits.scatter_add_(-1, picked, in_budget)
    return hits > 0


def _official_grid(probabilities: Tensor, budget: Union[Tensor, int], token_valid: Optional[Tensor]) -> Tensor:
    """The ``official`` rule of `inverse_transform_sampling`.

    The nearest ĉ of each grid point y is found without an (R, G, N) distance table: y lies
    between ĉ[i-1] < y <= ĉ[i] (i from searchsorted), so the nearest is one of those two, and
    the lower wins ties. Positive ĉ values are distinct (each is the previous plus a score at
    least as large as every earlier one), and only zero-score tokens share ĉ = 0, which no
    point is nearest to (the smallest positive ĉ is itself a point). Memory O(R (G + N)).
    """
    rows, num_tokens = probabilities.shape
    device = probabilities.device
    if isinstance(budget, Tensor):
        budget = budget.to(device=device, dtype=torch.long)
        width = int(budget.max()) if budget.numel() else 0
    else:
        width = int(budget)
        budget = torch.full((rows,), width, dtype=torch.long, device=device)
    if width <= 0 or num_tokens == 0:
        return torch.zeros(rows, num_tokens, dtype=torch.bool, device=device)
    probabilities = probabilities.double()
    if token_valid is not None:
        probabilities = probabilities.masked_fill(~token_valid, 0.0)
    sorted_probabilities, order = probabilities.sort(dim=-1, stable=True)
    cdf = sorted_probabilities.cumsum(dim=-1)
    if token_valid is None:
        lowest = cdf[:, :1]
    else:   # absent tokens sort among the zeros, at or below the lowest present token
        lowest = cdf.masked_fill(~token_valid.gather(-1, order), float("inf")).min(dim=-1, keepdim=True).values
        lowest = torch.where(torch.isfinite(lowest), lowest, cdf[:, :1])
    highest = cdf[:, -1:]
    span = highest - lowest
    # span == 0 only for a row with one token present (or no mass): that token gets ĉ = 1.
    normalized = torch.where(span > 0, (cdf - lowest) / span.clamp_min(torch.finfo(torch.float64).tiny),
                             (cdf > 0).double())
    start = normalized.masked_fill(normalized <= 0, float("inf")).min(dim=-1, keepdim=True).values  # (R, 1)
    has_mass = torch.isfinite(start)
    start = torch.where(has_mass, start, torch.ones_like(start))

    steps = torch.arange(width, device=device, dtype=torch.float64)                    # (G,)
    last = (budget - 1).unsqueeze(-1)                                                  # (R, 1)
    points = start + steps * (1.0 - start) / last.clamp_min(1).double()                # (R, G)
    points = torch.where(steps >= last, torch.ones_like(points), points)               # the last point is 1

    above = torch.searchsorted(normalized, points).clamp_max(num_tokens - 1)           # first ĉ >= y
    below = (above - 1).clamp_min(0)
    value_above, value_below = normalized.gather(-1, above), normalized.gather(-1, below)
    take_below = (above > 0) & ((points - value_below) <= (value_above - points))
    sorted_index = torch.where(take_below, below, above)

    in_grid = (steps < budget.unsqueeze(-1)) & has_mass
    picked = order.gather(-1, sorted_index)
    hits = torch.zeros(rows, num_tokens, device=device, dtype=torch.float32)
    hits.scatter_add_(-1, picked, in_grid.to(torch.float32))
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


def sample_tokens(sampler: str, scores: Tensor, budget: Union[Tensor, int], token_valid: Tensor,
                  random_keys: Optional[Tensor] = None, grid: str = "midpoint") -> Tensor:
    """Dispatch to a sampler by name.

    Args:
        scores: (R, N) probabilities (normalised, as `normalize_scores` returns).
        budget: (R,) long (``its`` with ``grid="official"``: grid points, an int or (R,));
        token_valid: (R, N) bool; random_keys: (R, N) for ``random``.
        grid: the grid rule of ``its`` (see `inverse_transform_sampling`).
    Returns:
        (R, N) bool keep mask (always a subset of ``token_valid``).
    """
    if sampler in SAMPLERS:
        check_grid(grid, sampler)
    if sampler == "its":
        return inverse_transform_sampling(scores, budget, grid, token_valid) & token_valid
    if sampler == "topk":
        return topk_sampling(scores, budget, token_valid)
    if sampler == "random":
        if random_keys is None:
            raise ValueError("the random sampler needs random_keys")
        return random_sampling(random_keys, budget, token_valid)
    raise ValueError(f"unknown ATS sampler {sampler!r}; valid samplers are {list(SAMPLERS)}")
