"""Choose the ATS budget ratio that makes a model cost a target GFLOPs per view on real clips.

ATS keeps fewer tokens than its budget (inverse transform sampling drops repeated picks), and
how many depends on the content, so the GFLOPs of a ratio are only known by running clips.
`calibrate_ratio` runs a fixed set of clips (decode them once with `cache_clips`) at a
sequence of ratios and returns the one whose mean GFLOPs per view is within ``tolerance``
(relative) of the target:

    clips = cache_clips(loader)                                    # list of (B, C, T, H, W)
    target = target_from_fraction(model, 0.6)                      # 60 % of the model without ATS
    result = calibrate_ratio(model, clips, target)
    print(result.override())                                       # ATS.RATIO 0.6375

The search brackets the target between two ratios and narrows the bracket (an interpolated
split, with a plain bisection step whenever that did not halve it), on ratios that are
multiples of ``resolution``. Mean GFLOPs grow with the ratio in practice, but inverse
transform sampling does not guarantee it and the budget is an integer, so the mean is a step
function: when no ratio is within tolerance the closest one is returned with ``met=False``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..flops import gflops_from_stats, model_gflops


@contextlib.contextmanager
def ats_ratio(model: nn.Module, ratio: float) -> Iterator[nn.Module]:
    """Run ``model`` with its ATS budget ratio set to ``ratio``; the options are restored on exit.

    Safe because TimeSformer and XViT read ``model.ats`` at every forward and keep nothing
    derived from it (see `video_ats.ats.ATSOptions.replace`).
    """
    original = getattr(model, "ats", None)
    if original is None:
        raise ValueError("the model has no ATS stages; build it with ATS (e.g. ATS.ENABLE True) to calibrate")
    model.ats = original.replace(ratio=float(ratio))
    try:
        yield model
    finally:
        model.ats = original


def cache_clips(batches: Iterable[dict], max_views: Optional[int] = None) -> List[Tensor]:
    """Decode once: the ``video`` tensors (B, C, T, H, W) of the views that decoded (``ok``).

    batches: items as `video_ats.data.collate_views` makes them (a DataLoader over a dataset).
    Memory: 4 bytes x C x T x H x W per view (4.8 MB for 8 x 224 x 224).
    """
    cached, views = [], 0
    for batch in batches:
        video = batch["video"]
        ok = batch.get("ok")
        if ok is not None:
            video = video[ok.bool()]
        if max_views is not None:
            video = video[: max_views - views]
        if len(video):
            cached.append(video.contiguous())
            views += len(video)
        if max_views is not None and views >= max_views:
            break
    return cached


def target_from_fraction(model: nn.Module, fraction: float) -> float:
    """``fraction`` of the GFLOPs per view of ``model`` with every token kept (ATS off)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"the target fraction must be in (0, 1], got {fraction}")
    return fraction * model_gflops(model)


@torch.no_grad()
def mean_gflops(model: nn.Module, clips: Sequence[Tensor], device: Optional[torch.device] = None) -> Tuple[float, int]:
    """Mean GFLOPs per view of ``model`` (eval, no grad) over the batches ``clips``, counted
    from each forward's ``ats_stats`` (`gflops_from_stats`, no tracing). Returns (mean, views)."""
    device = device or next(model.parameters()).device
    total, views = 0.0, 0
    for batch in clips:
        batch = batch.to(device)
        model(batch)
        total += float(gflops_from_stats(model, model.ats_stats, len(batch)).sum())
        views += len(batch)
    if not views:
        raise ValueError("no clips to calibrate on")
    return total / views, views


@dataclass(frozen=True)
class CalibrationResult:
    """What `calibrate_ratio` found.

    ratio: the chosen budget ratio (within tolerance when ``met``, else the closest tried).
    achieved_gflops: mean GFLOPs per view at that ratio. target_gflops: what was asked.
    tolerance: relative, |achieved - target| <= tolerance x target counts as met.
    met: whether the tolerance was met. evaluations: (ratio, mean GFLOPs) in the order tried.
    full_gflops: GFLOPs per view without ATS. num_views: clips the means are over.
    reason: why the tolerance was not met ("" when met). resolution: the step of the ratios.
    grid: the its grid rule (``ATS.GRID``) the ratio was calibrated under; a ratio costs
        differently under the other rule (docs/models.md).
    """

    ratio: float
    achieved_gflops: float
    target_gflops: float
    tolerance: float
    met: bool
    evaluations: Tuple[Tuple[float, float], ...]
    full_gflops: float
    num_views: int
    reason: str = ""
    resolution: float = 1e-4
    grid: str = "midpoint"

    @property
    def relative_error(self) -> float:
        return self.achieved_gflops / self.target_gflops - 1

    def override(self) -> str:
        """The config override that selects this ratio, e.g. ``ATS.RATIO 0.6375``."""
        return f"ATS.RATIO {format_ratio(self.ratio, self.resolution)}"

    def to_dict(self) -> dict:
        return {"ratio": self.ratio, "achieved_gflops": self.achieved_gflops, "target_gflops": self.target_gflops,
                "relative_error": self.relative_error, "tolerance": self.tolerance, "met": self.met,
                "reason": self.reason, "full_gflops": self.full_gflops, "num_views": self.num_views, "grid": self.grid,
                "evaluations": [list(pair) for pair in self.evaluations]}


def format_ratio(ratio: float, resolution: float = 1e-4) -> str:
    """``ratio`` with the decimals ``resolution`` needs (1e-4: 0.6375, 0.005: 0.645)."""
    decimals = next(d for d in range(11) if abs(resolution * 10 ** d - round(resolution * 10 ** d)) < 1e-9)
    return f"{ratio:.{decimals}f}"


def calibrate_ratio(model: nn.Module, clips: Union[Tensor, Sequence[Tensor]], target_gflops: float,
                    tolerance: float = 0.02, *, resolution: float = 1e-4, max_evaluations: int = 24,
                    device: Optional[torch.device] = None,
                    log: Optional[Callable[[str], None]] = None) -> CalibrationResult:
    """The ATS ratio whose mean GFLOPs per view over ``clips`` is within ``tolerance`` of
    ``target_gflops`` (see the module docstring for the search).

    Args:
        model: a TimeSformer or XViT built with ATS (ratio budgets: ``num_tokens`` unset). It
            runs in eval mode; its ATS options are restored afterwards.
        clips: normalised clips, one tensor (N, C, T, H, W) or batches of them (`cache_clips`).
        target_gflops: GFLOPs per view (`target_from_fraction` converts a fraction).
        tolerance: relative tolerance on the mean (0.02 = within 2 %).
        resolution: ratios tried are multiples of it (and printed with its decimals).
        max_evaluations: passes over the clips at most (each is one forward per batch).
        log: called with one line per ratio tried.
    Returns:
        A `CalibrationResult`; ``met`` False (with a ``reason``) when the target lies outside
        what the ratios reach or between two neighbouring steps.
    Raises:
        ValueError: the model has no ATS or a fixed ``num_tokens`` budget, no clips, a target
            that is not positive.
    """
    options = getattr(model, "ats", None)
    if options is None:
        raise ValueError("the model has no ATS stages; build it with ATS (e.g. ATS.ENABLE True) to calibrate")
    if options.num_tokens is not None:
        raise ValueError(f"the model's ATS budget is a fixed num_tokens={options.num_tokens}, which ignores the "
                         f"ratio; unset it (ATS.NUM_TOKENS 0) to calibrate the ratio")
    if not target_gflops > 0:
        raise ValueError(f"the target GFLOPs must be positive, got {target_gflops}")
    if not (tolerance >= 0 and 0 < resolution <= 0.5):
        raise ValueError(f"need tolerance >= 0 and resolution in (0, 0.5], got {tolerance} and {resolution}")
    if isinstance(clips, Tensor):
        clips = [clips]
    was_training = model.training
    model.eval()
    evaluations: List[Tuple[float, float]] = []
    measured = {}
    views = 0

    def run(ratio: float) -> float:
        nonlocal views
        ratio = _snap(ratio, resolution)
        if ratio not in measured:
            with ats_ratio(model, ratio):
                measured[ratio], views = mean_gflops(model, clips, device)
            evaluations.append((ratio, measured[ratio]))
            if log:
                log(f"ratio {format_ratio(ratio, resolution)}: {measured[ratio]:.4g} GFLOPs per view "
                    f"({100 * (measured[ratio] / target_gflops - 1):+.2f} % of the target)")
        return measured[ratio]

    def within(value: float) -> bool:
        return abs(value - target_gflops) <= tolerance * target_gflops

    try:
        low, high = resolution, 1.0
        reason = ""
        if within(run(high)):
            pass
        elif measured[high] < target_gflops:
            reason = (f"the target is above the cost at ratio 1 ({measured[high]:.4g} GFLOPs); inverse transform "
                      f"sampling drops repeated picks even at full budget (the model without ATS costs "
                      f"{model_gflops(model):.4g})")
        elif within(run(low)):
            pass
        elif measured[low] > target_gflops:
            reason = (f"the target is below the cost at the smallest ratio ({measured[low]:.4g} GFLOPs), where "
                      f"every stage keeps its floor of min_tokens={options.min_tokens}")
        else:
            reason = _search(run, within, low, high, target_gflops, resolution, max_evaluations, measured)
    finally:
        model.train(was_training)
    hits = [ratio for ratio in measured if within(measured[ratio])]
    best = min(hits or measured, key=lambda ratio: (abs(measured[ratio] - target_gflops), -ratio))
    if hits:
        reason = ""
    return CalibrationResult(ratio=best, achieved_gflops=measured[best], target_gflops=float(target_gflops),
                             tolerance=tolerance, met=bool(hits), evaluations=tuple(evaluations),
                             full_gflops=model_gflops(model), num_views=views, reason=reason,
                             resolution=resolution, grid=options.grid)


def _search(run, within, low: float, high: float, target: float, resolution: float, max_evaluations: int,
            measured: dict) -> str:
    """Narrow [low, high] (cost(low) < target < cost(high)) until a ratio is within tolerance.

    Returns "" on success, else why it stopped.
    """
    bisect_next = False
    while len(measured) < max_evaluations:
        width = high - low
        if bisect_next:
            ratio = (low + high) / 2
        else:                                            # where the straight line hits the target
            share = (target - measured[low]) / (measured[high] - measured[low])
            ratio = low + min(max(share, 0.125), 0.875) * width
        ratio = _snap(ratio, resolution)
        if ratio <= low or ratio >= high:
            return (f"no ratio between {low:g} and {high:g} (steps of {resolution:g}) is within tolerance: "
                    f"the mean jumps from {measured[low]:.4g} to {measured[high]:.4g} GFLOPs there")
        value = run(ratio)
        if within(value):
            return ""
        if value < target:
            low = ratio
        else:
            high = ratio
        bisect_next = high - low > width / 2
    return f"stopped after {max_evaluations} evaluations"


def _snap(ratio: float, resolution: float) -> float:
    """The multiple of ``resolution`` nearest ``ratio``, within (0, 1]."""
    steps = max(1, min(round(ratio / resolution), round(1 / resolution)))
    return round(steps * resolution, 10)
