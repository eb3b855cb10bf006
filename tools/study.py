#!/usr/bin/env python
"""The sampling study: its vs topk vs random at matched GFLOPs on the synthetic dataset.

    python tools/study.py                      # the whole study (docs/results.md, docs/figures/study_*.png)
    python tools/study.py --seeds 0 --backbones TimeSformer   # a smaller run
    python tools/study.py --report-only        # rewrite docs/results.md from runs/study/study.json

Trains tiny TimeSformer and XViT baselines per seed (cached in --output-dir), evaluates every
sampler and scope at about 100/80/65/50 % of the baseline GFLOPs with 1x3 views, fine-tunes
each sampler briefly at 50 %, and writes study.json, the figures and docs/results.md.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.study import BACKBONES, run_study, write_report  # noqa: E402
from video_ats.cli import run_tool, tool_parser  # noqa: E402


def main(argv=None):
    parser = tool_parser(__doc__)
    parser.add_argument("--output-dir", default="runs/study")
    parser.add_argument("--data-root", default="cache/synthetic_study")
    parser.add_argument("--docs-dir", default="docs", help="where results.md and figures/ go ('' for none)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--backbones", nargs="+", choices=sorted(BACKBONES), default=None)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite results.md and the figures from OUTPUT_DIR/study.json without running anything")
    args = parser.parse_args(argv)
    if args.report_only:
        with open(os.path.join(args.output_dir, "study.json"), encoding="utf-8") as handle:
            print(write_report(json.load(handle), args.docs_dir))
        return
    run_study(args.output_dir, args.data_root, args.docs_dir, seeds=args.seeds, backbones=args.backbones,
              progress=not args.quiet)


if __name__ == "__main__":
    run_tool(main)
