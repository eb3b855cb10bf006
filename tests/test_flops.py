"""GFLOPs: the published per-view numbers, the SDPA handle, and the per-clip counter for ATS."""

import pytest
import torch

from model_helpers import BACKBONES, tiny_model, varied_clips
from optional_extras import require_extra
from video_ats import build_model
from video_ats.ats import SAMPLERS, SCOPES
from video_ats.flops import clip_gflops, fvcore_gflops, gflops_from_stats, model_gflops
from video_ats.models.layers import Attention


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny models gain nothing from a second thread, and on a shared 2-core machine the
    # threads' spin-waits multiplied this file's time by four.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name,shape,published", [
    # Per view (one clip x one crop), one multiply-add = one FLOP: the papers' 1x3-view totals
    # (0.59 / 5.11 / 7.14 TFLOPs; 425 / 850 GFLOPs) over 3, as measured on the official code
    # (video_models.md sections 1.5 and 2.6).
    ("timesformer_base", (1, 3, 8, 224, 224), 195.8),
    ("timesformer_hr", (1, 3, 16, 448, 448), 1702.7),
    ("timesformer_large", (1, 3, 96, 224, 224), 2379.9),
    ("xvit_b16_8", (1, 3, 8, 224, 224), 140.6),
    ("xvit_b16_16", (1, 3, 16, 224, 224), 281.1),
])
def test_full_size_baselines_match_the_published_per_view_gflops(name, shape, published):
    with torch.device("meta"):                  # traced without allocating any activation
        model = build_model(name, num_classes=400)
    counted = fvcore_gflops(model, torch.empty(shape, device="meta"))
    assert counted == pytest.approx(published, rel=5e-4)     # within 0.05 %: the published value's rounding
    assert model_gflops(model) == pytest.approx(counted, rel=1e-9)


def test_batch_gflops_scale_with_the_batch():
    with torch.device("meta"):
        model = build_model("timesformer_base")
    one = fvcore_gflops(model, torch.empty(1, 3, 8, 224, 224, device="meta"))
    assert fvcore_gflops(model, torch.empty(3, 3, 8, 224, 224, device="meta")) == pytest.approx(3 * one, rel=1e-9)


def test_scaled_dot_product_attention_is_counted():
    # N = 10 tokens, d = 8, 2 heads: qkv 10*8*24 + q k^T 10*10*8 + A v 10*10*8 + proj 10*8*8.
    attention = Attention(dim=8, num_heads=2)
    expected = 10 * 8 * 24 + 2 * 10 * 10 * 8 + 10 * 8 * 8
    assert fvcore_gflops(attention, torch.randn(1, 10, 8)) * 1e9 == pytest.approx(expected)


def test_layer_norm_is_left_out_unless_asked_for():
    norm = torch.nn.Sequential(torch.nn.LayerNorm(8), torch.nn.Linear(8, 4, bias=False))
    x = torch.randn(2, 5, 8)
    assert fvcore_gflops(norm, x) * 1e9 == pytest.approx(2 * 5 * 8 * 4)
    assert fvcore_gflops(norm, x, include_norms=True) * 1e9 == pytest.approx(2 * 5 * 8 * 4 + 5 * 2 * 5 * 8)


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("name", BACKBONES)
def test_each_clip_is_charged_what_it_costs_alone(name, sampler, scope):
    # Six blocks, three of them ATS stages, keep the 48 traces of this test quick.
    model = tiny_model(name, ats=dict(sampler=sampler, ratio=0.6, scope=scope, blocks=[2, 3, 5]), depth=6)
    clips = varied_clips()
    per_clip = clip_gflops(model, clips)
    kept = torch.stack([stage["kept"] for stage in model.ats_stats])        # (stages, B)
    alone = torch.tensor([fvcore_gflops(model, clips[i:i + 1]) for i in range(len(clips))], dtype=torch.float64)
    assert torch.allclose(per_clip, alone, rtol=1e-9, atol=0)
    if sampler == "its" or scope == "frame":
        assert any(len(set(row.tolist())) > 1 for row in kept), "the batch should hold different counts"
        assert len(set(per_clip.tolist())) > 1
    assert (per_clip < model_gflops(model)).all()


def test_the_self_attention_score_is_charged_for_its_full_matrix():
    model = tiny_model("timesformer_tiny", ats=dict(sampler="its", ratio=0.6, score="self_attn"))
    clips = varied_clips()
    per_clip = clip_gflops(model, clips)
    alone = [fvcore_gflops(model, clips[i:i + 1]) for i in range(len(clips))]
    assert per_clip.tolist() == pytest.approx(alone, rel=1e-9)


def test_stats_of_a_finished_forward_give_the_same_gflops():
    model = tiny_model("xvit_tiny", ats=dict(sampler="its", ratio=0.5, blocks=[2, 4]), depth=5)
    clips = varied_clips()
    with torch.no_grad():
        model(clips)
    from_stats = gflops_from_stats(model, model.ats_stats, batch_size=4)
    assert torch.equal(from_stats, clip_gflops(model, clips))
    with pytest.raises(ValueError, match="expected \\(2,\\)"):
        gflops_from_stats(model, model.ats_stats, batch_size=2)


def test_without_ats_every_clip_costs_the_model_gflops():
    model = tiny_model("timesformer_tiny")
    per_clip = clip_gflops(model, varied_clips())
    assert per_clip.tolist() == pytest.approx([model_gflops(model)] * 4, rel=1e-9)
    assert model_gflops(model) == pytest.approx(fvcore_gflops(model, varied_clips()[:1]), rel=1e-9)


def test_ats_keeping_every_token_costs_the_model_plus_its_scoring():
    # Keeping all P = 64 positions adds only the CLS-row matmul, T (1+P) d per stage.
    model = tiny_model("timesformer_tiny", ats=dict(sampler="topk", ratio=1.0))
    per_clip = clip_gflops(model, varied_clips())
    scoring = 3 * 8 * 65 * 96 / 1e9
    assert per_clip.tolist() == pytest.approx([model_gflops(model) + scoring] * 4, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# The benchmark and the tools (plumbing only, tiny models, no timing assertions)

import json  # noqa: E402

from experiments.benchmark import BenchmarkSpec, benchmark_config, markdown_table, ratio_for_saving, write_json  # noqa: E402
from video_ats.config import load_config  # noqa: E402


def tiny_cfg(*overrides):
    return load_config(None, ["MODEL.NAME", "timesformer_tiny", "MODEL.NUM_CLASSES", "5", *overrides])


def test_benchmark_rows_carry_every_field_and_the_json_is_written(tmp_path):
    spec = BenchmarkSpec(batch_sizes=(1, 2), ratio=0.5, warmup=0, rounds=1, mmaction=False)
    rows = benchmark_config(tiny_cfg(), spec, log=lambda message: None)
    traced = fvcore_gflops(build_model("timesformer_tiny", num_classes=5), torch.empty(1, 3, 8, 64, 64))
    assert [(row.batch_size, row.variant) for row in rows] == [
        (1, "no ATS"), (1, "ATS topk ratio 0.5"), (2, "no ATS"), (2, "ATS topk ratio 0.5")]
    for plain, ats in (rows[:2], rows[2:]):
        assert plain.speedup is None and plain.gflops_per_clip == pytest.approx(traced, rel=1e-9)
        assert ats.gflops_ratio == pytest.approx(plain.gflops_per_clip / ats.gflops_per_clip)
        assert ats.speedup == pytest.approx(ats.clips_per_s / plain.clips_per_s)
        assert ats.efficiency == pytest.approx(ats.speedup / ats.gflops_ratio)
        assert ats.kept_per_stage == [32.0, 16.0, 8.0]          # topk: round(0.5 N) whatever the weights
        for row in (plain, ats):
            assert row.clips_per_s == pytest.approx(row.batch_size / row.latency_s)
            assert row.matmul_gmacs_per_s > 0 and row.matmul_fraction > 0
            assert row.device == "cpu" and row.dtype == "fp32" and len(row.rounds_s) == 1
    path = tmp_path / "bench.json"
    write_json(str(path), rows, {"command": "test"})
    written = json.loads(path.read_text())
    assert written["meta"]["command"] == "test" and len(written["rows"]) == 4
    assert {"clips_per_s", "latency_s", "peak_memory_mb", "gflops_ratio", "speedup", "efficiency"} <= set(
        written["rows"][1])
    assert markdown_table(rows).count("\n") == 5


def test_the_config_ats_is_used_when_no_fixed_budget_is_given():
    spec = BenchmarkSpec(batch_sizes=(2,), warmup=0, rounds=1, mmaction=False)
    rows = benchmark_config(tiny_cfg("ATS.ENABLE", "True", "ATS.RATIO", "0.6"), spec, log=lambda message: None)
    assert rows[1].ats["sampler"] == "its" and rows[1].ats["ratio"] == 0.6
    with pytest.raises(ValueError, match="--ratio or --saving"):
        benchmark_config(tiny_cfg(), spec, log=lambda message: None)


def test_ratio_for_saving_hits_the_wanted_saving():
    from experiments.benchmark import _gflops_with, fixed_budget_widths

    with torch.device("meta"):
        model = build_model("timesformer_base")
    ratio = ratio_for_saving(model, 0.4)
    cost = _gflops_with(model, fixed_budget_widths(model, (3, 4, 5), ratio), "topk")
    assert 1 - cost / model_gflops(model) == pytest.approx(0.4, abs=0.02)


def test_flops_tool_reports_per_view_and_per_video(tmp_path, capsys):
    from tools_flops import main

    path = tmp_path / "flops.json"
    main(["--cfg", "configs/kinetics400/timesformer_base.yaml", "MODEL.NAME", "timesformer_tiny",
          "ATS.ENABLE", "True", "ATS.RATIO", "0.5", "--source", "random", "--random-views", "6",
          "--batch-size", "3", "--json", str(path)])
    report = json.loads(path.read_text())
    assert report["views_per_video"] == 3
    assert report["no_ats"]["gflops_per_video"] == pytest.approx(3 * report["no_ats"]["gflops_per_view"])
    assert report["ats"]["gflops_per_view"]["count"] == 6 and report["ats"]["gflops_per_video"]["count"] == 2
    assert "RANDOM INPUT" in report["ats"]["clips"]
    assert "per video" in capsys.readouterr().out


def test_mmaction_timesformer_of_the_same_size_runs_when_installed():
    require_extra("mmaction", "mmaction")
    from experiments.benchmark import mmaction_timesformer

    model = build_model("timesformer_tiny", num_classes=5, depth=2)
    reference, why_not = mmaction_timesformer(model)
    assert why_not is None
    with torch.no_grad():
        assert reference(torch.randn(2, 3, 8, 64, 64)).shape == (2, 5)


def test_the_adaptive_benchmark_times_ats_padded_and_packed():
    spec = BenchmarkSpec(batch_sizes=(4,), ratio=0.6, sampler="its", warmup=0, rounds=1, adaptive=True, sharpen=10.0)
    rows = benchmark_config(tiny_cfg(), spec, log=lambda message: None)
    assert [row.variant for row in rows] == ["no ATS", "ATS its ratio 0.6, padded", "ATS its ratio 0.6, packed"]
    padded, packed = rows[1:]
    assert padded.clip_gflops == packed.clip_gflops and len(set(padded.clip_gflops)) > 1   # counts differ
    assert padded.efficiency is not None and packed.efficiency is not None


def test_flops_tool_reads_the_test_set_with_a_class_list_relative_to_the_data_folder(engine_overrides, tmp_path):
    from tools_flops import main

    path = tmp_path / "flops_dataset.json"
    main(["--cfg", "configs/synthetic/timesformer_tiny.yaml", *engine_overrides, "ATS.ENABLE", "True",
          "ATS.RATIO", "0.5", "--source", "dataset", "--max-videos", "2", "--batch-size", "3", "--json", str(path)])
    report = json.loads(path.read_text())
    assert report["ats"]["gflops_per_view"]["count"] == 6 and report["ats"]["gflops_per_video"]["count"] == 2
    assert report["ats"]["gflops_per_view"]["max"] <= report["no_ats"]["gflops_per_view"]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_the_xvit_avg_consensus_is_counted_like_fvcore_counts_it(sampler):
    model = tiny_model("xvit_tiny", ats=dict(sampler=sampler, ratio=0.6, blocks=[2, 3]), depth=4, consensus="avg")
    clips = varied_clips()
    alone = [fvcore_gflops(model, clips[i:i + 1]) for i in range(len(clips))]
    assert clip_gflops(model, clips).tolist() == pytest.approx(alone, rel=1e-9)
    plain = tiny_model("xvit_tiny", depth=4, consensus="avg")
    vit = tiny_model("xvit_tiny", depth=4)
    assert model_gflops(plain) == pytest.approx(fvcore_gflops(plain, clips[:1]), rel=1e-9)
    assert model_gflops(plain) < model_gflops(vit)       # one Linear instead of a transformer block + MLP
