"""Training speed and memory, without and with ATS at the same fixed budget.

What it measures, for every model config (the pair `experiments.benchmark.build_pair` builds:
random weights, the same weights with ATS):

- **a training step**: forward, cross-entropy loss, backward, SGD step (momentum 0.9, the
  toolkit's parameter groups), gradients freed; with autocast (AMP) in ``dtype`` when it is
  not fp32 (bf16 by default on CUDA, where fp16 adds a GradScaler), fp32 otherwise. Both
  models are timed in turns, one step of each per round, after warm-up; median step time,
  clips/s = batch / median. GFLOPs ratio (forward, closed form), speedup and efficiency as
  for inference (speedup / GFLOPs ratio);
- **peak memory of a step**: the most bytes torch's allocator holds at once during one
  untimed step, started with the gradients freed, beyond what it held before (CUDA:
  ``torch.cuda.max_memory_allocated``; CPU: the profiler's allocation events,
  `experiments.benchmark.PeakMemory`). It holds the activations and the gradients. **State**: the
  weights and the optimizer's buffers (momentum), counted from their tensors. **Total** =
  state + peak, what a device must hold;
- **the largest training batch within a memory limit** (8 GB by default): total memory
  measured at increasing batch sizes, each next size extrapolated linearly from the ones
  measured, until a size that fits and the next one that does not are both measured;
- **inference memory** at given batch sizes (one untimed forward each, after a warm-up one).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from experiments.benchmark import DTYPES, BenchmarkSpec, PeakMemory, autocast_context, build_pair, time_in_rounds
from video_ats.engine.optim import build_optimizer
from video_ats.flops import gflops_from_stats, model_gflops
from video_ats.models.linear_kernels import linear_options


@dataclass
class TrainSpec:
    """The training part of a benchmark run (tools/benchmark.py --train / --memory)."""

    batch_size: int = 2                     # the timed step's batch
    dtype: Optional[str] = None             # autocast dtype; None: bf16 on CUDA, fp32 on CPU
    warmup: int = 1
    rounds: int = 3
    memory_batch_sizes: Sequence[int] = (1, 8, 32)     # inference memory
    memory_limit_gb: float = 8.0            # training: the largest batch whose total fits this
    max_measurements: int = 8               # training steps the batch search may measure

    def resolved_dtype(self, device: torch.device) -> str:
        if self.dtype is not None:
            return self.dtype
        return "bf16" if device.type == "cuda" else "fp32"


def default_train_dtypes(device: torch.device, isa: Sequence[str]) -> List[str]:
    """The training step's dtypes when none is asked for: bf16 autocast on CUDA; on the CPU
    fp32 (comparable with the fp32 inference rows on every host), then bf16 autocast too where
    the CPU has bf16 arithmetic (``isa``, `experiments.benchmark.cpu_isa`, lists AVX-512
    BF16 or AMX-BF16): mixed precision is what a user of such a
    host would train in."""
    if device.type == "cuda":
        return ["bf16"]
    return ["fp32", "bf16"] if {"avx512_bf16", "amx_bf16"} & set(isa) else ["fp32"]


@dataclass
class TrainRow:
    """One timed training step configuration."""

    model: str
    variant: str                    # "no ATS" or "ATS topk ratio 0.73"
    batch_size: int
    device: str
    dtype: str                      # "fp32", or the autocast dtype
    compiled: bool
    step_s: float                   # median over the timed rounds
    clips_per_s: float
    peak_memory_mb: Optional[float]     # activations + gradients + workspaces of one step
    state_memory_mb: float              # weights + optimizer buffers
    gflops_per_clip: float              # forward, closed form, mean over the batch
    ats: Optional[dict] = None
    kept_per_stage: Optional[List[float]] = None
    gflops_ratio: Optional[float] = None
    speedup: Optional[float] = None
    efficiency: Optional[float] = None
    rounds_s: List[float] = field(default_factory=list)
    rss_peak_memory_mb: Optional[float] = None          # CPU: the resident-set rise, for reference (PeakMemory)


@dataclass
class MemoryRow:
    """Peak memory of one forward (inference) or one training step at one batch size."""

    model: str
    variant: str
    mode: str                       # "inference" or "train"
    batch_size: int
    device: str
    dtype: str
    peak_memory_mb: Optional[float]     # the rise during the call (see the module docstring)
    state_memory_mb: float              # weights (inference); weights + optimizer buffers (train)
    total_memory_mb: Optional[float]    # state + peak
    fits_limit: Optional[bool] = None   # train: total <= the limit
    largest_within_limit: bool = False  # train: the search's answer (this batch fits, the next does not)


def tensor_mb(tensors) -> float:
    """Size of the tensors in MiB (each storage counted once)."""
    seen, total = set(), 0
    for tensor in tensors:
        key = tensor.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += tensor.untyped_storage().nbytes()
    return total / 2 ** 20


def state_mb(model: nn.Module, optimizer: Optional[torch.optim.Optimizer] = None) -> float:
    """Weights (and buffers) of ``model`` plus the tensors the optimizer keeps, in MiB."""
    tensors = list(model.parameters()) + list(model.buffers())
    if optimizer is not None:
        tensors += [value for state in optimizer.state.values() for value in state.values()
                    if isinstance(value, Tensor) and value.numel() > 1]
    return tensor_mb(tensors)


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """SGD as the toolkit fine-tunes (momentum 0.9, decay-free norms / biases / embeddings)."""
    return build_optimizer(model, base_lr=1e-3, momentum=0.9, weight_decay=1e-4, nesterov=False)


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, video: Tensor, labels: Tensor,
                  device: torch.device, dtype: torch.dtype) -> Callable[[], Tensor]:
    """A callable running one full step: forward + loss under autocast (unless fp32),
    backward (fp16: scaled), optimizer step, gradients freed. Returns the loss."""
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None

    def run() -> Tensor:
        with autocast_context(device, dtype):
            loss = F.cross_entropy(model(video), labels)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return run


def _batch(model: nn.Module, batch_size: int, device: torch.device, seed: int) -> Tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed + batch_size)
    video = torch.randn(batch_size, 3, model.num_frames, model.img_size, model.img_size, generator=generator)
    labels = torch.randint(0, model.num_classes, (batch_size,), generator=generator)
    return video.to(device), labels.to(device)


def training_pair(cfg, spec: BenchmarkSpec) -> tuple:
    """`build_pair`'s two models in training mode, each with its optimizer.

    Returns:
        ({variant: model}, {variant: optimizer}, the ATS options, the ATS variant's name);
        variants "no ATS" and the ATS one.
    """
    plain, with_ats, ats, variant = build_pair(cfg, spec)
    models = {"no ATS": plain.train(), variant: with_ats.train()}
    optimizers = {key: make_optimizer(model) for key, model in models.items()}
    return models, optimizers, ats, variant


def benchmark_training(cfg, spec: BenchmarkSpec, train: TrainSpec, log: Callable[[str], None] = print,
                       pair: Optional[tuple] = None) -> Tuple[List[TrainRow], Dict[str, float]]:
    """Time a training step without and with ATS at ``train.batch_size``.

    Args:
        pair: a `training_pair` to use (and leave trained); None builds one.
    Returns:
        (the two rows, {variant: total memory of the timed batch's step in MiB}; the batch
        search starts from these).
    """
    device = torch.device(spec.device)
    dtype_name = train.resolved_dtype(device)
    dtype = DTYPES[dtype_name]
    models, optimizers, ats, variant = pair or training_pair(cfg, spec)
    video, labels = _batch(models["no ATS"], train.batch_size, device, spec.seed)
    runners = {key: torch.compile(model, dynamic=key != "no ATS") if spec.compile else model
               for key, model in models.items()}
    candidates = {key: training_step(runners[key], optimizers[key], video, labels, device, dtype)
                  for key in models}
    memory = {key: PeakMemory(device) for key in models}
    log(f"[benchmark] {cfg.MODEL.NAME} training step, batch {train.batch_size} {dtype_name}: "
        f"{train.warmup} warm-up + {train.rounds} rounds of {list(candidates)}")
    with linear_options(kernel=spec.linear_kernel):
        times = time_in_rounds(candidates, device, train.warmup, train.rounds, memory)
    full = model_gflops(models["no ATS"])
    with_ats = models[variant]
    per_clip = gflops_from_stats(with_ats, with_ats.ats_stats, train.batch_size).double().cpu()
    kept = [stage["kept"].double().mean().item() for stage in with_ats.ats_stats]
    base = train.batch_size / statistics.median(times["no ATS"])
    rows, totals = [], {}
    for key in models:
        step = statistics.median(times[key])
        state = state_mb(models[key], optimizers[key])
        gflops = per_clip.mean().item() if key == variant else full
        row = TrainRow(model=cfg.MODEL.NAME, variant=key, batch_size=train.batch_size, device=str(device),
                       dtype=dtype_name, compiled=spec.compile, step_s=step, clips_per_s=train.batch_size / step,
                       peak_memory_mb=memory[key].peak_mb, state_memory_mb=state, gflops_per_clip=gflops,
                       rounds_s=list(times[key]), rss_peak_memory_mb=memory[key].rss_peak_mb)
        if key == variant:
            row.ats, row.kept_per_stage = dict(ats), kept
            row.gflops_ratio = full / gflops
            row.speedup = row.clips_per_s / base
            row.efficiency = row.speedup / row.gflops_ratio
        if memory[key].peak_mb is not None:
            totals[key] = state + memory[key].peak_mb
        rows.append(row)
        log(f"[benchmark]   {key:>28}: {step:8.3f} s/step  {row.clips_per_s:7.3f} clips/s  "
            f"peak {_mb(row.peak_memory_mb)} + state {state:.0f} MB"
            + (f"  speedup {row.speedup:.3f}  efficiency {row.efficiency:.3f}" if row.speedup else ""))
    return rows, totals


def _mb(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.0f}"


def largest_batch_within(measure: Callable[[int], Optional[float]], limit_mb: float, state: float,
                         known: Optional[Dict[int, float]] = None, max_measurements: int = 8,
                         max_batch: int = 4096) -> Tuple[Optional[int], Dict[int, Optional[float]]]:
    """The largest batch size whose measured total memory is at most ``limit_mb``.

    Total memory grows about linearly with the batch (state + batch x per clip), so each next
    size is extrapolated from the measurements so far (one point: the line through ``state``
    at batch 0; more: the line through the two largest), until the largest size that fits and
    the smallest that does not are neighbours. A guess at or below the largest size that fits
    becomes that size + 1; one at or above the smallest that does not (the line is off, e.g.
    after an out-of-memory) becomes the midpoint between the two.

    Args:
        measure: batch size -> total MiB; ``float("inf")`` for out of memory, None when the
            device's memory cannot be measured (the search then stops undecided).
        state: MiB that do not grow with the batch (weights, optimizer buffers).
        known: measurements already made {batch: MiB}.
    Returns:
        (the largest batch that fits, or None when undecided or nothing fits; every measurement).
    """
    measured: Dict[int, Optional[float]] = dict(known or {})
    if not measured:
        measured[1] = measure(1)
    for _ in range(max_measurements + 1):
        if any(mb is None for mb in measured.values()):
            return None, measured                     # this device's memory cannot be measured
        fits = [b for b, mb in measured.items() if mb is not None and mb <= limit_mb]
        over = [b for b, mb in measured.items() if mb > limit_mb]
        low = max(fits, default=0)
        high = min([b for b in over if b > low], default=max_batch + 1)
        if high == low + 1:
            return (low or None), measured
        if len(measured) - len(known or {}) >= max_measurements:
            break
        guess = _extrapolate(measured, limit_mb, state)
        if guess <= low:                              # the line says `low` is the answer: check low + 1
            guess = low + 1
        elif guess >= high:                           # the line is off (e.g. out of memory): bisect
            guess = (low + high) // 2 if high <= max_batch else min(guess, max_batch)
        measured[guess] = measure(guess)
    return None, measured


def _extrapolate(measured: Dict[int, Optional[float]], limit_mb: float, state: float) -> int:
    points = sorted((b, mb) for b, mb in measured.items() if mb is not None and mb != float("inf"))
    if not points:
        return 1
    if len(points) == 1:
        (b1, m1), (b0, m0) = points[0], (0, state)
    else:
        (b0, m0), (b1, m1) = points[-2], points[-1]
    slope = (m1 - m0) / (b1 - b0)
    if slope <= 0:
        return b1 + 1
    return int((limit_mb - m1) // slope) + b1


def memory_config(cfg, spec: BenchmarkSpec, train: TrainSpec, timed: Optional[Dict[Tuple[str, str, int], float]] = None,
                  train_totals: Optional[Dict[str, float]] = None, log: Callable[[str], None] = print,
                  pair: Optional[tuple] = None) -> List[MemoryRow]:
    """Inference memory at ``train.memory_batch_sizes`` and the largest training batch within
    ``train.memory_limit_gb``, without and with ATS.

    Args:
        timed: (mode, variant, batch) -> peak MiB already measured by the timed runs of this
            process (the same method: one untimed call after warm-up); not measured again.
        train_totals: {variant: total MiB} of the timed training batch (``train.batch_size``).
        pair: the `training_pair` that ran those steps (its optimizers hold their momentum
            already); None builds one.
    """
    device = torch.device(spec.device)
    timed = timed or {}
    rows: List[MemoryRow] = []
    if pair is not None:
        models = dict(pair[0])
    else:
        plain, with_ats, _, variant = build_pair(cfg, spec)
        models = {"no ATS": plain, variant: with_ats}
    dtype_name = spec.dtypes[0]
    dtype = DTYPES[dtype_name]
    for key, model in models.items():
        training = model.training
        model.eval()
        weights = state_mb(model)
        with torch.inference_mode(), autocast_context(device, dtype), linear_options(kernel=spec.linear_kernel):
            model(_batch(model, 1, device, spec.seed)[0])                 # trials and prepacking done
            for batch_size in train.memory_batch_sizes:
                peak = timed.get(("inference", key, batch_size))
                if peak is None:
                    meter = PeakMemory(device)
                    video = _batch(model, batch_size, device, spec.seed)[0]
                    with meter.measure():
                        model(video)
                    del video
                    peak = meter.peak_mb
                rows.append(MemoryRow(model=cfg.MODEL.NAME, variant=key, mode="inference", batch_size=batch_size,
                                      device=str(device), dtype=dtype_name, peak_memory_mb=peak,
                                      state_memory_mb=weights,
                                      total_memory_mb=None if peak is None else weights + peak))
                log(f"[benchmark]   memory {key:>22} inference batch {batch_size:3d}: peak {_mb(peak)} MB")
        model.train(training)
    del models
    rows.extend(_training_memory(cfg, spec, train, train_totals or {}, log, pair))
    return rows


def _training_memory(cfg, spec: BenchmarkSpec, train: TrainSpec, train_totals: Dict[str, float],
                     log: Callable[[str], None], pair: Optional[tuple]) -> List[MemoryRow]:
    device = torch.device(spec.device)
    dtype_name = train.resolved_dtype(device)
    dtype = DTYPES[dtype_name]
    limit = train.memory_limit_gb * 1024
    models, optimizers, _, _ = pair or training_pair(cfg, spec)
    rows = []
    for key, model in models.items():
        optimizer = optimizers[key]
        if not optimizer.state:                                   # the momentum buffers exist before measuring
            training_step(model, optimizer, *_batch(model, 1, device, spec.seed), device, dtype)()
        state = state_mb(model, optimizer)
        peaks: Dict[int, Optional[float]] = {}

        def measure(batch_size: int) -> Optional[float]:
            meter = PeakMemory(device)
            video, labels = _batch(model, batch_size, device, spec.seed)
            step = training_step(model, optimizer, video, labels, device, dtype)
            try:
                with linear_options(kernel=spec.linear_kernel), meter.measure():
                    step()
            except torch.OutOfMemoryError:
                optimizer.zero_grad(set_to_none=True)
                peaks[batch_size] = None
                log(f"[benchmark]   memory {key:>22} train batch {batch_size:3d}: out of memory")
                return float("inf")
            peaks[batch_size] = meter.peak_mb
            total = None if meter.peak_mb is None else state + meter.peak_mb
            log(f"[benchmark]   memory {key:>22} train batch {batch_size:3d}: peak {_mb(meter.peak_mb)} + state "
                f"{state:.0f} = {_mb(total)} MB")
            return total

        known = {train.batch_size: train_totals[key]} if key in train_totals else None
        if known:
            peaks[train.batch_size] = train_totals[key] - state
        largest, measured = largest_batch_within(measure, limit, state, known, train.max_measurements)
        for batch_size in sorted(measured):
            total = measured[batch_size]
            rows.append(MemoryRow(model=cfg.MODEL.NAME, variant=key, mode="train", batch_size=batch_size,
                                  device=str(device), dtype=dtype_name, peak_memory_mb=peaks.get(batch_size),
                                  state_memory_mb=state,
                                  total_memory_mb=None if total in (None, float("inf")) else total,
                                  fits_limit=None if total is None else total <= limit,
                                  largest_within_limit=batch_size == largest))
    return rows
