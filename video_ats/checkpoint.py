"""Load the checkpoints people already have into this toolkit's TimeSformer and XViT.

One adapter for every layout (the idea of timm's ``checkpoint_filter_fn``):

    source                 detected by (see docs/checkpoints.md)
    video_ats              {"format": "video_ats", "model": …}, or a bare state dict in our names
    timesformer_official   PySlowFast {"model_state": {"model.…"}} (.pyth)
    xvit_official          PySlowFast {"model_state": {"base_model.…", "consensus.…", "new_fc.…"}}
    mmaction2              mmengine {"state_dict": {"backbone.…", "cls_head.…"}}
    huggingface            "timesformer.…" / "classifier.…" (TimesformerForVideoClassification)
    timm_vit               an image ViT ("blocks.i.attn.qkv.…", no temporal keys), to start training

Loading is a straight line: read the file -> find the state dict and its layout -> map the keys
to ours (one pure function per layout) -> resize the embeddings (one place) -> decide about the
classifier -> check every key and shape -> ``load_state_dict(strict=True)``. Anything that does
not fit raises `CheckpointError` (a ValueError) naming the file and the keys at fault: there is
no silent partial load.

This toolkit's own format (written by `save_model_checkpoint`, read by everything here)::

    torch.save({"format": "video_ats", "format_version": 1,
                "model": state_dict, "model_name": str | None, "num_classes": int,
                "model_kwargs": dict, "ats": dict | None,
                ...optional extras: "optimizer", "epoch", "config", ...}, path)
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import re
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models import MODEL_CLASSES, PRESETS, build_model, list_models, model_class_of

logger = logging.getLogger(__name__)

FORMAT = "video_ats"
FORMAT_VERSION = 1
SOURCES = ("video_ats", "timesformer_official", "huggingface", "mmaction2", "xvit_official", "timm_vit")
_RESERVED = ("format", "format_version", "model", "model_name", "num_classes", "model_kwargs", "ats")

# What each layout looks like, for error messages.
EXPECTED = {
    "video_ats": ("a video_ats checkpoint ({'format': 'video_ats', 'model': ...}) or a state dict in this "
                  "toolkit's names"),
    "timesformer_official": "an official TimeSformer .pyth ({'model_state': {'model.cls_token', 'model.blocks.0...'}})",
    "xvit_official": "an official XViT checkpoint ({'model_state': {'base_model.…', 'consensus.…'}})",
    "mmaction2": "an mmaction2 checkpoint ({'state_dict': {'backbone.…', 'cls_head.fc_cls.…'}})",
    "huggingface": "a Hugging Face TimesformerForVideoClassification state dict ('timesformer.…', 'classifier.…'), "
                   "as .bin, .safetensors or a model directory",
    "timm_vit": "an image ViT in timm layout ('patch_embed.proj.weight', 'blocks.0.attn.qkv.weight', ...)",
}

# What the loader knows about each backbone comes from its class (see video_ats.models):
# ``classifier_keys``, ``owns_state``, ``from_image_vit``, ``time_embed_key`` and
# ``pos_embed_interpolation``. A family below is one of `video_ats.models.MODEL_CLASSES`.


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model; the message says why."""


@dataclass
class LoadReport:
    """What `load_checkpoint` did.

    source: the layout read (one of SOURCES).
    path: the file or directory, None for an in-memory dict.
    loaded: number of model tensors now holding checkpoint values (resized ones included).
    resized: (key, checkpoint shape, model shape) of each embedding resized.
    dropped_head: checkpoint classifier keys left out (drop_head=True, other class count).
    ignored: checkpoint key -> why it is not used (e.g. the official XViT's ``new_fc``).
    copied: model key -> the checkpoint key it was copied from (TimeSformer's temporal
        attention from an image ViT's spatial attention).
    initialized: model key -> how it was initialised from scratch (zeros, or the model's own
        initialisation), for keys the checkpoint does not provide.
    """

    source: str
    path: Optional[str] = None
    loaded: int = 0
    resized: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=list)
    dropped_head: List[str] = field(default_factory=list)
    ignored: Dict[str, str] = field(default_factory=dict)
    copied: Dict[str, str] = field(default_factory=dict)
    initialized: Dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [f"source: {self.source}" + (f" ({self.path})" if self.path else ""),
                 f"loaded: {self.loaded} tensors"]
        for key, old, new in self.resized:
            lines.append(f"resized: {key} {old} -> {new}")
        if self.dropped_head:
            lines.append(f"dropped checkpoint head: {', '.join(self.dropped_head)}")
        for reason, keys in _group_by_reason(self.ignored).items():
            lines.append(f"ignored {_key_list(keys)}: {reason}")
        if self.copied:
            lines.append(f"copied: {_key_list([f'{new} <- {old}' for new, old in self.copied.items()], 4)}")
        for reason, keys in _group_by_reason(self.initialized).items():
            lines.append(f"not from the checkpoint, {reason}: {_key_list(keys)}")
        return "\n".join(lines)


@dataclass
class MappedState:
    """A state dict translated into this toolkit's names.

    state: our key -> tensor. unmapped: keys of the source that have no counterpart (reported
    as unexpected). ignored / copied / initialized: as in `LoadReport`. hints: what the
    layout says about a mismatch, for the error message.
    """

    state: Dict[str, Tensor]
    unmapped: List[str] = field(default_factory=list)
    ignored: Dict[str, str] = field(default_factory=dict)
    copied: Dict[str, str] = field(default_factory=dict)
    initialized: Dict[str, str] = field(default_factory=dict)
    hints: List[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Reading files


def read_checkpoint_file(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Read a checkpoint file (torch.save / .safetensors) or a Hugging Face model directory.

    Returns:
        The checkpoint as a dict (whatever its layout; see `load_checkpoint`).
    Raises:
        CheckpointError (a ValueError): the path does not exist, is empty, truncated or
            corrupted, is not a checkpoint, or does not hold a dict; the message names the file
            and what was expected.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return _read_huggingface_directory(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.endswith(".safetensors") or _starts_like_safetensors(path):
        checkpoint = _read_safetensors(path)
    else:
        checkpoint = _torch_load(path)
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint; expected a dict: "
                              f"a state dict or a checkpoint with 'model' / 'model_state' / 'state_dict'")
    return dict(checkpoint)


_FILE_KINDS = ("a file written by torch.save (.pth, .pyth, .pt, .bin), a .safetensors file, "
               "or a Hugging Face model directory")


def _unreadable(path: str, error: BaseException) -> CheckpointError:
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(4)
    if size == 0:
        what = "the file is empty"
    elif head == b"PK\x03\x04":
        what = "its zip archive is incomplete or damaged (a truncated or interrupted download?)"
    else:
        what = "it is not a PyTorch checkpoint, or it is corrupted or truncated"
    detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
    return CheckpointError(f"cannot read checkpoint {path} ({size} bytes): {what}. Expected {_FILE_KINDS}. "
                           f"[{type(error).__name__}: {detail}]")


def _torch_load(path: str) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        globals_needed = re.findall(r"Unsupported global: GLOBAL (\S+)", str(error))
        if not globals_needed:
            raise _unreadable(path, error) from None
        # mmengine checkpoints carry a message hub, some hold config objects: plain tensors
        # plus Python objects that only a full unpickle restores.
        logger.warning("%s holds Python objects besides tensors (%s); unpickling it fully, which runs code "
                       "from the file: load only checkpoints you trust", path, ", ".join(globals_needed))
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as second:  # noqa: BLE001 - every failure becomes one clear error
            raise _unreadable(path, second) from None
    except Exception as error:  # noqa: BLE001
        raise _unreadable(path, error) from None


def _starts_like_safetensors(path: str) -> bool:
    """safetensors files start with an 8-byte little-endian header length, then '{'."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return int.from_bytes(head[:8], "little") < os.path.getsize(path)


def _read_safetensors(path: str) -> Dict[str, Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise CheckpointError(f"{path} is a .safetensors file; install safetensors "
                              f"(pip install 'video-ats[hf]') to read it") from None
    try:
        return load_file(path, device="cpu")
    except Exception as error:  # noqa: BLE001
        raise _unreadable(path, error) from None


def _read_huggingface_directory(path: str) -> Dict[str, Tensor]:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if os.path.isfile(os.path.join(path, name)):
            return read_checkpoint_file(os.path.join(path, name))
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index_path = os.path.join(path, index)
        if os.path.isfile(index_path):
            try:
                with open(index_path) as handle:
                    shards = sorted(set(json.load(handle)["weight_map"].values()))
            except (ValueError, KeyError) as error:
                raise CheckpointError(f"{index_path} is not a valid shard index ({error})") from None
            state: Dict[str, Tensor] = {}
            for shard in shards:
                state.update(read_checkpoint_file(os.path.join(path, shard)))
            return state
    raise CheckpointError(f"directory {path} holds no model.safetensors, pytorch_model.bin or shard index; "
                          f"expected a Hugging Face model directory (written by save_pretrained)")


# ---------------------------------------------------------------------------------------------
# Layout detection


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) > 0 and all(isinstance(v, Tensor) for v in value.values())


def _strip_prefix(state: Mapping[str, Tensor], prefix: str) -> Dict[str, Tensor]:
    if state and all(key.startswith(prefix) for key in state):
        return {key[len(prefix):]: value for key, value in state.items()}
    return dict(state)


def _has_prefix(keys: Iterable[str], *prefixes: str) -> bool:
    return any(key.startswith(prefixes) for key in keys)


def _source_of_keys(keys: List[str]) -> Optional[str]:
    if _has_prefix(keys, "base_model."):
        return "xvit_official"
    if keys and all(key.startswith("model.") for key in keys):
        return "timesformer_official"
    if _has_prefix(keys, "backbone.", "cls_head."):
        return "mmaction2"
    if _has_prefix(keys, "timesformer.", "classifier.", "embeddings.patch_embeddings.", "encoder.layer."):
        return "huggingface"
    if ({"time_embed", "temp_embed"} & set(keys)) or _has_prefix(keys, "consensus.") \
            or any(".temporal_attn." in key for key in keys):
        return "video_ats"
    if "patch_embed.proj.weight" in keys and _has_prefix(keys, "blocks."):
        return "timm_vit"
    return None


def detect_source(checkpoint: Mapping[str, Any], where: str = "the checkpoint") -> Tuple[str, Dict[str, Tensor]]:
    """Find the state dict inside a checkpoint and name its layout.

    Args:
        checkpoint: what `read_checkpoint_file` returned, or a state dict.
        where: the file name, for messages.
    Returns:
        (source, state dict in the source's own names, a ``module.`` prefix removed).
    Raises:
        CheckpointError: no state dict found, or keys of no known layout.
    """
    if checkpoint.get("format") == FORMAT:
        version = checkpoint.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(f"{where} has video_ats format_version {version!r}; this version of video-ats "
                                  f"reads format_version <= {FORMAT_VERSION} (upgrade video-ats)")
        if not _is_state_dict(checkpoint.get("model")):
            raise CheckpointError(f"{where} is a video_ats checkpoint without a state dict under 'model'")
        return "video_ats", dict(checkpoint["model"])
    if _is_state_dict(checkpoint):
        state = dict(checkpoint)
    else:
        # PySlowFast: model_state; mmengine: state_dict; DeiT / timm training: model, state_dict_ema.
        wrapped = [name for name in ("model_state", "state_dict", "model", "module", "state_dict_ema")
                   if _is_state_dict(checkpoint.get(name))]
        if not wrapped:
            raise CheckpointError(f"{where} holds no state dict: its top-level keys are "
                                  f"{sorted(map(str, checkpoint))[:12]}; expected a state dict of tensors or one "
                                  f"under 'model_state', 'state_dict' or 'model'")
        state = dict(checkpoint[wrapped[0]])
    state = _strip_prefix(state, "module.")
    source = _source_of_keys(list(state))
    if source is None:
        raise CheckpointError(f"{where}: the keys match no known layout (first keys: {list(state)[:6]}); expected "
                              f"one of: " + "; ".join(f"{name}: {text}" for name, text in EXPECTED.items()))
    return source, state


def _check_source_name(source: str) -> None:
    if source != "auto" and source not in SOURCES:
        raise ValueError(f"unknown checkpoint source {source!r}; valid sources are {['auto', *SOURCES]}")


def _detect_expected(checkpoint: Mapping[str, Any], source: str, where: str) -> Tuple[str, Dict[str, Tensor]]:
    """`detect_source`, then check an explicit ``source`` against what was found."""
    _check_source_name(source)
    detected, state = detect_source(checkpoint, where)
    if source not in ("auto", detected):
        raise CheckpointError(f"{where} is not {EXPECTED[source]}: its keys look like {detected} "
                              f"(first keys: {list(state)[:4]}); pass source='{detected}' or source='auto'")
    return detected, state


def _family_of(state: Mapping[str, Tensor]) -> Optional[type]:
    """Which backbone class a state dict in our names belongs to (None: an image ViT)."""
    return next((model_class for model_class in MODEL_CLASSES if model_class.owns_state(state)), None)


# ---------------------------------------------------------------------------------------------
# Key mappings: one pure function per layout, foreign names -> ours.


def _weight_and_bias(modules: Mapping[str, str]) -> Dict[str, str]:
    """{our module: their module} -> {our parameter: their parameter} for weight and bias."""
    return {f"{ours}.{kind}": f"{theirs}.{kind}" for ours, theirs in modules.items() for kind in ("weight", "bias")}


# Hugging Face transformers, models/timesformer (prefix "timesformer." on the backbone).
_HF_TOP = dict(_weight_and_bias({"patch_embed.proj": "embeddings.patch_embeddings.projection",
                                 "norm": "layernorm", "head": "classifier"}),
               cls_token="embeddings.cls_token", pos_embed="embeddings.position_embeddings",
               time_embed="embeddings.time_embeddings")
_HF_BLOCK = _weight_and_bias({
    "temporal_norm1": "temporal_layernorm", "temporal_attn.qkv": "temporal_attention.attention.qkv",
    "temporal_attn.proj": "temporal_attention.output.dense", "temporal_fc": "temporal_dense",
    "norm1": "layernorm_before", "attn.qkv": "attention.attention.qkv", "attn.proj": "attention.output.dense",
    "norm2": "layernorm_after", "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"})

# mmaction2 1.x TimeSformer (video_models.md §3.1): nn.MultiheadAttention's in_proj rows are
# [q; k; v] like our fused qkv, so the tensors are used as they are.
_MM_TOP = dict(_weight_and_bias({"patch_embed.proj": "backbone.patch_embed.projection", "norm": "backbone.norm",
                                 "head": "cls_head.fc_cls"}),
               cls_token="backbone.cls_token", pos_embed="backbone.pos_embed", time_embed="backbone.time_embed")
_MM_BLOCK = dict(
    _weight_and_bias({"temporal_norm1": "attentions.0.norm", "temporal_attn.proj": "attentions.0.attn.out_proj",
                      "temporal_fc": "attentions.0.temporal_fc", "norm1": "attentions.1.norm",
                      "attn.proj": "attentions.1.attn.out_proj", "norm2": "ffns.0.norm",
                      "mlp.fc1": "ffns.0.layers.0.0", "mlp.fc2": "ffns.0.layers.1"}),
    **{"temporal_attn.qkv.weight": "attentions.0.attn.in_proj_weight",
       "temporal_attn.qkv.bias": "attentions.0.attn.in_proj_bias",
       "attn.qkv.weight": "attentions.1.attn.in_proj_weight", "attn.qkv.bias": "attentions.1.attn.in_proj_bias"})
_MM_BLOCK_PREFIX = "backbone.transformer_layers.layers."


def _rename(state: Mapping[str, Tensor], top: Mapping[str, str], block_prefix: str,
            block: Mapping[str, str]) -> MappedState:
    """Rename by tables of {our name: their name}; block keys are ``<block_prefix><i>.<name>``."""
    top_inverse = {theirs: ours for ours, theirs in top.items()}
    block_inverse = {theirs: ours for ours, theirs in block.items()}
    pattern = re.compile(re.escape(block_prefix) + r"(\d+)\.(.+)$")
    mapped = MappedState(state={})
    for key, value in state.items():
        match = pattern.match(key)
        if key in top_inverse:
            mapped.state[top_inverse[key]] = value
        elif match and match.group(2) in block_inverse:
            mapped.state[f"blocks.{match.group(1)}.{block_inverse[match.group(2)]}"] = value
        else:
            mapped.unmapped.append(key)
    return mapped


def map_video_ats(state: Mapping[str, Tensor], family: type, target: Mapping[str, Tensor]) -> MappedState:
    """Our own names: nothing to rename."""
    return MappedState(state=dict(state))


def map_timesformer_official(state: Mapping[str, Tensor], family: type, target: Mapping[str, Tensor]) -> MappedState:
    """Official TimeSformer: our names with a ``model.`` prefix (the PySlowFast wrapper)."""
    mapped = MappedState(state={})
    for key, value in state.items():
        if key.startswith("model."):
            mapped.state[key[len("model."):]] = value
        else:
            mapped.unmapped.append(key)
    return mapped


def map_xvit_official(state: Mapping[str, Tensor], family: type, target: Mapping[str, Tensor]) -> MappedState:
    """Official XViT: ``base_model.`` + our backbone names, then by its consensus type.

    ``vit`` (the checkpoint has ``consensus.*``): those keys as ours, ``new_fc`` unused. ``avg``
    (no ``consensus.*``, a per-frame classifier): ``new_fc`` (dropout rate > 0) or
    ``base_model.head`` (dropout rate 0) becomes ``consensus.fc``.
    """
    mapped = MappedState(state={})
    average = not _has_prefix(state, "consensus.")
    for key, value in state.items():
        if average and key.startswith(("new_fc.", "base_model.head.")):
            mapped.state["consensus.fc." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("base_model."):
            mapped.state[key[len("base_model."):]] = value
        elif key.startswith("consensus."):
            mapped.state[key] = value
        elif key.startswith("new_fc."):
            mapped.ignored[key] = ("created by the official XViT builder but never used by its temporal-attention "
                                   "('vit') consensus head")
        else:
            mapped.unmapped.append(key)
    return mapped


def map_huggingface(state: Mapping[str, Tensor], family: type, target: Mapping[str, Tensor]) -> MappedState:
    """transformers' TimesformerForVideoClassification (or the headless TimesformerModel)."""
    state = {(key[len("timesformer."):] if key.startswith("timesformer.") else key): value
             for key, value in state.items()}
    return _rename(state, _HF_TOP, "encoder.layer.", _HF_BLOCK)


def map_mmaction2(state: Mapping[str, Tensor], family: type, target: Mapping[str, Tensor]) -> MappedState:
    """An mmaction2 recognizer: its own TimeSformer backbone, or ours through the bridge.

    mmaction2's TimeSformer: §3.1 table (``transformer_layers.layers.i.attentions.0`` = temporal,
    ``attentions.1`` = spatial, ``ffns.0`` = MLP), ``cls_head.fc_cls`` = our ``head``. Our
    backbones registered by `video_ats.integrations.mmaction`: ``backbone.`` + our names, and
    ``cls_head.fc_cls`` is the classifier (``head``, or XViT's ``consensus.mlp_head.4`` or, with the
    ``avg`` consensus, ``consensus.fc``).
    """
    if _has_prefix(state, _MM_BLOCK_PREFIX, "backbone.patch_embed.projection."):
        if any(re.match(re.escape(_MM_BLOCK_PREFIX) + r"\d+\.norms\.", key) for key in state):
            # space_only / joint_space_time layers: attentions.0 is the spatial attention there.
            mapped = _rename(state, _MM_TOP, _MM_BLOCK_PREFIX, {})
            mapped.hints.append("the checkpoint has no temporal attention: an mmaction2 TimeSformer with "
                                "space_only or joint_space_time attention (norms.0 / norms.1 layers); only "
                                "divided space-time attention is supported")
            return mapped
        return _rename(state, _MM_TOP, _MM_BLOCK_PREFIX, _MM_BLOCK)
    backbone = {key[len("backbone."):]: value for key, value in state.items() if key.startswith("backbone.")}
    head = (_family_of(backbone) or family).classifier_keys(target)
    mapped = MappedState(state=backbone)
    for key, value in state.items():
        if key in ("cls_head.fc_cls.weight", "cls_head.fc_cls.bias"):
            mapped.state[head[0] if key.endswith("weight") else head[1]] = value
        elif not key.startswith("backbone."):
            mapped.unmapped.append(key)
    return mapped


def map_timm_vit(state: Mapping[str, Tensor], family: type, target: Mapping[str, Tensor]) -> MappedState:
    """An ImageNet ViT (timm layout) as the starting point of a video backbone.

    Patch embedding, CLS, position embedding, blocks and final norm are used as they are; the
    image classifier and the in21k ``pre_logits`` layer are left out. The rest is the
    family's ``from_image_vit``: TimeSformer copies every block's ``attn`` and ``norm1`` into
    ``temporal_attn`` and ``temporal_norm1`` (the official initialisation) with
    ``temporal_fc`` and ``time_embed`` zeros, so each block starts as the image block; XViT
    has ``temp_embed`` zeros. The video classifier (and XViT's consensus head) keep the
    model's own initialisation.
    """
    mapped = MappedState(state={})
    for key, value in state.items():
        if key.startswith("head."):
            mapped.ignored[key] = "ImageNet classifier"
        elif key.startswith("pre_logits."):
            mapped.ignored[key] = "in21k representation layer (removed for fine-tuning, as the official code does)"
        elif key in ("cls_token", "pos_embed") or key.startswith(("patch_embed.proj.", "blocks.", "norm.")):
            mapped.state[key] = value
        else:
            mapped.unmapped.append(key)
    copied, zeros, own = family.from_image_vit(list(mapped.state), list(target))
    for key, source in copied.items():
        mapped.state[key] = mapped.state[source].clone()
        mapped.copied[key] = source
    for key in zeros:
        mapped.state[key] = torch.zeros_like(target[key])
        mapped.initialized[key] = "zeros"
    for key in own:
        mapped.state[key] = target[key]
        mapped.initialized[key] = "the model's own initialisation"
    return mapped


_MAPPERS: Dict[str, Callable[[Mapping[str, Tensor], type, Mapping[str, Tensor]], MappedState]] = {
    "video_ats": map_video_ats, "timesformer_official": map_timesformer_official,
    "xvit_official": map_xvit_official, "huggingface": map_huggingface, "mmaction2": map_mmaction2,
    "timm_vit": map_timm_vit}


# ---------------------------------------------------------------------------------------------
# Embedding resizes (the one place)


def resize_pos_embed(pos_embed: Tensor, num_tokens: int, interpolation: str) -> Tensor:
    """Resize a (1, 1+N, d) position embedding over its square grid to (1, 1+num_tokens, d).

    The CLS row is kept. ``interpolation`` is the family's ``pos_embed_interpolation``:
    ``"nearest"`` (2-D nearest, as the official TimeSformer and Hugging Face forwards do for
    another input size) or ``"bicubic"`` (bicubic with ``scale_factor = new grid / old
    grid``, exactly what the official XViT forward computes from its 224-px table,
    ``F.interpolate(..., scale_factor=img_size / 224, mode="bicubic")``).
    """
    old_side, new_side = math.isqrt(pos_embed.shape[1] - 1), math.isqrt(num_tokens - 1)
    if old_side ** 2 != pos_embed.shape[1] - 1 or new_side ** 2 != num_tokens - 1:
        raise CheckpointError(f"pos_embed {tuple(pos_embed.shape)} cannot be resized to {num_tokens} tokens: "
                              f"only square patch grids are supported")
    dim = pos_embed.shape[-1]
    grid = pos_embed[0, 1:].float().reshape(old_side, old_side, dim).permute(2, 0, 1)[None]   # (1, d, g, g)
    if interpolation == "bicubic":
        resized = F.interpolate(grid, scale_factor=new_side / old_side, mode="bicubic")
        if resized.shape[-1] != new_side:   # floating point gave another size: ask for it directly
            resized = F.interpolate(grid, size=(new_side, new_side), mode="bicubic")
    else:
        resized = F.interpolate(grid, size=(new_side, new_side), mode="nearest")
    resized = resized[0].permute(1, 2, 0).reshape(1, new_side * new_side, dim).to(pos_embed.dtype)
    return torch.cat([pos_embed[:, :1], resized], dim=1)


def resize_time_embed(time_embed: Tensor, num_frames: int) -> Tensor:
    """Resize (1, T, d) or XViT's (1, T, 1, d) over T by nearest interpolation.

    Frame t of the result takes frame floor(t * T / num_frames), as the official TimeSformer
    loader does (utils/checkpoint.py: ``F.interpolate(..., mode='nearest')``).
    """
    squeezed = time_embed[:, :, 0] if time_embed.ndim == 4 else time_embed            # (1, T, d)
    resized = F.interpolate(squeezed.float().transpose(1, 2), size=num_frames, mode="nearest").transpose(1, 2)
    resized = resized.to(time_embed.dtype)
    return resized[:, :, None] if time_embed.ndim == 4 else resized


def _resize_embeddings(state: Dict[str, Tensor], target: Mapping[str, Tensor],
                       family: type) -> List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]]:
    resized = []
    for key in ("pos_embed", family.time_embed_key):
        if key not in state or key not in target:
            continue
        old, new = tuple(state[key].shape), tuple(target[key].shape)
        if old == new or len(old) != len(new) or old[-1] != new[-1]:
            continue   # identical, or a different embedding width: the shape check reports it
        if key == "pos_embed":
            state[key] = resize_pos_embed(state[key], new[1], family.pos_embed_interpolation)
            how = f"2-D {family.pos_embed_interpolation} (official {family.__name__})"
        else:
            state[key] = resize_time_embed(state[key], new[1])
            how = "nearest over time (official TimeSformer loader)"
        logger.warning("resized %s %s -> %s by %s interpolation", key, old, new, how)
        resized.append((key, old, new))
    return resized


# ---------------------------------------------------------------------------------------------
# Loading


def _handle_head(state: Dict[str, Tensor], target: Mapping[str, Tensor], family: type, drop_head: bool,
                 report: LoadReport, where: str) -> None:
    keys = family.classifier_keys(state, target)
    in_checkpoint = [key for key in keys if key in state]
    in_model = [key for key in keys if key in target]
    # Only the class count decides here; another feature width is an architecture mismatch
    # that the key check reports with the rest.
    if in_checkpoint == in_model and all(state[key].shape[0] == target[key].shape[0] for key in in_model):
        return
    checkpoint_classes = state[keys[0]].shape[0] if keys[0] in state else None
    model_classes = target[keys[0]].shape[0] if keys[0] in target else None

    def describe(classes: Optional[int]) -> str:
        return "no classifier" if classes is None else f"a {classes}-class classifier"

    if not drop_head:
        raise CheckpointError(f"{where}: the checkpoint has {describe(checkpoint_classes)} ({keys[0]}), the model "
                              f"{describe(model_classes)}; pass drop_head=True to keep the model's own classifier "
                              f"(fine-tuning to another class count), or build the model with "
                              f"num_classes={checkpoint_classes}")
    for key in in_checkpoint:
        del state[key]
        report.dropped_head.append(key)
    for key in in_model:
        state[key] = target[key]
        report.initialized[key] = "the model's own initialisation (checkpoint head dropped)"
    logger.info("dropped the checkpoint's classifier (%s classes); the model's (%s classes) keeps its initialisation",
                checkpoint_classes, model_classes or "no")


def _block_count(keys: Iterable[str]) -> int:
    indices = [int(match.group(1)) for key in keys if (match := re.match(r"blocks\.(\d+)\.", key))]
    return max(indices) + 1 if indices else 0


def _architecture_hints(state: Mapping[str, Tensor], target: Mapping[str, Tensor]) -> List[str]:
    hints = []
    if _block_count(state) != _block_count(target):
        hints.append(f"the checkpoint has {_block_count(state)} blocks, the model {_block_count(target)}")
    if "cls_token" in state and "cls_token" in target and state["cls_token"].shape[-1] != target["cls_token"].shape[-1]:
        hints.append(f"embedding width {state['cls_token'].shape[-1]} in the checkpoint, "
                     f"{target['cls_token'].shape[-1]} in the model")
    weight = "patch_embed.proj.weight"
    if weight in state and weight in target and state[weight].shape[-2:] != target[weight].shape[-2:]:
        hints.append(f"patch size {tuple(state[weight].shape[-2:])} in the checkpoint, "
                     f"{tuple(target[weight].shape[-2:])} in the model")
    if any(".temporal_attn." in key for key in target) and _block_count(state) \
            and not any(".temporal_attn." in key for key in state):
        hints.append("the checkpoint has no temporal attention (a space-only or joint TimeSformer?); "
                     "only divided space-time attention is supported")
    return hints


def _key_list(keys: List[str], limit: int = 24) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def _group_by_reason(reasons: Mapping[str, str]) -> Dict[str, List[str]]:
    grouped: Dict[str, List[str]] = {}
    for key, reason in reasons.items():
        grouped.setdefault(reason, []).append(key)
    return grouped


def _check_keys(state: Mapping[str, Tensor], target: Mapping[str, Tensor], mapped: MappedState, where: str,
                source: str, model_name: str, resize_embeddings: bool) -> None:
    missing = [key for key in target if key not in state]
    unexpected = [key for key in state if key not in target] + list(mapped.unmapped)
    mis_shaped = [f"{key} {tuple(state[key].shape)} vs {tuple(target[key].shape)}" for key in state
                  if key in target and state[key].shape != target[key].shape]
    if not (missing or unexpected or mis_shaped):
        return
    lines = [f"cannot load {where} ({source}) into {model_name}: {len(missing)} missing, {len(unexpected)} "
             f"unexpected, {len(mis_shaped)} mis-shaped key(s); nothing was loaded"]
    hints = mapped.hints or _architecture_hints(state, target)
    lines += [f"  hint: {hint}" for hint in hints]
    if not resize_embeddings and any(item.split()[0].endswith("_embed") for item in mis_shaped):
        lines.append("  hint: resize_embeddings=False; pass True to resize pos_embed / time_embed / temp_embed")
    if missing:
        lines.append(f"  missing (model keys, in this toolkit's names): {_key_list(missing)}")
    if unexpected:
        lines.append(f"  unexpected (checkpoint keys with no place in the model): {_key_list(unexpected)}")
    if mis_shaped:
        lines.append(f"  mis-shaped (checkpoint vs model): {_key_list(mis_shaped)}")
    raise CheckpointError("\n".join(lines))


def _unwrap_model(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else model


def _read(path_or_state_dict: Any) -> Tuple[Optional[str], Mapping[str, Any]]:
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        return os.fspath(path_or_state_dict), read_checkpoint_file(path_or_state_dict)
    if isinstance(path_or_state_dict, Mapping):
        return None, path_or_state_dict
    raise TypeError(f"expected a checkpoint path or a dict, got {type(path_or_state_dict).__name__}")


def load_checkpoint(model: nn.Module, path_or_state_dict: Union[str, os.PathLike, Mapping[str, Any]],
                    source: str = "auto", *, drop_head: bool = False, resize_embeddings: bool = True) -> LoadReport:
    """Load a checkpoint of any supported layout into a TimeSformer or XViT, strictly.

    Args:
        model: a model from `video_ats.build_model` (or a subclass, or wrapped in DDP).
        path_or_state_dict: a file (.pyth/.pth/.pt/.bin/.safetensors), a Hugging Face model
            directory, a checkpoint dict or a state dict.
        source: ``"auto"`` (detect from the keys) or one of `SOURCES`; an explicit source must
            agree with what the keys show.
        drop_head: when the checkpoint's classifier has another class count than the model's
            (or one of them has none), keep the model's own classifier instead of failing.
        resize_embeddings: resize ``pos_embed`` (2-D) and ``time_embed`` / ``temp_embed``
            (nearest over T) to the model's size, with a logged warning; False makes a size
            difference an error.
    Returns:
        A `LoadReport`.
    Raises:
        ValueError: unknown source. CheckpointError (a ValueError): unreadable file, unknown
            layout, a source other than the one given, a checkpoint of the other backbone, a
            classifier mismatch without drop_head, or any missing, unexpected or mis-shaped key
            (all listed). The model is unchanged when an error is raised.
    """
    _check_source_name(source)               # before any file is read
    model = _unwrap_model(model)
    try:
        family = model_class_of(model)
    except TypeError as error:
        raise TypeError(f"load_checkpoint loads into this toolkit's backbones (video_ats.build_model): {error}") \
            from None
    path, checkpoint = _read(path_or_state_dict)
    where = path or "the given state dict"
    detected, raw = _detect_expected(checkpoint, source, where)
    target = model.state_dict()
    mapped = _MAPPERS[detected](raw, family, target)
    checkpoint_family = _family_of(mapped.state)
    if checkpoint_family not in (None, family):
        raise CheckpointError(f"{where} holds a {checkpoint_family.__name__} ({detected} layout) but the model is a "
                              f"{family.__name__}; build a {checkpoint_family.__name__} preset "
                              f"({', '.join(list_models(checkpoint_family.__name__))}) to load it")
    state = _in_model_dtypes(mapped.state, target)
    report = LoadReport(source=detected, path=path, ignored=dict(mapped.ignored), copied=dict(mapped.copied),
                        initialized=dict(mapped.initialized))
    if resize_embeddings:
        report.resized = _resize_embeddings(state, target, family)
    _handle_head(state, target, family, drop_head, report, where)
    _check_keys(state, target, mapped, where, detected, type(model).__name__, resize_embeddings)
    model.load_state_dict(state, strict=True)
    report.loaded = len(target) - len(report.initialized)
    logger.info("loaded %s\n%s", where, report.summary())
    return report


def _in_model_dtypes(state: Mapping[str, Tensor], target: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """Floating-point checkpoint tensors cast to the dtype of the model tensor of the same key
    (fp16 zoo weights into an fp32 model), before any resizing; other tensors unchanged."""
    def cast(key: str, value: Tensor) -> Tensor:
        model_value = target.get(key)
        if model_value is None or not value.is_floating_point() or not model_value.is_floating_point():
            return value
        return value.to(model_value.dtype)

    return {key: cast(key, value) for key, value in state.items()}


def checkpoint_num_classes(path_or_state_dict: Union[str, os.PathLike, Mapping[str, Any]],
                           source: str = "auto") -> Optional[int]:
    """The class count of a checkpoint's classifier (None when it has none, e.g. an image ViT)."""
    path, checkpoint = _read(path_or_state_dict)
    detected, raw = _detect_expected(checkpoint, source, path or "the given state dict")
    if detected == "timm_vit":
        return None                      # its ImageNet classifier is never used
    # The family argument only matters for a state without a family's keys, which a video
    # checkpoint with a classifier is not.
    mapped = _MAPPERS[detected](raw, MODEL_CLASSES[0], {})
    family = _family_of(mapped.state) or MODEL_CLASSES[0]
    weight = mapped.state.get(family.classifier_keys(mapped.state)[0])
    return None if weight is None else int(weight.shape[0])


def convert_checkpoint(input_path: Union[str, os.PathLike], output_path: Union[str, os.PathLike], model_name: str, *,
                       num_classes: Optional[int] = None, source: str = "auto", drop_head: bool = False,
                       resize_embeddings: bool = True, ats: Optional[Mapping[str, Any]] = None,
                       **overrides: Any) -> LoadReport:
    """Read any supported checkpoint into a `build_model` preset and write it in this toolkit's format.

    Args:
        input_path: the checkpoint to convert (file or Hugging Face directory).
        output_path: where to write the video_ats checkpoint (atomically).
        model_name: the preset to build (e.g. ``timesformer_base``, ``xvit_b16_16``).
        num_classes: the model's class count; None takes the checkpoint's (an error for a
            checkpoint without a classifier, e.g. an image ViT).
        source, drop_head, resize_embeddings: as in `load_checkpoint`.
        ats: ATS options stored with the model (None: plain model).
        overrides: `build_model` architecture overrides (num_frames, img_size, ...), stored as
            the checkpoint's model_kwargs.
    Returns:
        The `LoadReport` of reading the input.
    """
    input_path = os.fspath(input_path)
    checkpoint = read_checkpoint_file(input_path)
    if num_classes is None:
        num_classes = checkpoint_num_classes(checkpoint, source)
        if num_classes is None:
            raise CheckpointError(f"{input_path} has no classifier to take the class count from; pass num_classes")
    model = build_model(model_name, num_classes=num_classes, ats=None if ats is None else dict(ats), **overrides)
    report = load_checkpoint(model, checkpoint, source, drop_head=drop_head, resize_embeddings=resize_embeddings)
    report.path = input_path
    save_model_checkpoint(output_path, model, model_name=model_name, model_kwargs=overrides,
                          extra={"converted_from": {"path": input_path, "source": report.source}})
    return report


# ---------------------------------------------------------------------------------------------
# This toolkit's own format


def _plain(value: Any) -> Any:
    """Mapping subclasses (e.g. a yacs CfgNode) as plain dicts, so weights_only loading reads them."""
    if isinstance(value, Mapping) and type(value) not in (dict, OrderedDict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, dict):
        return type(value)((key, _plain(item)) for key, item in value.items())
    return value


def save_model_checkpoint(path: Union[str, os.PathLike], model: nn.Module, *, model_name: Optional[str] = None,
                          model_kwargs: Optional[Mapping[str, Any]] = None,
                          extra: Optional[Mapping[str, Any]] = None,
                          weights_dtype: Optional[torch.dtype] = None) -> None:
    """Write ``model`` in this toolkit's format, atomically (a temporary file, then os.replace).

    Args:
        path: the file to write (its folder is created).
        model: a TimeSformer or XViT (DDP wrappers are unwrapped).
        model_name: the `build_model` preset it was built from (needed by
            `build_model_from_checkpoint`), or None.
        model_kwargs: the `build_model` overrides it was built with (num_frames, img_size, ...).
        extra: more top-level entries, e.g. "optimizer", "epoch", "config" (plain Python values
            and tensors; a yacs config is stored as a plain dict).
        weights_dtype: store the floating-point weights in this dtype (``torch.float16`` halves
            the file, as the model zoo does); None keeps the model's. `load_checkpoint` casts
            them back to the model's dtype.
    Raises:
        ValueError: unknown model_name, or an extra key that would replace a format key.
    """
    model = _unwrap_model(model)
    if model_name is not None and model_name not in PRESETS:
        raise ValueError(f"unknown model_name {model_name!r}; valid names are {list_models()} or None")
    clashes = sorted(set(extra or {}) & set(_RESERVED))
    if clashes:
        raise ValueError(f"extra keys {clashes} are reserved by the checkpoint format {list(_RESERVED)}")
    ats = getattr(model, "ats", None)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION,
               "model": {key: _stored(value.detach().cpu(), weights_dtype)
                         for key, value in model.state_dict().items()},
               "model_name": model_name, "num_classes": int(getattr(model, "num_classes", 0)),
               "model_kwargs": _plain(dict(model_kwargs or {})), "ats": None if ats is None else ats.to_dict()}
    payload.update({key: _plain(value) for key, value in (extra or {}).items()})
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(payload, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _stored(tensor: Tensor, dtype: Optional[torch.dtype]) -> Tensor:
    """``tensor`` in ``dtype`` when both are floating point; integer and bool buffers as they are."""
    return tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor


def build_model_from_checkpoint(path: Union[str, os.PathLike]) -> nn.Module:
    """Build the model a video_ats checkpoint describes and load its weights.

    Uses the checkpoint's model_name, num_classes, model_kwargs and ats (see
    `save_model_checkpoint`). Returns the model (in training mode, as `build_model` returns it).

    Raises:
        CheckpointError: not a video_ats checkpoint, or one written without a model_name (then
            build the model yourself and call `load_checkpoint`).
    """
    path = os.fspath(path)
    checkpoint = read_checkpoint_file(path)
    if checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a video_ats checkpoint (no 'format': 'video_ats'); build the model "
                              f"with video_ats.build_model and use video_ats.load_checkpoint for other formats")
    name = checkpoint.get("model_name")
    if name not in PRESETS:
        raise CheckpointError(f"{path} names model {name!r}, not one of {list_models()}; build the model with "
                              f"video_ats.build_model and call video_ats.load_checkpoint")
    model = build_model(name, num_classes=int(checkpoint["num_classes"]), ats=checkpoint.get("ats"),
                        **dict(checkpoint.get("model_kwargs") or {}))
    report = load_checkpoint(model, checkpoint, source="video_ats")
    report.path = path
    return model
