"""The ATS options a model is built with, validated in one place.

`ATSOptions.from_dict` is the only door from the user-facing ``ats=`` dict (see
`video_ats.build_model`) to the models, so every bad name or value fails here with a message
that lists what is valid.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Optional, Sequence, Tuple

SAMPLERS = ("its", "topk", "random")
SCORES = ("cls_vnorm", "cls", "self_attn")
SCOPES = ("tube", "frame")
# Grid rules of the its sampler (see video_ats.ats.sampling.inverse_transform_sampling).
GRIDS = ("midpoint", "official")


def check_grid(grid: str, sampler: str) -> None:
    """Raise ValueError unless ``grid`` is a grid rule that ``sampler`` can use."""
    if grid not in GRIDS:
        raise ValueError(f"unknown ATS grid {grid!r}; valid grids are {list(GRIDS)}")
    if grid == "official" and sampler != "its":
        raise ValueError(f"ATS grid 'official' is a rule of the 'its' sampler, not of {sampler!r}; use sampler "
                         f"'its', or grid 'midpoint' (valid grids are {list(GRIDS)})")


@dataclass(frozen=True)
class ATSOptions:
    """Where ATS runs and how it picks tokens.

    blocks: 0-based indices of the blocks whose spatial attention samples tokens.
    ratio: budget as a fraction of the tokens still present, K = round(ratio * N_valid),
        in (0, 1] (with ``grid="official"``: of P0, see ``grid``); ignored when
        ``num_tokens`` is set.
    num_tokens: a fixed budget K (patch tokens per stage, CLS not counted); with
        ``grid="official"`` the number of grid points G at every stage.
    min_tokens: floor of the budget (the paper's 8).
    sampler: ``its`` (inverse transform sampling), ``topk`` or ``random`` (seeded).
    score: ``cls_vnorm`` (CLS attention x value norm, the official score), ``cls``
        (CLS attention only) or ``self_attn`` (attention received from every query).
    scope: ``tube`` (one choice of spatial positions shared by all frames of a clip) or
        ``frame`` (each frame chooses its own positions).
    seed: salt of the ``random`` sampler.
    grid: the grid rule of ``its``: ``midpoint`` (K = the stage budget points (2k-1)/(2K) on
        the CDF of the positions still present, the first CDF value at or above each) or
        ``official`` (the released ATS code: G = max(min_tokens, round(ratio * P0)) points,
        P0 = the positions entering the model's first ATS stage, at every stage, the nearest
        value of the min-max-normalised CDF); see `video_ats.ats.sampling`.
    """

    blocks: Tuple[int, ...] = ()
    ratio: float = 1.0
    num_tokens: Optional[int] = None
    min_tokens: int = 8
    sampler: str = "its"
    score: str = "cls_vnorm"
    scope: str = "tube"
    seed: int = 0
    grid: str = "midpoint"

    @classmethod
    def from_dict(cls, ats: Mapping[str, Any], depth: int, default_blocks: Sequence[int]) -> "ATSOptions":
        """Validate a user ``ats`` dict against a model of ``depth`` blocks.

        Raises:
            ValueError: unknown key, unknown sampler/score/scope, ratio outside (0, 1],
                non-positive budgets, or blocks outside ``range(depth)``.
        """
        if not isinstance(ats, Mapping):
            raise ValueError(f"ats must be None or a dict, got {type(ats).__name__}")
        valid_keys = [f.name for f in fields(cls)]
        unknown = sorted(set(ats) - set(valid_keys))
        if unknown:
            raise ValueError(f"unknown ATS option(s) {unknown}; valid options are {valid_keys}")
        values = dict(ats)
        blocks = values.pop("blocks", None)
        blocks = tuple(default_blocks) if blocks is None else tuple(int(b) for b in blocks)
        bad = [b for b in blocks if not 0 <= b < depth]
        if bad:
            raise ValueError(f"ATS blocks {bad} are outside the model's depth; valid blocks are 0..{depth - 1}")
        if len(set(blocks)) != len(blocks):
            raise ValueError(f"ATS blocks must not repeat, got {list(blocks)}")
        options = cls(blocks=tuple(sorted(blocks)), **values)
        options._check()
        return options

    def _check(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown ATS sampler {self.sampler!r}; valid samplers are {list(SAMPLERS)}")
        if self.score not in SCORES:
            raise ValueError(f"unknown ATS score {self.score!r}; valid scores are {list(SCORES)}")
        if self.scope not in SCOPES:
            raise ValueError(f"unknown ATS scope {self.scope!r}; valid scopes are {list(SCOPES)}")
        check_grid(self.grid, self.sampler)
        if not isinstance(self.ratio, (int, float)) or not 0.0 < float(self.ratio) <= 1.0:
            raise ValueError(f"ATS ratio must be in (0, 1], got {self.ratio!r}")
        if self.num_tokens is not None and int(self.num_tokens) < 1:
            raise ValueError(f"ATS num_tokens must be a positive integer, got {self.num_tokens!r}")
        if int(self.min_tokens) < 1:
            raise ValueError(f"ATS min_tokens must be a positive integer, got {self.min_tokens!r}")

    def replace(self, **changes: Any) -> "ATSOptions":
        """A validated copy with some options changed, e.g. ``options.replace(ratio=0.6)``.

        Assigning the copy to ``model.ats`` is how a built model changes its budget: the
        models read ``model.ats`` at every forward and derive nothing from it in advance.
        Raises ValueError as `from_dict` does, except that new blocks are not checked against
        the model's depth (the options do not know it).
        """
        valid_keys = [f.name for f in fields(self)]
        unknown = sorted(set(changes) - set(valid_keys))
        if unknown:
            raise ValueError(f"unknown ATS option(s) {unknown}; valid options are {valid_keys}")
        if "blocks" in changes:
            changes["blocks"] = tuple(sorted(int(b) for b in changes["blocks"]))
        options = dataclasses.replace(self, **changes)
        options._check()
        return options

    def to_dict(self) -> dict:
        out = asdict(self)
        out["blocks"] = list(self.blocks)
        return out
