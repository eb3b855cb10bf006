"""The ``official`` grid rule inside the models and everything that builds them: the grid is
sized once by the positions entering the first ATS stage, GFLOPs are charged per clip, and the
option travels through config, calibration, the benchmark and the mmaction2 backbones. (Batch
invariance under it is tested with the other samplers in test_models.py.)"""

import pytest
import torch
from model_helpers import BACKBONES, tiny_model, varied_clips, with_ats
from optional_extras import require_extra

import video_ats.models.token_selection as token_selection
from video_ats import build_model
from video_ats.ats import SCOPES
from video_ats.config import build_model_from_cfg, load_config
from video_ats.engine.calibration import calibrate_ratio
from video_ats.flops import clip_gflops, fvcore_gflops, model_gflops


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("name", BACKBONES)
def test_every_official_stage_samples_on_a_grid_sized_by_the_first_stage(name, scope, monkeypatch):
    # 64 positions per frame enter the first ATS stage: G = round(0.6 * 64) = 38 at every stage,
    # however many positions the earlier stages left.
    budgets = []

    def recording(sampler, scores, budget, token_valid, random_keys=None, grid="midpoint"):
        budgets.append((budget, grid, int(token_valid.sum(-1).max())))
        return sample_tokens(sampler, scores, budget, token_valid, random_keys, grid)

    sample_tokens = token_selection.sample_tokens
    monkeypatch.setattr(token_selection, "sample_tokens", recording)
    model = tiny_model(name, ats=dict(ratio=0.6, scope=scope, grid="official"))
    with torch.no_grad():
        model(varied_clips())
    assert [(budget, grid) for budget, grid, _ in budgets] == [(38, "official")] * len(model.ats_blocks())
    assert min(present for _, _, present in budgets) < 38, "later stages have fewer positions than grid points"


def test_official_grid_at_ratio_one_has_as_many_points_as_patch_positions(monkeypatch):
    budgets = []

    def recording(sampler, scores, budget, *args, **kwargs):
        budgets.append(budget)
        return sample_tokens(sampler, scores, budget, *args, **kwargs)

    sample_tokens = token_selection.sample_tokens
    monkeypatch.setattr(token_selection, "sample_tokens", recording)
    model = tiny_model("timesformer_tiny", ats=dict(ratio=1.0, grid="official"), img_size=48)
    with torch.no_grad():
        model(varied_clips(size=48))
    assert budgets == [36, 36, 36]                       # (48 / 8)^2 positions, as n_ref_tokens - 1


@pytest.mark.parametrize("name", BACKBONES)
def test_official_grid_charges_each_clip_what_it_costs_alone(name):
    model = tiny_model(name, ats=dict(ratio=0.6, grid="official", blocks=[2, 3, 5]), depth=6)
    clips = varied_clips()
    per_clip = clip_gflops(model, clips)
    alone = torch.tensor([fvcore_gflops(model, clips[i:i + 1]) for i in range(len(clips))], dtype=torch.float64)
    assert torch.allclose(per_clip, alone, rtol=0.01, atol=0)
    assert len(set(per_clip.tolist())) > 1
    assert (per_clip < model_gflops(model)).all()


def test_official_stats_describe_kept_positions_that_are_still_present():
    model = tiny_model("xvit_tiny", ats=dict(ratio=0.8, grid="official"))
    with torch.no_grad():
        model(varied_clips())
    previous = [set(range(64))] * 4
    for stage in model.ats_stats:
        assert (stage["kept"] <= stage["input_positions"]).all()
        for clip in range(4):
            row = stage["kept_positions"][clip]
            real = row[row >= 0].tolist()
            assert len(real) == stage["kept"][clip].item() and set(real) <= previous[clip]
            previous[clip] = set(real)


def test_the_grids_differ_only_in_which_tokens_are_kept():
    # Same weights, same clips: the plain model's cost bounds both, and the rules disagree.
    midpoint = tiny_model("xvit_tiny", ats=dict(ratio=1.0))
    official = with_ats(midpoint, "xvit_tiny", dict(ratio=1.0, grid="official"))
    clips = varied_clips()
    kept = {}
    for label, model in (("midpoint", midpoint), ("official", official)):
        with torch.no_grad():
            model(clips)
        kept[label] = torch.stack([stage["kept"] for stage in model.ats_stats])
    assert not torch.equal(kept["midpoint"], kept["official"])


def test_bad_grid_options_are_refused_with_the_valid_values():
    with pytest.raises(ValueError, match=r"unknown ATS grid 'nearest'; valid grids are \['midpoint', 'official'\]"):
        build_model("timesformer_tiny", num_classes=3, ats=dict(grid="nearest"))
    with pytest.raises(ValueError, match=r"grid 'official' is a rule of the 'its' sampler, not of 'topk'.*"
                                         r"\['midpoint', 'official'\]"):
        build_model("xvit_tiny", num_classes=3, ats=dict(sampler="topk", grid="official"))
    model = build_model("timesformer_tiny", num_classes=3, ats=dict(grid="official"))
    with pytest.raises(ValueError, match="not of 'random'"):
        model.ats.replace(sampler="random")


def test_config_key_ats_grid_reaches_the_model():
    cfg = load_config(None, ["MODEL.NAME", "timesformer_tiny", "MODEL.NUM_CLASSES", "3", "ATS.ENABLE", "True",
                             "ATS.GRID", "official"])
    assert build_model_from_cfg(cfg).ats.grid == "official"
    assert load_config(None, []).ATS.GRID == "midpoint"
    with pytest.raises(ValueError, match=r"ATS.GRID = 'nearest' is not one of \['midpoint', 'official'\]"):
        load_config(None, ["ATS.GRID", "nearest"])
    with pytest.raises(ValueError, match=r"ATS.GRID official with ATS.SAMPLER random.*\['midpoint', 'official'\]"):
        load_config(None, ["ATS.GRID", "official", "ATS.SAMPLER", "random"])


def test_calibration_runs_under_the_official_grid_and_records_it():
    model = tiny_model("timesformer_tiny", ats=dict(ratio=0.5, grid="official"))
    clips = varied_clips()
    result = calibrate_ratio(model, clips, 0.8 * model_gflops(model), tolerance=0.05, resolution=0.01)
    assert result.grid == "official" and result.to_dict()["grid"] == "official"
    assert model.ats.grid == "official"                 # the options are restored as they were
    rebuilt = with_ats(model, "timesformer_tiny", dict(ratio=result.ratio, grid="official"))
    assert float(clip_gflops(rebuilt, clips).mean()) == pytest.approx(result.achieved_gflops, rel=1e-9)


def test_the_benchmark_passes_the_grid_to_the_model_it_times():
    from experiments.benchmark import BenchmarkSpec, benchmark_config

    cfg = load_config(None, ["MODEL.NAME", "timesformer_tiny", "MODEL.NUM_CLASSES", "5", "ATS.GRID", "official"])
    spec = BenchmarkSpec(batch_sizes=(2,), ratio=1.0, sampler="its", warmup=0, rounds=1, mmaction=False)
    rows = benchmark_config(cfg, spec, log=lambda message: None)
    assert rows[1].ats["grid"] == "official" and rows[1].variant == "ATS its ratio 1 (official grid)"
    with pytest.raises(ValueError, match="not of 'topk'"):
        benchmark_config(cfg, BenchmarkSpec(batch_sizes=(2,), ratio=1.0, warmup=0, rounds=1, mmaction=False),
                         log=lambda message: None)


def test_the_mmaction2_backbone_takes_the_grid():
    require_extra("mmaction", "mmaction")
    from mmaction.registry import MODELS

    import video_ats.integrations.mmaction  # noqa: F401  (registers the backbones)

    backbone = MODELS.build(dict(type="VideoATSXViT", preset="xvit_tiny", depth=4,
                                 ats=dict(blocks=[2, 3], ratio=0.7, grid="official")))
    assert backbone.ats.grid == "official"
    with torch.no_grad():
        backbone(varied_clips())
    assert len(backbone.ats_stats) == 2
