"""A zoo model under every ATS rule at matched GFLOPs: what the demo and the study share.

A *rule* is how the ATS stages pick tokens (RULES): inverse transform sampling with this
project's ``midpoint`` grid or the released code's ``official`` grid, top-K by score, or
seeded random. Every rule is run on the same decoded views (`EvalSet`).

A *budget* is what its with the midpoint grid spends at a given ratio (ANCHOR): ATS is
adaptive, so a trained model at ratio 1.0 already drops the tokens its attention ignores, and
no other budget says more about it. The other rules are matched to that budget: their ATS
ratio is calibrated (`video_ats.engine.calibration.calibrate_ratio`) to spend the same mean
GFLOPs on a fixed random subset of the views. The calibration uses no labels, only the GFLOPs
each view costs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from video_ats.checkpoint import load_checkpoint
from video_ats.config import build_model_from_cfg, load_config
from video_ats.data import collate_views
from video_ats.engine.builders import build_dataset
from video_ats.engine.calibration import CalibrationResult, calibrate_ratio, mean_gflops
from video_ats.engine.distributed import DistContext
from video_ats.engine.evaluator import evaluate as engine_evaluate

# rule name -> ATSOptions fields (topk and random ignore the grid; it must stay "midpoint").
RULES: Dict[str, dict] = {
    "its (midpoint)": {"sampler": "its", "grid": "midpoint"},
    "its (official)": {"sampler": "its", "grid": "official"},
    "topk": {"sampler": "topk", "grid": "midpoint"},
    "random": {"sampler": "random", "grid": "midpoint"},
}
ANCHOR = "its (midpoint)"
ITS_RULES = ("its (midpoint)", "its (official)")
RIVALS = ("topk", "random")
CALIBRATION_VIEWS = 24
CALIBRATION_TOLERANCE = 0.02


@dataclass
class EvalSet:
    """Every view of a test split decoded once.

    batches: `collate_views` batches (video (B, C, T, H, W), video_index, ...), in order.
    labels: label of every video. views_per_video: clips x crops.
    calibration: the views the ratios are calibrated on, batches of (b, C, T, H, W).
    video_paths: path of every video (clips.csv keys, for the clutter levels).
    """

    batches: List[dict]
    labels: List[int]
    views_per_video: int
    calibration: List[torch.Tensor]
    video_paths: List[str]

    @property
    def num_videos(self) -> int:
        return len(self.labels)


def load_eval_set(cfg, calibration_views: int = CALIBRATION_VIEWS, batch_size: int = 48) -> EvalSet:
    """Decode the config's test split (1 x crops views per video) and draw the calibration views
    (seeded, the same on every machine)."""
    dataset = build_dataset(cfg, "test")
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0,
                                         collate_fn=collate_views)
    batches = list(loader)
    videos = torch.cat([batch["video"][batch["ok"].bool()] for batch in batches])
    chosen = np.sort(np.random.default_rng(0).permutation(len(videos))[:calibration_views])
    calibration = list(videos[torch.from_numpy(chosen)].split(batch_size))
    return EvalSet(batches=batches, labels=list(dataset.labels), views_per_video=dataset.num_views,
                   calibration=calibration, video_paths=[record.path for record in dataset.records])


def zoo_model(config: str, checkpoint: str) -> nn.Module:
    """The config's model with ATS stages (rule and ratio set later by `set_rule`), weights
    from ``checkpoint``, in eval mode."""
    cfg = load_config(config, ["ATS.ENABLE", "True"])
    model = build_model_from_cfg(cfg)
    load_checkpoint(model, checkpoint)
    return model.eval()


def set_rule(model: nn.Module, rule: str, ratio: float = 1.0, seed: int = 0) -> nn.Module:
    """Switch the model's ATS stages to ``rule`` at ``ratio`` (blocks and score unchanged)."""
    model.ats = model.ats.replace(ratio=float(ratio), seed=seed, **RULES[rule])
    return model


@torch.no_grad()
def evaluate(model: nn.Module, eval_set: EvalSet) -> dict:
    """top-1 (mean softmax over the views of a video), mean GFLOPs per view, clips/s and the
    mean kept tokens per ATS stage, by the engine's evaluator; ``model.ats`` None runs no ATS."""
    start = time.perf_counter()
    result = engine_evaluate(model, eval_set.batches, DistContext(device=torch.device("cpu")),
                             ensemble_method="mean_softmax", views_per_video=eval_set.views_per_video,
                             labels=eval_set.labels, progress=False)
    return {"top1": result["top1"], "top5": result["top5"], "gflops_per_view": result["gflops_per_view_mean"],
            "clips_per_second": result["clips_per_second"], "seconds": time.perf_counter() - start,
            "kept_tokens": [round(stage["mean_kept_tokens"], 2) for stage in result["kept_tokens_per_stage"]],
            "num_videos": result["num_videos"], "views_per_video": result["views_per_video"]}


def without_ats(model: nn.Module, eval_set: EvalSet) -> dict:
    """`evaluate` with the ATS stages off (the model as trained); ``model.ats`` restored."""
    options, model.ats = model.ats, None
    try:
        return evaluate(model, eval_set)
    finally:
        model.ats = options


def match_budget(model: nn.Module, rule: str, target_gflops: float, eval_set: EvalSet, seed: int = 0,
                 ) -> CalibrationResult:
    """Set ``rule`` at the ratio whose mean GFLOPs on the calibration views is within
    CALIBRATION_TOLERANCE of ``target_gflops`` (or the closest one, ``met`` False: e.g. its
    with the midpoint grid cannot spend more than it spends at ratio 1.0)."""
    set_rule(model, rule, 1.0, seed)
    found = calibrate_ratio(model, eval_set.calibration, target_gflops, tolerance=CALIBRATION_TOLERANCE,
                            max_evaluations=16)
    set_rule(model, rule, found.ratio, seed)
    return found


def measure(model: nn.Module, rule: str, eval_set: EvalSet, full: float, *, ratio: Optional[float] = None,
            target_gflops: Optional[float] = None, seed: int = 0) -> dict:
    """One row: ``rule`` at a given ``ratio`` or calibrated to ``target_gflops``, evaluated."""
    calibrated = None
    if target_gflops is not None:
        found = match_budget(model, rule, target_gflops, eval_set, seed)
        ratio, calibrated = found.ratio, found.met
    else:
        set_rule(model, rule, ratio, seed)
    result = evaluate(model, eval_set)
    return {"rule": rule, "ratio": round(float(ratio), 4), "calibrated": calibrated, **result,
            "gflops_fraction": result["gflops_per_view"] / full}


def at_budgets(model: nn.Module, eval_set: EvalSet, full: float, ratios: Sequence[float],
               rules: Sequence[str] = tuple(RULES), seed: int = 0) -> List[dict]:
    """For each ANCHOR ratio: the anchor at that ratio, then every other rule of ``rules``
    calibrated to the GFLOPs the anchor spends on the calibration views. Each row carries
    ``level`` (the anchor's ratio) and ``target_fraction`` (its spend, share of ``full``)."""
    rows = []
    for ratio in ratios:
        set_rule(model, ANCHOR, ratio, seed)
        target, _ = mean_gflops(model, eval_set.calibration)
        for rule in rules:
            row = (measure(model, rule, eval_set, full, ratio=ratio, seed=seed) if rule == ANCHOR else
                   measure(model, rule, eval_set, full, target_gflops=target, seed=seed))
            rows.append({"level": ratio, "target_fraction": target / full, **row})
    return rows
