"""video-ats: Adaptive Token Sampling inside TimeSformer and XViT."""

from .models import PRESETS, build_model

__version__ = "0.1.0"
__all__ = ["build_model", "PRESETS", "__version__"]
