#!/usr/bin/env python3
"""Predict your own videos: top classes, GFLOPs, kept tokens per ATS stage, views and time per video.

    python tools/predict.py --cfg configs/synthetic/timesformer_tiny_zoo.yaml --format table \
        cache/synthetic_labels/val DATA.PATH_TO_DATA_DIR cache/synthetic_labels \
        TEST.CHECKPOINT_FILE zoo/timesformer_tiny_seed0.pt ATS.ENABLE True
    python tools/predict.py --cfg configs/kinetics400/timesformer_base_ats.yaml -o k400.jsonl --resume \
        /archive/videos list.txt "more/**/*.mp4" TEST.CHECKPOINT_FILE TimeSformer_divST_8x32_224_K400.pyth

Options come first; then, in any order, the inputs (video files, folders searched recursively,
glob patterns, text files of paths) and KEY VALUE config overrides (a KEY is a config key such
as TEST.CHECKPOINT_FILE). The weights: TEST.CHECKPOINT_FILE, else the newest checkpoint in
OUTPUT_DIR, else MODEL.PRETRAINED (as tools/test.py). Views per video: TEST.NUM_ENSEMBLE_VIEWS x
TEST.NUM_SPATIAL_CROPS, views per forward: TEST.BATCH_SIZE, decoding workers:
DATA_LOADER.NUM_WORKERS. Exit codes: 0 all predicted, 1 some videos could not be read (listed),
2 a usage or input error. Formats, resume and windows: docs/predict.md.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from video_ats.cli import config_from_args, config_parser, run_tool  # noqa: E402
from video_ats.config import get_cfg, iter_keys  # noqa: E402
from video_ats.engine.prediction_files import FORMATS, write_predictions  # noqa: E402
from video_ats.engine.predict import Predictor  # noqa: E402


def parse_args(argv):
    parser = config_parser(__doc__.strip().splitlines()[0])
    parser.usage = "%(prog)s [options] INPUT... [KEY VALUE]..."
    remainder = next(action for action in parser._actions if action.dest == "opts")
    remainder.metavar, remainder.help = "INPUT | KEY VALUE", "inputs, and config overrides in any order"
    parser.add_argument("-o", "--output", metavar="FILE", default=None,
                        help="write the rows here (default: standard output); FILE.run.json records the settings")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="jsonl (default), csv (default for a .csv output) or table (for a terminal)")
    parser.add_argument("--resume", action="store_true",
                        help="continue --output: skip the videos it holds (same settings only)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument("--top-k", type=int, default=5, help="classes per row (default 5)")
    parser.add_argument("--classes", metavar="LIST", default=None,
                        help="class names: a file (a name per line), kinetics400 or kinetics600 "
                             "(default DATA.CLASS_LIST)")
    parser.add_argument("--window", type=float, metavar="SECONDS", default=None,
                        help="also predict windows of this length: one row per window, then the video's row")
    parser.add_argument("--stride", type=float, metavar="SECONDS", default=None,
                        help="seconds between window starts (default: the window)")
    parser.add_argument("--all-scores", action="store_true", help="add every class's score to each row")
    parser.add_argument("--visualize", metavar="DIR", default=None,
                        help="write each video's kept-token overlay (PNG) into DIR")
    parser.add_argument("--random-weights", action="store_true",
                        help="load no checkpoint: the seeded random initialisation (to try the tool)")
    args = parser.parse_args(argv)
    tokens, late = split_options(parser, args.opts)
    if late:                                  # options typed after the inputs
        parser.parse_args(late, namespace=args)
    args.inputs, args.opts = split_inputs(parser, tokens)
    if not args.inputs:
        parser.error("no inputs: give video files, folders, glob patterns or text files of paths")
    return args


def split_options(parser, tokens):
    """(other tokens, this parser's options and their values) of the tokens after the first input."""
    others, options, index = [], [], 0
    while index < len(tokens):
        action = parser._option_string_actions.get(tokens[index].split("=", 1)[0])
        if action is None:
            others.append(tokens[index])
            index += 1
            continue
        takes_value = action.nargs != 0 and "=" not in tokens[index]
        options += tokens[index:index + 1 + takes_value]
        index += 1 + takes_value
    return others, options


def split_inputs(parser, tokens):
    """(inputs, KEY VALUE overrides): a token naming a config key takes the next as its value."""
    keys = set(iter_keys(get_cfg()))
    inputs, overrides, index = [], [], 0
    while index < len(tokens):
        if tokens[index] in keys:
            if index + 1 == len(tokens):
                parser.error(f"config key {tokens[index]} has no value")
            overrides += tokens[index:index + 2]
            index += 2
        else:
            inputs.append(tokens[index])
            index += 1
    return inputs, overrides


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = config_from_args(args)
    predictor = Predictor(cfg, class_names=args.classes, top_k=args.top_k, window=args.window, stride=args.stride,
                          all_scores=args.all_scores, visualize=args.visualize, random_weights=args.random_weights)
    summary = write_predictions(predictor, args.inputs, args.output, args.format, resume=args.resume,
                                overwrite=args.overwrite, progress=not args.no_progress)
    print("\n".join(summary.lines()), file=sys.stderr)
    return summary.exit_code


if __name__ == "__main__":
    run_tool(main)
