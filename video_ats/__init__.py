"""video-ats: Adaptive Token Sampling inside TimeSformer and XViT."""

from .checkpoint import load_checkpoint
from .models import PRESETS, build_model
from .engine.predict import Predictor

__version__ = "0.1.0"
__all__ = ["build_model", "load_checkpoint", "PRESETS", "Predictor", "__version__"]
