"""The sampling study: inverse transform sampling against top-K and random dropping at matched GFLOPs.

On the synthetic dataset (tiny models trained from scratch, several seeds):

1. Train a tiny TimeSformer and a tiny XViT per seed, without ATS.
2. Off-the-shelf, for each sampler (its, topk, random) and scope (tube, frame), calibrate the
   budget ratio on training clips so that the mean GFLOPs per view is a given fraction of the
   baseline (LEVELS; at 1.0 the ratio is 1.0, every position in the budget), then test with
   1x3 views on the validation split.
   its (midpoint grid) keeps *at most* its budget, so a trained model may spend less than a high
   target even at ratio 1.0; topk and random are therefore also calibrated to what its spends at ratio 1.0
   (tube scope; rows with level ``"its"``), the one budget where all three always match.
3. Fine-tune each sampler briefly with ATS at FINETUNE_LEVEL (tube scope) and test again.
4. Record kept positions per stage against the clips' clutter level.

`run_study` writes ``study.json`` (every measurement), a figure per backbone (top-1 against
GFLOPs), a kept-against-clutter figure and ``docs/results.md``. Every step is cached in the
output folder (a trained model is not retrained), so a rerun only re-evaluates.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from video_ats.ats import ATSOptions
from video_ats.engine.calibration import cache_clips, calibrate_ratio, mean_gflops
from video_ats.checkpoint import load_checkpoint
from video_ats.config import build_model_from_cfg, load_config
from video_ats.data import collate_views, make_synthetic_dataset
from video_ats.engine import train
from video_ats.engine.builders import build_dataset, video_subset
from video_ats.engine.checkpointing import latest_checkpoint
from video_ats.engine.distributed import DistContext
from video_ats.engine.evaluator import evaluate as engine_evaluate
from video_ats.engine.tester import write_json
from video_ats.flops import model_gflops
from video_ats.engine.visualization import clutter_of_views, collect_kept_tokens, kept_by_clutter, read_clutter_levels

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKBONES = {
    "TimeSformer": os.path.join(_ROOT, "configs", "synthetic", "timesformer_tiny_48.yaml"),
    "XViT": os.path.join(_ROOT, "configs", "synthetic", "xvit_tiny_48.yaml"),
}
# The demo's motions (each looks alike played backwards) over all four clutter levels.
STUDY_DATA = dict(classes=("move sideways", "bounce up and down", "spin", "circle", "pulse", "stay still"),
                  videos_per_class={"train": 80, "val": 16}, num_frames=32, height=64, width=86, fps=16,
                  object_size=0.3, clutter_levels=(0, 1, 2, 3), seed=1)
# ATS blocks. Both tiny models have 6 blocks: the paper's placements (3, 4, 5 and 3 ... 11 of 12)
# start a quarter of the way in, so here they start at block 1: TimeSformer 1, 2, 3 (three
# stages, as the paper's) and XViT 1 ... 5 (every block from there on, as the paper's).
STUDY_BLOCKS = {"TimeSformer": (1, 2, 3), "XViT": (1, 2, 3, 4, 5)}
LEVELS = (1.0, 0.8, 0.65, 0.5)
ITS_LEVEL = "its"          # the level of the rows matched to what its spends at ratio 1.0 (tube)
SAMPLERS = ("its", "topk", "random")
SCOPES = ("tube", "frame")
FINETUNE_LEVEL = 0.5
# Baselines train longer than the TimeSformer config's 12 epochs: from scratch, a tiny video
# transformer sits at chance for a seed-dependent few hundred steps; 12 epochs left one
# TimeSformer seed in three there, and the XViT after 24 epochs was at 24 % top-1 with two more (ATS fine-tuning) epochs
# adding 6-11 points (measured while writing this study).
BASELINE_EPOCHS = {"TimeSformer": 24, "XViT": 48}
FINETUNE = ["SOLVER.OPTIMIZER", "sgd", "SOLVER.BASE_LR", "0.005", "SOLVER.MAX_EPOCH", "2",
            "SOLVER.WARMUP_EPOCHS", "0.0", "SOLVER.WEIGHT_DECAY", "0.0001"]
CALIBRATION_VIDEOS = 24


def _say(progress: bool) -> Callable[..., None]:
    return (lambda *args: print(*args, flush=True)) if progress else (lambda *args: None)


def decode_batches(dataset, batch_size: int = 48) -> List[dict]:
    """Every view of ``dataset`` decoded once, as `collate_views` batches (evaluated many times)."""
    return list(torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=1,
                                            collate_fn=collate_views))


def evaluate(model: nn.Module, batches: List[dict], labels: List[int], views_per_video: int) -> dict:
    """1xN-view top-1 (mean softmax per video) and mean GFLOPs per view, by the engine's evaluator."""
    result = engine_evaluate(model, batches, DistContext(device=torch.device("cpu")), ensemble_method="mean_softmax",
                             views_per_video=views_per_video, labels=labels, progress=False)
    return {"top1": result["top1"], "gflops_per_view": result["gflops_per_view_mean"]}


def _model(cfg, checkpoint: str) -> nn.Module:
    model = build_model_from_cfg(cfg)
    load_checkpoint(model, checkpoint)
    return model.eval()


def _options(model: nn.Module, backbone: str, sampler: str, scope: str, ratio: float, seed: int) -> ATSOptions:
    blocks = [b for b in STUDY_BLOCKS[backbone] if b < len(model.blocks)]
    return ATSOptions.from_dict({"sampler": sampler, "scope": scope, "ratio": ratio, "seed": seed, "blocks": blocks},
                                len(model.blocks), blocks)


def run_study(output_dir: str = "runs/study", data_root: str = "cache/synthetic_study", docs_dir: str = "docs",
              seeds: Sequence[int] = (0, 1, 2), backbones: Optional[Sequence[str]] = None,
              levels: Sequence[float] = LEVELS, data: Optional[dict] = None,
              extra_overrides: Optional[List[str]] = None, progress: bool = True) -> dict:
    """Run (or resume) the study; returns the measurements and writes them with the figures and
    results.md (see the module docstring). ``data``, ``extra_overrides`` and ``backbones``
    shrink it for tests."""
    say = _say(progress)
    start = time.perf_counter()
    data = dict(STUDY_DATA if data is None else data)
    backbones = list(backbones or BACKBONES)
    say(f"[study] synthetic dataset in {data_root}")
    make_synthetic_dataset(data_root, **data)
    num_classes = len(data["classes"])
    common = ["DATA.PATH_TO_DATA_DIR", data_root, "MODEL.NUM_CLASSES", str(num_classes)] + list(extra_overrides or [])
    levels_of_clips = read_clutter_levels(os.path.join(data_root, "clips.csv"))
    results: Dict[str, dict] = {"levels": list(levels), "seeds": list(seeds), "samplers": list(SAMPLERS),
                                "scopes": list(SCOPES), "finetune_level": FINETUNE_LEVEL, "data": data,
                                "backbones": {}}
    for backbone in backbones:
        config = BACKBONES[backbone]
        cfg = load_config(config, common)
        test_set = build_dataset(cfg, "test")
        say(f"[study] {backbone}: decoding {len(test_set)} test views and {CALIBRATION_VIDEOS} calibration clips")
        views = decode_batches(test_set)
        score = (lambda m: evaluate(m, views, test_set.labels, test_set.num_views))
        calibration_cfg = load_config(config, common + ["TEST.NUM_SPATIAL_CROPS", "1",
                                                        "DATA.TEST_ANNOTATION", cfg.DATA.TRAIN_ANNOTATION])
        calibration = cache_clips(decode_batches(video_subset(build_dataset(calibration_cfg, "test"),
                                                              CALIBRATION_VIDEOS, seed=0)))
        video_paths = [record.path for record in test_set.records]
        rows = []
        for seed in seeds:
            run_dir = os.path.join(output_dir, backbone.lower(), f"seed{seed}")
            base_dir = os.path.join(run_dir, "baseline")
            say(f"[study] {backbone} seed {seed}: training the baseline -> {base_dir}")
            epochs = ["SOLVER.MAX_EPOCH", str(BASELINE_EPOCHS[backbone])]
            train(load_config(config, epochs + common + ["SEED", str(seed), "OUTPUT_DIR", base_dir]),
                  progress=progress)
            checkpoint = latest_checkpoint(base_dir)
            model = _model(cfg, checkpoint)
            full = model_gflops(model)
            baseline = score(model)
            rows.append({"seed": seed, "sampler": "none", "scope": "none", "level": 1.0, "finetuned": False,
                         "ratio": None, "top1": baseline["top1"], "gflops_per_view": baseline["gflops_per_view"],
                         "gflops_fraction": 1.0})
            say(f"[study] {backbone} seed {seed}: no ATS top-1 {baseline['top1']:.1f}, {full:.4f} GFLOPs/view")
            ratios = {}
            for sampler in SAMPLERS:
                for scope in SCOPES:
                    for level in levels:
                        model.ats = _options(model, backbone, sampler, scope, 1.0, seed)
                        ratio, met = 1.0, True
                        if level < 1.0:
                            found = calibrate_ratio(model, calibration, level * full, tolerance=0.02,
                                                    max_evaluations=14)
                            ratio, met = found.ratio, found.met
                        model.ats = _options(model, backbone, sampler, scope, ratio, seed)
                        measured = score(model)
                        ratios[(sampler, scope, level)] = ratio
                        row = {"seed": seed, "sampler": sampler, "scope": scope, "level": level, "finetuned": False,
                               "ratio": ratio, "calibrated": met, "top1": measured["top1"],
                               "gflops_per_view": measured["gflops_per_view"],
                               "gflops_fraction": measured["gflops_per_view"] / full,
                               "blocks": list(model.ats.blocks)}
                        if sampler == "its" and scope == "tube":
                            kept = collect_kept_tokens(model, views)
                            row["kept_by_clutter"] = kept_by_clutter(
                                kept, clutter_of_views(kept, video_paths, levels_of_clips))
                        rows.append(row)
                        say(f"[study] {backbone} seed {seed} {sampler:6s} {scope:5s} level {level:.2f}: ratio "
                            f"{ratio:.4f} -> {100 * row['gflops_fraction']:.1f}% GFLOPs, top-1 {row['top1']:.1f}")
            # The budget its really spends at ratio 1.0: topk and random matched to it.
            model.ats = _options(model, backbone, "its", "tube", 1.0, seed)
            its_target, _ = mean_gflops(model, calibration)
            its_row = next(r for r in rows if (r["seed"], r["sampler"], r["scope"], r["level"], r["finetuned"])
                           == (seed, "its", "tube", 1.0, False))
            rows.append(dict(its_row, level=ITS_LEVEL))
            for sampler in ("topk", "random"):
                model.ats = _options(model, backbone, sampler, "tube", 1.0, seed)
                found = calibrate_ratio(model, calibration, its_target, tolerance=0.02, max_evaluations=14)
                model.ats = _options(model, backbone, sampler, "tube", found.ratio, seed)
                measured = score(model)
                rows.append({"seed": seed, "sampler": sampler, "scope": "tube", "level": ITS_LEVEL,
                             "finetuned": False, "ratio": found.ratio, "calibrated": found.met,
                             "top1": measured["top1"], "gflops_per_view": measured["gflops_per_view"],
                             "gflops_fraction": measured["gflops_per_view"] / full, "blocks": list(model.ats.blocks)})
                say(f"[study] {backbone} seed {seed} {sampler:6s} tube  at its's budget: ratio {found.ratio:.4f} -> "
                    f"{100 * rows[-1]['gflops_fraction']:.1f}% GFLOPs, top-1 {rows[-1]['top1']:.1f}")
            for sampler in SAMPLERS:
                ratio = ratios[(sampler, "tube", FINETUNE_LEVEL)] if FINETUNE_LEVEL in levels else 0.5
                tune_dir = os.path.join(run_dir, f"finetune_{sampler}")
                say(f"[study] {backbone} seed {seed}: fine-tuning with {sampler} (tube, ratio {ratio:.4f}) -> {tune_dir}")
                blocks = [b for b in STUDY_BLOCKS[backbone] if b < len(model.blocks)]
                ats = ["ATS.ENABLE", "True", "ATS.BLOCKS", str(blocks), "ATS.SAMPLER", sampler, "ATS.SCOPE", "tube", "ATS.RATIO", f"{ratio:.4f}",
                       "ATS.SEED", str(seed)]
                train(load_config(config, common + ats + FINETUNE + ["SEED", str(seed), "OUTPUT_DIR", tune_dir,
                                                                     "MODEL.PRETRAINED", checkpoint]),
                      progress=progress)
                tuned = _model(cfg, latest_checkpoint(tune_dir))
                tuned.ats = _options(tuned, backbone, sampler, "tube", ratio, seed)
                measured = score(tuned)
                rows.append({"seed": seed, "sampler": sampler, "scope": "tube", "level": FINETUNE_LEVEL,
                             "finetuned": True, "ratio": ratio, "top1": measured["top1"],
                             "gflops_per_view": measured["gflops_per_view"],
                             "gflops_fraction": measured["gflops_per_view"] / full})
                say(f"[study] {backbone} seed {seed} {sampler} fine-tuned: top-1 {measured['top1']:.1f}, "
                    f"{100 * measured['gflops_per_view'] / full:.1f}% GFLOPs")
        results["backbones"][backbone] = {"config": os.path.relpath(config, _ROOT), "gflops_per_view": full,
                                          "rows": rows}
    results["seconds"] = time.perf_counter() - start
    results["cpu_count"] = os.cpu_count()
    os.makedirs(output_dir, exist_ok=True)
    write_json(os.path.join(output_dir, "study.json"), results)
    if docs_dir:
        write_report(results, docs_dir)
    say(f"[study] done in {results['seconds'] / 60:.1f} min")
    return results


# --- Summaries, figures and the report --------------------------------------------------------

LEARNED_MARGIN = 5.0      # a baseline within this many points of chance has not learned


def learned_rows(results: dict, backbone: str) -> Tuple[List[dict], List[int]]:
    """The backbone's rows of the seeds whose baseline learned (top-1 at least LEARNED_MARGIN
    points above chance), and the seeds left out. When no seed learned, every row is kept (the
    report then says the baseline did not learn)."""
    rows = results["backbones"][backbone]["rows"]
    chance = 100.0 / len(results["data"]["classes"])
    failed = sorted(r["seed"] for r in rows if r["sampler"] == "none" and r["top1"] < chance + LEARNED_MARGIN)
    if len(failed) == len({r["seed"] for r in rows}):
        return list(rows), []
    return [r for r in rows if r["seed"] not in failed], failed


def summarize(rows: Sequence[dict]) -> List[dict]:
    """Mean and standard deviation over seeds of each (sampler, scope, level, finetuned)."""
    groups: Dict[tuple, List[dict]] = {}
    for row in rows:
        groups.setdefault((row["sampler"], row["scope"], row["level"], row["finetuned"]), []).append(row)
    out = []
    for (sampler, scope, level, finetuned), members in groups.items():
        top1 = np.array([m["top1"] for m in members])
        fraction = np.array([m["gflops_fraction"] for m in members])
        out.append({"sampler": sampler, "scope": scope, "level": level, "finetuned": finetuned,
                    "seeds": len(members), "top1_mean": float(top1.mean()), "top1_std": float(top1.std(ddof=0)),
                    "top1": top1.tolist(), "gflops_fraction_mean": float(fraction.mean())})
    return out


def _find(summary, sampler, scope, level, finetuned=False) -> Optional[dict]:
    for entry in summary:
        if (entry["sampler"], entry["scope"], entry["level"], entry["finetuned"]) == (sampler, scope, level, finetuned):
            return entry
    return None


def compare(summary: Sequence[dict], level: float, scope: str, other: str, finetuned: bool = False,
            max_gap: float = 0.03) -> Optional[dict]:
    """its minus ``other`` at one budget and scope: the mean over seeds of the paired differences
    and their spread. Verdict: 'not matched' when the two spent GFLOPs more than ``max_gap``
    (fraction of the baseline) apart (its with the midpoint grid keeps *at most* its budget, so it
    cannot always spend a high target); else 'better' / 'worse' only when the mean difference exceeds the spread of
    the differences and every seed agrees in sign, else 'no clear difference'."""
    its, rival = _find(summary, "its", scope, level, finetuned), _find(summary, other, scope, level, finetuned)
    if its is None or rival is None:
        return None
    diff = np.array(its["top1"]) - np.array(rival["top1"])
    mean, std = float(diff.mean()), float(diff.std(ddof=0))
    gap = its["gflops_fraction_mean"] - rival["gflops_fraction_mean"]
    if abs(gap) > max_gap:
        verdict = (f"not matched: its at {100 * its['gflops_fraction_mean']:.0f}%, {other} at "
                   f"{100 * rival['gflops_fraction_mean']:.0f}%")
    elif abs(mean) > std and (np.all(diff > 0) or np.all(diff < 0)):
        verdict = "better" if mean > 0 else "worse"
    else:
        verdict = "no clear difference"
    return {"mean": mean, "std": std, "diffs": diff.tolist(), "verdict": verdict, "gflops_gap": gap}


def plot_backbone(results: dict, backbone: str, path: str) -> str:
    """Top-1 against GFLOPs fraction for every sampler and scope (mean +- std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, failed = learned_rows(results, backbone)
    summary = summarize(rows)
    figure, axis = plt.subplots(figsize=(6.4, 4.4))
    colors = {"its": "tab:blue", "topk": "tab:orange", "random": "tab:green"}
    base = _find(summary, "none", "none", 1.0)
    for sampler in SAMPLERS:
        for scope, style in (("tube", "-"), ("frame", "--")):
            entries = sorted((e for e in summary if e["sampler"] == sampler and e["scope"] == scope
                              and not e["finetuned"] and e["level"] != ITS_LEVEL),
                             key=lambda e: -e["gflops_fraction_mean"])
            if entries:
                axis.errorbar([100 * e["gflops_fraction_mean"] for e in entries], [e["top1_mean"] for e in entries],
                              yerr=[e["top1_std"] for e in entries], color=colors[sampler], linestyle=style,
                              marker="o", capsize=3, label=f"{sampler} ({scope})")
        own = _find(summary, sampler, "tube", ITS_LEVEL)
        if own and sampler != "its":
            axis.errorbar([100 * own["gflops_fraction_mean"]], [own["top1_mean"]], yerr=[own["top1_std"]],
                          color=colors[sampler], marker="D", markersize=6, capsize=3, linestyle="none",
                          label=f"{sampler} at its's budget")
        tuned = _find(summary, sampler, "tube", results["finetune_level"], True)
        if tuned:
            axis.errorbar([100 * tuned["gflops_fraction_mean"]], [tuned["top1_mean"]], yerr=[tuned["top1_std"]],
                          color=colors[sampler], marker="*", markersize=12, capsize=3, linestyle="none",
                          label=f"{sampler} fine-tuned")
    if base:
        axis.axhline(base["top1_mean"], color="gray", linestyle=":", label="no ATS")
    axis.axhline(100.0 / len(results["data"]["classes"]), color="black", linewidth=0.8, linestyle="-.",
                 label="chance")
    axis.set_xlabel("GFLOPs per view (% of the model without ATS)")
    axis.set_ylabel("top-1 (%), 1x3 views")
    used = len({r["seed"] for r in rows})
    seeds = f"{used} seeds" if not failed else f"{used} of {used + len(failed)} seeds; {len(failed)} did not learn"
    axis.set_title(f"tiny {backbone} on the synthetic dataset ({seeds})", fontsize=10)
    axis.legend(fontsize=7, ncol=2)
    axis.grid(alpha=0.3)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def clutter_table(results: dict, backbone: str, level: float) -> List[dict]:
    """Mean kept positions per stage and clutter level for its (tube) at one budget, over seeds."""
    rows = [r for r in learned_rows(results, backbone)[0]
            if r["sampler"] == "its" and r["scope"] == "tube" and r["level"] == level and not r["finetuned"]]
    if not rows:
        return []
    out = []
    for stage, first in enumerate(rows[0]["kept_by_clutter"]):
        per_level = {}
        for row in rows:
            for entry in row["kept_by_clutter"][stage]["levels"]:
                per_level.setdefault(entry["level"], []).append(entry["mean"])
        out.append({"block": first["block"], "levels": {level_: float(np.mean(v)) for level_, v in per_level.items()}})
    return out


def plot_clutter(results: dict, level: float, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backbones = list(results["backbones"])
    figure, axes = plt.subplots(1, len(backbones), figsize=(5.2 * len(backbones), 3.8), squeeze=False)
    for axis, backbone in zip(axes[0], backbones):
        for stage in clutter_table(results, backbone, level):
            levels = sorted(stage["levels"])
            axis.plot(levels, [stage["levels"][k] for k in levels], marker="o", label=f"block {stage['block']}")
        axis.set_xlabel("clutter level of the clip")
        axis.set_ylabel("kept positions (mean)")
        axis.set_title(f"{backbone}: its (tube) at {level:.0%} GFLOPs")
        axis.set_xticks(sorted(results["data"]["clutter_levels"]))
        axis.legend(fontsize=7, ncol=2)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_report(results: dict, docs_dir: str) -> str:
    """docs/results.md with the tables, verdicts and figures of ``results``."""
    figures = os.path.join(docs_dir, "figures")
    os.makedirs(figures, exist_ok=True)
    clutter_level = 0.65 if 0.65 in results["levels"] else results["levels"][-1]
    lines = [
        "# Results: ATS against top-K and random dropping at matched GFLOPs",
        "",
        "Measured by `python tools/study.py` (all numbers and figures on this page are written by",
        "it, from `runs/study/study.json`); see [the method](#method) below.",
        "",
    ]
    for backbone, entry in results["backbones"].items():
        rows, failed = learned_rows(results, backbone)
        summary = summarize(rows)
        figure = plot_backbone(results, backbone, os.path.join(figures, f"study_{backbone.lower()}.png"))
        base = _find(summary, "none", "none", 1.0)
        chance = 100 / len(results["data"]["classes"])
        lines += [f"## Tiny {backbone}", ""]
        if failed:
            every = [r for r in entry["rows"] if r["sampler"] == "none"]
            lines += [f"**Seed{'s' if len(failed) > 1 else ''} {', '.join(map(str, failed))} did not learn** (baseline "
                      "top-1 " + ", ".join(f"{r['top1']:.1f}" for r in every if r["seed"] in failed) +
                      f" %, chance {chance:.1f} %): a model that learned nothing cannot tell the samplers apart, so "
                      f"the tables, verdicts and figures below are over the {len(set(r['seed'] for r in rows))} "
                      "seeds that learned; every row of the left-out seeds is in `study.json`.", ""]
        if base["top1_mean"] < chance + LEARNED_MARGIN:
            lines += ["**This baseline did not learn**: its top-1 is within 5 points of chance, so every number "
                      "below compares chance-level models and says nothing about the samplers.", ""]
        else:
            lines += ["In plain words (tube scope, paired by seed; see the verdict rule in the method):", ""]
            for level in results["levels"]:
                verdicts = [(other, compare(summary, level, "tube", other)) for other in ("topk", "random")]
                said = "; ".join(f"against {other}: {c['verdict']} ({c['mean']:+.1f} ± {c['std']:.1f} points)"
                                 for other, c in verdicts if c)
                lines.append(f"- at {level:.0%} of the GFLOPs, its {said}.")
            own = _find(summary, "its", "tube", ITS_LEVEL)
            verdicts = [(other, compare(summary, ITS_LEVEL, "tube", other)) for other in ("topk", "random")]
            if own and all(c for _, c in verdicts):
                said = "; ".join(f"against {other}: {c['verdict']} ({c['mean']:+.1f} ± {c['std']:.1f} points)"
                                 for other, c in verdicts)
                lines.append(f"- at the budget its spends at ratio 1.0 ({100 * own['gflops_fraction_mean']:.0f}% of "
                             f"the GFLOPs, topk and random calibrated to it), its {said}.")
            lines.append("")
        lines += [
                  f"Without ATS: top-1 {base['top1_mean']:.1f} ± {base['top1_std']:.1f} "
                  f"(seeds: {', '.join(f'{v:.1f}' for v in base['top1'])}), {entry['gflops_per_view']:.4f} GFLOPs "
                  f"per view; chance is {100 / len(results['data']['classes']):.1f}.", "",
                  f"![top-1 against GFLOPs, tiny {backbone}](figures/{os.path.basename(figure)})", "",
                  "Top-1 (mean ± std over seeds) at each budget; in brackets the GFLOPs per view actually "
                  "measured on the test views, as % of the model without ATS (the ratio was calibrated on "
                  "training clips).", "",
                  "| budget | " + " | ".join(f"{s} ({c})" for c in SCOPES for s in SAMPLERS) + " |",
                  "|---|" + "---|" * (len(SAMPLERS) * len(SCOPES))]
        for level in results["levels"]:
            cells = []
            for scope in SCOPES:
                for sampler in SAMPLERS:
                    e = _find(summary, sampler, scope, level)
                    cells.append(f"{e['top1_mean']:.1f} ± {e['top1_std']:.1f} [{100 * e['gflops_fraction_mean']:.0f}%]"
                                 if e else "–")
            lines.append(f"| {level:.0%} | " + " | ".join(cells) + " |")
        its_full = [_find(summary, "its", scope, 1.0) for scope in SCOPES]
        own = [_find(summary, sampler, "tube", ITS_LEVEL) for sampler in SAMPLERS]
        if all(own):
            lines += ["", "At the budget its spends at ratio 1.0 (tube scope; topk and random calibrated to it on "
                      "the same training clips), top-1 and the GFLOPs measured on the test views:", "",
                      "| sampler | top-1 | GFLOPs (% of no ATS) |", "|---|---|---|"]
            lines += [f"| {sampler} | {e['top1_mean']:.1f} ± {e['top1_std']:.1f} | {100 * e['gflops_fraction_mean']:.1f}% |"
                      for sampler, e in zip(SAMPLERS, own)]
        lines += ["", "With the `midpoint` grid rule used here (docs/models.md), its keeps *at most* its budget of "
                  "the positions still present (repeated samples of the same token count once), so the "
                  "most it can spend is what it spends at ratio 1.0: here "
                  + " and ".join(f"{100 * e['gflops_fraction_mean']:.0f}% ({scope} scope)"
                                 for e, scope in zip(its_full, SCOPES) if e)
                  + " of the baseline's GFLOPs. Budgets above that cannot be matched for its under this rule "
                  "(the released code's `official` grid keeps more), and the comparison below says so. In frame "
                  "scope a block computes the union of the positions kept in any frame, so dropping different "
                  "positions per frame saves little.", "",
                  "Inverse transform sampling (its) minus each rival, paired by seed (points of top-1):", "",
                  "| budget | scope | its − topk | its − random |", "|---|---|---|---|"]
        for level in results["levels"]:
            for scope in SCOPES:
                cells = []
                for other in ("topk", "random"):
                    c = compare(summary, level, scope, other)
                    cells.append(f"{c['mean']:+.1f} ± {c['std']:.1f} ({c['verdict']})" if c else "–")
                lines.append(f"| {level:.0%} | {scope} | " + " | ".join(cells) + " |")
        cells = [compare(summary, ITS_LEVEL, "tube", other) for other in ("topk", "random")]
        if all(cells):
            lines.append("| its's own | tube | " + " | ".join(f"{c['mean']:+.1f} ± {c['std']:.1f} ({c['verdict']})"
                                                          for c in cells) + " |")
        lines += ["", f"After a short ATS fine-tune at {results['finetune_level']:.0%} GFLOPs (tube scope; SGD, "
                  "2 epochs from the baseline):", "", "| sampler | off-the-shelf | fine-tuned | recovered |",
                  "|---|---|---|---|"]
        for sampler in SAMPLERS:
            before = _find(summary, sampler, "tube", results["finetune_level"])
            after = _find(summary, sampler, "tube", results["finetune_level"], True)
            if before and after:
                gain = np.array(after["top1"]) - np.array(before["top1"])
                lines.append(f"| {sampler} | {before['top1_mean']:.1f} ± {before['top1_std']:.1f} | "
                             f"{after['top1_mean']:.1f} ± {after['top1_std']:.1f} | {gain.mean():+.1f} ± {gain.std():.1f} |")
        lines.append("")
    clutter_figure = plot_clutter(results, clutter_level, os.path.join(figures, "study_kept_vs_clutter.png"))
    lines += ["## Kept tokens against clutter", "",
              f"![kept positions against clutter](figures/{os.path.basename(clutter_figure)})", "",
              f"Mean kept positions per ATS stage for its (tube) at the {clutter_level:.0%} budget, by the clip's "
              "clutter level (0 plain background … 3 heavy texture and 4 moving distractors), mean over seeds:", ""]
    for backbone in results["backbones"]:
        table = clutter_table(results, backbone, clutter_level)
        if not table:
            continue
        slopes = [float(np.polyfit(sorted(t["levels"]), [t["levels"][k] for k in sorted(t["levels"])], 1)[0])
                  if len(t["levels"]) > 1 else 0.0 for t in table]
        trend = ("grows with clutter in every stage" if all(x > 0 for x in slopes) else
                 "falls with clutter in every stage" if all(x < 0 for x in slopes) else "has no common trend")
        lines += [f"{backbone}: at this calibrated budget the kept-position count {trend}.", ""]
        levels = sorted(table[0]["levels"])
        lines += [f"**{backbone}**", "", "| block | " + " | ".join(f"clutter {k}" for k in levels) + " | trend |",
                  "|---|" + "---|" * (len(levels) + 1)]
        for stage in table:
            values = [stage["levels"][k] for k in levels]
            slope = float(np.polyfit(levels, values, 1)[0]) if len(levels) > 1 else 0.0
            lines.append(f"| {stage['block']} | " + " | ".join(f"{v:.1f}" for v in values) +
                         f" | {slope:+.2f} per level |")
        lines.append("")
    data = results["data"]
    lines += ["## Method", "",
              f"- Data: `make_synthetic_dataset` with {data}: {len(data['classes'])} classes, "
              f"{data['videos_per_class']['train']} training and {data['videos_per_class']['val']} validation clips "
              "per class, clutter levels cycled within each class.",
              "- Models: `configs/synthetic/timesformer_tiny_48.yaml` and `configs/synthetic/xvit_tiny_48.yaml` "
              "(48×48, 8 frames, patch 8, 6 blocks of width 96; the XViT with the official `avg` consensus, "
              "a Linear per frame with the logits averaged, because its temporal-attention head stayed at chance "
              "from scratch), trained from scratch without ATS (AdamW, lr 1e-3, cosine; "
              + ", ".join(f"{name} {epochs} epochs" for name, epochs in BASELINE_EPOCHS.items()) + "), "
              "one model per seed "
              f"({', '.join(map(str, results['seeds']))}).",
              "- ATS: TimeSformer blocks 1, 2, 3 and XViT blocks 1 … 5 (both tiny models have 6 blocks; the "
              "paper's 3, 4, 5 and 3 … 11 of 12 start at the same quarter of the depth, and 3, 4, 5 of 6 would "
              "leave 50 % out of reach); score `cls_vnorm`; its with the `midpoint` grid. For each budget level "
              "below 100 % the ratio is calibrated (`calibrate_ratio`, within 2 %) on "
              f"{CALIBRATION_VIDEOS} training clips, separately for every sampler, scope and seed; at 100 % the "
              "ratio is 1.0 (topk and random then keep everything; its keeps at most everything). \"its's "
              "own budget\": the mean GFLOPs of its at ratio 1.0 (tube) on the same clips, the target topk and "
              "random are calibrated to for the one comparison where its always matches.",
              "- Test: the validation split, 1 clip × 3 crops per video, mean softmax.",
              "- Verdicts: 'better' / 'worse' only when the mean paired difference exceeds its spread and every "
              "seed agrees; otherwise 'no clear difference'. A seed whose baseline stayed within "
              f"{LEARNED_MARGIN:.0f} points of chance is left out of its backbone's tables, verdicts and figures "
              "(and named there).",
              f"- Wall time of the run that wrote this page: {results['seconds'] / 60:.1f} min on "
              f"{results.get('cpu_count') or os.cpu_count()} CPU cores (models already trained in the output "
              "folder are reused, not retrained).", ""]
    path = os.path.join(docs_dir, "results.md")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    return path
