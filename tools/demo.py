#!/usr/bin/env python3
"""The embedded default, end to end on a CPU in minutes: a synthetic Kinetics-layout dataset,
a tiny TimeSformer trained on it, and 1x3-view tests without ATS, with ATS off-the-shelf and
after a short ATS fine-tune, in one table (see experiments/demo.py)."""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from video_ats.cli import run_tool, tool_parser  # noqa: E402
from experiments.demo import run_demo  # noqa: E402


def main(argv=None) -> int:
    parser = tool_parser(__doc__)
    parser.add_argument("--data", default="cache/synthetic_demo", help="synthetic dataset folder (reused if present)")
    parser.add_argument("--out", default="runs/demo", help="output folder (finished steps are reused)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE",
                        help="config overrides for every step, e.g. DATA_LOADER.NUM_WORKERS 0")
    args = parser.parse_args(argv)
    summary = run_demo(args.data, args.out, progress=not args.no_progress, extra_overrides=args.opts)
    print()
    print(summary["table"])
    print(f"\ndone in {summary['seconds']:.0f} s; results in {os.path.join(args.out, 'demo_results.json')}")
    return 0


if __name__ == "__main__":
    run_tool(main)
