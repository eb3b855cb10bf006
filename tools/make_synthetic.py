#!/usr/bin/env python
"""Write the synthetic Kinetics-layout dataset (video_ats.data.synthetic); reuse it when the
folder already holds one made with the same parameters."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from video_ats.cli import run_tool, tool_parser  # noqa: E402
from video_ats.data.synthetic import ACTION_CLASSES, CLUTTER_LEVELS, make_synthetic_dataset  # noqa: E402


def main(argv=None) -> int:
    parser = tool_parser(__doc__)
    parser.add_argument("root", help="output folder")
    parser.add_argument("--num-classes", type=int, default=len(ACTION_CLASSES),
                        help=f"first N of {list(ACTION_CLASSES)}")
    parser.add_argument("--classes", nargs="+", default=None, metavar="NAME",
                        help="these action names instead of --num-classes (quote names with spaces)")
    parser.add_argument("--train", type=int, default=32, help="training clips per class")
    parser.add_argument("--val", type=int, default=8, help="validation clips per class")
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--width", type=int, default=56)
    parser.add_argument("--fps", type=float, default=8)
    parser.add_argument("--clutter-levels", type=int, nargs="+", default=[0, 1, 2, 3],
                        help=f"levels among {sorted(CLUTTER_LEVELS)}, cycled over the clips")
    parser.add_argument("--actor-size", type=float, default=10.0, help="side of the actor in pixels")
    parser.add_argument("--amplitude", type=float, default=8.0, help="pixels a moving object travels each way")
    parser.add_argument("--noise-std", type=float, default=2.0)
    parser.add_argument("--crf", type=int, default=18)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    dataset = make_synthetic_dataset(
        args.root,
        num_classes=args.num_classes,
        classes=args.classes,
        videos_per_class={"train": args.train, "val": args.val},
        num_frames=args.num_frames,
        height=args.height,
        width=args.width,
        fps=args.fps,
        clutter_levels=args.clutter_levels,
        actor_size=args.actor_size,
        amplitude=args.amplitude,
        noise_std=args.noise_std,
        crf=args.crf,
        seed=args.seed,
    )
    print(json.dumps({
        "root": str(dataset.root),
        "generated": dataset.generated,
        "classes": list(dataset.classes),
        "annotations": {split: str(path) for split, path in dataset.annotations.items()},
    }, indent=2))
    return 0


if __name__ == "__main__":
    run_tool(main)
