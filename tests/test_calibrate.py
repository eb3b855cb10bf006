"""Budget calibration: the chosen ATS ratio hits a GFLOPs target on real clips."""

import json

import pytest
import torch
from model_helpers import tiny_model, with_ats
from tool_helpers import load_tool

from video_ats.ats import ATSOptions
from video_ats.engine.calibration import ats_ratio, cache_clips, calibrate_ratio, mean_gflops, target_from_fraction
from video_ats.config import load_config
from video_ats.engine.builders import build_dataset, build_loader
from video_ats.flops import clip_gflops, model_gflops

CONFIG = "configs/synthetic/timesformer_tiny.yaml"
pytestmark = pytest.mark.usefixtures("viz_one_thread")
TINY = dict(num_classes=3, embed_dim=32, num_heads=2)


@pytest.fixture(scope="module")
def clips(viz_dataset):
    """The 6 synthetic clips (one center view each), decoded once."""
    cfg = load_config(CONFIG, ["DATA.PATH_TO_DATA_DIR", str(viz_dataset), "MODEL.NUM_CLASSES", "3",
                               "DATA.SAMPLING_RATE", "4", "TEST.NUM_SPATIAL_CROPS", "1",
                               "DATA_LOADER.NUM_WORKERS", "0"])
    return cache_clips(build_loader(cfg, build_dataset(cfg, "test"), None, batch_size=6))


def test_the_chosen_ratio_costs_the_target_within_two_percent_on_the_same_clips(clips):
    model = tiny_model("timesformer_tiny", ats={"ratio": 0.5}, **TINY)
    options = model.ats
    target = 0.75 * model_gflops(model)
    result = calibrate_ratio(model, clips, target, tolerance=0.02)
    assert result.met and result.reason == ""
    assert model.ats is options                             # the model is left as it was
    assert result.override() == f"ATS.RATIO {result.ratio:.4f}"
    # A model built afresh with that ratio, counted clip by clip.
    rebuilt = with_ats(model, "timesformer_tiny", {"ratio": float(result.override().split()[1])}, embed_dim=32,
                       num_heads=2)
    achieved = torch.cat([clip_gflops(rebuilt, batch) for batch in clips]).mean().item()
    assert abs(achieved / target - 1) <= 0.02
    assert achieved == pytest.approx(result.achieved_gflops, rel=1e-9)
    assert len({round(gflops, 9) for gflops in torch.cat([clip_gflops(rebuilt, b) for b in clips]).tolist()}) > 1


def test_a_target_above_the_full_budget_returns_ratio_one_and_says_why(clips):
    model = tiny_model("timesformer_tiny", ats={"ratio": 0.5}, **TINY)
    result = calibrate_ratio(model, clips, 2 * model_gflops(model))
    assert not result.met and result.ratio == 1.0 and "above the cost at ratio 1" in result.reason
    assert len(result.evaluations) == 1


def test_a_target_between_two_budget_steps_returns_the_closest_ratio_tried(clips):
    # topk keeps exactly K = round(ratio * N) positions, so the mean is a step function of the
    # ratio; halfway between two steps with a 1e-6 tolerance no ratio can hit. Ratios in
    # steps of 0.01 keep the search short.
    model = tiny_model("timesformer_tiny", ats={"ratio": 0.5, "sampler": "topk"}, **TINY)
    with ats_ratio(model, 0.5):
        low = mean_gflops(model, clips)[0]
    with ats_ratio(model, 0.52):                           # round(0.52 * 64) = 33: one position more
        high = mean_gflops(model, clips)[0]
    assert high > low
    result = calibrate_ratio(model, clips, (low + high) / 2, tolerance=1e-6, resolution=0.01)
    assert not result.met and "jumps" in result.reason
    assert result.override() in ("ATS.RATIO 0.50", "ATS.RATIO 0.51", "ATS.RATIO 0.52")
    assert result.achieved_gflops in (low, high)
    assert all(abs(result.achieved_gflops - (low + high) / 2) <= abs(g - (low + high) / 2)
               for _, g in result.evaluations)


def test_ratio_budgets_only():
    model = tiny_model("timesformer_tiny", ats={"num_tokens": 20}, **TINY)
    with pytest.raises(ValueError, match="num_tokens"):
        calibrate_ratio(model, torch.zeros(1, 3, 8, 64, 64), 0.1)
    with pytest.raises(ValueError, match="no ATS stages"):
        calibrate_ratio(tiny_model("timesformer_tiny", **TINY), torch.zeros(1, 3, 8, 64, 64), 0.1)
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        target_from_fraction(model, 1.5)


def test_replacing_ats_options_validates_them():
    options = ATSOptions(blocks=(3, 4, 5), ratio=0.7)
    assert options.replace(ratio=0.5) == ATSOptions(blocks=(3, 4, 5), ratio=0.5)
    with pytest.raises(ValueError, match="ratio must be in"):
        options.replace(ratio=0.0)
    with pytest.raises(ValueError, match="unknown ATS option"):
        options.replace(rate=0.5)


def test_the_tool_prints_the_override_that_hits_a_fraction(viz_overrides, tmp_path, capsys):
    result_file = tmp_path / "calibration.json"
    code = load_tool("calibrate").main(["--target-fraction", "0.75", "--json", str(result_file), "--cfg", CONFIG,
                                        *viz_overrides])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    result = json.loads(result_file.read_text())
    assert out[-1] == result["override"] == f"ATS.RATIO {result['ratio']:.4f}"
    assert result["met"] and abs(result["achieved_gflops"] / result["target_gflops"] - 1) <= 0.02
    assert result["target_gflops"] == pytest.approx(0.75 * result["full_gflops"])
    assert result["num_views"] == 6
