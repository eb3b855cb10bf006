"""video-ats: Adaptive Token Sampling inside TimeSformer and XViT.

The public API, one import away::

    import video_ats
    video_ats.list_models()                                  # the presets
    model = video_ats.build_model("timesformer_base", ats={"ratio": 0.6})
    video_ats.load_checkpoint(model, "TimeSformer_divST_8x32_224_K400.pyth")
    video_ats.pretrained_cfg("timesformer_base")             # input size, mean and std
    video_ats.model_gflops(model), video_ats.clip_gflops(model, clips)
    video_ats.data.load_class_list("kinetics400")
    video_ats.Predictor(cfg, class_names=...).predict(["clip.mp4"])   # label your own videos
"""

from . import ats, data, flops, models
from .checkpoint import load_checkpoint
from .engine.predict import Predictor
from .flops import clip_gflops, fvcore_gflops, model_gflops
from .models import PRESETS, build_model, list_models, pretrained_cfg

__version__ = "0.1.0"
__all__ = ["build_model", "list_models", "pretrained_cfg", "load_checkpoint", "model_gflops", "clip_gflops",
           "fvcore_gflops", "Predictor", "PRESETS", "ats", "data", "flops", "models", "__version__"]
