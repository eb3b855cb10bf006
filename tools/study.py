#!/usr/bin/env python
"""The sampling study on the model zoo: its (midpoint and official grids), topk and random at
matched GFLOPs, off-the-shelf and fine-tuned, and kept tokens against clutter (docs/results.md).

    python tools/study.py                          # everything: runs/study/, docs/study.json, docs/results.md
    python tools/study.py --backbones XViT --no-report   # one backbone (run two processes side by side)
    python tools/study.py --report-only            # docs/ again from runs/study/<backbone>.json

Uses zoo/*.pt as shipped (see docs/zoo.md) and the zoo's benchmark (written into
cache/synthetic_zoo if missing).
"""

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.study import BACKBONES, collect, run_backbone, write_report  # noqa: E402
from video_ats.cli import run_tool, tool_parser  # noqa: E402


def main(argv=None):
    parser = tool_parser(__doc__)
    parser.add_argument("--output-dir", default="runs/study")
    parser.add_argument("--docs-dir", default="docs", help="where study.json, results.md and figures/ go")
    parser.add_argument("--backbones", nargs="+", choices=sorted(BACKBONES), default=sorted(BACKBONES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-finetune", action="store_true", help="off-the-shelf rows only")
    parser.add_argument("--no-report", action="store_true", help="measure only (runs/study/<backbone>.json)")
    parser.add_argument("--report-only", action="store_true", help="collect and report without measuring")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if not args.report_only:
        for backbone in args.backbones:
            run_backbone(backbone, args.output_dir, seeds=args.seeds, finetune=not args.no_finetune,
                         progress=not args.quiet)
    if args.no_report:
        return
    results = collect(args.output_dir, args.backbones)
    os.makedirs(args.docs_dir, exist_ok=True)
    shutil.copyfile(os.path.join(args.output_dir, "study.json"), os.path.join(args.docs_dir, "study.json"))
    print(write_report(results, args.docs_dir))


if __name__ == "__main__":
    run_tool(main)
