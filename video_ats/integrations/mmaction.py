"""mmaction2 bridge: this toolkit's TimeSformer and XViT, ATS included, as mmaction2 backbones.

Importing this module registers ``VideoATSTimeSformer`` and ``VideoATSXViT`` in mmaction2's
``MODELS`` registry. In an mmaction2 config::

    custom_imports = dict(imports=['video_ats.integrations.mmaction'], allow_failed_imports=False)
    model = dict(
        type='Recognizer3D',
        backbone=dict(type='VideoATSTimeSformer', preset='timesformer_base',
                      ats=dict(ratio=0.7, blocks=[3, 4, 5]),
                      pretrained='TimeSformer_divST_8x32_224_K400.pyth'),
        cls_head=dict(type='TimeSformerHead', num_classes=400, in_channels=768),
        data_preprocessor=dict(type='ActionDataPreprocessor', format_shape='NCTHW', ...))

Each backbone takes a `video_ats.build_model` preset name, its architecture overrides
(num_frames=..., img_size=...), the ``ats`` options, and ``pretrained``: any checkpoint that
`video_ats.load_checkpoint` reads, loaded when mmengine calls ``init_weights()`` (as mmaction2's
own backbones do), always without its classifier, which mmaction2's head replaces.

Works with mmaction2 1.1.0 + mmcv-lite 2.0.1 + mmengine (0.10.x); the mmaction2 1.2.0 wheel
does not import (``No module named 'mmaction.models.localizers.drn'``). See docs/checkpoints.md.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Mapping, Optional

from torch import Tensor

try:
    from mmaction.registry import MODELS
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError("video_ats.integrations.mmaction needs mmaction2 1.1.0 with mmcv-lite 2.0.1 and mmengine: "
                      "pip install 'video-ats[mmaction]' (docs/checkpoints.md)") from error

from ..checkpoint import load_checkpoint
from ..models import TimeSformer, XViT, list_models
from ..models.registry import preset_arguments

logger = logging.getLogger(__name__)


def _architecture(preset: str, model_class: type, overrides: Mapping[str, Any]) -> Dict[str, Any]:
    """The constructor arguments of ``preset`` with ``overrides``, checked like build_model checks them."""
    presets = list_models(model_class.__name__)
    if preset not in presets:
        raise ValueError(f"unknown {model_class.__name__} preset {preset!r}; valid presets are {presets}")
    return preset_arguments(preset, dict(overrides))


def _options(ats: Optional[Mapping[str, Any]]) -> Optional[dict]:
    """mmengine hands ConfigDicts; the models take plain dicts."""
    return None if ats is None else {key: (list(value) if isinstance(value, (list, tuple)) else value)
                                     for key, value in dict(ats).items()}


class _PretrainedMixin:
    """``init_weights()`` loads ``pretrained`` (mmengine calls it for every child module)."""

    pretrained: Optional[str]
    pretrained_source: str

    def init_weights(self) -> None:
        if self.pretrained:
            report = load_checkpoint(self, self.pretrained, self.pretrained_source, drop_head=True)
            logger.info("%s: loaded %s\n%s", type(self).__name__, self.pretrained, report.summary())


@MODELS.register_module()
class VideoATSTimeSformer(_PretrainedMixin, TimeSformer):
    """Our TimeSformer as an mmaction2 backbone.

    ``forward``: (N, 3, T, H, W) -> the normalised CLS features (N, embed_dim), what
    ``TimeSformerHead(in_channels=embed_dim)`` takes. ``model.ats_stats`` is filled as usual.
    """

    def __init__(self, preset: str = "timesformer_base", ats: Optional[Mapping[str, Any]] = None,
                 pretrained: Optional[str] = None, pretrained_source: str = "auto", **overrides: Any):
        super().__init__(num_classes=0, ats=_options(ats), **_architecture(preset, TimeSformer, overrides))
        self.pretrained, self.pretrained_source = pretrained, pretrained_source
        self.feature_dim = self.embed_dim

    def forward(self, video: Tensor) -> Tensor:
        return self.forward_features(video)


@MODELS.register_module()
class VideoATSXViT(_PretrainedMixin, XViT):
    """Our XViT as an mmaction2 backbone.

    ``forward``: (N, 3, T, H, W) -> the temporal-attention head's features (N, head_mlp_dim),
    i.e. XViT's consensus head up to its last Linear (LayerNorm, Linear, GELU, Dropout), so
    ``TimeSformerHead(in_channels=head_mlp_dim, dropout_ratio=0)`` is that last Linear.
    ``head_mlp_dim`` defaults to embed_dim (768 for the B/16 presets). With ``consensus="avg"``
    the features are the mean of the per-frame CLS features (N, embed_dim).
    """

    def __init__(self, preset: str = "xvit_b16_16", ats: Optional[Mapping[str, Any]] = None,
                 pretrained: Optional[str] = None, pretrained_source: str = "auto", **overrides: Any):
        super().__init__(num_classes=1, ats=_options(ats), **_architecture(preset, XViT, overrides))
        # mmaction2's cls_head is the classifier: the consensus head loses its last Linear.
        self.reset_classifier(0)
        self.feature_dim = self.num_features
        self.pretrained, self.pretrained_source = pretrained, pretrained_source

    def forward(self, video: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(video), pre_logits=True)
