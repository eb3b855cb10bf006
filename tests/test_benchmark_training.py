"""The training-step benchmark and the memory table (plumbing, tiny models, no timing assertions)."""

import pytest
import torch

from experiments.benchmark import BenchmarkSpec, PeakMemory
from experiments.train_benchmark import (TrainSpec, benchmark_training, default_train_dtypes, largest_batch_within,
                                         memory_config, state_mb)
from video_ats.config import load_config


# Tiny models on a shared 2-core machine: one torch thread (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("viz_one_thread")


def tiny_cfg(*overrides):
    return load_config(None, ["MODEL.NAME", "timesformer_tiny", "MODEL.NUM_CLASSES", "5", *overrides])


# ---------------------------------------------------------------------------------------------
# The CPU memory meter


def test_the_cpu_meter_is_the_most_bytes_torch_held_at_once():
    held_before = torch.empty(3_000_000)               # 12 MB held before: not counted, nor its free
    # (sizes in 10^6 bytes, fp32)
    meter = PeakMemory(torch.device("cpu"))
    with meter.measure():
        a = torch.empty(1_000_000)                     # 4 MB
        b = torch.empty(2_000_000)                     # + 8 MB = 12 MB at once
        del a, held_before
        c = torch.empty(1_500_000)                     # 8 + 6 = 14 MB at once: the peak
        del b, c
        d = torch.empty(500_000)                       # 2 MB
    assert meter.peak_mb == pytest.approx(14_000_000 / 2 ** 20)     # bytes, exactly
    del d
    with meter.measure():                              # a second call: the larger peak of the two holds
        torch.empty(250_000)
    assert meter.peak_mb == pytest.approx(14_000_000 / 2 ** 20)


# ---------------------------------------------------------------------------------------------
# The batch search


def recorder(total):
    calls = []

    def measure(batch):
        calls.append(batch)
        return total(batch)
    return measure, calls


def test_a_linear_memory_is_bracketed_in_two_steps():
    # 1000 MB that do not grow + 700 MB per clip, limit 8192: (8192 - 1000) / 700 = 10.3 -> 10.
    measure, calls = recorder(lambda b: 1000 + 700 * b)
    largest, measured = largest_batch_within(measure, 8192, state=1000, known={2: 2400})
    assert largest == 10
    assert calls == [10, 11]
    assert measured == {2: 2400, 10: 8000, 11: 8700}


def test_a_curved_memory_is_still_bracketed():
    # 500 + 100 b + 10 b^2: batch 11 -> 2810, batch 12 -> 3140 (limit 3000).
    measure, calls = recorder(lambda b: 500 + 100 * b + 10 * b * b)
    largest, measured = largest_batch_within(measure, 3000, state=500)
    assert largest == 11
    assert {11, 12} <= set(calls) and len(calls) <= 8
    assert measured[11] <= 3000 < measured[12]


def test_out_of_memory_is_bisected():
    # 100 MB per clip, but anything above 5 clips runs out of device memory.
    measure, calls = recorder(lambda b: 100.0 * b if b <= 5 else float("inf"))
    largest, _ = largest_batch_within(measure, 10000, state=0, max_measurements=10)
    assert largest == 5
    assert {5, 6} <= set(calls)


def test_nothing_fits_and_an_unmeasurable_device_give_no_answer():
    assert largest_batch_within(lambda b: 9000 * b, 8192, state=1000)[0] is None
    assert largest_batch_within(lambda b: None, 8192, state=1000) == (None, {1: None})


# ---------------------------------------------------------------------------------------------
# Training step and memory on a tiny model


def test_training_rows_report_speedup_efficiency_and_memory():
    spec = BenchmarkSpec(ratio=0.5, mmaction=False)
    rows, totals = benchmark_training(tiny_cfg(), spec, TrainSpec(batch_size=2, warmup=0, rounds=1),
                                      log=lambda message: None)
    plain, ats = rows
    assert (plain.variant, ats.variant) == ("no ATS", "ATS topk ratio 0.5")
    assert plain.dtype == "fp32" and plain.batch_size == 2 and len(plain.rounds_s) == 1
    assert ats.kept_per_stage == [32.0, 16.0, 8.0]                  # topk: round(0.5 N) of 64, 32, 16
    assert ats.gflops_ratio == pytest.approx(plain.gflops_per_clip / ats.gflops_per_clip)
    assert ats.speedup == pytest.approx(ats.clips_per_s / plain.clips_per_s)
    assert ats.efficiency == pytest.approx(ats.speedup / ats.gflops_ratio)
    # State: the weights and SGD's momentum buffer of each, 4 bytes per value.
    parameters = sum(p.numel() for p in torch.nn.Module.parameters(_tiny()))
    assert plain.state_memory_mb == pytest.approx(2 * 4 * parameters / 2 ** 20, rel=0.01)
    assert plain.peak_memory_mb > 0                                   # the allocator meter
    assert totals["no ATS"] == pytest.approx(plain.state_memory_mb + plain.peak_memory_mb)


def _tiny():
    from video_ats import build_model

    return build_model("timesformer_tiny", num_classes=5)


def test_state_counts_each_storage_once():
    layer = torch.nn.Linear(256, 256, bias=False)                     # 256 x 256 x 4 bytes = 0.25 MiB
    assert state_mb(layer) == pytest.approx(0.25)
    shared = torch.nn.Sequential(layer, layer)
    assert state_mb(shared) == pytest.approx(0.25)


def test_memory_rows_give_inference_peaks_and_the_largest_training_batch():
    spec = BenchmarkSpec(ratio=0.5, mmaction=False)
    train = TrainSpec(batch_size=2, memory_batch_sizes=(1, 2), memory_limit_gb=0.15)
    rows = memory_config(tiny_cfg(), spec, train, timed={("inference", "no ATS", 1): 12.5},
                         log=lambda message: None)
    inference = [(r.variant, r.batch_size) for r in rows if r.mode == "inference"]
    assert inference == [("no ATS", 1), ("no ATS", 2), ("ATS topk ratio 0.5", 1), ("ATS topk ratio 0.5", 2)]
    assert rows[0].peak_memory_mb == 12.5                                 # taken from the timed run
    assert rows[1].peak_memory_mb is not None, "the CPU meter reads the profiler's allocation events"
    for variant in ("no ATS", "ATS topk ratio 0.5"):
        train_rows = sorted((r for r in rows if r.mode == "train" and r.variant == variant),
                            key=lambda r: r.batch_size)
        [largest] = [r for r in train_rows if r.largest_within_limit]
        after = [r for r in train_rows if r.batch_size == largest.batch_size + 1]
        assert largest.total_memory_mb <= 0.15 * 1024 < after[0].total_memory_mb
        assert largest.fits_limit and not after[0].fits_limit


def test_the_benchmark_tool_writes_every_part_and_the_docs_render_from_it(tmp_path):
    # The `make bench` pipeline on a tiny model: one JSON with inference, training and memory
    # rows, the kernel trials and the load average; then every generated block is filled.
    import json

    from experiments.bench_report import render_files
    from tool_helpers import load_tool

    path = tmp_path / "bench.json"
    load_tool("benchmark").main(["--cfg", "configs/synthetic/timesformer_tiny.yaml", "--ratio", "0.5",
                                 "--batch-sizes", "1", "--warmup", "0", "--rounds", "1", "--no-mmaction",
                                 "--train", "--train-dtype", "fp32", "bf16", "--memory", "--memory-batch-sizes", "1", "2",
                                 "--memory-limit-gb", "0.05", "--json", str(path)])
    data = json.loads(path.read_text())
    assert [row["variant"] for row in data["rows"]] == ["no ATS", "ATS topk ratio 0.5"]
    assert data["rows"][0]["linear_kernel"] == "auto"
    assert set(data["rows"][0]["linear_paths"]) >= {"blocks.*.attn.qkv", "blocks.*.mlp.fc1", "blocks.*.mlp.fc2"}
    assert [(row["variant"], row["dtype"]) for row in data["train_rows"]] == [
        ("no ATS", "fp32"), ("ATS topk ratio 0.5", "fp32"), ("no ATS", "bf16"), ("ATS topk ratio 0.5", "bf16")]
    assert {row["dtype"] for row in data["memory_rows"]} == {"fp32"}             # the first dtype
    assert {(row["mode"], row["batch_size"]) for row in data["memory_rows"]} >= {("inference", 1), ("inference", 2)}
    assert data["meta"]["kernel_trials"] and len(data["meta"]["loadavg"]["before"]) == 3
    markdown = tmp_path / "page.md"
    names = ["command", "matmul", "trials", "speed", "targets", "hosts", "train", "memory", "readme-speed"]
    markdown.write_text("".join(f"<!-- bench:{name} -->\n<!-- /bench:{name} -->\n" for name in names))
    render_files(str(path), [str(markdown)])
    page = markdown.read_text()
    assert "Not measured" not in page and "not recorded" not in page and "predates" not in page
    assert "| timesformer_tiny | ATS topk ratio 0.5 | 2 | fp32 |" in page          # the training table
    assert "| timesformer_tiny | ATS topk ratio 0.5 | 2 | bf16 |" in page


def test_the_cpu_trains_in_bf16_too_only_where_it_has_bf16_arithmetic():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert default_train_dtypes(cpu, ["avx2", "fma"]) == ["fp32"]
    assert default_train_dtypes(cpu, ["avx2", "avx512f", "avx512_bf16"]) == ["fp32", "bf16"]
    assert default_train_dtypes(cpu, ["avx512f", "amx_tile", "amx_bf16"]) == ["fp32", "bf16"]
    assert default_train_dtypes(cuda, []) == ["bf16"]
