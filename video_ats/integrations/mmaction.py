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

Importing this module also registers what mmaction2's own tools (train.py, test.py, get_flops.py)
need to work with this toolkit on the pinned stack:

- ``VideoATSDataset``: the annotation files this toolkit reads (official Kinetics CSV, path /
  label lists), validated as `video_ats.data.KineticsDataset` validates them.
- ``VideoATSCheckpointHook``: ``load_from`` (and test.py's checkpoint argument) may be any
  checkpoint `video_ats.load_checkpoint` reads, an official or Hugging Face TimeSformer with
  its classifier for instance; it is converted to the recognizer's keys, strictly.
- torch >= 2.6 loads checkpoints with ``weights_only=True``: the few Python objects mmengine puts
  in its own checkpoints (its message hub's HistoryBuffer, numpy arrays and scalars) are
  registered as safe, so test.py, ``--resume`` and ``load_from`` read them without an
  environment variable and without unpickling arbitrary code.
- mmengine's FLOP counter (``get_model_complexity_info``) gets a handle for
  ``aten::scaled_dot_product_attention``, which it skipped without a word (about 8 % of a
  TimeSformer's FLOPs).

Works with mmaction2 1.1.0 + mmcv-lite 2.0.1 + mmengine (0.10.x); the mmaction2 1.2.0 wheel
does not import (``No module named 'mmaction.models.localizers.drn'``). See docs/checkpoints.md.
"""

from __future__ import annotations

import logging
import os
import pickle
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np
import torch
from torch import Tensor, nn

try:
    from mmaction.datasets.base import BaseActionDataset
    from mmaction.registry import DATASETS, HOOKS, MODELS
    from mmengine.hooks import Hook
    from mmengine.logging import HistoryBuffer
    from mmengine.model import is_model_wrapper
    from mmengine.runner import checkpoint as mmengine_checkpoint
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError("video_ats.integrations.mmaction needs mmaction2 1.1.0 with mmcv-lite 2.0.1 and mmengine: "
                      "pip install 'video-ats[mmaction]' (docs/checkpoints.md)") from error

from ..checkpoint import load_checkpoint, read_checkpoint_file
from ..data.annotations import SHIPPED_CLASS_LISTS, AnnotationError, read_annotations, validate_records
from ..flops import EXTRA_HANDLES
from ..models import TimeSformer, XViT, build_model, list_models
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
    """``init_weights()`` loads ``pretrained`` (mmengine calls it for every child module).
    ``preset`` and ``overrides`` are kept so `recognizer_state_dict` can build the plain model."""

    pretrained: Optional[str]
    pretrained_source: str
    preset: str
    overrides: Dict[str, Any]

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
        self.preset, self.overrides = preset, dict(overrides)
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
        self.preset, self.overrides = preset, dict(overrides)

    def forward(self, video: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(video), pre_logits=True)


# ---------------------------------------------------------------------------------------------
# Checkpoints of any format through load_from / test.py


def recognizer_state_dict(recognizer: nn.Module, checkpoint: Mapping[str, Any]) -> Optional[Dict[str, Tensor]]:
    """A checkpoint of any layout `video_ats.load_checkpoint` reads, as the state dict of a
    ``Recognizer3D`` whose backbone is ours and whose head is a ``TimeSformerHead``.

    Returns None when nothing needs converting: the recognizer's backbone is not ours, or the
    checkpoint already holds the recognizer's own keys (one trained through this bridge).
    Otherwise the plain model (the backbone's preset and overrides, the head's class count)
    loads the checkpoint strictly, embeddings resized as `load_checkpoint` resizes them, and
    its weights are returned under the recognizer's keys (our classifier as
    ``cls_head.fc_cls``). Raises CheckpointError (a ValueError) when it does not fit.
    """
    backbone = getattr(recognizer, "backbone", None)
    head = getattr(getattr(recognizer, "cls_head", None), "fc_cls", None)
    if not isinstance(backbone, _PretrainedMixin) or not isinstance(head, nn.Linear):
        return None
    wanted = recognizer.state_dict()
    held = checkpoint.get("state_dict", checkpoint)
    if isinstance(held, Mapping) and set(wanted) <= {key.removeprefix("module.") for key in held}:
        return None
    # Built where the recognizer is (the meta device when it is one, to check layouts for free).
    device = "meta" if head.weight.is_meta else "cpu"
    with torch.device(device):
        plain = build_model(backbone.preset, num_classes=head.out_features, **backbone.overrides)
    report = load_checkpoint(plain, checkpoint, source="auto")
    logger.info("converted a %s checkpoint for the recognizer\n%s", report.source, report.summary())
    ours = plain.state_dict()
    weight, bias = type(plain).classifier_keys(ours)
    state = {}
    for key in wanted:
        if key.startswith("backbone."):
            state[key] = ours[key[len("backbone."):]]
        elif key in ("cls_head.fc_cls.weight", "cls_head.fc_cls.bias"):
            state[key] = ours[weight if key.endswith("weight") else bias]
        else:
            raise ValueError(f"the recognizer has a key {key!r} that a video_ats checkpoint does not hold")
    return state


@HOOKS.register_module()
class VideoATSCheckpointHook(Hook):
    """Lets ``load_from`` / test.py's checkpoint be any checkpoint video_ats reads.

    Add ``custom_hooks = [dict(type='VideoATSCheckpointHook')]`` to the config. After mmengine
    read the file (``after_load_checkpoint``, before the weights go into the model), a
    checkpoint that is not already the recognizer's own (an official TimeSformer ``.pyth``, a
    Hugging Face model, mmaction2's own TimeSformer, one of ours) is converted by
    `recognizer_state_dict`; mmengine then loads every key.
    """

    priority = "VERY_HIGH"

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        state = recognizer_state_dict(model, checkpoint)
        if state is not None:
            checkpoint.clear()
            checkpoint["state_dict"] = state


def _load_from_local(filename: str, map_location=None):
    """mmengine's local loader, plus what video_ats reads that torch.load does not: Hugging
    Face model directories and .safetensors files."""
    path = os.path.expanduser(filename)
    if os.path.isdir(path) or path.endswith(".safetensors"):
        return read_checkpoint_file(path)
    return mmengine_checkpoint.load_from_local(filename, map_location)


# mmengine looks loaders up by prefix; "" is the local file loader (the module function stays mmengine's).
mmengine_checkpoint.CheckpointLoader.register_scheme(prefixes="", loader=_load_from_local, force=True)


# ---------------------------------------------------------------------------------------------
# mmengine's own checkpoints under torch.load(weights_only=True)


def _history_buffer_method(owner: Any, name: str) -> Callable:
    """The ``getattr`` mmengine checkpoints need, and nothing more: a HistoryBuffer stores its
    statistics methods (``HistoryBuffer.mean`` ...), which pickle as ``getattr(HistoryBuffer,
    name)``. Anything else is refused, so allowing it does not allow arbitrary attributes."""
    if owner is HistoryBuffer and not name.startswith("_") and callable(getattr(HistoryBuffer, name, None)):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f"refusing getattr({owner!r}, {name!r}) while loading a checkpoint")


def _numpy_globals() -> List[Any]:
    """numpy's array, dtype and scalar reconstructors under the names both numpy 1 and 2 pickle."""
    core = getattr(np, "_core", None) or np.core
    reconstruct, scalar = core.multiarray._reconstruct, core.multiarray.scalar
    dtypes = {type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGSUVOMm"}
    return [np.ndarray, np.dtype, *sorted(dtypes, key=lambda kind: kind.__name__),
            (reconstruct, "numpy.core.multiarray._reconstruct"), (reconstruct, "numpy._core.multiarray._reconstruct"),
            (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]


def allow_mmengine_checkpoints() -> None:
    """Register what mmengine's checkpoints hold besides tensors as safe for
    ``torch.load(weights_only=True)`` (torch >= 2.6's default): HistoryBuffer, a getattr
    restricted to its methods, numpy arrays, dtypes and scalars. Done when this module is imported."""
    torch.serialization.add_safe_globals([HistoryBuffer, (_history_buffer_method, "builtins.getattr"),
                                          *_numpy_globals()])


allow_mmengine_checkpoints()


# ---------------------------------------------------------------------------------------------
# mmengine's FLOP counter


def count_attention_in_mmengine() -> None:
    """Give mmengine's FLOP counter (``mmengine.analysis``, used by ``get_model_complexity_info``
    and mmaction2's get_flops.py) the handles fvcore and mmengine lack: the attention matmuls of
    ``aten::scaled_dot_product_attention`` (and ``aten::baddbmm``), counted as
    `video_ats.flops.fvcore_gflops` counts them. Done when this module is imported."""
    from mmengine.analysis import complexity_analysis

    for name, handle in EXTRA_HANDLES.items():
        complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS.setdefault(name, handle)


count_attention_in_mmengine()


# ---------------------------------------------------------------------------------------------
# This toolkit's annotation files as an mmaction2 dataset


@DATASETS.register_module()
class VideoATSDataset(BaseActionDataset):
    """mmaction2 video dataset over any annotation file `video_ats.data.read_annotations` reads.

    ann_file: an official Kinetics CSV (clips found under ``data_prefix['video']`` by name, in
        class folders or flat), or a ``path label`` / ``path,label`` list.
    class_list: class names (a file, relative to ``data_root`` like ann_file, or
        "kinetics400" / "kinetics600"); None: the CSV's sorted class names.
    annotation_format: one of video_ats.data.ANNOTATION_FORMATS.
    num_classes: labels must lie in [0, num_classes) (set it to the head's class count).
    unlabelled_ok: rows without a label are allowed (a test set to predict); otherwise every
        row needs one, val and test sets included.
    allow_duplicates: keep rows that repeat a video (a warning) instead of failing.

    The whole file is validated when the dataset is built, as `KineticsDataset` does; the
    dataset's ``classes`` metainfo holds the class names.
    """

    def __init__(self, ann_file: str, pipeline: List[Any], data_prefix: Optional[dict] = None,
                 class_list: Optional[str] = None, annotation_format: str = "auto", num_classes: Optional[int] = None,
                 unlabelled_ok: bool = False, allow_duplicates: bool = False, **kwargs: Any):
        self.class_list, self.annotation_format = class_list, annotation_format
        self.unlabelled_ok, self.allow_duplicates = unlabelled_ok, allow_duplicates
        super().__init__(ann_file, pipeline=pipeline, data_prefix=data_prefix or dict(video=""),
                         num_classes=num_classes, **kwargs)

    def _class_list(self) -> Optional[str]:
        name = self.class_list
        if name is None or name in SHIPPED_CLASS_LISTS or os.path.isabs(name) or not self.data_root:
            return name
        return os.path.join(self.data_root, name)

    def load_data_list(self) -> List[dict]:
        annotations = read_annotations(self.ann_file, self.data_prefix.get("video") or "",
                                       format=self.annotation_format, class_list=self._class_list())
        records = annotations.records
        validate_records(records, self.ann_file, num_classes=self.num_classes, require_labels=not self.unlabelled_ok,
                         allow_duplicates=self.allow_duplicates)
        untrimmed = [record for record in records if record.window is not None]
        if untrimmed:
            raise AnnotationError(self.ann_file, untrimmed[0].line,
                                  f"{len(untrimmed)} rows name untrimmed downloads (found by bare youtube_id), which "
                                  f"mmaction2's pipeline cannot cut to the row's time window; trim them first, or "
                                  f"train with tools/train.py, whose dataset does")
        if annotations.classes:
            self._metainfo["classes"] = tuple(annotations.classes)
        return [dict(filename=record.path, label=record.label) for record in records]
