"""The sampling study on the model zoo: every ATS rule at matched GFLOPs, off-the-shelf and fine-tuned.

For each backbone (tiny TimeSformer, tiny XViT) and each of its three zoo checkpoints (seeds
0, 1, 2, trained without ATS; docs/zoo.md), on the zoo's full validation split (1x3 views):

1. Off-the-shelf (no training), at five budgets (the paper's Fig. 5 analogue): what its with
   the midpoint grid spends at each ratio of LEVELS, with its with the released code's official
   grid, topk and random each calibrated to spend the same (`experiments.zoo_eval.at_budgets`);
   and each its rule at ratio 1.0 on its own (for the official grid the released code's setting).
2. Fine-tuned: each rule at the FINETUNE_LEVEL budget, trained briefly with ATS on (SGD,
   FINETUNE on the study's training clips) from the zoo checkpoint at its calibrated ratio,
   then tested.
3. Kept tokens against clutter: the positions each its rule keeps per stage at ratio 1.0, by
   the clip's clutter level (clips.csv).

`run_study` writes study.json; `write_report` turns it into docs/results.md and the figures.
A backbone's results are cached in ``output_dir``/<backbone>.json, so the two backbones can run
in two processes (``--backbones``) and a rerun only reports.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from experiments.zoo import ROOT, read_manifest, write_benchmark_part
from experiments.zoo_eval import (ANCHOR, ITS_RULES, RIVALS, RULES, at_budgets, load_eval_set, measure, set_rule,
                                  without_ats, zoo_model)
from video_ats.config import load_config
from video_ats.engine import train
from video_ats.engine.checkpointing import latest_checkpoint
from video_ats.engine.visualization import clutter_of_views, collect_kept_tokens, kept_by_clutter, read_clutter_levels
from video_ats.flops import model_gflops

BACKBONES = {"TimeSformer": "timesformer_tiny", "XViT": "xvit_tiny"}
LEVELS = (1.0, 0.85, 0.7, 0.6, 0.5)   # ratios of its (midpoint), the anchor of each budget
FINETUNE_LEVEL = 0.7
RATIO_ONE = "ratio 1.0"                # the level of each its rule's own row at ratio 1.0 (unmatched)
# The study's split of the zoo's benchmark: the first 50 validation clips of each class (200
# videos, 600 views: every rule at every budget costs one pass) and the first 128 training clips
# of each class (the fine-tuning data), byte-identical to those of cache/synthetic_zoo.
STUDY_VIDEOS = {"train": 128, "val": 50}
FINETUNE = ["SOLVER.OPTIMIZER", "sgd", "SOLVER.BASE_LR", "0.005", "SOLVER.MAX_EPOCH", "1",
            "SOLVER.WARMUP_EPOCHS", "0.0", "SOLVER.WEIGHT_DECAY", "0.0001", "TRAIN.EVAL_PERIOD", "0"]


def _clutter(model, eval_set, levels_of_clips) -> List[dict]:
    kept = collect_kept_tokens(model, eval_set.batches)
    return kept_by_clutter(kept, clutter_of_views(kept, eval_set.video_paths, levels_of_clips))


def off_the_shelf(entry: dict, eval_set, levels: Sequence[float], rules: Sequence[str], levels_of_clips,
                  say) -> List[dict]:
    """Rows of one zoo model: no ATS, every rule at every budget, and each its rule at ratio 1.0
    on its own (level RATIO_ONE) with its kept tokens by clutter level."""
    model = zoo_model(str(ROOT / entry["config"]), str(ROOT / entry["file"]))
    full = model_gflops(model)
    base = {"seed": entry["seed"], "finetuned": False}
    rows = [{**base, "rule": "none", "level": 1.0, "target_fraction": 1.0, "ratio": None, "calibrated": None,
             **without_ats(model, eval_set), "gflops_fraction": 1.0, "full_gflops_per_view": full}]
    say(f"[study] {entry['name']}: no ATS top-1 {rows[0]['top1']:.1f}")
    for row in at_budgets(model, eval_set, full, levels, rules, seed=entry["seed"]):
        rows.append({**base, **row})
        say(f"[study] {entry['name']} {row['rule']:<15} at its ratio {row['level']}: ratio {row['ratio']:.4f} -> "
            f"{row['gflops_fraction']:.1%} GFLOPs, top-1 {row['top1']:.1f}")
    for rule in (r for r in ITS_RULES if r in rules):
        set_rule(model, rule, 1.0, entry["seed"])
        kept = _clutter(model, eval_set, levels_of_clips)
        # The anchor at ratio 1.0 is already measured when 1.0 is a budget: the same row again.
        anchor = next((r for r in rows if (r["rule"], r["level"]) == (ANCHOR, 1.0)), None) if rule == ANCHOR else None
        measured = anchor or {**base, **measure(model, rule, eval_set, full, ratio=1.0, seed=entry["seed"])}
        rows.append({**measured, "level": RATIO_ONE, "target_fraction": None, "kept_by_clutter": kept})
    return rows


def fine_tuned(entry: dict, eval_set, rules: Sequence[str], ratios: Dict[str, float], data_root: str,
               output_dir: str, say, extra: Sequence[str] = ()) -> List[dict]:
    """Each rule fine-tuned at its FINETUNE_LEVEL ratio from the zoo checkpoint, then tested."""
    rows = []
    config = str(ROOT / entry["config"])
    for rule in rules:
        run_dir = os.path.join(output_dir, entry["name"], "finetune_" + re.sub(r"[^a-z0-9]+", "_", rule).strip("_"))
        ats = ["ATS.ENABLE", "True", "ATS.SAMPLER", RULES[rule]["sampler"], "ATS.GRID", RULES[rule]["grid"],
               "ATS.RATIO", f"{ratios[rule]:.4f}", "ATS.SEED", str(entry["seed"])]
        cfg = load_config(config, ["DATA.PATH_TO_DATA_DIR", data_root, *ats, *FINETUNE, "SEED", str(entry["seed"]),
                                   "OUTPUT_DIR", run_dir, "MODEL.PRETRAINED", str(ROOT / entry["file"]),
                                   "DATA_LOADER.NUM_WORKERS", "0", *extra])
        start = time.perf_counter()
        train(cfg, progress=False)
        model = zoo_model(config, latest_checkpoint(run_dir))
        full = model_gflops(model)
        row = {"seed": entry["seed"], "finetuned": True, "level": FINETUNE_LEVEL,
               **measure(model, rule, eval_set, full, ratio=ratios[rule], seed=entry["seed"]),
               "train_seconds": round(time.perf_counter() - start, 1)}
        rows.append(row)
        say(f"[study] {entry['name']} {rule:<15} fine-tuned at ratio {ratios[rule]:.4f}: top-1 {row['top1']:.1f}, "
            f"{row['gflops_fraction']:.1%} GFLOPs")
    return rows


def run_backbone(backbone: str, output_dir: str = "runs/study", data_root: str = "cache/synthetic_study",
                 seeds: Sequence[int] = (0, 1, 2), levels: Sequence[float] = LEVELS,
                 rules: Sequence[str] = tuple(RULES), finetune: bool = True, progress: bool = True,
                 videos_per_class: dict = STUDY_VIDEOS, finetune_overrides: Sequence[str] = ()) -> dict:
    """Measure one backbone (every seed); written to ``output_dir``/<backbone>.json.

    ``videos_per_class`` (the first clips per split and class of the zoo's benchmark) and
    ``finetune_overrides`` (config KEY VALUE pairs) shrink the run for the tests."""
    say = (lambda *args: print(*args, flush=True)) if progress else (lambda *args: None)
    start = time.perf_counter()
    manifest = read_manifest()
    write_benchmark_part(manifest, data_root, videos_per_class)
    entries = [e for e in manifest["models"] if e["model"] == BACKBONES[backbone] and e["seed"] in seeds]
    cfg = load_config(str(ROOT / entries[0]["config"]), ["DATA.PATH_TO_DATA_DIR", data_root])
    eval_set = load_eval_set(cfg)
    levels_of_clips = read_clutter_levels(os.path.join(data_root, "clips.csv"))
    rows = []
    for entry in entries:
        shelf = off_the_shelf(entry, eval_set, levels, rules, levels_of_clips, say)
        rows += shelf
        if finetune:
            ratios = {row["rule"]: row["ratio"] for row in shelf if row["level"] == FINETUNE_LEVEL}
            rows += fine_tuned(entry, eval_set, rules, ratios, data_root, output_dir, say, finetune_overrides)
    result = {"backbone": backbone, "levels": list(levels), "rules": list(rules), "videos_per_class": videos_per_class,
              "config": entries[0]["config"], "models": [e["file"] for e in entries],
              "seeds": [e["seed"] for e in entries], "num_videos": eval_set.num_videos,
              "views_per_video": eval_set.views_per_video, "rows": rows,
              "seconds": round(time.perf_counter() - start, 1)}
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, f"{backbone.lower()}.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    return result


def collect(output_dir: str, backbones: Sequence[str]) -> dict:
    """study.json: the backbones' results (``output_dir``/<backbone>.json) with the settings
    they were measured with."""
    measured = {}
    for backbone in backbones:
        with open(os.path.join(output_dir, f"{backbone.lower()}.json"), encoding="utf-8") as handle:
            measured[backbone] = json.load(handle)
    first = measured[backbones[0]]
    results = {"levels": first["levels"], "rules": first["rules"], "finetune_level": FINETUNE_LEVEL,
               "finetune": FINETUNE, "dataset": read_manifest()["dataset"], "backbones": measured}
    with open(os.path.join(output_dir, "study.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
        handle.write("\n")
    return results


# --- Summaries, verdicts, figures and the report ----------------------------------------------

def cell(rows: Sequence[dict], rule: str, level: float, finetuned: bool = False) -> Optional[dict]:
    """The rows of one (rule, level, finetuned) over seeds, summarised; None when absent."""
    members = sorted((r for r in rows if (r["rule"], r["level"], r["finetuned"]) == (rule, level, finetuned)),
                     key=lambda r: r["seed"])
    if not members:
        return None
    top1 = np.array([m["top1"] for m in members])
    return {"seeds": [m["seed"] for m in members], "top1": top1.tolist(), "top1_mean": float(top1.mean()),
            "top1_std": float(top1.std(ddof=0)),
            "gflops_fraction_mean": float(np.mean([m["gflops_fraction"] for m in members])),
            "target_fraction_mean": (float(np.mean([m["target_fraction"] for m in members]))
                                     if all(m.get("target_fraction") is not None for m in members) else None),
            "calibrated": all(m["calibrated"] is not False for m in members)}


def compare(rows: Sequence[dict], rule: str, other: str, level: float, finetuned: bool = False,
            max_gap: float = 0.03) -> Optional[dict]:
    """``rule`` minus ``other`` at one budget, paired by seed. Verdict: 'not matched' when the
    two spent more than ``max_gap`` of the GFLOPs apart; 'better' / 'worse' only when the mean
    difference exceeds the spread of the differences and every seed agrees in sign; else
    'no clear difference'."""
    mine, theirs = cell(rows, rule, level, finetuned), cell(rows, other, level, finetuned)
    if mine is None or theirs is None or mine["seeds"] != theirs["seeds"]:
        return None
    diff = np.array(mine["top1"]) - np.array(theirs["top1"])
    mean, std = float(diff.mean()), float(diff.std(ddof=0))
    gap = mine["gflops_fraction_mean"] - theirs["gflops_fraction_mean"]
    if abs(gap) > max_gap:
        verdict = f"not matched ({mine['gflops_fraction_mean']:.0%} vs {theirs['gflops_fraction_mean']:.0%} GFLOPs)"
    elif abs(mean) > std and (np.all(diff > 0) or np.all(diff < 0)):
        verdict = "better" if mean > 0 else "worse"
    else:
        verdict = "no clear difference"
    return {"mean": mean, "std": std, "diffs": diff.tolist(), "verdict": verdict, "gflops_gap": gap}


def clutter_trend(rows: Sequence[dict], rule: str) -> List[dict]:
    """Mean kept positions per stage and clutter level (over seeds) for ``rule`` at ratio 1.0,
    with the least-squares slope per level."""
    members = [r for r in rows if r["rule"] == rule and r.get("kept_by_clutter") and not r["finetuned"]]
    if not members:
        return []
    out = []
    for stage, first in enumerate(members[0]["kept_by_clutter"]):
        per_level: Dict[int, List[float]] = {}
        for row in members:
            for entry in row["kept_by_clutter"][stage]["levels"]:
                per_level.setdefault(entry["level"], []).append(entry["mean"])
        levels = sorted(per_level)
        means = [float(np.mean(per_level[level])) for level in levels]
        slope = float(np.polyfit(levels, means, 1)[0]) if len(levels) > 1 else 0.0
        out.append({"block": first["block"], "levels": levels, "means": means, "slope": slope})
    return out


def plot_backbone(results: dict, backbone: str, path: str) -> str:
    """Top-1 (mean +- std over seeds) against the GFLOPs share, one line per rule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["backbones"][backbone]["rows"]
    figure, axis = plt.subplots(figsize=(6.4, 4.4))
    for rule in results["rules"]:
        cells = [c for c in (cell(rows, rule, level) for level in results["levels"]) if c]
        axis.errorbar([100 * c["gflops_fraction_mean"] for c in cells], [c["top1_mean"] for c in cells],
                      yerr=[c["top1_std"] for c in cells], marker="o", capsize=3, label=rule)
        tuned = cell(rows, rule, results["finetune_level"], True)
        if tuned:
            axis.errorbar([100 * tuned["gflops_fraction_mean"]], [tuned["top1_mean"]], yerr=[tuned["top1_std"]],
                          marker="*", markersize=11, capsize=3, linestyle="none", label=f"{rule} fine-tuned")
    base = cell(rows, "none", 1.0)
    axis.axhline(base["top1_mean"], color="gray", linestyle=":", label="no ATS")
    axis.set_xlabel("GFLOPs per view (% of the model without ATS)")
    axis.set_ylabel("top-1 (%), 1x3 views")
    for rule, marker in zip(ITS_RULES, ("s", "D")):
        own = cell(rows, rule, RATIO_ONE)
        if own:
            axis.errorbar([100 * own["gflops_fraction_mean"]], [own["top1_mean"]], yerr=[own["top1_std"]],
                          marker=marker, capsize=3, linestyle="none", color="black", label=f"{rule}, ratio 1.0")
    axis.set_title(f"tiny {backbone}, zoo seeds {', '.join(map(str, base['seeds']))}", fontsize=10)
    axis.legend(fontsize=7, ncol=2)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _pm(c: Optional[dict]) -> str:
    if not c:
        return "–"
    mark = "" if c["calibrated"] else "*"
    return f"{c['top1_mean']:.1f} ± {c['top1_std']:.1f} [{c['gflops_fraction_mean']:.0%}{mark}]"


def _diff(c: Optional[dict]) -> str:
    return f"{c['mean']:+.1f} ± {c['std']:.1f} ({c['verdict']})" if c else "–"


def _budget(rows: Sequence[dict], level: float) -> str:
    anchor = cell(rows, ITS_RULES[0], level)
    spent = f" ≈ {anchor['target_fraction_mean']:.0%}" if anchor and anchor["target_fraction_mean"] else ""
    return f"its ratio {level:g}{spent}"


def verdict_lines(rows: Sequence[dict], levels: Sequence[float]) -> List[str]:
    """Plain words: per its rule and rival, the verdicts over the budgets and the mean difference."""
    lines = []
    for rule in ITS_RULES:
        for other in RIVALS:
            found = [(level, compare(rows, rule, other, level)) for level in levels]
            found = [(level, c) for level, c in found if c]
            if not found:
                continue
            said = ", ".join(f"{c['verdict']} at ratio {level:g} ({c['mean']:+.1f} ± {c['std']:.1f})"
                             for level, c in found)
            lines.append(f"- {rule} against {other}: {said}.")
    return lines


def report_backbone(results: dict, backbone: str, figures: str) -> List[str]:
    """The Markdown lines of one backbone's section."""
    entry = results["backbones"][backbone]
    rows, levels, rules = entry["rows"], results["levels"], results["rules"]
    base = cell(rows, "none", 1.0)
    figure = plot_backbone(results, backbone, os.path.join(figures, f"study_{backbone.lower()}.png"))
    lines = [f"## Tiny {backbone}", "",
             f"Zoo checkpoints {', '.join(entry['models'])}; {entry['num_videos']} validation videos × "
             f"{entry['views_per_video']} views. Without ATS: top-1 {base['top1_mean']:.1f} ± {base['top1_std']:.1f} "
             f"(seeds: {', '.join(f'{v:.1f}' for v in base['top1'])}), "
             f"{rows[0]['full_gflops_per_view']:.4f} GFLOPs per view.", "",
             f"![top-1 against GFLOPs, tiny {backbone}](figures/{os.path.basename(figure)})", ""]
    own = [(rule, cell(rows, rule, RATIO_ONE)) for rule in ITS_RULES]
    lines += ["Each its rule at ratio 1.0 on its own (no matching; the official grid at ratio 1.0 is the "
              "released code's setting), top-1 and the share of the GFLOPs it spent:", "",
              "| rule | top-1 | GFLOPs |", "|---|---|---|"]
    lines += [f"| {rule} | {c['top1_mean']:.1f} ± {c['top1_std']:.1f} | {c['gflops_fraction_mean']:.1%} |"
              for rule, c in own if c]
    lines += ["", "Off-the-shelf top-1 (mean ± std over the seeds) at five budgets: what its (midpoint) spends at "
              "each ratio, every other rule calibrated to it; in brackets the share of the GFLOPs measured on the "
              "test views (* = not reached within 2 %):", "",
              "| budget | " + " | ".join(rules) + " |", "|---|" + "---|" * len(rules)]
    lines += [f"| {_budget(rows, level)} | " + " | ".join(_pm(cell(rows, rule, level)) for rule in rules) + " |"
              for level in levels]
    lines += ["", "Paired by seed (points of top-1), each its rule minus each rival:", "",
              "| budget | " + " | ".join(f"{r} − {o}" for r in ITS_RULES for o in RIVALS) + " |",
              "|---|" + "---|" * (len(ITS_RULES) * len(RIVALS))]
    lines += [f"| {_budget(rows, level)} | " + " | ".join(_diff(compare(rows, r, o, level))
                                                         for r in ITS_RULES for o in RIVALS) + " |" for level in levels]
    lines += ["", "In plain words (the verdict rule is in the method):", "", *verdict_lines(rows, levels)]
    lines += finetune_lines(results, rows)
    return lines


def finetune_lines(results: dict, rows: Sequence[dict]) -> List[str]:
    level, rules = results["finetune_level"], results["rules"]
    lines = ["", f"Fine-tuned with ATS on at the {_budget(rows, level)} budget (each rule at its own calibrated "
             f"ratio, from the zoo checkpoint; `{' '.join(results['finetune'])}` on the first "
             f"{STUDY_VIDEOS['train']} training clips of each class):", "",
             "| rule | off-the-shelf | fine-tuned | change (paired) |", "|---|---|---|---|"]
    for rule in rules:
        before, after = cell(rows, rule, level), cell(rows, rule, level, True)
        if before and after:
            gain = np.array(after["top1"]) - np.array(before["top1"])
            lines.append(f"| {rule} | {_pm(before)} | {_pm(after)} | {gain.mean():+.1f} ± {gain.std():.1f} |")
    tuned = [(r, o, compare(rows, r, o, level, True)) for r in ITS_RULES for o in RIVALS]
    if any(c for _, _, c in tuned):
        lines += ["", "After fine-tuning, paired: " + "; ".join(f"{r} − {o}: {_diff(c)}" for r, o, c in tuned if c)
                  + "."]
    lines.append("")
    return lines


def write_report(results: dict, docs_dir: str = "docs") -> str:
    """docs/results.md (and docs/figures/study_*.png) from study.json's ``results``."""
    figures = os.path.join(docs_dir, "figures")
    os.makedirs(figures, exist_ok=True)
    lines = ["# Results: ATS on trained models, against top-K and random at matched GFLOPs", "",
             "Every number on this page is in [`docs/study.json`](study.json), written by", "",
             "    python tools/study.py            # runs/study/study.json, then docs/results.md and docs/study.json", "",
             "from the model zoo ([zoo.md](zoo.md)) on the synthetic action benchmark ([data.md](data.md)). "
             "See [the method](#method) at the end.", ""]
    for backbone in results["backbones"]:
        lines += report_backbone(results, backbone, figures)
    lines += clutter_section(results)
    lines += method_section(results)
    path = os.path.join(docs_dir, "results.md")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    return path


def clutter_section(results: dict) -> List[str]:
    lines = ["## Kept tokens against clutter", "",
             "The paper reports that cluttered inputs keep more tokens. Mean kept positions per ATS stage for "
             "each its rule at ratio 1.0 (one ratio per model, so the count is free to vary "
             "per clip), by the clip's clutter level (0 plain … 3 heavy texture and 4 distractors), mean over "
             "seeds; the slope is the least-squares change per clutter level:", ""]
    for backbone, entry in results["backbones"].items():
        for rule in ITS_RULES:
            trend = clutter_trend(entry["rows"], rule)
            if not trend:
                continue
            signs = {np.sign(stage["slope"]) for stage in trend}
            said = ("more with clutter in every stage" if signs == {1.0} else
                    "fewer with clutter in every stage" if signs == {-1.0} else "no common trend across stages")
            lines += [f"**{backbone}, {rule}**: {said}.", "",
                      "| block | " + " | ".join(f"clutter {k}" for k in trend[0]["levels"]) + " | slope |",
                      "|---|" + "---|" * (len(trend[0]["levels"]) + 1)]
            lines += [f"| {s['block']} | " + " | ".join(f"{m:.1f}" for m in s["means"]) + f" | {s['slope']:+.2f} |"
                      for s in trend]
            lines.append("")
    return lines


def method_section(results: dict) -> List[str]:
    dataset = results["dataset"]
    seconds = sum(entry["seconds"] for entry in results["backbones"].values())
    return ["## Method", "",
            f"- Data: the zoo's benchmark (`{dataset['command']}`, classes "
            f"{', '.join(dataset['arguments']['classes'])}), its first {STUDY_VIDEOS['val']} validation and "
            f"{STUDY_VIDEOS['train']} training clips of each class (byte-identical, written into "
            "cache/synthetic_study); 1 clip × 3 crops per video, mean softmax.",
            "- Models: the zoo's checkpoints, trained without ATS (docs/zoo.md). ATS blocks: TimeSformer 1, 2, 3; "
            "XViT 1 … 5 (6-block models; the configs say why), score `cls_vnorm`, tube scope.",
            "- Budgets: ATS is adaptive, so a budget is what its with the midpoint grid spends at a ratio ("
            + ", ".join(f"{level:g}" for level in results["levels"])
            + "). At each, the other rules' ratios are calibrated (`calibrate_ratio`, within "
            "2 %) to the same mean GFLOPs on a fixed random set of 24 of the test views, by GFLOPs alone (no "
            "labels); the GFLOPs in the tables are then measured on all test views.",
            f"- Fine-tuning: `{' '.join(results['finetune'])}` with ATS on, each rule at its ratio calibrated to "
            f"the its ratio {results['finetune_level']:g} budget, from each zoo checkpoint, seeded by the zoo seed.",
            "- Verdicts: 'better' / 'worse' only when the mean paired difference exceeds its spread and every "
            "seed agrees; 'not matched' when the two rules spent more than 3 % of the GFLOPs apart; otherwise "
            "'no clear difference'.",
            f"- Wall time of the measuring run: {seconds / 60:.0f} min (both backbones' processes added), "
            "on the 2-core machine.", ""]
