"""Video backbones with ATS built in."""

from .presets import PRESETS, build_model
from .timesformer import TimeSformer
from .xvit import XViT

__all__ = ["PRESETS", "build_model", "TimeSformer", "XViT"]
