"""What every command-line tool shares: its parser and its exit codes.

Parser: `tool_parser` (the description from the tool's docstring, kept as written), and for the
tools driven by a config, `config_parser`: ``--cfg FILE`` then ``KEY VALUE`` overrides, as
PySlowFast does.

Exit codes (`run_tool`):

    0  done
    1  done, with findings: some videos are bad (check_data), a target was missed (calibrate)
    2  a usage or input error: a bad option (argparse), a bad config key, a missing file, a bad
       annotation, a checkpoint that does not fit, a run that cannot resume, a full disk.
       One line on stderr, ``error: ...``, never a traceback.

Anything else (a bug) keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import sys
from typing import Callable, Optional, Sequence

from yacs.config import CfgNode

from .config import load_config
from .data.decoders import VideoDecodeError

EXIT_OK, EXIT_FINDINGS, EXIT_USER_ERROR = 0, 1, 2
# Errors that mean "the input is wrong", not "the program is": ValueError covers bad configs,
# AnnotationError and CheckpointError; OSError covers missing files, permissions, a full disk.
USER_ERRORS = (ValueError, OSError, VideoDecodeError)


def tool_parser(description: str) -> argparse.ArgumentParser:
    """The parser every tool starts from; ``description`` is shown as written (usage examples)."""
    return argparse.ArgumentParser(description=description.strip(),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def config_parser(description: str) -> argparse.ArgumentParser:
    """`tool_parser` with ``--cfg FILE``, ``--no-progress`` and trailing ``KEY VALUE`` overrides."""
    parser = tool_parser(description)
    parser.epilog = ("Any KEY VALUE pairs after the options override the config, e.g. "
                     "TRAIN.BATCH_SIZE 4 ATS.ENABLE True (see video_ats/config.py).")
    parser.add_argument("--cfg", metavar="FILE", default=None, help="YAML config (overrides video_ats/config.py)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides")
    return parser


def config_from_args(args: argparse.Namespace) -> CfgNode:
    return load_config(args.cfg, args.opts)


def error_line(error: BaseException) -> str:
    """The one line a tool prints for a user error."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        where = error.filename or "the output device"
        return f"no space left on {where}"
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.strerror}: {error.filename}"
    parts = [part.strip() for part in str(error).splitlines() if part.strip()]
    return "; ".join(parts) or type(error).__name__


def run_tool(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None) -> None:
    """Run a tool's ``main(argv)`` and exit with its code (None counts as 0); a user error
    (`USER_ERRORS`) ends it with ``error: <one line>`` on stderr and exit code 2, an
    interruption (Ctrl-C) with code 130."""
    try:
        code = main(argv)
    except USER_ERRORS as error:
        print(f"error: {error_line(error)}", file=sys.stderr)
        code = EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code or 0)
