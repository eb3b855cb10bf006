"""The sampling study on the zoo, shrunk to seconds: every row kind, the report, the verdict rule,
and the committed study.json against docs/results.md."""

import json

import pytest

from experiments.study import FINETUNE_LEVEL, RATIO_ONE, cell, clutter_trend, collect, compare, run_backbone, write_report
from experiments.zoo import ROOT
from tool_helpers import load_tool

pytestmark = pytest.mark.usefixtures("viz_one_thread")


def test_a_small_study_measures_every_row_kind_and_writes_the_report(tmp_path):
    rules = ("its (midpoint)", "its (official)", "random")
    result = run_backbone("TimeSformer", str(tmp_path / "runs"), str(tmp_path / "data"), seeds=(0,),
                          levels=(FINETUNE_LEVEL,), rules=rules, progress=False,
                          videos_per_class={"train": 2, "val": 4},
                          finetune_overrides=["TRAIN.BATCH_SIZE", "4", "SOLVER.MAX_EPOCH", "1"])
    rows = result["rows"]
    assert [(r["rule"], r["level"], r["finetuned"]) for r in rows] == (
        [("none", 1.0, False)] + [(r, FINETUNE_LEVEL, False) for r in rules]
        + [(r, RATIO_ONE, False) for r in rules[:2]] + [(r, FINETUNE_LEVEL, True) for r in rules])
    anchor, official, rival = rows[1:4]
    assert anchor["ratio"] == FINETUNE_LEVEL and anchor["gflops_fraction"] < 0.9
    for row in (official, rival):   # calibrated on all 24 views to what the anchor spends there
        if row["calibrated"]:
            assert abs(row["gflops_fraction"] / anchor["target_fraction"] - 1) <= 0.02 + 1e-9
    for row in rows[4:6]:   # each its rule at ratio 1.0, with its kept tokens by clutter level
        assert row["ratio"] == 1.0 and {e["level"] for e in row["kept_by_clutter"][0]["levels"]} == {0, 1, 2, 3}
    # each fine-tune ran from the zoo checkpoint at the ratio calibrated off-the-shelf
    assert [r["ratio"] for r in rows[6:]] == [r["ratio"] for r in rows[1:4]]
    assert (tmp_path / "runs" / "timesformer_tiny_seed0" / "finetune_its_midpoint" / "checkpoints").is_dir()
    results = collect(str(tmp_path / "runs"), ["TimeSformer"])
    report = open(write_report(results, str(tmp_path / "docs"))).read()
    assert f"| its ratio {FINETUNE_LEVEL:g} ≈ " in report and "its (official) − random" in report
    assert "## Kept tokens against clutter" in report and "| its (official) | " in report
    assert (tmp_path / "docs" / "figures" / "study_timesformer.png").stat().st_size > 5000


def _row(rule, top1, seed, level=0.5, fraction=None, finetuned=False):
    return {"rule": rule, "top1": top1, "seed": seed, "level": level, "finetuned": finetuned,
            "gflops_fraction": level if fraction is None else fraction, "calibrated": True}


def test_a_difference_counts_only_when_it_beats_its_spread_and_every_seed_agrees():
    rows = [_row("its (midpoint)", 60, 0), _row("its (midpoint)", 62, 1), _row("its (midpoint)", 58, 2),
            _row("topk", 50, 0), _row("topk", 53, 1), _row("topk", 49, 2),
            _row("random", 61, 0), _row("random", 60, 1), _row("random", 60, 2)]
    better = compare(rows, "its (midpoint)", "topk", 0.5)
    assert better["verdict"] == "better" and better["mean"] == pytest.approx(9.333, abs=1e-3)
    unclear = compare(rows, "its (midpoint)", "random", 0.5)
    assert unclear["verdict"] == "no clear difference" and unclear["diffs"] == [-1, 2, -2]
    assert compare(rows, "its (midpoint)", "topk", 0.8) is None
    capped = rows[3:6] + [_row("its (midpoint)", 70, seed, fraction=0.4) for seed in range(3)]
    assert compare(capped, "its (midpoint)", "topk", 0.5)["verdict"] == "not matched (40% vs 50% GFLOPs)"


def test_kept_tokens_against_clutter_are_averaged_over_seeds_with_a_slope():
    def clutter(seed, means):
        return {**_row("its (official)", 50, seed, RATIO_ONE, fraction=0.5), "kept_by_clutter": [
            {"block": 1, "levels": [{"level": level, "mean": mean} for level, mean in enumerate(means)]}]}
    trend = clutter_trend([clutter(0, [10, 12, 14]), clutter(1, [12, 14, 16])], "its (official)")
    assert trend == [{"block": 1, "levels": [0, 1, 2], "means": [11.0, 13.0, 15.0], "slope": pytest.approx(2.0)}]
    assert cell([clutter(0, [1])], "its (official)", RATIO_ONE)["top1"] == [50]


def test_the_committed_report_is_what_the_committed_study_json_gives(tmp_path):
    results = json.loads((ROOT / "docs" / "study.json").read_text())
    assert set(results["backbones"]) == {"TimeSformer", "XViT"}
    for entry in results["backbones"].values():
        assert entry["seeds"] == [0, 1, 2] and entry["num_videos"] == 200
        kinds = {(r["rule"], r["level"], r["finetuned"]) for r in entry["rows"]}
        assert len(kinds) == 1 + len(results["rules"]) * (len(results["levels"]) + 1) + 2
        assert len(entry["rows"]) == 3 * len(kinds)
    (tmp_path / "runs").mkdir()
    for backbone, entry in results["backbones"].items():
        (tmp_path / "runs" / f"{backbone.lower()}.json").write_text(json.dumps(entry))
    load_tool("study").main(["--output-dir", str(tmp_path / "runs"), "--docs-dir", str(tmp_path / "docs"),
                             "--report-only", "--backbones", "TimeSformer", "XViT"])
    assert (tmp_path / "docs" / "results.md").read_text() == (ROOT / "docs" / "results.md").read_text()
