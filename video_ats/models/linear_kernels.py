"""How a linear layer runs on CPU: the default BLAS path or oneDNN's fused one, chosen per shape.

Two paths compute ``residual + act(x W^T + b)`` and agree to fp32 rounding (~3e-6 on the
full-size models):

- ``default``: ``F.linear`` (MKL or OpenBLAS through ATen), then the activation and the
  residual addition as separate passes. The only path for autograd, CUDA, other dtypes,
  autocast, tracing (fvcore) and torch.compile.
- ``onednn``: one oneDNN call that applies the bias, the GELU or the residual addition while
  the GEMM's output is still in cache, with the weight optionally kept prepacked in oneDNN's
  blocked layout (CPU fp32 inference only).

Which is faster depends on the host: on one 2-core AMD EPYC machine oneDNN's GEMM was 6 %
faster than MKL's, on another of the same kind 7-14 % slower (docs/benchmarks.md). So by
default (``kernel="auto"``) the first call of each shape times both paths on its own input
in a short trial (interleaved repeats, median) and remembers the faster one for the process,
keyed by (in, out, epilogue, row bucket, dtype, threads, prepacking). ``kernel_choices()``
lists what was chosen and why.

Options, most specific first:

- per call: ``linear(..., options=LinearOptions("default"))``;
- per block of code: ``with linear_options(kernel="onednn", prepack=False): model(x)``;
- per process: the environment variables ``VIDEO_ATS_LINEAR_KERNEL`` (auto | default | onednn)
  and ``VIDEO_ATS_PREPACK_WEIGHTS`` (1 | 0).

A forced ``onednn`` still falls back to ``default`` where oneDNN cannot run (gradients, CUDA,
autocast, ...): the option chooses among the paths that apply.
"""

from __future__ import annotations

import contextlib
import functools
import os
import statistics
import time
import weakref
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KERNELS = ("auto", "default", "onednn")
KERNEL_ENV = "VIDEO_ATS_LINEAR_KERNEL"
PREPACK_ENV = "VIDEO_ATS_PREPACK_WEIGHTS"

# The trial runs on at most this many rows of the first input of a shape, and its choice holds
# for every row count of the same bucket (powers of two up to this size, then one bucket for
# everything larger). 1024 rows of the largest ViT-B layer (768 -> 3072) are 2.4 G multiply-adds:
# the whole trial (1 warm-up + 3 timed calls of each path) costs about 0.3 s on 2 cores.
TRIAL_ROWS = 1024
# Timed rounds: at least TRIAL_ROUNDS, more for cheap shapes (up to MAX_TRIAL_ROUNDS, while the
# rounds fit in TRIAL_SECONDS), where a single scheduler hiccup is a larger share of a call.
TRIAL_ROUNDS = 3
MAX_TRIAL_ROUNDS = 15
TRIAL_SECONDS = 0.1
# oneDNN must be at least this much faster to be chosen: within it the paths are a tie, and the
# default path is the one every other mode (training, CUDA, tracing) runs anyway.
TRIAL_MARGIN = 0.02


@dataclass(frozen=True)
class LinearOptions:
    """How `linear` picks its CPU path.

    Attributes:
        kernel: ``auto`` (timed trial per shape, cached), ``default`` or ``onednn``.
        prepack: keep each layer's weight also in oneDNN's blocked layout (reordered once and
            reused until the weight changes; a second copy of the linear weights).
    """

    kernel: str = "auto"
    prepack: bool = True

    def __post_init__(self):
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown linear kernel {self.kernel!r}; valid kernels are {list(KERNELS)}")
        if not isinstance(self.prepack, bool):
            raise ValueError(f"prepack must be True or False, got {self.prepack!r}")


_SCOPED_OPTIONS: ContextVar[Optional[LinearOptions]] = ContextVar("video_ats_linear_options", default=None)


@functools.lru_cache(maxsize=8)
def _options_from(kernel: Optional[str], prepack: Optional[str]) -> LinearOptions:
    if kernel is not None and kernel.strip().lower() not in KERNELS:
        raise ValueError(f"{KERNEL_ENV}={kernel!r} is not a linear kernel; valid kernels are {list(KERNELS)}")
    flags = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
    if prepack is not None and prepack.strip().lower() not in flags:
        raise ValueError(f"{PREPACK_ENV}={prepack!r} is not a flag; use 1 or 0")
    return LinearOptions(kernel="auto" if kernel is None else kernel.strip().lower(),
                         prepack=True if prepack is None else flags[prepack.strip().lower()])


def environment_options() -> LinearOptions:
    """The process default: ``VIDEO_ATS_LINEAR_KERNEL`` and ``VIDEO_ATS_PREPACK_WEIGHTS`` (auto, 1 if unset)."""
    return _options_from(os.environ.get(KERNEL_ENV), os.environ.get(PREPACK_ENV))


def current_options() -> LinearOptions:
    """The options `linear` uses here: the innermost `linear_options` block, else the environment."""
    scoped = _SCOPED_OPTIONS.get()
    return scoped if scoped is not None else environment_options()


@contextlib.contextmanager
def linear_options(kernel: Optional[str] = None, prepack: Optional[bool] = None) -> Iterator[LinearOptions]:
    """Within the block, `linear` uses these options (unset fields keep the enclosing ones).

    Scoped to the current thread / async context, like ``torch.no_grad``; nothing global changes.
    """
    outer = current_options()
    options = LinearOptions(kernel=outer.kernel if kernel is None else kernel,
                            prepack=outer.prepack if prepack is None else prepack)
    token = _SCOPED_OPTIONS.set(options)
    try:
        yield options
    finally:
        _SCOPED_OPTIONS.reset(token)


# ---------------------------------------------------------------------------------------------
# The two paths


@functools.lru_cache(maxsize=1)
def onednn_available() -> bool:
    """Whether this torch build has oneDNN's fused linear operator."""
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


def fast_cpu_inference(x: Tensor) -> bool:
    """Whether ``x`` is CPU fp32 inference in eager mode: nothing to differentiate, no autocast,
    not traced or compiled (where oneDNN's fused calls and the MLP's row chunks may run)."""
    return (not torch.compiler.is_compiling() and not torch.jit.is_tracing() and x.device.type == "cpu"
            and x.dtype == torch.float32 and not torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu"))


def onednn_applies(x: Tensor, layer: nn.Linear, residual: Optional[Tensor]) -> bool:
    """Whether the ``onednn`` path can compute this call."""
    return (fast_cpu_inference(x) and onednn_available() and layer.weight.dtype == torch.float32
            and layer.weight.device.type == "cpu"
            and (residual is None or (residual.shape[:-1] == x.shape[:-1] and residual.dtype == x.dtype)))


def default_linear(x: Tensor, layer: nn.Linear, activation: Optional[str], residual: Optional[Tensor]) -> Tensor:
    """``residual + act(F.linear(x))`` (differentiable, any device).

    In CPU fp32 inference a pass over the output and an allocation are saved: the residual
    and the bias are summed first and the GEMM accumulates into that sum (``addmm_``: one
    elementwise pass instead of the bias copy of ``addmm`` plus the addition), and the GELU
    runs in place (no second output of 4d-wide rows to allocate). Timed in turns against the
    plain sequence on the ViT-B shapes (one thread, 1,576 and 12,608 rows), it was faster on
    each; the machine was shared at the time, so no figure is quoted here.
    """
    if fast_cpu_inference(x):
        return _default_inference(x, layer, activation, residual)
    out = F.linear(x, layer.weight, layer.bias)
    if activation == "gelu":
        out = F.gelu(out)
    return out if residual is None else residual + out


def _default_inference(x: Tensor, layer: nn.Linear, activation: Optional[str], residual: Optional[Tensor]) -> Tensor:
    out_features = layer.out_features
    if residual is not None and residual.shape == x.shape[:-1] + (out_features,) and residual.dtype == x.dtype:
        out = torch.empty(residual.shape, dtype=x.dtype, device=x.device)
        if layer.bias is None:
            out.copy_(residual)
        else:
            torch.add(residual, layer.bias, out=out)
        out.view(-1, out_features).addmm_(x.reshape(-1, x.shape[-1]), layer.weight.t())
        return out
    out = F.linear(x, layer.weight, layer.bias)
    if activation == "gelu":
        out = torch.ops.aten.gelu_(out)
    return out if residual is None else residual + out


_PACKED_WEIGHTS: "weakref.WeakKeyDictionary[nn.Linear, tuple]" = weakref.WeakKeyDictionary()


def packed_weight(layer: nn.Linear) -> Tensor:
    """The layer's weight in oneDNN's blocked layout, cached until the weight changes
    (new tensor, new shape or an in-place update); bit-identical results, 3-7 % faster GEMMs."""
    weight = layer.weight
    key = (weight.data_ptr(), weight._version, tuple(weight.shape))
    cached = _PACKED_WEIGHTS.get(layer)
    if cached is None or cached[0] != key:
        cached = (key, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None))
        _PACKED_WEIGHTS[layer] = cached
    return cached[1]


def onednn_linear(x: Tensor, layer: nn.Linear, activation: Optional[str], residual: Optional[Tensor],
                  prepack: bool = True) -> Tensor:
    """``residual + act(x W^T + b)`` in one oneDNN call (requires `onednn_applies`)."""
    weight = packed_weight(layer) if prepack else layer.weight
    if residual is not None:
        return torch.ops.mkldnn._linear_pointwise.binary(x, residual, weight, layer.bias, "add")
    return torch.ops.mkldnn._linear_pointwise(x, weight, layer.bias, activation or "none", [],
                                              "none" if activation else "")


# ---------------------------------------------------------------------------------------------
# The timed choice


@dataclass
class KernelChoice:
    """One shape's trial: what ran, how long each path took (median seconds), what was chosen."""

    in_features: int
    out_features: int
    epilogue: str                   # "none", "gelu" or "residual"
    rows_bucket: int                # the choice holds for row counts up to this (the last bucket: above)
    dtype: str
    threads: int
    prepack: bool
    trial_rows: int
    seconds: Dict[str, float] = field(default_factory=dict)
    kernel: str = "default"

    def to_dict(self) -> dict:
        return asdict(self)


_CHOICES: Dict[tuple, KernelChoice] = {}


def rows_bucket(rows: int) -> int:
    """The next power of two >= rows, capped at TRIAL_ROWS (one bucket for all larger inputs)."""
    return min(1 << max(rows - 1, 0).bit_length(), TRIAL_ROWS)


def _epilogue(activation: Optional[str], residual: Optional[Tensor]) -> str:
    return "residual" if residual is not None else (activation or "none")


def choose_kernel(x: Tensor, layer: nn.Linear, activation: Optional[str], residual: Optional[Tensor],
                  prepack: bool = True) -> str:
    """The faster path for this call's shape, from the cache or from a trial on this input.

    The trial runs both paths on the first ``min(rows, TRIAL_ROWS)`` rows: one warm-up call
    each, then ``TRIAL_ROUNDS`` or more rounds of one call each (as many as fit in
    ``TRIAL_SECONDS``, at most ``MAX_TRIAL_ROUNDS``), the order alternating between rounds
    so that a busy neighbour or a cooling cache penalises both alike; each path's median
    counts, and oneDNN must win by ``TRIAL_MARGIN``.
    """
    rows = x.reshape(-1, x.shape[-1])
    key = (layer.in_features, layer.out_features, _epilogue(activation, residual), rows_bucket(len(rows)),
           str(x.dtype), torch.get_num_threads(), prepack)
    choice = _CHOICES.get(key)
    if choice is None:
        choice = _trial(rows, layer, activation, residual, prepack, key)
        _CHOICES[key] = choice
    return choice.kernel


def _trial(rows: Tensor, layer: nn.Linear, activation: Optional[str], residual: Optional[Tensor],
           prepack: bool, key: tuple) -> KernelChoice:
    count = min(len(rows), TRIAL_ROWS)
    sample = rows[:count]
    sample_residual = None if residual is None else residual.reshape(-1, residual.shape[-1])[:count]
    paths: Dict[str, Callable[[], Tensor]] = {
        "default": lambda: default_linear(sample, layer, activation, sample_residual),
        "onednn": lambda: onednn_linear(sample, layer, activation, sample_residual, prepack),
    }
    seconds = interleaved_medians(paths)
    kernel = "onednn" if seconds["onednn"] < (1 - TRIAL_MARGIN) * seconds["default"] else "default"
    return KernelChoice(in_features=key[0], out_features=key[1], epilogue=key[2], rows_bucket=key[3], dtype=key[4],
                        threads=key[5], prepack=prepack, trial_rows=count, seconds=seconds, kernel=kernel)


def interleaved_medians(paths: Dict[str, Callable[[], object]]) -> Dict[str, float]:
    """Median wall time of each callable over the trial's rounds, after one warm-up call each;
    the order within a round alternates (ABBA...)."""
    names = list(paths)
    start = time.perf_counter()
    for name in names:
        paths[name]()
    warmup = time.perf_counter() - start          # an upper bound of one round (first calls set up)
    rounds = min(MAX_TRIAL_ROUNDS, max(TRIAL_ROUNDS, int(TRIAL_SECONDS / max(warmup, 1e-9))))
    times: Dict[str, List[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        for name in (names if round_index % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            paths[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


_RECORD: ContextVar[Optional[Dict[nn.Module, Dict[str, int]]]] = ContextVar("video_ats_linear_record", default=None)


@contextlib.contextmanager
def record_kernels() -> Iterator[Dict[nn.Module, Dict[str, int]]]:
    """Within the block, count each layer's `linear` calls by the path they took:
    ``{layer: {"default": calls, "onednn": calls}}`` (for benchmark records)."""
    record: Dict[nn.Module, Dict[str, int]] = {}
    token = _RECORD.set(record)
    try:
        yield record
    finally:
        _RECORD.reset(token)


def kernel_choices() -> List[dict]:
    """Every trial of this process so far, in the order they ran (for benchmark records)."""
    return [choice.to_dict() for choice in _CHOICES.values()]


def forget_kernel_choices() -> None:
    """Empty the cache of trials: the next call of each shape runs a new trial."""
    _CHOICES.clear()


def resolve_kernel(x: Tensor, layer: nn.Linear, activation: Optional[str] = None, residual: Optional[Tensor] = None,
                   options: Optional[LinearOptions] = None) -> Tuple[str, Optional[LinearOptions]]:
    """The path `linear` takes for this call, and the options it read (None: none needed)."""
    if not onednn_applies(x, layer, residual):         # first: nothing else is read while compiling
        return "default", options
    options = options if options is not None else current_options()
    if options.kernel == "default":
        return "default", options
    if options.kernel == "onednn":
        return "onednn", options
    return choose_kernel(x, layer, activation, residual, options.prepack), options


def linear(x: Tensor, layer: nn.Linear, activation: Optional[str] = None, residual: Optional[Tensor] = None,
           options: Optional[LinearOptions] = None) -> Tensor:
    """``residual + act(layer(x))`` by the path the options pick (module docstring).

    Args:
        x: (..., in_features).
        activation: None or "gelu" (exact, erf-based, as nn.GELU).
        residual: None or (..., out_features), added after the activation-free linear
            (``activation`` must then be None).
        options: this call's options; None reads `current_options`.
    Returns:
        (..., out_features).
    """
    if activation not in (None, "gelu") or (activation is not None and residual is not None):
        raise ValueError(f"linear supports activation None or 'gelu' without a residual, got {activation!r}")
    kernel, options = resolve_kernel(x, layer, activation, residual, options)
    record = None if torch.compiler.is_compiling() else _RECORD.get()
    if record is not None:
        calls = record.setdefault(layer, {})
        calls[kernel] = calls.get(kernel, 0) + 1
    if kernel == "onednn":
        return onednn_linear(x, layer, activation, residual, options.prepack)
    return default_linear(x, layer, activation, residual)
