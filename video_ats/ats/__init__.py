"""The ATS math: scores, budgets and samplers as pure tensor functions."""

from .budget import grid_points, token_budget
from .hashing import content_key, frame_keys, hashed_uniform
from .options import GRIDS, SAMPLERS, SCOPES, SCORES, ATSOptions
from .sampling import inverse_transform_sampling, random_sampling, sample_tokens, topk_sampling
from .scoring import (attention_received, cls_attention, full_attention, normalize_scores, token_scores,
                      value_norms)

__all__ = [
    "ATSOptions", "SAMPLERS", "SCORES", "SCOPES", "GRIDS", "token_budget", "grid_points", "content_key",
    "frame_keys", "hashed_uniform",
    "inverse_transform_sampling", "topk_sampling", "random_sampling", "sample_tokens",
    "attention_received", "cls_attention", "full_attention", "normalize_scores", "token_scores",
    "value_norms",
]
