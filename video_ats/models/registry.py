"""The model registry: every backbone and its presets, `build_model` and `list_models`.

Adding a backbone is one model file (the module, its facts as class attributes and methods,
and its ``PRESETS``; see docs/architecture.md) plus one entry in `BACKBONES`.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, List, Optional, Tuple

from torch import nn

from . import timesformer, xvit
from .preset import Preset

# One entry per backbone: its model file's class and presets.
BACKBONES: Tuple[Tuple[type, Tuple[Preset, ...]], ...] = (
    (timesformer.TimeSformer, timesformer.PRESETS),
    (xvit.XViT, xvit.PRESETS),
)

MODEL_CLASSES: Tuple[type, ...] = tuple(model_class for model_class, _ in BACKBONES)
PRESETS: Dict[str, Preset] = {preset.name: preset for _, presets in BACKBONES for preset in presets}


def list_models(family: Optional[str] = None) -> List[str]:
    """The preset names `build_model` accepts, sorted; ``family`` (a class name such as
    ``"XViT"``) keeps that backbone's only."""
    families = [model_class.__name__ for model_class in MODEL_CLASSES]
    if family is not None and family not in families:
        raise ValueError(f"unknown model family {family!r}; valid families are {families}")
    return sorted(name for name, preset in PRESETS.items()
                  if family is None or preset.model_class.__name__ == family)


def get_preset(name: str) -> Preset:
    """The `Preset` called ``name``; ValueError listing the valid names otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}; valid models are {list_models()}")
    return PRESETS[name]


def model_class_of(model: nn.Module) -> type:
    """The registered backbone class ``model`` is (or derives from); TypeError otherwise."""
    for model_class in MODEL_CLASSES:
        if isinstance(model, model_class):
            return model_class
    raise TypeError(f"{type(model).__name__} is not one of this toolkit's backbones "
                    f"{[model_class.__name__ for model_class in MODEL_CLASSES]} (video_ats.build_model)")


def override_names(model_class: type) -> List[str]:
    """The constructor arguments a preset of ``model_class`` can override."""
    names = inspect.signature(model_class.__init__).parameters
    return [n for n in names if n not in ("self", "num_classes", "ats")]


def preset_arguments(name: str, overrides: Dict[str, Any]) -> Dict[str, Any]:
    """The constructor arguments of preset ``name`` with ``overrides`` applied.

    Raises:
        ValueError: unknown preset or override, listing the valid ones.
    """
    preset = get_preset(name)
    valid = override_names(preset.model_class)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown override(s) {unknown} for {name}; valid overrides are {valid}")
    return dict(preset.arch, **overrides)


def build_model(name: str, num_classes: Optional[int] = 400, ats: Optional[Dict[str, Any]] = None,
                **overrides) -> nn.Module:
    """Build a preset backbone with its classification head.

    Args:
        name: one of `list_models()` (timesformer_base/hr/large, xvit_b16_8/16/32,
            timesformer_tiny, xvit_tiny).
        num_classes: size of the head (400 for Kinetics-400, 600 for Kinetics-600); None (or 0)
            for a headless model whose forward returns the features its classifier would take
            (``reset_classifier(0)``), e.g. to load a headless Hugging Face ``TimesformerModel``.
        ats: None for the plain model, or a dict of ATS options (blocks, ratio or num_tokens,
            min_tokens, sampler, score, scope, seed, grid); see `video_ats.ats.ATSOptions`.
        overrides: architecture overrides by their common names (num_frames, img_size,
            patch_size, embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_path_rate, and
            for XViT shift_div, num_segments, ...), and ``pack_min_padding`` (see `TimeSformer`).
    Returns:
        The model (random weights; see `video_ats.load_checkpoint`). Its input
        normalisation and size are ``model.pretrained_cfg`` (see `pretrained_cfg`).
    Raises:
        ValueError: unknown preset, unknown override or invalid ATS options, listing the valid ones.
    """
    arguments = preset_arguments(name, overrides)
    model = PRESETS[name].model_class(num_classes=num_classes or 1, ats=ats, **arguments)
    if not num_classes:
        model.reset_classifier(0)
    model.pretrained_cfg = pretrained_cfg(name, **arguments)   # as timm: the model says what input it expects
    return model


def pretrained_cfg(name: str, **overrides) -> Dict[str, Any]:
    """What preset ``name`` expects as input, timm's ``pretrained_cfg`` for video.

    Args:
        overrides: ``num_frames`` / ``img_size`` as given to `build_model` (others are ignored).
    Returns:
        {"name", "family", "input_size": (3, T, H, W), "num_frames", "crop_size", "mean",
        "std", "train_jitter_scales", "default_ats_blocks"}.
    """
    preset = get_preset(name)
    config = preset.input_config(overrides.get("num_frames"), overrides.get("img_size"))
    return {"name": name, "family": preset.model_class.__name__, **config,
            "default_ats_blocks": tuple(preset.model_class.default_ats_blocks)}
