"""Where a forward's time goes, without and with ATS: per-op self time in groups, the median
wall time and the minor page faults per forward (tools/profile_forward.py).

The groups are what docs/benchmarks.md argues with when a speed target is missed: the GEMMs
of the linear layers (both CPU paths: MKL ``addmm``/``addmm_``/``linear`` and oneDNN's
``_linear_pointwise``), attention (SDPA), and everything else (LayerNorm, additions, copies,
the patch embedding, ATS's scoring and gathers).
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict

import torch
from torch import nn

from experiments.benchmark import BenchmarkSpec, build_pair
from video_ats.flops import gflops_from_stats

# Profiler op names by group; an op in none of them counts as "other".
GEMM_OPS = ("aten::addmm", "aten::addmm_", "aten::linear", "aten::mm", "mkldnn::_linear_pointwise")
ATTENTION_OPS = ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_attention_math",
                 "aten::_scaled_dot_product_efficient_attention", "aten::_scaled_dot_product_flash_attention")
# The environment variables that change how the process allocates (recorded with the result).
ALLOCATOR_ENV = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "THP_MEM_ALLOC_ENABLE",
                 "OMP_NUM_THREADS")


@dataclass
class ForwardProfile:
    """One model variant's forward."""

    model: str
    variant: str
    batch_size: int
    gflops_per_clip: float
    median_s: float
    rounds_s: list
    minor_faults_per_forward: float
    op_ms: Dict[str, float] = field(default_factory=dict)      # the profiled forward's self time per op
    group_share: Dict[str, float] = field(default_factory=dict)  # gemm / attention / other, fractions


def group_of(op: str) -> str:
    """"gemm", "attention" or "other" for a profiler op name."""
    if op in GEMM_OPS or op.startswith("mkldnn::_linear_pointwise"):
        return "gemm"
    return "attention" if op in ATTENTION_OPS else "other"


def op_self_ms(model: nn.Module, video: torch.Tensor) -> Dict[str, float]:
    """Self CPU time in ms of every op of one forward (``torch.profiler``)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        model(video)
    times: Counter = Counter()
    for event in profiler.key_averages():
        times[event.key] += event.self_cpu_time_total / 1e3
    return dict(times.most_common())


def group_shares(op_ms: Dict[str, float]) -> Dict[str, float]:
    """The fraction of the summed self time in each group."""
    total = sum(op_ms.values()) or 1.0
    shares = {"gemm": 0.0, "attention": 0.0, "other": 0.0}
    for op, ms in op_ms.items():
        shares[group_of(op)] += ms / total
    return shares


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def profile_config(cfg, spec: BenchmarkSpec, batch_size: int) -> list:
    """`ForwardProfile` of the config's model without and with the benchmark's ATS (the same
    weights as tools/benchmark.py builds): a warm-up forward of each, ``spec.rounds`` timed
    rounds in turns (page faults counted over them), then one profiled forward of each."""
    plain, with_ats, _, variant = build_pair(cfg, spec)
    generator = torch.Generator().manual_seed(spec.seed)
    video = torch.randn(batch_size, 3, plain.num_frames, plain.img_size, plain.img_size, generator=generator)
    models = {"no ATS": plain, variant: with_ats}
    times = {name: [] for name in models}
    faults = dict.fromkeys(models, 0)
    with torch.inference_mode():
        for model in models.values():
            model(video)
        for _ in range(spec.rounds):
            for name, model in models.items():
                before, start = _minor_faults(), time.perf_counter()
                model(video)
                times[name].append(time.perf_counter() - start)
                faults[name] += _minor_faults() - before
        profiles = []
        for name, model in models.items():
            ops = op_self_ms(model, video)
            gflops = gflops_from_stats(model, model.ats_stats, batch_size).mean().item()
            profiles.append(ForwardProfile(model=cfg.MODEL.NAME, variant=name, batch_size=batch_size,
                                           gflops_per_clip=gflops, median_s=statistics.median(times[name]),
                                           rounds_s=times[name], minor_faults_per_forward=faults[name] / spec.rounds,
                                           op_ms=ops, group_share=group_shares(ops)))
    return profiles


def allocator_environment() -> Dict[str, str]:
    """The allocator-related environment variables that are set."""
    return {name: os.environ[name] for name in ALLOCATOR_ENV if name in os.environ}
