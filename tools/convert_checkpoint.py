#!/usr/bin/env python3
"""Convert a checkpoint of any supported format to this toolkit's format.

    python tools/convert_checkpoint.py --input TimeSformer_divST_8x32_224_K400.pyth \\
        --output checkpoints/timesformer_base_k400.pt --model timesformer_base
    python tools/convert_checkpoint.py --input TimeSformer_divST_16x16_448_K400.pyth \\
        --output checkpoints/timesformer_hr_k400.pt --model timesformer_hr        # time_embed 8 -> 16
    python tools/convert_checkpoint.py --input xvit_b16_16_k600.pth --output xvit_k600.pt \\
        --model xvit_b16_16 "ats={'ratio': 0.7}"

Formats, detection and resizing: docs/checkpoints.md. The work is done by
video_ats.checkpoint.convert_checkpoint; this file only parses arguments.
"""

import argparse
import ast
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing

from video_ats.checkpoint import SOURCES, convert_checkpoint  # noqa: E402
from video_ats.cli import run_tool, tool_parser  # noqa: E402


def parse_override(text: str):
    """KEY=VALUE with VALUE a Python literal (16, 0.5, True, {'ratio': 0.7}) or a bare string."""
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"override {text!r} is not KEY=VALUE")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def main(argv=None) -> int:
    parser = tool_parser(__doc__)
    parser.add_argument("--input", required=True, help="checkpoint file or Hugging Face model directory")
    parser.add_argument("--output", required=True, help="video_ats checkpoint to write")
    parser.add_argument("--model", required=True, help="build_model preset, e.g. timesformer_base, xvit_b16_16")
    parser.add_argument("--num-classes", type=int, default=None, help="default: the checkpoint's class count")
    parser.add_argument("--source", default="auto", choices=["auto", *SOURCES])
    parser.add_argument("--drop-head", action="store_true",
                        help="keep a freshly initialised classifier when the class counts differ")
    parser.add_argument("--no-resize", action="store_true", help="fail instead of resizing pos/time embeddings")
    parser.add_argument("overrides", nargs="*", type=parse_override, metavar="KEY=VALUE",
                        help="build_model overrides (num_frames=16 img_size=448 ...) and ats={...}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides = dict(args.overrides)
    ats = overrides.pop("ats", None)
    report = convert_checkpoint(args.input, args.output, args.model, num_classes=args.num_classes,
                                source=args.source, drop_head=args.drop_head,
                                resize_embeddings=not args.no_resize, ats=ats, **overrides)
    print(report.summary())
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    run_tool(main)
