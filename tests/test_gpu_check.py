"""The GPU check's CPU half: what runs without CUDA runs and passes, what needs CUDA says so."""

import json
import time

import pytest
import torch

import experiments.gpu_check as gpu_check
from tool_helpers import load_tool


# Tiny models on a shared 2-core machine: one torch thread (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("viz_one_thread")


def test_the_cpu_half_runs_every_check_it_can_and_skips_the_cuda_ones(tmp_path, capsys):
    path = tmp_path / "gpu_check.json"
    status = load_tool("gpu_check").main(["--device", "cpu", "--json", str(path)])
    out = capsys.readouterr().out
    assert status == 0
    assert "CUDA is not available" in out and "nothing ran on a GPU" in out
    report = json.loads(path.read_text())
    assert report["meta"]["cuda"] is False and report["meta"]["models"] == ["timesformer_tiny", "xvit_tiny"]
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert statuses == {"cpu_cuda_parity": "skipped", "batch_invariance": "passed", "autocast_train_step": "passed",
                        "ddp_step": "passed", "benchmark": "skipped"}
    details = {check["name"]: check["detail"] for check in report["checks"]}
    assert details["cpu_cuda_parity"] == "CUDA is not available"
    assert "bf16" in details["autocast_train_step"] and details["ddp_step"].startswith("gloo")


def test_the_parity_check_compares_logits_and_kept_positions_across_devices():
    # CPU against CPU: the comparison itself runs (on CUDA the same code compares two devices).
    detail = gpu_check.cpu_cuda_parity(["timesformer_tiny"], torch.device("cpu"))
    assert "timesformer_tiny its 0.0e+00" in detail


def test_a_failing_check_fails_the_command_and_says_why(tmp_path, monkeypatch):
    def off_by_a_lot(names, device):
        raise gpu_check.CheckFailed("timesformer_tiny: batched and alone logits differ by 3.00e-01 > 0.0001")

    def crashes(names, device, dtypes):
        raise RuntimeError("boom")

    monkeypatch.setattr(gpu_check, "batch_invariance", off_by_a_lot)
    monkeypatch.setattr(gpu_check, "autocast_train_step", crashes)
    monkeypatch.setattr(gpu_check, "ddp_step", lambda names, device: "not run here")
    path = tmp_path / "gpu_check.json"
    assert load_tool("gpu_check").main(["--device", "cpu", "--json", str(path)]) == 1
    checks = {check["name"]: check for check in json.loads(path.read_text())["checks"]}
    assert checks["batch_invariance"]["status"] == "failed" and "3.00e-01" in checks["batch_invariance"]["detail"]
    assert checks["autocast_train_step"]["status"] == "failed"
    assert checks["autocast_train_step"]["detail"].startswith("RuntimeError: boom")
    assert checks["ddp_step"]["status"] == "passed"


def test_the_benchmark_part_writes_inference_training_and_memory_rows():
    # The GPU's benchmark code on the CPU with a tiny model: eager fp32 and bf16 at batch 1
    # and 2, the bf16 training step and the memory table (a small limit keeps the search short).
    out = gpu_check.benchmark(["timesformer_tiny"], torch.device("cpu"), deadline=float("inf"),
                              log=lambda message: None, compiled=False, memory_limit_gb=0.05, batch_sizes=(1, 2),
                              memory_batch_sizes=(1, 2), rounds=1)
    ours = [("ATS" if row.variant.startswith("ATS") else row.variant, row.batch_size, row.dtype)
            for row in out["rows"] if row.implementation == "video_ats"]
    assert ours == [(variant, batch, dtype) for dtype in ("fp32", "bf16") for batch in (1, 2)
                    for variant in ("no ATS", "ATS")]
    assert [row.dtype for row in out["train_rows"]] == ["bf16", "bf16"]
    assert {row.mode for row in out["memory_rows"]} == {"inference", "train"}
    assert out["skipped"] == []


def test_parts_past_the_deadline_are_skipped_and_listed():
    out = gpu_check.benchmark(["timesformer_tiny"], torch.device("cpu"), deadline=0.0, log=lambda message: None)
    assert out["rows"] == []
    assert out["skipped"] == ["timesformer_tiny eager fp32/bf16", "timesformer_tiny training + memory",
                              "timesformer_tiny compiled bf16", "timesformer_tiny compiled fp32"]


def test_a_compiled_part_needs_minutes_left_to_start(monkeypatch):
    ran = []
    monkeypatch.setattr("experiments.benchmark.benchmark_config", lambda cfg, spec, log: ran.append(spec) or [])
    monkeypatch.setattr(gpu_check, "COMPILE_RESERVE_S", 1e6)
    out = gpu_check.benchmark(["timesformer_tiny"], torch.device("cpu"), deadline=time.time() + 1e5,
                              log=lambda message: None, memory_limit_gb=0.05, batch_sizes=(1, 2),
                              memory_batch_sizes=(1,), rounds=1)
    assert [spec.compile for spec in ran] == [False]                       # the eager part ran
    assert out["skipped"] == ["timesformer_tiny compiled bf16", "timesformer_tiny compiled fp32"]
