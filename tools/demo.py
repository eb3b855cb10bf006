#!/usr/bin/env python3
"""The embedded default (`make demo`): a shipped zoo model (tiny TimeSformer, trained without
ATS) tested with 1x3 views without ATS, then with ATS off-the-shelf at three GFLOPs budgets for
each rule (its with the midpoint and the official grid, topk, random), in one table and one
figure (see experiments/demo.py). About a minute on 2 CPU cores; no training."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.demo import publish, run_demo  # noqa: E402
from video_ats.cli import run_tool, tool_parser  # noqa: E402


def main(argv=None) -> int:
    parser = tool_parser(__doc__)
    parser.add_argument("--data", default="cache/synthetic_demo", help="where the validation clips are written")
    parser.add_argument("--out", default="runs/demo", help="output folder: demo.json, demo.png")
    parser.add_argument("--no-progress", action="store_true", help="only the final table")
    parser.add_argument("--publish", action="store_true",
                        help="also write docs/demo.json, docs/figures/demo.png and the README table")
    args = parser.parse_args(argv)
    summary = run_demo(args.out, args.data, progress=not args.no_progress)
    print()
    print(summary["table"])
    print(f"\ndone in {summary['seconds']:.0f} s; {os.path.join(args.out, 'demo.json')}, "
          f"{os.path.join(args.out, 'demo.png')}")
    if args.publish:
        publish(summary, args.out)
    return 0


if __name__ == "__main__":
    run_tool(main)
