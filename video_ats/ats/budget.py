"""How many tokens an ATS stage may keep."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor


def token_budget(num_valid: Tensor, ratio: float = 1.0, num_tokens: Optional[int] = None,
                 min_tokens: int = 8) -> Tensor:
    """Budget K of patch tokens per sample (CLS not counted).

    K = min(N_valid, max(min_tokens, round(ratio * N_valid))) with round-half-up, or
    K = min(N_valid, num_tokens) for a fixed budget.

    Args:
        num_valid: (...) long, tokens still present per sample.
    Returns:
        (...) long budget, never above ``num_valid``.
    """
    num_valid = num_valid.long()
    if num_tokens is not None:
        budget = torch.full_like(num_valid, int(num_tokens))
    else:
        budget = torch.floor(num_valid.double() * float(ratio) + 0.5).long()
        budget = budget.clamp_min(int(min_tokens))
    return torch.minimum(budget, num_valid)


def grid_points(reference_positions: int, ratio: float = 1.0, num_tokens: Optional[int] = None,
                min_tokens: int = 8) -> int:
    """Grid points G of the ``official`` rule: the same at every stage, not capped.

    G = max(min_tokens, round(ratio * P0)) with round-half-up (as `token_budget`), or
    G = num_tokens for a fixed budget. P0 (``reference_positions``) is the number of positions
    entering the model's first ATS stage (per frame in ``frame`` scope), the role of the
    released ATS code's ``n_ref_tokens``: at ratio 1 its G = n_ref_tokens - 1 = P0.
    """
    if num_tokens is not None:
        return int(num_tokens)
    return max(int(min_tokens), math.floor(int(reference_positions) * float(ratio) + 0.5))
