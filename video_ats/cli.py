"""The command-line convention shared by every tool: ``--cfg FILE`` then ``KEY VALUE`` overrides."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional, Sequence

from yacs.config import CfgNode

from .config import load_config


def config_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description,
                                     epilog="Any KEY VALUE pairs after the options override the config, e.g. "
                                            "TRAIN.BATCH_SIZE 4 ATS.ENABLE True (see video_ats/config.py).")
    parser.add_argument("--cfg", metavar="FILE", default=None, help="YAML config (overrides video_ats/config.py)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides")
    return parser


def config_from_args(args: argparse.Namespace) -> CfgNode:
    return load_config(args.cfg, args.opts)


def run_tool(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None) -> None:
    """Run a tool's main; a ValueError (bad config, file, checkpoint, data) ends it with exit code 2
    and one clear line instead of a traceback."""
    try:
        code = main(argv)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        code = 2
    sys.exit(code or 0)
