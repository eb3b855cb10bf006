"""video-ats: Adaptive Token Sampling inside TimeSformer and XViT."""

__version__ = "0.1.0"
