"""Multi-view testing of a checkpoint: results.json and per-video scores in OUTPUT_DIR."""

from __future__ import annotations

import json
import math
import os

import numpy as np
from yacs.config import CfgNode

from ..checkpoint import load_checkpoint
from ..config import build_model_from_cfg, save_config
from .builders import EpochSampler, build_dataset, build_loader, require_readable_video
from .checkpointing import latest_checkpoint, naming_the_path
from .distributed import DistContext, init_distributed, shutdown
from .evaluator import evaluate
from .trainer import autocast_dtype, check_output_dir, seed_everything

RESULTS_FILE = "results.json"
SCORES_FILE = "per_video_scores.npz"


def checkpoint_to_test(cfg: CfgNode) -> str:
    """TEST.CHECKPOINT_FILE, else the newest training checkpoint in OUTPUT_DIR, else MODEL.PRETRAINED."""
    for path in (cfg.TEST.CHECKPOINT_FILE, latest_checkpoint(cfg.OUTPUT_DIR), cfg.MODEL.PRETRAINED):
        if path:
            if not os.path.exists(path):
                raise ValueError(f"checkpoint {path} does not exist")
            return path
    raise ValueError(f"nothing to test: no TEST.CHECKPOINT_FILE, no checkpoint in {cfg.OUTPUT_DIR}/checkpoints "
                     f"and no MODEL.PRETRAINED")


def model_to_test(cfg: CfgNode, random_weights: bool = False):
    """The model ``cfg`` describes with the weights `checkpoint_to_test` finds.

    Returns (model, checkpoint path, LoadReport); with ``random_weights`` no checkpoint is
    looked for or loaded (the weights come from the seeded initialisation) and the last two
    are None. Raises ValueError when there is no checkpoint or it does not load.
    """
    seed_everything(cfg.SEED)
    model = build_model_from_cfg(cfg)
    if random_weights:
        return model, None, None
    checkpoint = checkpoint_to_test(cfg)
    return model, checkpoint, load_checkpoint(model, checkpoint, source="auto")


def test(cfg: CfgNode, progress: bool = True) -> dict:
    """Test as ``cfg`` says; returns the results (on rank 0; other ranks get an empty dict)."""
    context = init_distributed(cfg.DEVICE)
    try:
        return _test(cfg, context, progress)
    finally:
        shutdown(context)


def _test(cfg: CfgNode, context: DistContext, progress: bool) -> dict:
    check_output_dir(cfg.OUTPUT_DIR)
    model, checkpoint, report = model_to_test(cfg)
    dataset = build_dataset(cfg, "test")
    require_readable_video(dataset)
    model.to(context.device)
    sampler = EpochSampler(len(dataset), context, cfg.TEST.BATCH_SIZE, shuffle=False)
    loader = build_loader(cfg, dataset, sampler, cfg.TEST.BATCH_SIZE)
    result = evaluate(model, loader, context, ensemble_method=cfg.TEST.ENSEMBLE_METHOD,
                      views_per_video=dataset.num_views, labels=dataset.labels, progress=progress,
                      autocast_dtype=autocast_dtype(cfg, context.device))
    if not context.is_main:
        return {}
    per_video = result.pop("per_video")
    failed = result.pop("failed_video_indices")
    result.update({
        "checkpoint": os.path.abspath(checkpoint), "checkpoint_source": getattr(report, "source", None),
        "model": cfg.MODEL.NAME, "ats": model.ats.to_dict() if model.ats is not None else None,
        "num_frames": int(model.num_frames), "annotation_file": dataset.annotation_file,
        "failed_videos": [dataset.records[index].path for index in failed], "num_processes": context.world_size,
        # An unlabelled test set has no accuracy (top1 etc. are null): its scores are the output.
        "predictions_only": result["num_labelled_videos"] == 0,
    })
    with naming_the_path(cfg.OUTPUT_DIR):
        save_config(cfg, os.path.join(cfg.OUTPUT_DIR, "test_config.yaml"))
        paths = [dataset.records[index].path for index in per_video["video_index"].tolist()]
        np.savez(os.path.join(cfg.OUTPUT_DIR, SCORES_FILE), video_index=per_video["video_index"],
                 label=per_video["label"], scores=per_video["scores"], path=np.array(paths))
        write_json(os.path.join(cfg.OUTPUT_DIR, RESULTS_FILE), result)
    return result


def write_json(path: str, data: dict) -> None:
    """Atomic JSON write; NaN becomes null so the file stays valid JSON."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        json.dump(clean(data), handle, indent=2)
    os.replace(temporary, path)
