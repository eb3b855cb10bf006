"""Predictions written as JSON lines, CSV or a terminal table, and resumed after a kill.

Rows (docs/predict.md lists every field and column): with ``--window`` each window of a video
gives a row (``window`` = its index, start, end) and the video's aggregate row comes last; a
video that cannot be read gives one row with its ``error``. A video's rows are written
together and flushed when the video finishes, so a killed run loses only the videos in flight.

A file output gets a settings file beside it, ``<output>.run.json``: the `Predictor.settings`
(model, weights hash, ATS, views, window, top-k, ...) and the format. ``resume`` continues a
file only when those are equal; it keeps the rows up to the last finished video (a row cut by
the kill, or the window rows of a video without its aggregate row, are dropped) and skips the
videos already there, so every video ends up in the file exactly once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import IO, Dict, List, Optional, Tuple

from tqdm import tqdm

from .predict import PredictionStats, Predictor
from .tester import write_json

FORMATS = ("jsonl", "csv", "table")
FORMAT_VERSION = 1
RUN_SUFFIX = ".run.json"
TABLE_CLASSES = 3
# Failures of an earlier run listed again when resuming (all of them are in the output's rows).
EARLIER_SHOWN = 20


def output_format(path: Optional[str], format: Optional[str] = None) -> str:
    """``format`` when given, else from the output's extension (.csv: csv, otherwise jsonl)."""
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"format {format!r} is not one of {list(FORMATS)}")
        return format
    return "csv" if path is not None and path.lower().endswith(".csv") else "jsonl"


def file_rows(record: dict) -> List[dict]:
    """A `Predictor.predict` record as the rows of a file: one per window, then the video's."""
    windows = record.get("windows") or []
    video = {key: value for key, value in record.items() if key not in ("windows", "error")}
    if "windows" in record:
        video["windows"] = len(windows)
    video["error"] = record["error"]
    rows = [{"path": record["path"], "window": window["index"], "start": window["start"], "end": window["end"],
             **{key: value for key, value in window.items() if key not in ("index", "start", "end")}, "error": None}
            for window in windows]
    return rows + [video]


# ---------------------------------------------------------------------------------------------
# Formats


class JsonLines:
    """One JSON object per row (NaN written as null)."""

    resumable = True

    def header(self) -> str:
        return ""

    def row(self, row: dict) -> str:
        return json.dumps(_finite(row), ensure_ascii=False) + "\n"

    def parse(self, line: str, number: int, path: str) -> Tuple[str, bool, Optional[str]]:
        """(video path, is the video's last row, error) of a row already in the file."""
        try:
            row = json.loads(line)
        except ValueError:
            raise ValueError(f"{path}:{number} is not a JSON object; not a predictions file") from None
        if not isinstance(row, dict) or "path" not in row or "window" not in row:
            raise ValueError(f"{path}:{number} has no 'path' and 'window'; not a predictions file")
        return row["path"], row["window"] is None, row.get("error")


class Csv:
    """One CSV row per row, flat columns (see `columns`)."""

    resumable = True

    def __init__(self, predictor: Predictor):
        self.columns = csv_columns(predictor)

    def header(self) -> str:
        return self._line(self.columns)

    def row(self, row: dict) -> str:
        flat = {"path": row["path"], "window": "" if row["window"] is None else row["window"],
                "error": row.get("error") or ""}
        for rank, entry in enumerate(row.get("top_k", []), start=1):
            flat.update({f"top{rank}_index": entry["index"], f"top{rank}_name": entry["name"],
                         f"top{rank}_prob": entry["prob"]})
        for stage in row.get("kept_tokens", []):
            flat[f"kept_tokens_b{stage['block']}"] = stage["tokens"]
            flat[f"kept_positions_b{stage['block']}"] = stage["positions"]
        for index, value in enumerate(row.get("scores", [])):
            flat[f"score_{index}"] = value
        seconds = row.get("seconds") or {}
        flat.update({"decode_seconds": seconds.get("decode"), "model_seconds": seconds.get("model")})
        for key in ("start", "end", "gflops", "views", "frames", "fps", "duration", "windows", "visualization"):
            flat[key] = row.get(key)
        return self._line(["" if flat.get(column) is None else flat[column] for column in self.columns])

    def parse(self, line: str, number: int, path: str) -> Tuple[str, bool, Optional[str]]:
        if number == 1:
            if next(csv.reader([line]), None) != self.columns:
                raise ValueError(f"{path}: its CSV header is not this run's columns; not a compatible predictions file")
            return "", False, None
        fields = next(csv.reader([line]), [])
        if len(fields) != len(self.columns):
            raise ValueError(f"{path}:{number} has {len(fields)} fields, not {len(self.columns)}; "
                             f"not a compatible predictions file")
        row = dict(zip(self.columns, fields))
        return row["path"], row["window"] == "", row["error"] or None

    @staticmethod
    def _line(values) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(values)
        return buffer.getvalue()


def csv_columns(predictor: Predictor) -> List[str]:
    """The CSV columns of a predictor's rows, in order."""
    columns = ["path", "window", "start", "end"]
    for rank in range(1, predictor.top_k + 1):
        columns += [f"top{rank}_index", f"top{rank}_name", f"top{rank}_prob"]
    columns += ["gflops", "views"]
    for block in predictor.ats_blocks:
        columns += [f"kept_tokens_b{block}", f"kept_positions_b{block}"]
    columns += ["frames", "fps", "duration", "windows", "decode_seconds", "model_seconds"]
    if predictor.visualize is not None:
        columns.append("visualization")
    if predictor.all_scores:
        columns += [f"score_{index}" for index in range(predictor.num_classes)]
    return columns + ["error"]


class Table:
    """Fixed-width lines for a terminal: video, window, the top classes, GFLOPs, views, kept
    positions per ATS stage, milliseconds."""

    resumable = False
    widths = (32, 11, 52, 8, 5, 12, 8)

    def __init__(self, predictor: Predictor):
        self.blocks = predictor.ats_blocks

    def header(self) -> str:
        kept = "kept b" + ",".join(str(block) for block in self.blocks) if self.blocks else "kept"
        names = ("video", "window", f"top {TABLE_CLASSES} classes (prob)", "GFLOPs", "views", kept, "ms")
        line = self._line(names)
        return line + "-" * (len(line) - 1) + "\n"

    def row(self, row: dict) -> str:
        name = os.path.basename(row["path"])
        if row.get("error") is not None:
            return f"{self._fit(name, self.widths[0])}  error: {row['error']}\n"
        window = ("all" if row.get("windows") else "") if row["window"] is None else \
            f"{row['start']:.1f}-{row['end']:.1f}s"
        classes = ", ".join(f"{entry['name'] if entry['name'] is not None else '#' + str(entry['index'])} "
                            f"({entry['prob']:.2f})" for entry in row["top_k"][:TABLE_CLASSES])
        kept = "/".join(f"{stage['positions']:.0f}" for stage in row["kept_tokens"]) or "-"
        seconds = row.get("seconds")
        milliseconds = f"{1000 * (seconds['decode'] + seconds['model']):.0f}" if seconds else ""
        return self._line((name, window, classes, f"{row['gflops']:.3f}",
                           str(row["views"]), kept, milliseconds))

    def _line(self, values) -> str:
        return "  ".join(self._fit(str(value), width) for value, width in zip(values, self.widths)).rstrip() + "\n"

    @staticmethod
    def _fit(text: str, width: int) -> str:
        return text.ljust(width) if len(text) <= width else text[:width - 1] + "…"


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def make_format(format: str, predictor: Predictor):
    return {"jsonl": lambda: JsonLines(), "csv": lambda: Csv(predictor), "table": lambda: Table(predictor)}[format]()


# ---------------------------------------------------------------------------------------------
# The settings beside a file, and what an earlier run left in it


def run_file(output: str) -> str:
    return output + RUN_SUFFIX


def run_description(predictor: Predictor, format: str) -> dict:
    """The content of ``<output>.run.json``."""
    settings = predictor.settings()
    digest = hashlib.sha256(json.dumps([settings, format], sort_keys=True).encode()).hexdigest()
    return {"tool": "video_ats predict", "format_version": FORMAT_VERSION, "format": format,
            "checkpoint": predictor.checkpoint, "settings_sha256": digest, "settings": settings}


def check_compatible(output: str, description: dict) -> None:
    """Raise ValueError unless ``output`` was written with the same settings and format."""
    path = run_file(output)
    try:
        with open(path, encoding="utf-8") as handle:
            earlier = json.load(handle)
    except FileNotFoundError:
        raise ValueError(f"{output} has no {os.path.basename(path)} beside it: not from an earlier predict run; "
                         f"not appending to it") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} cannot be read ({error}); not appending to {output}") from None
    if not isinstance(earlier, dict) or earlier.get("tool") != description["tool"]:
        raise ValueError(f"{path} is not a predict settings file; not appending to {output}")
    if earlier.get("settings_sha256") == description["settings_sha256"]:
        return
    before = dict(earlier.get("settings") or {}, format=earlier.get("format"))
    now = json.loads(json.dumps(dict(description["settings"], format=description["format"])))   # tuples as lists
    differing = sorted(key for key in set(before) | set(now) if before.get(key) != now.get(key))
    shown = "; ".join("the weights differ" if key == "weights_sha256" else
                      f"{key} {before.get(key)!r} then, {now.get(key)!r} now" for key in differing[:4])
    raise ValueError(f"{output} was written with other settings ({shown or 'another settings version'}); "
                     f"not appending: write to a new file or pass --overwrite")


@dataclass
class Earlier:
    """What a file holds: completed video paths -> error (None when predicted), and the bytes
    up to the end of the last completed video."""

    completed: Dict[str, Optional[str]] = field(default_factory=dict)
    keep_bytes: int = 0


def read_earlier(output: str, fmt) -> Earlier:
    """The finished videos of an earlier run's file (rows after the last one are unfinished)."""
    earlier = Earlier()
    with open(output, "rb") as handle:
        data = handle.read()
    offset = 0
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        if not raw.endswith(b"\n"):
            break                                          # the row a kill cut short
        offset += len(raw)
        try:
            line = raw.decode("utf-8").rstrip("\n")
        except UnicodeDecodeError:
            raise ValueError(f"{output}:{number} is not UTF-8 text; not a predictions file") from None
        path, last, error = fmt.parse(line, number, output)
        if last:
            earlier.completed[path] = error
            earlier.keep_bytes = offset
        elif number == 1 and isinstance(fmt, Csv):
            earlier.keep_bytes = offset
    return earlier


# ---------------------------------------------------------------------------------------------
# A run


@dataclass
class RunSummary:
    """What `write_predictions` did: the predictor's stats for this run, this run's failures
    [(path, reason)], and the videos an earlier run had finished (and its failures)."""

    stats: PredictionStats
    failures: List[Tuple[str, str]]
    earlier_videos: int = 0
    earlier_failures: List[Tuple[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every video was predicted, 1 when any could not be read (this run or before)."""
        return 1 if self.failures or self.earlier_failures else 0

    def lines(self) -> List[str]:
        stats = self.stats
        rate = stats.videos / stats.wall_seconds if stats.wall_seconds > 0 else float("nan")
        busy = stats.model_seconds + stats.decode_seconds
        share = (lambda part: f"{100 * part / busy:.0f}%") if busy > 0 else (lambda part: "-")
        lines = [f"predicted {stats.videos} videos ({stats.views} views), {len(self.failures)} failed, "
                 f"in {stats.wall_seconds:.1f} s: {rate:.2f} videos/s",
                 f"time: model {stats.model_seconds:.1f} s ({share(stats.model_seconds)}), decoding "
                 f"{stats.decode_seconds:.1f} s in workers ({share(stats.decode_seconds)}), waiting for decoded "
                 f"views {stats.wait_seconds:.1f} s"]
        if self.earlier_videos:
            lines.append(f"resumed: {self.earlier_videos} videos were already in the output "
                         f"({len(self.earlier_failures)} of them failed)")
        lines += [f"failed: {path}: {reason}" for path, reason in self.failures]
        lines += [f"failed earlier: {path}: {reason}" for path, reason in self.earlier_failures[:EARLIER_SHOWN]]
        if len(self.earlier_failures) > EARLIER_SHOWN:
            lines.append(f"... and {len(self.earlier_failures) - EARLIER_SHOWN} more earlier failures "
                         f"(the rows with an error in the output)")
        return lines


def write_predictions(predictor: Predictor, inputs, output: Optional[str] = None, format: Optional[str] = None, *,
                      resume: bool = False, overwrite: bool = False, progress: bool = False,
                      stream: Optional[IO[str]] = None) -> RunSummary:
    """Predict ``inputs`` into ``output`` (None: ``stream``, default stdout) in ``format``.

    Raises ValueError (before any video is read) for: resume without a file or in table format,
    an existing output without resume or overwrite, an output from another run's settings, a file
    that is not a predictions file.
    """
    format = output_format(output, format)
    fmt = make_format(format, predictor)
    if resume and (output is None or not fmt.resumable):
        raise ValueError("--resume needs an --output file in jsonl or csv format")
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    earlier = Earlier()
    if output is None:
        handle, close = stream or sys.stdout, False
        handle.write(fmt.header())
    else:
        description = run_description(predictor, format)
        exists = os.path.exists(output) and os.path.getsize(output) > 0
        if exists and not (resume or overwrite):
            raise ValueError(f"{output} exists: pass --resume to continue it or --overwrite to replace it")
        if exists and resume:
            check_compatible(output, description)
            earlier = read_earlier(output, fmt)
        else:
            _write_json(run_file(output), description)
        handle, close = _open_output(output, earlier, fmt), True
    summary = RunSummary(predictor.stats, [], len(earlier.completed),
                         [(path, error) for path, error in earlier.completed.items() if error is not None])
    try:
        for record in predictor.predict(inputs, skip=earlier.completed, progress=progress):
            text = "".join(fmt.row(row) for row in file_rows(record))
            if close:
                handle.write(text)
            else:                               # a terminal: clear the progress bar first
                tqdm.write(text, file=handle, end="")
            handle.flush()
            if record["error"] is not None:
                summary.failures.append((record["path"], record["error"]))
    finally:
        summary.stats = predictor.stats
        if close:
            handle.close()
    return summary


def _open_output(output: str, earlier: Earlier, fmt) -> IO[str]:
    directory = os.path.dirname(os.path.abspath(output))
    os.makedirs(directory, exist_ok=True)
    if earlier.keep_bytes:
        with open(output, "r+b") as handle:
            handle.truncate(earlier.keep_bytes)
        return open(output, "a", encoding="utf-8", newline="")
    handle = open(output, "w", encoding="utf-8", newline="")
    handle.write(fmt.header())
    handle.flush()
    return handle


def _write_json(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_json(path, data)
