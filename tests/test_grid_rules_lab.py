"""The grid-rules lab script (experiments/grid_rules.py): its rows are what the model records."""

import json

import pytest
import torch

from experiments.benchmark import sharpen_attention, varied_clips
from experiments.grid_rules import main, markdown_table, score_row_counts
from video_ats.config import build_model_from_cfg, load_config
from video_ats.flops import gflops_from_stats, model_gflops

CONFIG = "configs/synthetic/timesformer_tiny.yaml"
SMALL = ["MODEL.DEPTH", "4", "ATS.BLOCKS", "[2, 3]"]


def test_rows_hold_what_a_forward_of_the_same_model_records(tmp_path):
    path = tmp_path / "grid.json"
    result = main(["--cfg", CONFIG, "--sharpen", "10", "--clips", "varied", "--ratios", "1.0", "0.6",
                   "--json", str(path), *SMALL])
    assert [(row["grid"], row["ratio"]) for row in result["rows"]] == [
        ("midpoint", 1.0), ("midpoint", 0.6), ("official", 1.0), ("official", 0.6)]
    assert json.loads(path.read_text())["rows"] == result["rows"]
    assert result["command"].startswith("python -m experiments.grid_rules --cfg")

    cfg = load_config(CONFIG, SMALL + ["ATS.ENABLE", "True"])
    torch.manual_seed(cfg.SEED)
    model = build_model_from_cfg(cfg).eval()
    sharpen_attention(model, 10)
    model.ats = model.ats.replace(grid="official", ratio=0.6)
    with torch.no_grad():
        model(varied_clips(4, 8, 64))
    row = result["rows"][3]
    assert row["kept_per_stage"] == [stage["kept"].double().mean().item() for stage in model.ats_stats]
    fraction = gflops_from_stats(model, model.ats_stats, 4) / model_gflops(model)
    assert row["gflops_fraction_per_clip"] == pytest.approx(fraction.tolist(), rel=1e-12)
    assert markdown_table(result["rows"], 64).count("\n") == 5


def test_score_rows_count_at_most_the_tokens_present():
    rows = score_row_counts(alphas=(0.3, 5.0), reference=40, left=(40, 20), num_rows=32)
    assert [(row["alpha"], row["tokens_left"]) for row in rows] == [(0.3, 40), (0.3, 20), (5.0, 40), (5.0, 20)]
    for row in rows:
        assert 1 <= row["kept_midpoint"] <= row["tokens_left"]
        assert 1 <= row["kept_official"] <= row["tokens_left"]
