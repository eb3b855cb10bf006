"""Model speed: clips/s, latency and peak memory, without and with ATS, side by side.

What one benchmark run measures, for every model and batch size:

- the model without ATS, the same weights with ATS, and (when mmaction2 is installed and the
  model is a TimeSformer) mmaction2's TimeSformer of the same size, timed in turns: one
  forward of each per round, so that a noisy machine slows all of them alike; latency is the
  median over the rounds after warm-up; clips/s = batch size / median latency;
- a matmul reference: the linear layers of one block as bare matmuls (F.linear) on as many
  rows as the forward has tokens, timed in the same rounds; its multiply-adds per second are
  what this machine's GEMM reaches at that size and dtype;
- GFLOPs per clip in closed form (`video_ats.flops`; fvcore convention, mean over the batch);
  GFLOPs ratio = no-ATS GFLOPs / ATS GFLOPs, speedup = ATS clips/s / no-ATS clips/s,
  efficiency = speedup / GFLOPs ratio (1.0: every saved FLOP turned into time);
- peak memory: the most bytes torch's allocator holds at once during the forward beyond what
  it held before (activations and buffers; weights excluded): on CUDA
  ``torch.cuda.max_memory_allocated``, on CPU from the profiler's allocation events
  (`PeakMemory`).

The ATS side is a fixed budget by default: ``topk`` keeps exactly round(ratio x N) positions
per stage, whatever the weights, so the token count (and the GFLOPs) is the same for random
weights as for a trained checkpoint. ``ratio_for_saving`` picks the ratio for a GFLOPs saving.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import glob
import json
import logging
import os
import platform
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import DeviceType

from video_ats.ats import token_budget
from video_ats.config import ats_options, build_model_from_cfg
from video_ats.flops import gflops_from_stats, model_gflops
from video_ats.models import build_model
from video_ats.models.linear_kernels import KERNELS, linear_options, onednn_available, record_kernels
from video_ats.models.timesformer import TimeSformer

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Row:
    """One timed configuration (the JSON rows of tools/benchmark.py)."""

    model: str                      # preset name
    implementation: str             # "video_ats" or "mmaction2"
    variant: str                    # "no ATS", "ATS topk ratio 0.72", "mmaction2"
    batch_size: int
    device: str
    dtype: str
    compiled: bool
    latency_s: float                # median over the timed rounds
    clips_per_s: float
    peak_memory_mb: Optional[float]
    gflops_per_clip: float          # closed form, mean over the batch
    achieved_gmacs_per_s: float     # gflops_per_clip x clips_per_s
    matmul_gmacs_per_s: float       # the matmul reference of the same size, same rounds (best library)
    matmul_fraction: float          # achieved / matmul reference
    ats: Optional[dict] = None
    kept_per_stage: Optional[List[float]] = None       # mean positions kept per ATS stage
    clip_gflops: Optional[List[float]] = None          # ATS rows: GFLOPs of each clip of the batch
    gflops_ratio: Optional[float] = None                # no-ATS GFLOPs / this row's GFLOPs
    speedup: Optional[float] = None                     # this row's clips/s / no-ATS clips/s
    efficiency: Optional[float] = None                  # speedup / gflops_ratio
    vs_mmaction: Optional[float] = None                 # no-ATS row: clips/s / mmaction2's clips/s
    rounds_s: List[float] = field(default_factory=list)
    matmul_gmacs_by_library: Dict[str, float] = field(default_factory=dict)
    linear_kernel: Optional[str] = None                 # the kernel option our rows ran with
    matmul_rows: Optional[int] = None                   # rows of the matmul reference (B x T x (1 + P))
    linear_paths: Optional[Dict[str, Dict[str, int]]] = None   # layer -> {path: calls} in one forward
    rss_peak_memory_mb: Optional[float] = None          # CPU: the resident-set rise, for reference (PeakMemory)


# ---------------------------------------------------------------------------------------------
# Choosing the budget


def fixed_budget_widths(model: nn.Module, blocks: Sequence[int], ratio: float, min_tokens: int = 8) -> List[dict]:
    """The ``ats_stats`` a ``topk`` model at ``ratio`` would record (one clip): kept per stage."""
    positions = torch.tensor([model.patch_embed.num_patches])
    stats = []
    for block in sorted(blocks):
        positions = token_budget(positions, ratio, None, min_tokens)
        stats.append({"block": block, "kept": positions.clone()})
    return stats


def ratio_for_saving(model: nn.Module, saving: float, blocks: Optional[Sequence[int]] = None,
                     min_tokens: int = 8) -> float:
    """The fixed-budget ratio (0.01 steps) whose GFLOPs saving is closest to ``saving``.

    Args:
        model: the backbone (its ATS blocks are used unless ``blocks`` is given).
        saving: wanted fraction of GFLOPs removed, e.g. 0.4.
    """
    blocks = tuple(blocks) if blocks is not None else model.ats_blocks() or _default_blocks(model)
    full = model_gflops(model)
    best, best_error = 1.0, float("inf")
    for step in range(5, 101):
        ratio = step / 100
        stats = fixed_budget_widths(model, blocks, ratio, min_tokens)
        cost = float(_gflops_with(model, stats, "topk"))
        error = abs((1 - cost / full) - saving)
        if error < best_error:
            best, best_error = ratio, error
    return best


def _default_blocks(model: nn.Module) -> tuple:
    return tuple(b for b in model.default_ats_blocks if b < len(model.blocks))


def _gflops_with(model: nn.Module, stats: List[dict], sampler: str) -> float:
    """Closed-form GFLOPs of one clip with these kept counts, as a model with ``sampler`` runs."""
    from video_ats.ats import ATSOptions

    original = getattr(model, "ats", None)
    model.ats = ATSOptions(blocks=tuple(s["block"] for s in stats), sampler=sampler)
    try:
        return float(gflops_from_stats(model, stats, 1)[0])
    finally:
        model.ats = original


# ---------------------------------------------------------------------------------------------
# Timing and memory


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory of one call: the most bytes torch's allocator held at once beyond what it
    held before the call.

    On CUDA ``torch.cuda.max_memory_allocated``. On CPU the same quantity from the profiler's
    allocation events (``profile_memory``: every allocation and free of torch's CPU allocator,
    with its size and time; their running sum's maximum), which depends only on the program,
    not on the C library's heap or the host: the resident-set rise it replaced (VmHWM over
    VmRSS) moved by 2.5x between runs of the same forward as glibc kept or returned freed
    heap. Like CUDA's figure it leaves out what libraries allocate on their own (MKL and
    oneDNN workspaces). ``rss_peak_mb`` keeps that resident-set rise too, where Linux
    exposes it, for reference.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.what = ("torch.cuda.max_memory_allocated" if device.type == "cuda" else
                     "torch CPU allocator peak (profiler memory events)")
        self.peak_mb: Optional[float] = None
        self.rss_peak_mb: Optional[float] = None

    @contextlib.contextmanager
    def measure(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            before = torch.cuda.memory_allocated(self.device)
            yield
            torch.cuda.synchronize(self.device)
            self._record(torch.cuda.max_memory_allocated(self.device) - before)
            return
        rss = _can_reset_hwm()
        if rss:
            gc.collect()
            _malloc_trim()
            _reset_hwm()
            before = _status_kb("VmRSS")
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as profile:
            yield
        if rss:
            rise = (_status_kb("VmHWM") - before) / 1024
            self.rss_peak_mb = rise if self.rss_peak_mb is None else max(self.rss_peak_mb, rise)
        self._record(allocation_peak(profile.profiler.kineto_results.events()))

    def _record(self, peak_bytes: int) -> None:
        peak_mb = peak_bytes / 2 ** 20
        self.peak_mb = peak_mb if self.peak_mb is None else max(self.peak_mb, peak_mb)


def allocation_peak(events) -> int:
    """The maximum of the running sum of the profiler's CPU allocation events (bytes; frees are
    negative) in time order: the most bytes held at once beyond those held before profiling
    started (frees of older blocks are not reported). At equal times allocations count first."""
    changes = sorted((event.start_ns(), -event.nbytes(), event.nbytes()) for event in events
                     if event.name() == "[memory]" and event.device_type() == DeviceType.CPU)
    live = peak = 0
    for _, _, change in changes:
        live += change
        peak = max(peak, live)
    return peak


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _reset_hwm() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _can_reset_hwm() -> bool:
    try:
        _status_kb("VmHWM")
        _reset_hwm()
        return True
    except (OSError, KeyError):
        return False


def _malloc_trim() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def time_in_rounds(candidates: Dict[str, Callable[[], object]], device: torch.device, warmup: int, rounds: int,
                   memory: Optional[Dict[str, PeakMemory]] = None,
                   paths: Optional[Dict[str, dict]] = None) -> Dict[str, List[float]]:
    """Wall time of each candidate, one call of each per round, after ``warmup`` rounds.

    Peak memory is measured in one more, untimed round after the timed ones: the CPU meter
    hands freed heap back to the system first, which a timed call must not pay for, and by
    then one-time work (e.g. prepacking weights, the linear-kernel trials) is done. That
    round also fills ``paths`` (when given): candidate -> {layer: {kernel path: calls}}.

    Returns:
        name -> the seconds of each timed round.
    """
    for _ in range(warmup):
        for run in candidates.values():
            run()
    _sync(device)
    times: Dict[str, List[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, run in candidates.items():
            _sync(device)
            start = time.perf_counter()
            run()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    for name, meter in (memory or {}).items():
        with meter.measure(), record_kernels() as record:
            candidates[name]()
        if paths is not None:
            paths[name] = record
    return times


def matmul_reference(model: nn.Module, tokens: int, device: torch.device, dtype: torch.dtype) -> tuple:
    """The linear layers of one block as bare matmuls (no bias) on ``tokens`` rows.

    Returns:
        ({library: a callable running them once}, the multiply-adds of one call). On CPU fp32
        both GEMM libraries torch ships are timed: ``default`` (F.linear, MKL on x86) and
        ``onednn`` (what the model's fast path calls); the faster one is the reference.
    """
    layers = [m for m in model.blocks[0].modules() if isinstance(m, nn.Linear)]
    generator = torch.Generator(device="cpu").manual_seed(0)
    inputs = {}
    weights = []
    for layer in layers:
        if layer.in_features not in inputs:
            inputs[layer.in_features] = torch.randn(tokens, layer.in_features, generator=generator).to(device, dtype)
        weights.append(torch.randn(layer.out_features, layer.in_features, generator=generator).to(device, dtype) * 0.02)
    macs = sum(tokens * w.shape[0] * w.shape[1] for w in weights)

    def default():
        with torch.inference_mode():
            for w in weights:
                F.linear(inputs[w.shape[1]], w)

    runs = {"default": default}
    if device.type == "cpu" and dtype == torch.float32 and onednn_available():
        def onednn():
            with torch.inference_mode():
                for w in weights:
                    torch.ops.mkldnn._linear_pointwise(inputs[w.shape[1]], w, None, "none", [], "")
        runs["onednn"] = onednn
    return runs, macs


def tokens_per_forward(model: nn.Module, batch_size: int) -> int:
    """Rows a full-width linear layer sees in one forward: B x T x (1 + P)."""
    return batch_size * model.num_frames * (1 + model.patch_embed.num_patches)


# ---------------------------------------------------------------------------------------------
# mmaction2


def mmaction_timesformer(model: nn.Module) -> tuple:
    """mmaction2's TimeSformer (divided space-time) + TimeSformerHead of ``model``'s size.

    Returns:
        (module taking (B, 3, T, H, W) and returning logits, None), or (None, why not).
    """
    if not isinstance(model, TimeSformer):
        return None, "mmaction2 has no XViT"
    try:
        with warnings.catch_warnings():          # mmcv-lite warns that it lacks its CUDA ops
            warnings.simplefilter("ignore")
            from mmaction.models.backbones import TimeSformer as MMTimeSformer
            from mmaction.models.heads import TimeSformerHead
            from mmaction.utils import register_all_modules
    except Exception as error:                                   # not installed, or broken
        return None, f"mmaction2 not importable ({type(error).__name__}: {error})"
    register_all_modules()
    logging.getLogger("mmengine").setLevel(logging.WARNING)
    first = model.blocks[0]
    backbone = MMTimeSformer(num_frames=model.num_frames, img_size=model.img_size, patch_size=model.patch_size,
                             embed_dims=model.embed_dim, num_heads=first.attn.num_heads,
                             num_transformer_layers=model.depth, attention_type="divided_space_time")
    backbone.init_weights()
    head = TimeSformerHead(num_classes=model.num_classes, in_channels=model.embed_dim)
    return nn.Sequential(backbone, head).eval(), None


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class BenchmarkSpec:
    """What to time (tools/benchmark.py fills this from its arguments)."""

    batch_sizes: Sequence[int] = (1, 8)
    ratio: Optional[float] = None           # fixed-budget ratio; None with saving=None: the cfg's ATS
    saving: Optional[float] = None          # pick the fixed-budget ratio for this GFLOPs saving
    sampler: str = "topk"
    warmup: int = 1
    rounds: int = 3
    device: str = "cpu"
    dtypes: Sequence[str] = ("fp32",)
    compile: bool = False
    mmaction: bool = True
    seed: int = 0
    # Make the kept counts differ within a batch, as trained models on real clips do: scale
    # the q and k projections (random weights attend almost uniformly, so every clip keeps the
    # same count) and feed synthetic clips of very different content. ATS is then timed twice,
    # with the row-wise layers on the padded batch and on the packed valid rows.
    adaptive: bool = False
    sharpen: float = 4.0
    # The CPU linear-layer path of our models (video_ats.models.linear_kernels): "auto" picks
    # per shape by a timed trial; with compare_kernels, the model without ATS is also timed
    # with each path forced, as extra rows in the same rounds.
    linear_kernel: str = "auto"
    compare_kernels: bool = False


def benchmark_config(cfg, spec: BenchmarkSpec, log: Callable[[str], None] = print) -> List[Row]:
    """Time one model config without and with ATS at every batch size and dtype of ``spec``."""
    device = torch.device(spec.device)
    plain, with_ats, ats, variant = build_pair(cfg, spec)
    reference = None
    if spec.mmaction and not spec.adaptive:
        reference, why_not = mmaction_timesformer(plain)
        if reference is None:
            log(f"[benchmark] {cfg.MODEL.NAME}: no mmaction2 comparison: {why_not}")
        else:
            reference.to(device)
    name = cfg.MODEL.NAME
    rows: List[Row] = []
    for dtype_name in spec.dtypes:
        dtype = DTYPES[dtype_name]
        for batch_size in spec.batch_sizes:
            rows.extend(_benchmark_batch(name, plain, with_ats, reference, ats, variant, batch_size, device,
                                         dtype_name, dtype, spec, log))
    return rows


def build_pair(cfg, spec: BenchmarkSpec) -> tuple:
    """The config's model without ATS and the same weights with the benchmark's ATS, in eval
    mode on ``spec.device``.

    Returns:
        (plain, with_ats, the ATS options dict, the ATS variant's name).
    """
    device = torch.device(spec.device)
    if spec.linear_kernel not in KERNELS:
        raise ValueError(f"unknown linear kernel {spec.linear_kernel!r}; valid kernels are {list(KERNELS)}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda given but CUDA is not available")
    torch.manual_seed(spec.seed)
    plain_cfg = cfg.clone()
    plain_cfg.defrost()
    plain_cfg.ATS.ENABLE = False
    plain = build_model_from_cfg(plain_cfg).eval()
    if spec.adaptive:
        sharpen_attention(plain, spec.sharpen)
    ats = _ats_for_benchmark(cfg, plain, spec)
    with_ats = build_model(cfg.MODEL.NAME, num_classes=cfg.MODEL.NUM_CLASSES, ats=ats,
                           **_overrides(cfg)).eval()
    with_ats.load_state_dict(plain.state_dict())
    plain.to(device)
    with_ats.to(device)
    variant = f"ATS {ats['sampler']} ratio {ats['ratio']:g}" if "ratio" in ats else f"ATS {ats}"
    if ats.get("grid", "midpoint") != "midpoint":
        variant += f" ({ats['grid']} grid)"
    return plain, with_ats, ats, variant


def _overrides(cfg) -> dict:
    from video_ats.config import model_overrides

    return model_overrides(cfg)


def _ats_for_benchmark(cfg, plain: nn.Module, spec: BenchmarkSpec) -> dict:
    if spec.ratio is None and spec.saving is None:
        options = ats_options(cfg)
        if options is None:
            raise ValueError(f"{cfg.MODEL.NAME}: give --ratio or --saving (fixed budget), or a config with "
                             "ATS.ENABLE True")
        return options
    blocks = [int(b) for b in cfg.ATS.BLOCKS] or list(_default_blocks(plain))
    ratio = spec.ratio if spec.ratio is not None else ratio_for_saving(plain, spec.saving, blocks,
                                                                       int(cfg.ATS.MIN_TOKENS))
    return dict(blocks=blocks, ratio=float(ratio), min_tokens=int(cfg.ATS.MIN_TOKENS), sampler=spec.sampler,
                scope=cfg.ATS.SCOPE, score=cfg.ATS.SCORE, grid=cfg.ATS.GRID)


def autocast_context(device: torch.device, dtype: torch.dtype):
    """Autocast to ``dtype`` on ``device``; nothing for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def sharpen_attention(model: nn.Module, factor: float) -> None:
    """Scale the q and k projections of every block by ``factor`` (attention logits by factor^2)."""
    with torch.no_grad():
        for block in model.blocks:
            dim = block.attn.qkv.in_features
            block.attn.qkv.weight[: 2 * dim] *= factor
            if block.attn.qkv.bias is not None:
                block.attn.qkv.bias[: 2 * dim] *= factor


def varied_clips(batch_size: int, frames: int, size: int, seed: int = 0) -> Tensor:
    """(B, 3, T, H, W) synthetic clips of very different content, cycling through noise, a bright
    square on black, a diagonal ramp and horizontal stripes (every other one mirrored)."""
    generator = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    clips = []
    for index in range(batch_size):
        kind = index % 4
        if kind == 0:
            clip = torch.randn(3, frames, size, size, generator=generator)
        elif kind == 1:
            clip = torch.zeros(3, frames, size, size)
            clip[..., size // 3: size // 3 + size // 4, size // 3: size // 3 + size // 4] = 3.0
        elif kind == 2:
            clip = (yy + xx).expand(3, frames, size, size).clone()
        else:
            clip = torch.zeros(3, frames, size, size)
            clip[..., ::8, :] = 2.0
            clip = clip + 0.1 * torch.randn(clip.shape, generator=generator)
        clips.append(clip.flip(-1) if (index // 4) % 2 else clip)
    return torch.stack(clips)


def _benchmark_batch(name, plain, with_ats, reference, ats, variant, batch_size, device, dtype_name, dtype,
                     spec: BenchmarkSpec, log) -> List[Row]:
    generator = torch.Generator().manual_seed(spec.seed + batch_size)
    if spec.adaptive:
        video = varied_clips(batch_size, plain.num_frames, plain.img_size, spec.seed)
    else:
        video = torch.randn(batch_size, 3, plain.num_frames, plain.img_size, plain.img_size, generator=generator)
    video = video.to(device)
    runners = {"no ATS": plain}
    # variant name -> the padding share from which the row-wise layers run packed (None: default)
    packing = {f"{variant}, padded": 1.0, f"{variant}, packed": with_ats.pack_min_padding} \
        if spec.adaptive else {variant: None}
    runners.update({key: with_ats for key in packing})
    # variant name -> the linear kernel forced on it (others: spec.linear_kernel)
    forced = {f"no ATS, {kernel} path": kernel for kernel in KERNELS[1:]} if spec.compare_kernels else {}
    runners.update({key: plain for key in forced})
    if reference is not None:
        runners["mmaction2"] = reference
    models = dict(runners)                       # the modules themselves, whose options a run sets
    if spec.compile:
        # ATS changes the token count per batch: compile with dynamic shapes.
        runners = {key: torch.compile(module, dynamic=key != "no ATS") for key, module in runners.items()}

    def forward(module, model, pack_min_padding=None, kernel=spec.linear_kernel):
        def run():
            default = getattr(model, "pack_min_padding", None)
            if pack_min_padding is not None:
                model.pack_min_padding = pack_min_padding
            try:
                with torch.inference_mode(), autocast_context(device, dtype), linear_options(kernel=kernel):
                    return module(video)
            finally:
                if pack_min_padding is not None:
                    model.pack_min_padding = default
        return run

    matmuls, matmul_macs = matmul_reference(plain, tokens_per_forward(plain, batch_size), device,
                                            dtype if device.type == "cuda" or dtype == torch.float32 else torch.float32)
    candidates = {key: forward(module, models[key], packing.get(key), forced.get(key, spec.linear_kernel))
                  for key, module in runners.items()}
    candidates.update({f"matmul {library}": run for library, run in matmuls.items()})
    memory = {key: PeakMemory(device) for key in runners}
    log(f"[benchmark] {name} batch {batch_size} {dtype_name}{' compiled' if spec.compile else ''}: "
        f"{spec.warmup} warm-up + {spec.rounds} rounds of {list(candidates)}")
    paths: Dict[str, dict] = {}
    times = time_in_rounds(candidates, device, spec.warmup, spec.rounds, memory, paths)

    with torch.inference_mode():
        with_ats(video)
    per_clip = gflops_from_stats(with_ats, with_ats.ats_stats, batch_size).double().cpu()
    ats_gflops = per_clip.mean().item()
    kept = [stage["kept"].double().mean().item() for stage in with_ats.ats_stats]
    full_gflops = model_gflops(plain)
    matmul_rates = {library: matmul_macs / statistics.median(times[f"matmul {library}"]) / 1e9
                    for library in matmuls}
    matmul_rate = max(matmul_rates.values())
    log("[benchmark]   matmul reference (GMAC/s): "
        + ", ".join(f"{library} {rate:.1f}" for library, rate in matmul_rates.items()))
    base_clips = batch_size / statistics.median(times["no ATS"])

    rows = []
    for key in runners:
        latency = statistics.median(times[key])
        clips = batch_size / latency
        gflops = ats_gflops if key in packing else full_gflops
        row = Row(model=name, implementation="mmaction2" if key == "mmaction2" else "video_ats", variant=key,
                  batch_size=batch_size, device=str(device), dtype=dtype_name, compiled=spec.compile,
                  latency_s=latency, clips_per_s=clips, peak_memory_mb=memory[key].peak_mb,
                  rss_peak_memory_mb=memory[key].rss_peak_mb,
                  gflops_per_clip=gflops, achieved_gmacs_per_s=gflops * clips, matmul_gmacs_per_s=matmul_rate,
                  matmul_fraction=gflops * clips / matmul_rate, rounds_s=list(times[key]),
                  matmul_gmacs_by_library=dict(matmul_rates), matmul_rows=tokens_per_forward(plain, batch_size))
        if key != "mmaction2":
            row.linear_kernel = forced.get(key, spec.linear_kernel)
            row.linear_paths = layer_paths(runners[key], paths.get(key, {}))
        if key in packing:
            row.ats = dict(ats)
            row.kept_per_stage = kept
            row.clip_gflops = per_clip.tolist()
        if key in packing:
            row.gflops_ratio = full_gflops / gflops
            row.speedup = clips / base_clips
            row.efficiency = row.speedup / row.gflops_ratio
        elif key == "mmaction2":
            rows[0].vs_mmaction = base_clips / clips
        rows.append(row)
        log(f"[benchmark]   {key:>28}: {latency:8.3f} s  {clips:7.3f} clips/s  {gflops:8.1f} GFLOPs/clip  "
            f"{100 * row.matmul_fraction:.0f}% of matmul"
            + (f"  speedup {row.speedup:.3f}  efficiency {row.efficiency:.3f}" if row.speedup else "")
            + (f"  (no ATS is x{rows[0].vs_mmaction:.3f} mmaction2)" if key == "mmaction2" else ""))
    return rows


def layer_paths(model: nn.Module, record: Dict[nn.Module, Dict[str, int]]) -> Dict[str, Dict[str, int]]:
    """`record_kernels`' counts by layer name, blocks merged: {"blocks.*.mlp.fc1": {"onednn": 12}, ...}."""
    import re

    names = {module: name for name, module in model.named_modules()}
    merged: Dict[str, Dict[str, int]] = {}
    for layer, calls in record.items():
        name = re.sub(r"(^|\.)blocks\.\d+\.", r"\1blocks.*.", names.get(layer, "?"))
        for kernel, count in calls.items():
            merged.setdefault(name, {})
            merged[name][kernel] = merged[name].get(kernel, 0) + count
    return dict(sorted(merged.items()))


def load_average() -> Optional[List[float]]:
    """/proc/loadavg's 1, 5 and 15-minute load averages (None where there is none)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/loadavg") as handle:
            return [float(value) for value in handle.read().split()[:3]]
    return None


def environment(device: str) -> dict:
    """The machine, for the JSON."""
    info = {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "processor": _cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": device, "onednn": onednn_available(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_isa": cpu_isa(),
            "cache_kib": _cpu_caches()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


# The instruction-set extensions that decide which GEMM kernels MKL and oneDNN can use; the model
# name ("Intel(R) Xeon(R) Processor" on virtual machines) often does not tell hosts apart.
_ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def cpu_isa() -> list[str]:
    """Which of ``_ISA_FLAGS`` the CPU reports in /proc/cpuinfo (empty where unreadable)."""
    flags = set((_cpuinfo("flags") or "").split())
    return [flag for flag in _ISA_FLAGS if flag in flags]


def _cpu_caches() -> dict[str, int]:
    """Sizes in KiB of CPU 0's caches by level (``{"L1d": 48, "L2": 2048, ...}``), from sysfs."""
    def read(index: str, name: str) -> str:
        with open(os.path.join(index, name)) as handle:
            return handle.read().strip()

    sizes = {}
    for index in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        with contextlib.suppress(OSError, ValueError):
            level, kind, size = (read(index, name) for name in ("level", "type", "size"))
            name = f"L{level}" + {"Data": "d", "Instruction": "i"}.get(kind, "")
            sizes[name] = int(size.rstrip("K")) if size.endswith("K") else int(size.rstrip("M")) * 1024
    return sizes


def _cpuinfo(key: str) -> Optional[str]:
    """The first value of ``key`` in /proc/cpuinfo (None where absent or unreadable)."""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    return None


def _cpu_name() -> str:
    return _cpuinfo("model name") or platform.processor()


def write_json(path: str, rows: Sequence[Row], meta: dict, **sections: Sequence) -> None:
    """``{"meta": meta, "rows": [...], **sections}`` to ``path`` (atomically); dataclass items
    of the rows and sections are written as dicts."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.tmp"
    data = {"meta": meta, "rows": [asdict(row) for row in rows]}
    data.update({name: [asdict(item) if hasattr(item, "__dataclass_fields__") else item for item in items]
                 for name, items in sections.items()})
    with open(temporary, "w") as handle:
        json.dump(data, handle, indent=1)
    os.replace(temporary, path)


def markdown_table(rows: Sequence[Row]) -> str:
    """The rows as the table of docs/benchmarks.md."""
    from experiments.bench_report import speed_table

    return speed_table([asdict(row) for row in rows])
