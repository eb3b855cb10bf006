"""Video backbones with ATS built in, and the registry of their presets."""

from .preset import Preset
from .registry import (BACKBONES, MODEL_CLASSES, PRESETS, build_model, get_preset, list_models, model_class_of,
                       pretrained_cfg)
from .timesformer import TimeSformer
from .xvit import XViT

__all__ = ["BACKBONES", "MODEL_CLASSES", "PRESETS", "Preset", "build_model", "get_preset", "list_models",
           "model_class_of", "pretrained_cfg", "TimeSformer", "XViT"]
