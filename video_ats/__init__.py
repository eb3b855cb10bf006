"""video-ats: Adaptive Token Sampling inside TimeSformer and XViT."""

from .checkpoint import load_checkpoint
from .models import PRESETS, build_model

__version__ = "0.1.0"
__all__ = ["build_model", "load_checkpoint", "PRESETS", "__version__"]
