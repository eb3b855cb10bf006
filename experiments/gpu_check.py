"""The GPU check: what must hold on a CUDA machine, and its speed there, in one command.

`tools/gpu_check.py` (``make gpu-check``) runs, in order, each check in its own try block so
one failure does not hide the others:

- ``cpu_cuda_parity``: the same weights give the same logits on CPU and CUDA (fp32, TF32
  off), for both backbones without ATS and with ATS (``topk`` and ``its``, sharpened
  attention so the kept positions depend on the clip), with the same kept positions;
- ``batch_invariance``: on the device, each clip of a padded ATS batch (``its``, clips that
  keep different counts) gives the logits it gives alone;
- ``autocast_train_step``: training steps with ATS under bf16 and fp16 autocast (fp16 with a
  GradScaler) keep the loss, the gradients and the weights finite;
- ``ddp_step``: a one-process DistributedDataParallel step (NCCL on CUDA, gloo on CPU) with ATS
  gives the gradients of the same step without DDP;
- ``benchmark``: the speed benchmark (experiments/benchmark.py) of each model at batch 1 and 8
  in fp32 and bf16, eager, then the training step and memory table (bf16), then compiled
  (torch.compile) at batch 8, as long as the time budget lasts.

Without CUDA it says so, skips what needs CUDA (the CPU-CUDA parity, the benchmark) and runs
the rest on the CPU (bf16 autocast only; gloo) with the tiny models: the CPU half, which the
test suite runs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import traceback
from dataclasses import asdict, dataclass
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from video_ats import build_model
from video_ats.config import load_config

# name -> a config it is benchmarked from (the model is the preset of the same name)
BENCHMARK_CONFIGS = {"timesformer_base": "configs/kinetics400/timesformer_base.yaml",
                     "xvit_b16_16": "configs/kinetics600/xvit_b16_16.yaml",
                     "timesformer_tiny": "configs/synthetic/timesformer_tiny.yaml",      # 8 x 64
                     "xvit_tiny": "configs/synthetic/timesformer_tiny.yaml"}
FULL_SIZE = ("timesformer_base", "xvit_b16_16")
# A compiled benchmark part starts only with this much of the time budget left.
COMPILE_RESERVE_S = 120.0
TINY = ("timesformer_tiny", "xvit_tiny")


@dataclass
class CheckResult:
    name: str
    status: str                     # "passed", "failed" or "skipped"
    seconds: float
    detail: str = ""


class CheckFailed(AssertionError):
    """A check's condition did not hold (the message says which and by how much)."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# ---------------------------------------------------------------------------------------------
# Models and inputs


def sharpened_model(name: str, ats: Optional[dict] = None, seed: int = 0, sharpen: Optional[float] = None,
                    num_classes: int = 10) -> nn.Module:
    """``name`` with random weights whose attention depends on the content (q and k scaled by
    ``sharpen``; TimeSformer's temporal_fc non-zero), in eval mode on the CPU.

    The default scale makes ``its`` keep clearly different counts for `clips_for` clips: 4
    for the full-size models (e.g. 104, 66, 127, 137 of 196 in TimeSformer 8×224's first
    stage at ratio 0.7), 10 for the tiny ones (as tests/model_helpers.py).
    """
    torch.manual_seed(seed)
    model = build_model(name, num_classes=num_classes, ats=ats)
    if sharpen is None:
        sharpen = 10.0 if model.embed_dim < 256 else 4.0
    with torch.no_grad():
        for block in model.blocks:
            dim = block.attn.qkv.in_features
            block.attn.qkv.weight[: 2 * dim] *= sharpen
            if hasattr(block, "temporal_fc"):
                nn.init.normal_(block.temporal_fc.weight, std=0.02)
    return model.eval()


def same_weights(model: nn.Module, name: str, ats: Optional[dict]) -> nn.Module:
    other = build_model(name, num_classes=model.num_classes, ats=ats)
    other.load_state_dict(model.state_dict())
    return other.eval()


def clips_for(model: nn.Module, batch_size: int, seed: int = 0) -> Tensor:
    from experiments.benchmark import varied_clips

    return varied_clips(batch_size, model.num_frames, model.img_size, seed)


@contextlib.contextmanager
def exact_fp32():
    """No TF32 in CUDA matmuls and convolutions (it rounds inputs to 10 mantissa bits)."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def _max_error(a: Tensor, b: Tensor) -> float:
    return float((a.double().cpu() - b.double().cpu()).abs().max())


# ---------------------------------------------------------------------------------------------
# The checks


def cpu_cuda_parity(names: Sequence[str], device: torch.device, batch_size: int = 2, atol: float = 1e-4) -> str:
    """Same logits and kept positions on the CPU and on ``device``; raises CheckFailed."""
    details = []
    for name in names:
        plain = sharpened_model(name)
        clips = clips_for(plain, batch_size)
        for ats in (None, dict(sampler="topk", ratio=0.7), dict(sampler="its", ratio=0.7)):
            model = plain if ats is None else same_weights(plain, name, ats)
            with torch.no_grad(), exact_fp32():
                on_cpu = model(clips)
                cpu_stats = [stage["kept_positions"].cpu() for stage in model.ats_stats]
                model.to(device)
                on_device = model(clips.to(device))
                device_stats = [stage["kept_positions"].cpu() for stage in model.ats_stats]
                model.cpu()
            label = f"{name} {'no ATS' if ats is None else ats['sampler']}"
            require(all(torch.equal(a, b) for a, b in zip(cpu_stats, device_stats)),
                    f"{label}: the kept positions differ between CPU and {device}")
            error = _max_error(on_cpu, on_device)
            require(error <= atol, f"{label}: logits differ by {error:.2e} > {atol:g} between CPU and {device}")
            details.append(f"{label} {error:.1e}")
    return "max |CPU - device| logits: " + ", ".join(details)


def batch_invariance(names: Sequence[str], device: torch.device, batch_size: int = 4, atol: float = 1e-4) -> str:
    """On ``device``, each clip of a padded ATS batch gives its logits alone; raises CheckFailed."""
    details = []
    for name in names:
        model = same_weights(sharpened_model(name), name, dict(sampler="its", ratio=0.7)).to(device)
        clips = clips_for(model, batch_size).to(device)
        with torch.no_grad(), exact_fp32():
            batched = model(clips)
            counts = torch.stack([stage["kept"] for stage in model.ats_stats]).cpu()
            alone = torch.cat([model(clips[i:i + 1]) for i in range(batch_size)])
        require(any(len(set(row.tolist())) > 1 for row in counts),
                f"{name}: every clip kept the same count, so the batch was not padded (the check needs padding)")
        error = _max_error(batched, alone)
        require(error <= atol, f"{name}: batched and alone logits differ by {error:.2e} > {atol:g} on {device}")
        details.append(f"{name} {error:.1e}")
    return "max |batched - alone| logits: " + ", ".join(details)


def _train_steps(model: nn.Module, clips: Tensor, labels: Tensor, device: torch.device, dtype: torch.dtype,
                 steps: int) -> List[float]:
    from experiments.train_benchmark import make_optimizer, training_step

    optimizer = make_optimizer(model)
    step = training_step(model, optimizer, clips, labels, device, dtype)
    losses = [float(step()) for _ in range(steps)]
    return losses


def autocast_train_step(names: Sequence[str], device: torch.device, dtypes: Sequence[str], batch_size: int = 2,
                        steps: int = 2) -> str:
    """Training steps with ATS under autocast keep everything finite; raises CheckFailed."""
    from experiments.benchmark import DTYPES

    details = []
    for name in names:
        for dtype_name in dtypes:
            model = same_weights(sharpened_model(name), name, dict(sampler="its", ratio=0.7)).to(device).train()
            clips = clips_for(model, batch_size).to(device)
            labels = torch.arange(batch_size, device=device) % model.num_classes
            losses = _train_steps(model, clips, labels, device, DTYPES[dtype_name], steps)
            label = f"{name} {dtype_name}"
            require(all(torch.isfinite(torch.tensor(loss)) for loss in losses), f"{label}: losses {losses}")
            bad = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
            require(not bad, f"{label}: non-finite weights after {steps} steps: {bad[:3]}")
            kept = [float(stage["kept"].float().mean()) for stage in model.ats_stats]
            require(len(kept) > 0 and all(k > 0 for k in kept), f"{label}: ATS kept nothing: {kept}")
            details.append(f"{label} losses " + " → ".join(f"{loss:.3f}" for loss in losses))
    return "; ".join(details)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ddp_step(names: Sequence[str], device: torch.device, batch_size: int = 2, atol: float = 1e-5) -> str:
    """A one-process DDP step (NCCL on CUDA, gloo on CPU) gives the gradients of a plain step."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_available() or (backend == "nccl" and not dist.is_nccl_available()):
        raise CheckFailed(f"torch.distributed with {backend} is not available in this build")
    if dist.is_initialized():
        raise CheckFailed("a process group is already initialised in this process")
    if device.type == "cuda":
        torch.cuda.set_device(device)              # NCCL binds the process to this device
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    details = []
    try:
        for name in names:
            base = same_weights(sharpened_model(name), name, dict(sampler="its", ratio=0.7)).to(device).train()
            clone = same_weights(base, name, dict(sampler="its", ratio=0.7)).to(device).train()
            clips = clips_for(base, batch_size).to(device)
            labels = torch.arange(batch_size, device=device) % base.num_classes
            wrapped = DistributedDataParallel(clone, device_ids=[device.index] if device.type == "cuda" else None)
            with exact_fp32():
                torch.manual_seed(1)                # the same drop-path and dropout masks in both steps
                F.cross_entropy(base(clips), labels).backward()
                torch.manual_seed(1)
                F.cross_entropy(wrapped(clips), labels).backward()
            errors = [_max_error(a.grad, b.grad) for a, b in zip(base.parameters(), clone.parameters())
                      if a.grad is not None]
            require(len(errors) == len([p for p in base.parameters() if p.requires_grad]),
                    f"{name}: some parameters got no gradient")
            require(max(errors) <= atol, f"{name}: DDP gradients differ by {max(errors):.2e} > {atol:g}")
            details.append(f"{name} max |grad DDP - plain| {max(errors):.1e}")
            del wrapped
    finally:
        dist.destroy_process_group()
    return f"{backend}: " + ", ".join(details)


def benchmark(names: Sequence[str], device: torch.device, deadline: float, log: Callable[[str], None] = print,
              compiled: bool = True, memory_limit_gb: float = 8.0, batch_sizes: Sequence[int] = (1, 8),
              memory_batch_sizes: Sequence[int] = (1, 8, 32), rounds: int = 3) -> dict:
    """Inference fp32 / bf16 eager at ``batch_sizes``, the training step (batch 2) and memory
    table (bf16), then (``compiled``) torch.compile at the largest batch size, bf16 first,
    as long as ``deadline`` (time.time()) allows (a compiled part needs COMPILE_RESERVE_S left).

    Returns:
        {"rows": inference rows, "train_rows", "memory_rows", "skipped": [what did not fit]}.
    """
    from experiments.benchmark import BenchmarkSpec, benchmark_config
    from experiments.train_benchmark import TrainSpec, benchmark_training, memory_config, training_pair

    out = {"rows": [], "train_rows": [], "memory_rows": [], "skipped": []}
    # (label, model, what, seconds that must be left before the deadline for it to start:
    # compiling a ViT-B with and without ATS takes minutes)
    parts = []
    for name in names:
        parts.append((f"{name} eager fp32/bf16", name, dict(dtypes=("fp32", "bf16"), batch_sizes=tuple(batch_sizes)),
                      0.0))
    for name in names:
        parts.append((f"{name} training + memory", name, "train", 0.0))
    for dtype in ("bf16", "fp32") if compiled else ():
        for name in names:
            parts.append((f"{name} compiled {dtype}", name, dict(dtypes=(dtype,), batch_sizes=(max(batch_sizes),),
                                                                compile=True, mmaction=False), COMPILE_RESERVE_S))
    for label, name, what, reserve in parts:
        if time.time() + reserve > deadline:
            out["skipped"].append(label)
            log(f"[gpu-check] skipped (time budget): {label}")
            continue
        cfg = load_config(BENCHMARK_CONFIGS[name], ["MODEL.NAME", name])
        start = time.time()
        if what == "train":
            spec = BenchmarkSpec(saving=0.4, device=str(device), dtypes=("bf16",), rounds=rounds)
            train = TrainSpec(batch_size=2, dtype="bf16", memory_limit_gb=memory_limit_gb, rounds=rounds,
                              memory_batch_sizes=tuple(memory_batch_sizes))
            pair = training_pair(cfg, spec)
            rows, totals = benchmark_training(cfg, spec, train, log=log, pair=pair)
            out["train_rows"].extend(rows)
            out["memory_rows"].extend(memory_config(cfg, spec, train, None, totals, log=log, pair=pair))
            del pair
        else:
            spec = BenchmarkSpec(saving=0.4, device=str(device), rounds=rounds, **what)
            out["rows"].extend(benchmark_config(cfg, spec, log=log))
        log(f"[gpu-check] {label}: {time.time() - start:.0f} s")
    return out


# ---------------------------------------------------------------------------------------------
# The run


def run_checks(device: Optional[torch.device] = None, names: Optional[Sequence[str]] = None,
               run_benchmark: bool = True, budget_s: float = 420.0, command: str = "python tools/gpu_check.py",
               log: Callable[[str], None] = print) -> dict:
    """Every check on ``device`` (default: CUDA if available, else the CPU half).

    Returns:
        {"meta": {...}, "checks": [CheckResult as dicts], "rows", "train_rows", "memory_rows"}.
    """
    start = time.time()
    cuda = torch.cuda.is_available()
    device = device or torch.device("cuda" if cuda else "cpu")
    on_cuda = device.type == "cuda"
    if on_cuda and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    names = tuple(names or (FULL_SIZE if on_cuda else TINY))
    if not on_cuda:
        log("[gpu-check] CUDA is not available: running the CPU half only (CPU-CUDA parity and the GPU "
            "benchmark are skipped; batch invariance, bf16 autocast training and a gloo DDP step run on the CPU)")
    checks: List[CheckResult] = []

    def attempt(name: str, run: Callable[[], str], skip: Optional[str] = None) -> None:
        began = time.time()
        if skip:
            checks.append(CheckResult(name, "skipped", 0.0, skip))
        else:
            try:
                checks.append(CheckResult(name, "passed", 0.0, run()))
            except CheckFailed as failure:
                checks.append(CheckResult(name, "failed", 0.0, str(failure)))
            except Exception as error:                      # a crash is a failure too, with its cause
                checks.append(CheckResult(name, "failed", 0.0, f"{type(error).__name__}: {error} | "
                                          + traceback.format_exc(limit=3).replace("\n", " ")))
        checks[-1].seconds = time.time() - began
        result = checks[-1]
        log(f"[gpu-check] {result.name}: {result.status} ({result.seconds:.1f} s) {result.detail}")

    no_cuda = None if on_cuda else "CUDA is not available"
    attempt("cpu_cuda_parity", lambda: cpu_cuda_parity(names, device), skip=no_cuda)
    attempt("batch_invariance", lambda: batch_invariance(names, device))
    dtypes = ("bf16", "fp16") if on_cuda else ("bf16",)
    attempt("autocast_train_step", lambda: autocast_train_step(names, device, dtypes))
    attempt("ddp_step", lambda: ddp_step(names, device))
    bench = {"rows": [], "train_rows": [], "memory_rows": [], "skipped": []}
    skip_bench = no_cuda and f"{no_cuda} (the CPU benchmark is `make bench`)" or (
        None if run_benchmark else "not asked for (--no-benchmark)")

    def run_bench() -> str:
        bench.update(benchmark(names, device, start + budget_s, log))
        rows = len(bench["rows"]) + len(bench["train_rows"]) + len(bench["memory_rows"])
        return f"{rows} rows" + (f"; skipped for time: {', '.join(bench['skipped'])}" if bench["skipped"] else "")

    attempt("benchmark", run_bench, skip=skip_bench)
    from experiments.benchmark import environment, load_average

    meta = {"cuda": on_cuda, "device": str(device), "models": list(names), "elapsed_s": time.time() - start,
            "environment": environment(str(device)), "loadavg": {"after": load_average()}, "budget_s": budget_s,
            "command": command}
    return {"meta": meta, "checks": [asdict(check) for check in checks], "rows": bench["rows"],
            "train_rows": bench["train_rows"], "memory_rows": bench["memory_rows"]}


def write_report(path: str, report: dict) -> None:
    from experiments.benchmark import write_json

    sections = {key: report[key] for key in ("checks", "train_rows", "memory_rows")}
    write_json(path, report["rows"], report["meta"], **sections)


def failed(report: dict) -> List[str]:
    return [check["name"] for check in report["checks"] if check["status"] == "failed"]


def default_json(cuda: bool) -> str:
    """docs/bench/gpu_check.json on a CUDA machine; the CPU half writes outside the docs."""
    return os.path.join("docs", "bench", "gpu_check.json") if cuda else os.path.join("cache", "gpu_check_cpu.json")
