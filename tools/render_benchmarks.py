#!/usr/bin/env python
"""Render the benchmark tables of docs/benchmarks.md and README.md from the committed JSON.

    python tools/render_benchmarks.py                     # rewrite the generated blocks
    python tools/render_benchmarks.py --check             # exit 1 if a block differs from its JSON

The blocks sit between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` markers
(experiments/bench_report.py); everything outside them is left alone.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from experiments.bench_report import render_files, stale_blocks  # noqa: E402
from video_ats.cli import run_tool, tool_parser  # noqa: E402


def main(argv=None) -> int:
    parser = tool_parser(__doc__)
    parser.add_argument("--json", default=os.path.join(ROOT, "docs", "bench", "cpu_2threads.json"),
                        help="the CPU benchmark run (tools/benchmark.py --json)")
    parser.add_argument("--gpu-json", default=os.path.join(ROOT, "docs", "bench", "gpu_check.json"),
                        help="the GPU check's results (tools/gpu_check.py --json); absent: 'not run on a GPU'")
    parser.add_argument("--markdown", nargs="+",
                        default=[os.path.join(ROOT, "docs", "benchmarks.md"), os.path.join(ROOT, "README.md")])
    parser.add_argument("--check", action="store_true", help="only report blocks that differ from the JSON")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_blocks(args.json, args.markdown, args.gpu_json)
        for block in stale:
            print(f"stale: {block} (run python tools/render_benchmarks.py)")
        return 1 if stale else 0
    for path in render_files(args.json, args.markdown, args.gpu_json):
        print(f"rewrote the generated blocks of {path}")
    return 0


if __name__ == "__main__":
    run_tool(main)
