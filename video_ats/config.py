"""Every default in one place (a yacs CfgNode, the PySlowFast convention).

YAML files in configs/ only override these; the command line adds ``KEY VALUE`` pairs on top:

    cfg = load_config("configs/kinetics400/timesformer_base_ats.yaml", ["TRAIN.BATCH_SIZE", "4"])

A key that does not exist here is an error naming the key and the file, never a silent no-op.
A key whose values are a vocabulary is checked against the vocabulary of the module that owns
it (`video_ats.ats`, `video_ats.data`); the few that only the engine reads are defined here.
The ``DATA`` keys left at None (normalisation, crop sizes, training scales) take the model
preset's values (`video_ats.models.pretrained_cfg`) when the config is loaded.
"""

from __future__ import annotations

import os
from typing import Iterable, Optional, Sequence

import yaml
from yacs.config import CfgNode

from .ats import GRIDS, SAMPLERS, SCOPES, SCORES
from .ats.options import check_grid
from .data import AGGREGATIONS
from .data.annotations import ANNOTATION_FORMATS
from .data.decoders import DECODER_NAMES
from .data.sampling import CLIP_POSITIONS
from .models import build_model, get_preset, list_models

# Vocabularies of the keys only the engine reads (the engine imports them from here).
DEVICES = ("auto", "cpu", "cuda")
MIXED_PRECISIONS = ("bf16", "fp16", "none")
OPTIMIZERS = ("sgd", "adamw")

_C = CfgNode()

# Where a run writes its outputs (checkpoints, logs, results.json, the merged config).
_C.OUTPUT_DIR = "runs/default"
# Seed of every RNG (Python, NumPy, torch) and of the data order.
_C.SEED = 0
# "auto" (CUDA when available), "cpu" or "cuda".
_C.DEVICE = "auto"

# ---------------------------------------------------------------------------------------------
_C.MODEL = CfgNode()
# A preset of video_ats.build_model (video_ats.list_models()): timesformer_base/hr/large,
# xvit_b16_8/16/32, timesformer_tiny, xvit_tiny.
_C.MODEL.NAME = "timesformer_base"
_C.MODEL.NUM_CLASSES = 400
# Architecture overrides; None keeps the preset's value.
_C.MODEL.NUM_FRAMES = None
_C.MODEL.IMG_SIZE = None
_C.MODEL.PATCH_SIZE = None
_C.MODEL.EMBED_DIM = None
_C.MODEL.DEPTH = None
_C.MODEL.NUM_HEADS = None
_C.MODEL.MLP_RATIO = None
_C.MODEL.QKV_BIAS = None
_C.MODEL.DROP_RATE = None
_C.MODEL.ATTN_DROP_RATE = None
_C.MODEL.DROP_PATH_RATE = None
# XViT only.
_C.MODEL.SHIFT_DIV = None
_C.MODEL.NUM_SEGMENTS = None
_C.MODEL.TEMP_EMBED_FRAMES = None
_C.MODEL.HEAD_DROPOUT = None
# "vit" (a temporal transformer over the per-frame CLS features, the official default) or "avg"
# (a Linear per frame, logits averaged: the official CONSENSUS_TYPE avg).
_C.MODEL.CONSENSUS = None
# A checkpoint to start from (any format video_ats.load_checkpoint reads), and its format.
_C.MODEL.PRETRAINED = ""
_C.MODEL.PRETRAINED_SOURCE = "auto"
# Drop the checkpoint's classifier when its class count differs (fine-tuning to a new dataset).
_C.MODEL.PRETRAINED_DROP_HEAD = False

# ---------------------------------------------------------------------------------------------
_C.ATS = CfgNode()
_C.ATS.ENABLE = False
# 0-based blocks; empty = the model's default (TimeSformer 3,4,5; XViT 3..11).
_C.ATS.BLOCKS = []
# Budget K = min(N, max(MIN_TOKENS, round(RATIO * N))) per stage, or NUM_TOKENS when > 0.
_C.ATS.RATIO = 1.0
_C.ATS.NUM_TOKENS = 0
_C.ATS.MIN_TOKENS = 8
# its | topk | random
_C.ATS.SAMPLER = "its"
# cls_vnorm | cls | self_attn
_C.ATS.SCORE = "cls_vnorm"
# tube | frame
_C.ATS.SCOPE = "tube"
_C.ATS.SEED = 0
# Grid rule of the its sampler: midpoint (K = the stage budget points (2k-1)/(2K) on the CDF of
# the positions still present, the first CDF value at or above each) | official (the released
# ATS code: G = max(MIN_TOKENS, round(RATIO * P0)) points at every stage, P0 = the positions
# entering the first ATS stage, the nearest value of the min-max-normalised CDF). docs/models.md.
_C.ATS.GRID = "midpoint"

# ---------------------------------------------------------------------------------------------
_C.DATA = CfgNode()
# Root the annotation paths and video paths are relative to.
_C.DATA.PATH_TO_DATA_DIR = ""
# Folder holding the videos; empty = PATH_TO_DATA_DIR.
_C.DATA.VIDEO_ROOT = ""
# Annotation files (official Kinetics CSV, "path label" list, or comma-separated list).
_C.DATA.TRAIN_ANNOTATION = "train.csv"
_C.DATA.VAL_ANNOTATION = "validate.csv"
_C.DATA.TEST_ANNOTATION = "validate.csv"
# auto | kinetics_csv | space_list | comma_list (video_ats.data.annotations.ANNOTATION_FORMATS)
_C.DATA.ANNOTATION_FORMAT = "auto"
# Rows naming a video already named by an earlier row are an error; True keeps them (a warning).
_C.DATA.ALLOW_DUPLICATES = False
# Class-list file (one name per line); empty = sorted class names of the annotations.
_C.DATA.CLASS_LIST = ""
# decord | pyav | auto (decord, then PyAV for a video decord cannot decode); both give the same frames
_C.DATA.DECODER = "decord"
# Frames per clip; None = the model's num_frames.
_C.DATA.NUM_FRAMES = None
_C.DATA.SAMPLING_RATE = 32
_C.DATA.TARGET_FPS = 30
# Short-side range of the random-scale training augmentation; None = the preset's (scaled with
# MODEL.IMG_SIZE), e.g. [256, 320] for 224-pixel models.
_C.DATA.TRAIN_JITTER_SCALES = None
# Crop sides; None = the model's input size (MODEL.IMG_SIZE, else the preset's).
_C.DATA.TRAIN_CROP_SIZE = None
_C.DATA.TEST_CROP_SIZE = None
_C.DATA.RANDOM_FLIP = True
# Per-channel normalisation; None = the preset's (TimeSformer 0.45 / 0.225, XViT 0.5 / 0.5).
_C.DATA.MEAN = None
_C.DATA.STD = None
# Replacement attempts for a broken training video before giving up.
_C.DATA.MAX_RETRIES = 10

_C.DATA_LOADER = CfgNode()
_C.DATA_LOADER.NUM_WORKERS = 2
_C.DATA_LOADER.PIN_MEMORY = False

# ---------------------------------------------------------------------------------------------
_C.SOLVER = CfgNode()
# sgd (the papers' fine-tuning recipes) | adamw (training a small model from scratch)
_C.SOLVER.OPTIMIZER = "sgd"
_C.SOLVER.BASE_LR = 0.005
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.NESTEROV = True
_C.SOLVER.WEIGHT_DECAY = 1e-4
# No decay on norms, biases and embeddings.
_C.SOLVER.ZERO_WD_NORM_BIAS_EMBED = True
_C.SOLVER.MAX_EPOCH = 15
_C.SOLVER.WARMUP_EPOCHS = 0.0
_C.SOLVER.WARMUP_START_LR = 0.0
# Cosine decays to BASE_LR * COSINE_END_LR_RATIO.
_C.SOLVER.COSINE_END_LR_RATIO = 0.0
_C.SOLVER.LABEL_SMOOTHING = 0.0
# Gradient-norm clipping; 0 disables it.
_C.SOLVER.CLIP_GRAD_NORM = 0.0

# ---------------------------------------------------------------------------------------------
_C.TRAIN = CfgNode()
_C.TRAIN.ENABLE = True
# Clips per process per step.
_C.TRAIN.BATCH_SIZE = 8
# The recipe's batch; gradients are accumulated over GLOBAL_BATCH_SIZE / (BATCH_SIZE x
# world size) steps. 0 = no accumulation.
_C.TRAIN.GLOBAL_BATCH_SIZE = 0
# Mixed precision on CUDA (bf16 | fp16 | none).
_C.TRAIN.MIXED_PRECISION = "bf16"
# Validation every N epochs (0 = never).
_C.TRAIN.EVAL_PERIOD = 1
# A checkpoint at the end of every epoch and every N iterations (0 = only per epoch).
_C.TRAIN.CHECKPOINT_ITERS = 0
# How many iteration checkpoints to keep beside the epoch ones.
_C.TRAIN.KEEP_CHECKPOINTS = 2
_C.TRAIN.AUTO_RESUME = True
_C.TRAIN.LOG_PERIOD = 10

# ---------------------------------------------------------------------------------------------
_C.TEST = CfgNode()
_C.TEST.ENABLE = True
_C.TEST.BATCH_SIZE = 8
# Temporal clips x spatial crops per video (TimeSformer / XViT protocol: 1 x 3).
_C.TEST.NUM_ENSEMBLE_VIEWS = 1
_C.TEST.NUM_SPATIAL_CROPS = 3
# start (official TimeSformer / PySlowFast code) | middle (paper, mmaction2)
_C.TEST.CLIP_POSITION = "start"
# How the views of a video are combined (video_ats.data.AGGREGATIONS): mean_softmax (the papers,
# mmaction2 average_clips="prob") | sum_logits (official TimeSformer / XViT code) | mean_logits |
# max_logits.
_C.TEST.ENSEMBLE_METHOD = "mean_softmax"
# Checkpoint to test; empty = the newest in OUTPUT_DIR, else MODEL.PRETRAINED.
_C.TEST.CHECKPOINT_FILE = ""


def get_cfg() -> CfgNode:
    """A fresh copy of the defaults."""
    return _C.clone()


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> CfgNode:
    """Defaults, then a YAML file, then ``KEY VALUE`` overrides.

    Raises:
        ValueError: the YAML does not parse, or names a key that does not exist (the message
            names the file and the key); an override names an unknown key or lacks a value.
    """
    cfg = get_cfg()
    if path:
        _merge_file(cfg, path)
    if overrides:
        overrides = list(overrides)
        if len(overrides) % 2:
            raise ValueError(f"overrides come in KEY VALUE pairs; got an odd number: {overrides}")
        try:
            cfg.merge_from_list(overrides)
        except (KeyError, ValueError, AssertionError) as error:
            raise ValueError(f"bad command-line override: {_message(error)}") from None
    sources = [path] if path else []
    if overrides:
        sources.append("command-line overrides")
    _check(cfg, " + ".join(sources) or "the defaults")
    _fill_input_defaults(cfg)
    return cfg


# DATA key -> the pretrained_cfg entry it defaults to.
_INPUT_DEFAULTS = {"MEAN": "mean", "STD": "std", "TRAIN_CROP_SIZE": "crop_size", "TEST_CROP_SIZE": "crop_size",
                   "TRAIN_JITTER_SCALES": "train_jitter_scales"}


def input_defaults(cfg: CfgNode) -> dict:
    """The input the config's model expects: its preset's `Preset.input_config` for the
    MODEL.NUM_FRAMES / MODEL.IMG_SIZE overrides."""
    return get_preset(cfg.MODEL.NAME).input_config(cfg.MODEL.NUM_FRAMES, cfg.MODEL.IMG_SIZE)


def _fill_input_defaults(cfg: CfgNode) -> None:
    """Set the DATA keys left at None to the model preset's values (see `input_defaults`)."""
    defaults = input_defaults(cfg)
    was_frozen = cfg.is_frozen()
    cfg.defrost()
    for key, name in _INPUT_DEFAULTS.items():
        if cfg.DATA[key] is None:
            value = defaults[name]
            cfg.DATA[key] = list(value) if isinstance(value, tuple) else value
    if was_frozen:
        cfg.freeze()


def _merge_file(cfg: CfgNode, path: str) -> None:
    if not os.path.isfile(path):
        raise ValueError(f"config file {path} does not exist")
    try:
        with open(path) as handle:
            loaded = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        raise ValueError(f"config file {path} is not valid YAML: {error}") from None
    if loaded is None:
        return
    if not isinstance(loaded, dict):
        raise ValueError(f"config file {path} must hold a mapping of keys, got {type(loaded).__name__}")
    base = loaded.pop("_BASE_", None)
    if base:
        _merge_file(cfg, os.path.join(os.path.dirname(path), base))
    try:
        cfg.merge_from_other_cfg(CfgNode(loaded))
    except (KeyError, ValueError, AssertionError) as error:
        raise ValueError(f"config file {path}: {_message(error)}") from None


def _message(error: Exception) -> str:
    return str(error.args[0]) if error.args else str(error)


def _check(cfg: CfgNode, source: str) -> None:
    choices = {
        "MODEL.NAME": list_models(),
        "ATS.SAMPLER": SAMPLERS, "ATS.SCORE": SCORES,
        "ATS.SCOPE": SCOPES, "ATS.GRID": GRIDS, "DATA.DECODER": DECODER_NAMES,
        "DATA.ANNOTATION_FORMAT": ANNOTATION_FORMATS,
        "TEST.CLIP_POSITION": CLIP_POSITIONS, "TEST.ENSEMBLE_METHOD": AGGREGATIONS,
        "TRAIN.MIXED_PRECISION": MIXED_PRECISIONS, "DEVICE": DEVICES,
        "SOLVER.OPTIMIZER": OPTIMIZERS,
    }
    for key, valid in choices.items():
        node, leaf = cfg, key.split(".")
        for part in leaf:
            node = node[part]
        if node not in valid:
            raise ValueError(f"{source}: {key} = {node!r} is not one of {list(valid)}")
    try:
        check_grid(cfg.ATS.GRID, cfg.ATS.SAMPLER)
    except ValueError as error:
        raise ValueError(f"{source}: ATS.GRID {cfg.ATS.GRID} with ATS.SAMPLER {cfg.ATS.SAMPLER}: {error}") from None


_MODEL_KEYS = {
    "NUM_FRAMES": "num_frames", "IMG_SIZE": "img_size", "PATCH_SIZE": "patch_size", "EMBED_DIM": "embed_dim",
    "DEPTH": "depth", "NUM_HEADS": "num_heads", "MLP_RATIO": "mlp_ratio", "QKV_BIAS": "qkv_bias",
    "DROP_RATE": "drop_rate", "ATTN_DROP_RATE": "attn_drop_rate", "DROP_PATH_RATE": "drop_path_rate",
    "SHIFT_DIV": "shift_div", "NUM_SEGMENTS": "num_segments", "TEMP_EMBED_FRAMES": "temp_embed_frames",
    "HEAD_DROPOUT": "head_dropout", "CONSENSUS": "consensus",
}


def model_overrides(cfg: CfgNode) -> dict:
    """The MODEL.* architecture overrides that are set, as build_model keyword arguments."""
    return {name: cfg.MODEL[key] for key, name in _MODEL_KEYS.items() if cfg.MODEL[key] is not None}


def ats_options(cfg: CfgNode) -> Optional[dict]:
    """The ``ats=`` argument of build_model: None when ATS.ENABLE is False."""
    if not cfg.ATS.ENABLE:
        return None
    options = dict(ratio=float(cfg.ATS.RATIO), min_tokens=int(cfg.ATS.MIN_TOKENS), sampler=cfg.ATS.SAMPLER,
                   score=cfg.ATS.SCORE, scope=cfg.ATS.SCOPE, seed=int(cfg.ATS.SEED), grid=cfg.ATS.GRID)
    if cfg.ATS.BLOCKS:
        options["blocks"] = [int(b) for b in cfg.ATS.BLOCKS]
    if cfg.ATS.NUM_TOKENS > 0:
        options["num_tokens"] = int(cfg.ATS.NUM_TOKENS)
    return options


def build_model_from_cfg(cfg: CfgNode):
    """video_ats.build_model with the MODEL and ATS sections of ``cfg``."""
    return build_model(cfg.MODEL.NAME, num_classes=cfg.MODEL.NUM_CLASSES, ats=ats_options(cfg),
                       **model_overrides(cfg))


def save_config(cfg: CfgNode, path: str) -> None:
    """Write the merged config as YAML (atomically) beside a run's outputs."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        handle.write(cfg.dump())
    os.replace(temporary, path)


def iter_keys(cfg: CfgNode, prefix: str = "") -> Iterable[str]:
    """Every leaf key of ``cfg`` in dotted form."""
    for key, value in cfg.items():
        if isinstance(value, CfgNode):
            yield from iter_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"
