#!/usr/bin/env python3
"""Find the ATS ratio whose mean GFLOPs per view over a calibration subset hits a target, and
print the config override (e.g. ``ATS.RATIO 0.6375``). See docs/visualization.md.

    python tools/calibrate.py --cfg configs/kinetics400/timesformer_base_ats.yaml --target-fraction 0.6 \
        --num-videos 64 DATA.PATH_TO_DATA_DIR /data/kinetics400 TEST.CHECKPOINT_FILE ckpt.pyth
    python tools/calibrate.py --cfg configs/synthetic/timesformer_tiny.yaml --target-gflops 0.35 ATS.ENABLE True

Options come before the KEY VALUE overrides. "Hits" means |mean - target| <= tolerance x target
(default 2 %); when no ratio does, the closest is printed and the exit code is 1.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from video_ats.engine.calibration import cache_clips, calibrate_ratio, target_from_fraction  # noqa: E402
from video_ats.cli import config_from_args, config_parser, run_tool  # noqa: E402
from video_ats.engine.builders import build_dataset, build_loader, video_subset  # noqa: E402
from video_ats.engine.distributed import resolve_device  # noqa: E402
from video_ats.engine.tester import model_to_test, write_json  # noqa: E402


def parse_args(argv):
    parser = config_parser(__doc__.strip().splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-gflops", type=float, metavar="X", help="GFLOPs per view")
    target.add_argument("--target-fraction", type=float, metavar="F",
                        help="fraction of the GFLOPs per view of the model without ATS, in (0, 1]")
    parser.add_argument("--num-videos", type=int, default=32,
                        help="calibration videos, drawn at random with SEED (default 32)")
    parser.add_argument("--split", choices=["test", "val"], default="test",
                        help="test = TEST_ANNOTATION, every test view; val = VAL_ANNOTATION, one view per video")
    parser.add_argument("--tolerance", type=float, default=0.02, help="relative tolerance (default 0.02)")
    parser.add_argument("--random-weights", action="store_true",
                        help="load no checkpoint: the seeded random initialisation (to try the tool)")
    parser.add_argument("--json", metavar="FILE", help="also write the result and every ratio tried here")
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(message, file=sys.stderr)


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = config_from_args(args)
    overrides = []
    if not cfg.ATS.ENABLE:
        cfg.defrost()
        cfg.ATS.ENABLE = True
        overrides.append("ATS.ENABLE True")
    if cfg.ATS.NUM_TOKENS > 0:
        raise ValueError(f"ATS.NUM_TOKENS {cfg.ATS.NUM_TOKENS} fixes the budget and ignores the ratio; "
                         f"add ATS.NUM_TOKENS 0 to calibrate the ratio")
    model, checkpoint, _ = model_to_test(cfg, random_weights=args.random_weights)
    device = resolve_device(cfg.DEVICE)
    model.to(device).eval()
    target = args.target_gflops if args.target_fraction is None else target_from_fraction(model, args.target_fraction)

    dataset = build_dataset(cfg, args.split)
    subset = video_subset(dataset, args.num_videos, cfg.SEED)
    log(f"weights: {checkpoint or 'random weights (--random-weights)'}")
    log(f"decoding {len(subset)} views of {len(subset) // dataset.num_views} videos of {dataset.annotation_file}")
    clips = cache_clips(build_loader(cfg, subset, None, cfg.TEST.BATCH_SIZE))
    result = calibrate_ratio(model, clips, target, args.tolerance, device=device, log=log)

    print(f"target {target:.4g} GFLOPs per view ({100 * target / result.full_gflops:.1f} % of "
          f"{result.full_gflops:.4g} without ATS), tolerance {100 * args.tolerance:g} %")
    print(f"calibration set: {result.num_views} views of {len(subset) // dataset.num_views} videos "
          f"({args.split} split, {dataset.annotation_file})")
    print(f"ratio {result.override().split()[-1]}: mean {result.achieved_gflops:.4g} GFLOPs per view "
          f"({100 * result.relative_error:+.2f} % of the target, {len(result.evaluations)} ratios tried)")
    if not result.met:
        print(f"warning: no ratio within {100 * args.tolerance:g} % of the target: {result.reason}; "
              f"the closest is printed", file=sys.stderr)
    override = " ".join(overrides + [result.override()])
    if args.json:
        write_json(args.json, {"model": cfg.MODEL.NAME, "weights": checkpoint, "split": args.split,
                               "annotation_file": dataset.annotation_file, "override": override, **result.to_dict()})
    print(override)
    return 0 if result.met else 1


if __name__ == "__main__":
    run_tool(main)
