"""What a named model is: its architecture and the input it expects (timm's ``pretrained_cfg``).

Each model file declares its presets beside the model (``PRESETS`` in timesformer.py and
xvit.py); `video_ats.models.registry` collects them. The input half of a preset (normalisation, frames,
crop and training scale range) is the default of the config's ``DATA`` keys, so a model is fed
the statistics its weights were trained with unless a config says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple


@dataclass(frozen=True)
class Preset:
    """A named model.

    name: the `build_model` name.
    model_class: the backbone class it builds.
    arch: the model's constructor arguments (num_frames, img_size, patch_size, ...).
    mean, std: per-channel input normalisation of pixels in [0, 1] (RGB).
    train_jitter_scales: (min, max) short side of the random-scale training augmentation,
        for ``arch["img_size"]``; scaled with the crop when another img_size is asked for.
    description: one line for `list_models` and the docs.
    """

    name: str
    model_class: type
    arch: Mapping[str, Any]
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    train_jitter_scales: Tuple[int, int]
    description: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.arch["num_frames"])

    @property
    def img_size(self) -> int:
        return int(self.arch["img_size"])

    def input_config(self, num_frames: Optional[int] = None, img_size: Optional[int] = None) -> Dict[str, Any]:
        """The input the model expects, for the given size overrides (None: the preset's).

        Returns:
            {"input_size": (3, T, H, W), "num_frames": T, "crop_size": H, "mean": (3,),
            "std": (3,), "train_jitter_scales": (min, max)}; the jitter range is scaled by
            ``img_size / preset img_size`` and rounded, so a 48-pixel tiny model trains on
            short sides (48, 60) where the 64-pixel preset uses (64, 80).
        """
        frames = self.num_frames if num_frames is None else int(num_frames)
        size = self.img_size if img_size is None else int(img_size)
        low, high = (round(scale * size / self.img_size) for scale in self.train_jitter_scales)
        return {"input_size": (3, frames, size, size), "num_frames": frames, "crop_size": size,
                "mean": tuple(self.mean), "std": tuple(self.std), "train_jitter_scales": (low, high)}
