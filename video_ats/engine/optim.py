"""SGD with decay-free norms, biases and embeddings, and a per-iteration warmup + cosine schedule."""

from __future__ import annotations

import math
from typing import List

import torch
from torch import nn

from ..config import OPTIMIZERS

def param_groups(model: nn.Module, weight_decay: float, exempt_norm_bias_embed: bool = True) -> List[dict]:
    """Two SGD groups: decayed weights, and norms / biases / embeddings with weight decay 0.

    Exempt: every parameter of rank <= 1 (norms, biases) and the names the model lists in its
    ``no_weight_decay()`` (embeddings and CLS tokens; none for a model without the method).
    """
    named = getattr(model, "no_weight_decay", None)
    exempt_names = set(named()) if callable(named) else set()
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        exempt = parameter.ndim <= 1 or name in exempt_names
        (no_decay if exempt and exempt_norm_bias_embed else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, base_lr: float, momentum: float, weight_decay: float, nesterov: bool,
                    exempt_norm_bias_embed: bool = True, name: str = "sgd") -> torch.optim.Optimizer:
    """SGD with momentum (the papers' recipes), or AdamW (betas from ``momentum``: (momentum, 0.999))."""
    groups = param_groups(model, weight_decay, exempt_norm_bias_embed)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=base_lr, betas=(momentum, 0.999))
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid optimizers are {list(OPTIMIZERS)}")
    return torch.optim.SGD(groups, lr=base_lr, momentum=momentum, nesterov=nesterov and momentum > 0)


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int, warmup_start_factor: float,
                         end_factor: float) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based).

    Linear from ``warmup_start_factor`` to 1 over ``warmup_steps``, then a cosine from 1 down to
    ``end_factor`` at ``total_steps``.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return warmup_start_factor + (1.0 - warmup_start_factor) * step / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return end_factor + (1.0 - end_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                    warmup_start_factor: float, end_factor: float) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepped once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, total_steps, warmup_steps, warmup_start_factor,
                                                     end_factor))
