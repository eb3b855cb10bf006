"""Named model presets and `build_model`, the one way to construct a backbone."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Optional

from torch import nn

from .timesformer import TimeSformer
from .xvit import XViT

_VIT_B16 = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, qkv_bias=True)

# name -> (model class, defaults). Full-size presets follow the official configs.
PRESETS: Dict[str, tuple] = {
    "timesformer_base": (TimeSformer, dict(_VIT_B16, num_frames=8, img_size=224, drop_path_rate=0.1)),
    "timesformer_hr": (TimeSformer, dict(_VIT_B16, num_frames=16, img_size=448, drop_path_rate=0.1)),
    "timesformer_large": (TimeSformer, dict(_VIT_B16, num_frames=96, img_size=224, drop_path_rate=0.1)),
    # The official Kinetics configs group frames in segments of 8 (NUM_SEGMENTS: 8) for every length.
    "xvit_b16_8": (XViT, dict(_VIT_B16, num_frames=8, num_segments=8, shift_div=8, img_size=224)),
    "xvit_b16_16": (XViT, dict(_VIT_B16, num_frames=16, num_segments=8, shift_div=8, img_size=224)),
    "xvit_b16_32": (XViT, dict(_VIT_B16, num_frames=32, num_segments=8, shift_div=8, img_size=224)),
    # CPU-sized models for the demo, the tests and the synthetic-data study.
    "timesformer_tiny": (TimeSformer, dict(patch_size=8, embed_dim=96, depth=6, num_heads=4, mlp_ratio=4.0,
                                           qkv_bias=True, num_frames=8, img_size=64, drop_path_rate=0.0)),
    "xvit_tiny": (XViT, dict(patch_size=8, embed_dim=96, depth=12, num_heads=4, mlp_ratio=4.0, qkv_bias=True,
                             num_frames=8, num_segments=8, shift_div=8, img_size=64, drop_path_rate=0.0)),
}


def _override_names(model_class: Callable) -> list:
    names = inspect.signature(model_class.__init__).parameters
    return [n for n in names if n not in ("self", "num_classes", "ats")]


def remove_classifier(model: nn.Module) -> int:
    """Make ``model`` headless in place: its forward then returns the features its classifier
    took, (B, feature_dim); returns feature_dim.

    TimeSformer: the normalised CLS features (B, embed_dim). XViT: the consensus head's
    features before its last Linear (B, head_mlp_dim), or with ``consensus="avg"`` the mean
    of the per-frame CLS features (B, embed_dim).
    """
    if isinstance(model, XViT):
        if model.consensus_type == "avg":
            feature_dim = model.consensus.fc.in_features
            model.consensus.fc = nn.Identity()
        else:
            feature_dim = model.consensus.mlp_head[4].in_features
            model.consensus.mlp_head[4] = nn.Identity()
    else:
        feature_dim = model.embed_dim
        model.head = nn.Identity()
    model.num_classes = 0
    return feature_dim


def build_model(name: str, num_classes: Optional[int] = 400, ats: Optional[Dict[str, Any]] = None,
                **overrides) -> nn.Module:
    """Build a preset backbone with its classification head.

    Args:
        name: one of `PRESETS` (timesformer_base/hr/large, xvit_b16_8/16/32, timesformer_tiny,
            xvit_tiny).
        num_classes: size of the head (400 for Kinetics-400, 600 for Kinetics-600); None for a
            headless model whose forward returns features (see `remove_classifier`), e.g. to
            load a headless Hugging Face ``TimesformerModel``.
        ats: None for the plain model, or a dict of ATS options (blocks, ratio or num_tokens,
            min_tokens, sampler, score, scope, seed); see `video_ats.ats.ATSOptions`.
        overrides: architecture overrides by their common names (num_frames, img_size,
            patch_size, embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_path_rate, and
            for XViT shift_div, num_segments, ...).
    Returns:
        The model (random weights; see `video_ats.load_checkpoint`).
    Raises:
        ValueError: unknown preset, unknown override or invalid ATS options, listing the valid ones.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}; valid models are {sorted(PRESETS)}")
    model_class, defaults = PRESETS[name]
    valid = _override_names(model_class)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown override(s) {unknown} for {name}; valid overrides are {valid}")
    kwargs = dict(defaults, **overrides)
    if num_classes is None:
        model = model_class(num_classes=1, ats=ats, **kwargs)
        remove_classifier(model)
        return model
    return model_class(num_classes=num_classes, ats=ats, **kwargs)
