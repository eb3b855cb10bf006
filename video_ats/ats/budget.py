"""How many tokens an ATS stage may keep."""

from __future__ import annotations

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
