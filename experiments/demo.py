"""The embedded default (`make demo`): a shipped zoo model with and without ATS, in about a minute.

1. Write 16 validation clips per class of the zoo's synthetic benchmark (byte-identical to the
   first 16 of each class of the split the zoo was scored on; docs/zoo.md).
2. Load the tiny TimeSformer of the zoo (zoo/timesformer_tiny_seed0.pt, trained without ATS).
3. Test it with 1x3 views without ATS, then with ATS off-the-shelf (no training) at three
   budgets: what inverse transform sampling with this project's midpoint grid spends at ratio
   1.0, 0.85 and 0.7 (ATS is adaptive: a trained model at ratio 1.0 already drops what its
   attention ignores). At each budget the released code's official grid, top-K and random are
   matched to it, their ratio calibrated on 24 of the views (GFLOPs only, no labels).
4. Print one table (top-1, GFLOPs per view and its share, clips/s, kept tokens per ATS stage),
   write demo.json and an accuracy-against-GFLOPs figure (PNG) into the output folder.

    python tools/demo.py                 # runs/demo/demo.json, runs/demo/demo.png (make demo)
    python tools/demo.py --publish       # also docs/demo.json, docs/figures/demo.png, the README table

Every number but clips/s is the same on every machine and thread count (deterministic data,
weights and sampling); clips/s is this machine's.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout

import torch  # noqa: E402

from experiments.zoo import read_manifest, write_benchmark_part  # noqa: E402
from experiments.zoo_eval import RULES, at_budgets, load_eval_set, without_ats, zoo_model  # noqa: E402
from video_ats.flops import model_gflops  # noqa: E402
from video_ats.config import load_config  # noqa: E402

MODEL = "timesformer_tiny_seed0"
VIDEOS_PER_CLASS = 16
BUDGETS = (1.0, 0.85, 0.7)   # ratios of its (midpoint), the anchor of each budget
README_MARKERS = ("<!-- demo:table -->", "<!-- /demo:table -->")


def run_demo(output_dir: str = "runs/demo", data_root: str = "cache/synthetic_demo", model: str = MODEL,
             videos_per_class: int = VIDEOS_PER_CLASS, budgets: Sequence[float] = BUDGETS,
             rules: Sequence[str] = tuple(RULES), progress: bool = True) -> dict:
    """Run the demo; returns the summary written to ``output_dir``/demo.json (rows and table)."""
    say = print if progress else (lambda *args, **kwargs: None)
    start = time.perf_counter()
    manifest = read_manifest()
    entry = next(entry for entry in manifest["models"] if entry["name"] == model)
    say(f"[1/3] {videos_per_class} validation clips per class of the zoo's benchmark -> {data_root}")
    write_benchmark_part(manifest, data_root, {"val": videos_per_class})
    config = str(ROOT / entry["config"])
    cfg = load_config(config, ["DATA.PATH_TO_DATA_DIR", str(data_root)])
    eval_set = load_eval_set(cfg)
    say(f"[2/3] {entry['file']} ({entry['model']}, top-1 {entry['top1']:.1f} on the full validation split)")
    network = zoo_model(config, str(ROOT / entry["file"]))
    full = model_gflops(network)
    rows = [{"setting": "no ATS", "rule": "none", "level": None, "target_fraction": 1.0, "ratio": None,
             "calibrated": None, **without_ats(network, eval_set), "gflops_fraction": 1.0}]
    say(f"[3/3] ATS off-the-shelf: {len(rules)} rules x {len(budgets)} budgets")
    for row in at_budgets(network, eval_set, full, budgets, rules):
        rows.append({"setting": f"{row['rule']} @ {row['target_fraction']:.0%}", **row})
        say(f"      {rows[-1]['setting']:<22} ratio {row['ratio']:.4f}  top-1 {row['top1']:5.1f}  "
            f"{row['gflops_fraction']:.1%} GFLOPs")
    summary = {"model": entry["name"], "checkpoint": entry["file"], "sha256": entry["sha256"],
               "config": entry["config"], "videos_per_class": videos_per_class, "num_videos": eval_set.num_videos,
               "views_per_video": eval_set.views_per_video, "budgets": list(budgets), "rules": list(rules),
               "full_gflops_per_view": full, "blocks": list(network.ats.blocks), "rows": rows,
               "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - start, 1)}
    summary["table"] = format_table(summary)
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "demo.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
        handle.write("\n")
    plot_demo(summary, os.path.join(output_dir, "demo.png"))
    return summary


def format_table(summary: dict) -> str:
    """The demo's rows as a Markdown table (a plain-text table too)."""
    blocks = ", ".join(str(block) for block in summary["blocks"])
    lines = [f"| setting | top-1 | GFLOPs/view | vs no ATS | clips/s | kept tokens (blocks {blocks}) |",
             "|---|---:|---:|---:|---:|---|"]
    for row in summary["rows"]:
        kept = ", ".join(f"{value:.0f}" for value in row["kept_tokens"]) or "all"
        mark = "" if row["calibrated"] in (None, True) else " (not matched)"
        ratio = "" if row["ratio"] is None else f" (ratio {row['ratio']:.2f})"
        lines.append(f"| {row['setting']}{ratio}{mark} | {row['top1']:.1f} | {row['gflops_per_view']:.4f} | "
                     f"{row['gflops_fraction']:.1%} | {row['clips_per_second']:.0f} | {kept} |")
    return "\n".join(lines)


def plot_demo(summary: dict, path: str) -> str:
    """Top-1 against the share of GFLOPs, one line per rule, the model without ATS as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.0, 4.0))
    for rule in summary["rules"]:
        rows = [row for row in summary["rows"] if row["rule"] == rule]
        axis.plot([100 * row["gflops_fraction"] for row in rows], [row["top1"] for row in rows], marker="o",
                  label=rule)
    base = summary["rows"][0]
    axis.axhline(base["top1"], color="gray", linestyle=":", label="no ATS")
    axis.set_xlabel("GFLOPs per view (% of the model without ATS)")
    axis.set_ylabel("top-1 (%), 1x3 views")
    axis.set_title(f"{summary['model']}, {summary['num_videos']} synthetic validation videos", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def publish(summary: dict, output_dir: str, docs: Path = ROOT / "docs", readme: Path = ROOT / "README.md") -> None:
    """Copy demo.json and the figure into docs/ and the table into the README between its markers."""
    (docs / "figures").mkdir(parents=True, exist_ok=True)
    (docs / "demo.json").write_text(Path(output_dir, "demo.json").read_text(encoding="utf-8"), encoding="utf-8")
    (docs / "figures" / "demo.png").write_bytes(Path(output_dir, "demo.png").read_bytes())
    text = readme.read_text(encoding="utf-8")
    start, end = README_MARKERS
    block = f"{start}\n{summary['table']}\n{end}"
    if start not in text:
        raise ValueError(f"{readme} has no {start} ... {end} block to fill")
    readme.write_text(re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S),
                      encoding="utf-8")
