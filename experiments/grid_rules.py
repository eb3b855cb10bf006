"""Kept positions and GFLOPs of the two its grid rules, ``midpoint`` and ``official``.

    python -m experiments.grid_rules --cfg configs/synthetic/timesformer_tiny.yaml --sharpen 10
    python -m experiments.grid_rules --cfg configs/synthetic/timesformer_tiny.yaml --sharpen 10 MODEL.NAME xvit_tiny
    python -m experiments.grid_rules --cfg CONFIG --checkpoint MODEL.pt      # a trained model
    python -m experiments.grid_rules --score-rows                            # random score rows, no model

For each rule and budget ratio (default 1.0, 0.8, 0.6) the model (its sampler, the config's
ATS blocks and scope) runs over a fixed set of clips; the script prints a markdown table of
the mean kept positions per ATS stage and the GFLOPs per clip as a fraction of the model
without ATS (mean, and the range over clips; counted per clip from ``model.ats_stats`` by
`video_ats.flops.gflops_from_stats`), and writes every number to JSON (default
``docs/bench/grid_rules_<model>.json``).

Clips: ``--clips synthetic`` (default) writes (or reuses) a small synthetic dataset with
`video_ats.data.make_synthetic_dataset` and decodes one center view of ``--num-videos`` of its
validation videos with the config's DATA settings; ``--clips varied`` uses four synthetic
tensors of very different content (`experiments.benchmark.varied_clips`), no decoding.

Without ``--checkpoint`` the weights are the seeded random initialisation, whose attention is
almost uniform; ``--sharpen F`` multiplies the q and k rows of every block's qkv projection
(weight and bias) by F (`experiments.benchmark.sharpen_attention`), which makes the CLS rows
peaked and content-dependent, as in trained models.

``--score-rows`` needs no model: on random score rows (Dirichlet, several concentrations) it
counts the tokens each rule keeps at ratio 1 in a first stage (196 tokens, DeiT-S's count) and
in a later stage with 100 of them left (midpoint: K = 100 points; official: G = 196 points).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional, Sequence

import torch

from video_ats.ats import GRIDS, inverse_transform_sampling
from video_ats.checkpoint import load_checkpoint
from video_ats.config import build_model_from_cfg, load_config
from video_ats.data import make_synthetic_dataset
from video_ats.engine.builders import build_dataset, build_loader, video_subset
from video_ats.engine.calibration import cache_clips
from video_ats.engine.tester import write_json
from video_ats.flops import gflops_from_stats, model_gflops

from .benchmark import sharpen_attention, varied_clips

RATIOS = (1.0, 0.8, 0.6)
# A small validation set of the zoo's benchmark (its four actions, all four clutter levels).
GRID_DATA = dict(classes=("stay still", "move back and forth", "blink", "pulse"),
                 videos_per_class={"train": 1, "val": 6}, clutter_levels=(0, 1, 2, 3), seed=0)


def synthetic_clips(cfg, data_root: str, num_videos: int) -> List[torch.Tensor]:
    """One center view of ``num_videos`` validation videos of the synthetic dataset, as batches
    (B, C, T, H, W), decoded with the config's DATA settings."""
    make_synthetic_dataset(data_root, **GRID_DATA)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.DATA.PATH_TO_DATA_DIR = data_root
    cfg.DATA.TEST_ANNOTATION = "validate.csv"
    cfg.DATA.CLASS_LIST = "classes.txt"
    cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS = 1, 1
    subset = video_subset(build_dataset(cfg, "test"), num_videos, cfg.SEED)
    return cache_clips(build_loader(cfg, subset, None, batch_size=8, num_workers=0))


@torch.no_grad()
def measure(model, clips: Sequence[torch.Tensor], grid: str, ratio: float) -> dict:
    """Kept positions per stage and GFLOPs per clip of ``model`` with its ATS at (grid, ratio)."""
    original = model.ats
    model.ats = original.replace(sampler="its", grid=grid, ratio=float(ratio))
    full = model_gflops(model)
    kept, gflops = [], []
    try:
        for batch in clips:
            model(batch)
            kept.append(torch.stack([stage["kept"].double() for stage in model.ats_stats], dim=1))   # (B, stages)
            gflops.append(gflops_from_stats(model, model.ats_stats, len(batch)).double())
    finally:
        model.ats = original
    kept, fraction = torch.cat(kept), torch.cat(gflops) / full
    return {"grid": grid, "ratio": float(ratio), "blocks": list(original.blocks), "scope": original.scope,
            "kept_per_stage": kept.mean(dim=0).tolist(), "kept_per_stage_min": kept.min(dim=0).values.tolist(),
            "kept_per_stage_max": kept.max(dim=0).values.tolist(), "gflops_fraction": fraction.mean().item(),
            "gflops_fraction_min": fraction.min().item(), "gflops_fraction_max": fraction.max().item(),
            "gflops_fraction_per_clip": fraction.tolist()}


def compare_grids(model, clips: Sequence[torch.Tensor], ratios: Sequence[float] = RATIOS) -> List[dict]:
    """`measure` for every grid rule and ratio (rows in the order rule, then ratio)."""
    return [measure(model, clips, grid, ratio) for grid in GRIDS for ratio in ratios]


def score_row_counts(alphas: Sequence[float] = (0.05, 0.3, 1.0, 5.0), reference: int = 196,
                     left: Sequence[int] = (196, 100), num_rows: int = 256, seed: int = 0) -> List[dict]:
    """Mean tokens kept by each rule at ratio 1 on Dirichlet(alpha) rows of ``left`` tokens, when
    ``reference`` positions entered the first stage (midpoint: K = left; official: G = reference)."""
    torch.manual_seed(seed)
    rows = []
    for alpha in alphas:
        for tokens in left:
            concentration = torch.full((tokens,), float(alpha), dtype=torch.float64)
            probabilities = torch.distributions.Dirichlet(concentration).sample((num_rows,))
            midpoint = inverse_transform_sampling(probabilities, tokens, grid="midpoint")
            official = inverse_transform_sampling(probabilities, reference, grid="official")
            rows.append({"alpha": alpha, "tokens_left": tokens, "grid_points_official": reference,
                         "kept_midpoint": midpoint.sum(-1).double().mean().item(),
                         "kept_official": official.sum(-1).double().mean().item()})
    return rows


def score_rows_table(rows: Sequence[dict]) -> str:
    lines = ["| Dirichlet α | tokens present | kept, midpoint (K = tokens present) | kept, official (G = 196) |",
             "|---|---|---|---|"]
    lines += [f"| {row['alpha']:g} | {row['tokens_left']} | {row['kept_midpoint']:.1f} | {row['kept_official']:.1f} |"
              for row in rows]
    for tokens in sorted({row["tokens_left"] for row in rows}, reverse=True):
        mine = [row for row in rows if row["tokens_left"] == tokens]
        lines.append(f"| mean | {tokens} | {sum(r['kept_midpoint'] for r in mine) / len(mine):.1f} | "
                     f"{sum(r['kept_official'] for r in mine) / len(mine):.1f} |")
    return "\n".join(lines)


def markdown_table(rows: Sequence[dict], positions: int) -> str:
    """Rows as a markdown table; ``positions`` is the number of patch positions per frame."""
    lines = [f"| rule | ratio | mean kept positions per ATS stage (of {positions}) | GFLOPs, % of no ATS: mean "
             f"(min–max over clips) |", "|---|---|---|---|"]
    for row in rows:
        kept = " → ".join(f"{value:.1f}" for value in row["kept_per_stage"])
        lines.append(f"| {row['grid']} | {row['ratio']:g} | {kept} | {100 * row['gflops_fraction']:.1f} "
                     f"({100 * row['gflops_fraction_min']:.0f}–{100 * row['gflops_fraction_max']:.0f}) |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--cfg", help="model config YAML (its ATS section gives blocks and scope)")
    parser.add_argument("--checkpoint", help="weights to load (any format video_ats.load_checkpoint reads)")
    parser.add_argument("--sharpen", type=float, default=None, help="multiply the q and k projections by this")
    parser.add_argument("--clips", choices=["synthetic", "varied"], default="synthetic")
    parser.add_argument("--num-videos", type=int, default=24, help="synthetic validation videos (default 24)")
    parser.add_argument("--data-root", default="cache/synthetic_grid_rules", help="where the synthetic data goes")
    parser.add_argument("--ratios", type=float, nargs="+", default=list(RATIOS))
    parser.add_argument("--score-rows", action="store_true", help="random score rows instead of a model")
    parser.add_argument("--json", help="output JSON (default docs/bench/grid_rules_<model>.json)")
    parser.add_argument("overrides", nargs="*", help="KEY VALUE config overrides")
    args = parser.parse_intermixed_args(argv)
    start = time.perf_counter()
    command = " ".join(["python -m experiments.grid_rules"] + list(argv if argv is not None else sys.argv[1:]))
    if args.score_rows:
        rows = score_row_counts()
        table = score_rows_table(rows)
        print(table)
        result = {"command": command, "rows": rows, "table": table}
        path = args.json or os.path.join("docs", "bench", "grid_rules_score_rows.json")
        write_json(path, result)
        print(f"\nwrote {path}", file=sys.stderr)
        return result
    if not args.cfg:
        parser.error("give --cfg (or --score-rows)")
    cfg = load_config(args.cfg, list(args.overrides) + ["ATS.ENABLE", "True", "ATS.SAMPLER", "its"])
    torch.manual_seed(cfg.SEED)
    model = build_model_from_cfg(cfg).eval()
    if args.checkpoint:
        print(load_checkpoint(model, args.checkpoint).summary(), file=sys.stderr)
    if args.sharpen is not None:
        sharpen_attention(model, args.sharpen)
    if args.clips == "synthetic":
        clips = synthetic_clips(cfg, args.data_root, args.num_videos)
    else:
        clips = [varied_clips(4, model.num_frames, model.img_size)]
    rows = compare_grids(model, clips, args.ratios)
    positions = model.patch_embed.num_patches
    table = markdown_table(rows, positions)
    print(table)
    result = {"command": command, "config": args.cfg, "model": cfg.MODEL.NAME, "checkpoint": args.checkpoint,
              "sharpen": args.sharpen, "clips": args.clips, "num_clips": sum(len(batch) for batch in clips),
              "positions_per_frame": positions, "gflops_no_ats": model_gflops(model), "rows": rows,
              "table": table, "seconds": time.perf_counter() - start}
    path = args.json or os.path.join("docs", "bench", f"grid_rules_{cfg.MODEL.NAME}.json")
    write_json(path, result)
    print(f"\nwrote {path}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
