"""The sampling study, shrunk to seconds: every row, the report and its verdict rule."""

import json

import pytest

from experiments.study import ITS_LEVEL, SAMPLERS, SCOPES, compare, learned_rows, run_study, summarize

pytestmark = pytest.mark.usefixtures("viz_one_thread")


def test_a_small_study_measures_every_setting_and_writes_the_report(tmp_path):
    data = dict(classes=("spin", "stay still"), videos_per_class={"train": 4, "val": 2}, num_frames=16, height=48,
                width=64, fps=8, clutter_levels=(0, 3), seed=2)
    small = ["MODEL.EMBED_DIM", "32", "MODEL.NUM_HEADS", "2", "SOLVER.MAX_EPOCH", "1", "TRAIN.BATCH_SIZE", "4",
             "DATA_LOADER.NUM_WORKERS", "0", "DATA.SAMPLING_RATE", "2"]
    results = run_study(str(tmp_path / "runs"), str(tmp_path / "data"), str(tmp_path / "docs"), seeds=(0,),
                        levels=(1.0, 0.5), data=data, extra_overrides=small, progress=False)

    assert set(results["backbones"]) == {"TimeSformer", "XViT"}
    for backbone, entry in results["backbones"].items():
        rows = entry["rows"]
        assert len(rows) == 1 + len(SAMPLERS) * len(SCOPES) * 2 + len(SAMPLERS) + len(SAMPLERS)
        # topk and random are matched to what its spends at ratio 1.0 (tube)
        own = {row["sampler"]: row for row in rows if row["level"] == ITS_LEVEL}
        assert set(own) == set(SAMPLERS) and own["its"]["ratio"] == 1.0
        for sampler in ("topk", "random"):
            if own[sampler]["calibrated"]:
                assert own[sampler]["gflops_fraction"] == pytest.approx(own["its"]["gflops_fraction"], abs=0.1)
        for row in rows:
            assert 0.0 <= row["top1"] <= 100.0
        for row in rows:
            if row["level"] == 0.5 and row["scope"] == "tube" and not row["finetuned"]:
                assert row["gflops_fraction"] < 0.9, (backbone, row["sampler"], row["scope"], row["ratio"], row["gflops_fraction"])
            if row["sampler"] in ("topk", "random") and row["level"] == 1.0:
                # everything kept: the model plus the scoring of the ATS stages
                assert 1.0 - 1e-9 <= row["gflops_fraction"] < 1.01
        clutter = [row["kept_by_clutter"] for row in rows if row.get("kept_by_clutter")]
        assert clutter and {entry["level"] for entry in clutter[0][0]["levels"]} == {0, 3}
    report = (tmp_path / "docs" / "results.md").read_text()
    assert "its − topk" in report and "Kept tokens against clutter" in report
    assert "At the budget its spends at ratio 1.0" in report and "| its's own | tube |" in report
    for name in ("study_timesformer.png", "study_xvit.png", "study_kept_vs_clutter.png"):
        assert (tmp_path / "docs" / "figures" / name).stat().st_size > 1000
    assert json.loads((tmp_path / "runs" / "study.json").read_text())["seeds"] == [0]


def _row(sampler, top1, seed, level=0.5):
    return {"sampler": sampler, "scope": "tube", "level": level, "finetuned": False, "top1": top1, "seed": seed,
            "gflops_fraction": level}


def test_a_difference_counts_only_when_it_beats_its_spread_and_every_seed_agrees():
    rows = [_row("its", 60, 0), _row("its", 62, 1), _row("its", 58, 2),
            _row("topk", 50, 0), _row("topk", 53, 1), _row("topk", 49, 2),
            _row("random", 61, 0), _row("random", 60, 1), _row("random", 60, 2)]
    summary = summarize(rows)
    better = compare(summary, 0.5, "tube", "topk")
    assert better["verdict"] == "better" and better["mean"] == pytest.approx(9.333, abs=1e-3)
    unclear = compare(summary, 0.5, "tube", "random")
    assert unclear["verdict"] == "no clear difference" and unclear["diffs"] == [-1, 2, -2]
    assert compare(summary, 0.8, "tube", "topk") is None
    capped = summarize(rows[3:] + [_row("its", 70, seed) | {"gflops_fraction": 0.4} for seed in range(3)])
    assert compare(capped, 0.5, "tube", "topk")["verdict"].startswith("not matched: its at 40%, topk at 50%")


def test_the_report_is_rewritten_from_study_json(tmp_path, capsys):
    from tool_helpers import load_tool

    rows = [_row(s, 50 + i, seed, level) | {"scope": scope, "kept_by_clutter": [
                {"block": 1, "levels": [{"level": 0, "mean": 10.0, "views": 3}, {"level": 3, "mean": 14.0, "views": 3}]}]}
            for i, s in enumerate(SAMPLERS) for scope in SCOPES for seed in (0, 1) for level in (1.0, 0.5)]
    rows += [{"sampler": "none", "scope": "none", "level": 1.0, "finetuned": False, "top1": 55.0, "seed": seed,
              "gflops_fraction": 1.0} for seed in (0, 1)]
    results = {"levels": [1.0, 0.5], "seeds": [0, 1], "finetune_level": 0.5, "seconds": 1.0,
               "data": {"classes": ["a", "b"], "clutter_levels": [0, 3], "videos_per_class": {"train": 2, "val": 1}},
               "backbones": {"TimeSformer": {"gflops_per_view": 0.3, "rows": rows}}}
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "study.json").write_text(json.dumps(results))
    load_tool("study").main(["--output-dir", str(tmp_path / "runs"), "--docs-dir", str(tmp_path / "docs"),
                             "--report-only"])
    report = (tmp_path / "docs" / "results.md").read_text()
    assert "| 50% | tube |" in report and "+1.33 per level" in report
    assert (tmp_path / "docs" / "figures" / "study_timesformer.png").exists()


def test_a_seed_whose_baseline_did_not_learn_is_left_out_of_the_comparisons():
    def baseline(seed, top1):
        return {"sampler": "none", "scope": "none", "level": 1.0, "finetuned": False, "top1": top1, "seed": seed}
    rows = [baseline(0, 50.0), baseline(1, 17.0), baseline(2, 45.0), _row("its", 40, 0), _row("its", 17, 1),
            _row("its", 41, 2)]
    results = {"data": {"classes": list("abcdef")}, "backbones": {"XViT": {"rows": rows}}}
    kept, failed = learned_rows(results, "XViT")
    assert failed == [1] and {r["seed"] for r in kept} == {0, 2} and len(kept) == 4
    # none learned: nothing is left out (the report says the baseline did not learn)
    results["backbones"]["XViT"]["rows"] = [baseline(0, 18.0), _row("its", 17, 0)]
    assert learned_rows(results, "XViT") == (results["backbones"]["XViT"]["rows"], [])
