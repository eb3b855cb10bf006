"""Annotation readers: the files people keep next to Kinetics, turned into video records.

Three formats are read (``format="auto"`` tells them apart from the first non-empty line):

``kinetics_csv``
    The official DeepMind / CVDF CSV: a header naming the columns, e.g.
    ``label,youtube_id,time_start,time_end,split`` (later releases add ``is_cc``; test CSVs may
    have no ``label``). Class names may be quoted. Each row names a clip file
    ``<youtube_id>_<time_start:06d>_<time_end:06d>.<ext>``, found under ``video_root`` in
    per-class folders, flat, or one split folder deeper (see :func:`index_video_files`).
``space_list``
    ``path label`` per line, whitespace separated, no header (PySlowFast / TimeSformer
    ``{train,val,test}.csv``, mmaction2 ``*_list_videos.txt``). A line holding only a path has
    label -1.
``comma_list``
    ``path,label`` (the ATS repository) or ``path,num_frames,label`` (XViT), no header; a line
    holding only a path has label -1.

Class index = position of the name in the class list (a file with one name per line, or the
shipped ``kinetics400`` / ``kinetics600`` lists), or, without a class list, position in the
sorted set of class names of the CSV. Integer labels in lists are taken as they are.

Text: UTF-8, with or without a byte-order mark (what spreadsheet programs write as "CSV UTF-8");
UTF-16 / UTF-32 files with a byte-order mark are decoded too. Any other encoding is an error
naming the file, line and byte.

A malformed line raises :class:`AnnotationError` naming the file and line number. What a split
needs beyond a well-formed file (a label on every row, labels inside the model's classes, no
repeated videos) is checked by :func:`check_labels` and :func:`find_duplicates`, which the
dataset calls when it is built.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

logger = logging.getLogger(__name__)

# The one vocabulary of annotation formats: the config (DATA.ANNOTATION_FORMAT) and the tools
# (--format) take their choices from here.
ANNOTATION_FORMATS = ("auto", "kinetics_csv", "space_list", "comma_list")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".flv")
SHIPPED_CLASS_LISTS = {
    "kinetics400": "kinetics400_classes.txt",
    "kinetics600": "kinetics600_classes.txt",
}
# The shipped lists are package data (video_ats/data/class_lists/), so an installed wheel has them.
CLASS_LIST_DIR = Path(__file__).resolve().parent / "class_lists"

ClassList = Union[str, os.PathLike, Sequence[str]]


class AnnotationError(ValueError):
    """A malformed annotation or class-list file; the message names the file and line."""

    def __init__(self, path: Union[str, os.PathLike], line: int, reason: str):
        self.path = str(path)
        self.line = line
        self.reason = reason
        super().__init__(f"{self.path}:{line}: {reason}")


@dataclass(frozen=True)
class VideoRecord:
    """One video of an annotation file.

    path: where the video is (or would be, when it is missing) on disk.
    label: class index, -1 when the annotation has no label.
    line: line number in the annotation file (1-based), for error messages.
    class_name: the class name written in the file, None for integer-label lists.
    window: (time_start, time_end) in seconds when the file found is an untrimmed download
        (found by bare ``youtube_id``): the clip is that part of it. None: the whole file.
    """

    path: str
    label: int
    line: int
    class_name: Union[str, None] = None
    window: Optional[Tuple[float, float]] = None


class Annotations(NamedTuple):
    """What :func:`read_annotations` returns.

    records: one :class:`VideoRecord` per video, in file order.
    classes: class names in index order; empty when labels are bare integers and no class
        list was given.
    format: the format that was read (never "auto").
    """

    records: list
    classes: list
    format: str


def class_key(name: str) -> str:
    """The form under which class names are compared: case, quotes, ``_`` vs space ignored."""
    return " ".join(name.strip().strip('"').replace("_", " ").lower().split())


def load_class_list(source: ClassList) -> list:
    """Class names in index order.

    source: "kinetics400" / "kinetics600" (the lists shipped in data/), a path to a text file
        with one class name per line (surrounding double quotes are dropped), or a sequence
        of names (returned as a list).
    Raises AnnotationError on an empty name inside the file or a duplicate name.
    """
    if not isinstance(source, (str, os.PathLike)):
        names = [str(name) for name in source]
        _check_unique(names, "<class list>")
        return names
    path = Path(source)
    if str(source) in SHIPPED_CLASS_LISTS:
        path = CLASS_LIST_DIR / SHIPPED_CLASS_LISTS[str(source)]
    if not path.is_file():
        raise FileNotFoundError(
            f"class list {str(source)!r} is neither a file nor one of {sorted(SHIPPED_CLASS_LISTS)}"
        )
    lines = _split_lines(read_text(path))
    while lines and not lines[-1].strip():
        lines.pop()
    names = []
    for number, line in enumerate(lines, start=1):
        name = line.strip().strip('"').strip()
        if not name:
            raise AnnotationError(path, number, "empty class name (blank line inside the list)")
        names.append(name)
    _check_unique(names, path)
    return names


def _check_unique(names: Sequence[str], path) -> None:
    seen = {}
    for number, name in enumerate(names, start=1):
        key = class_key(name)
        if key in seen:
            raise AnnotationError(
                path, number, f"class {name!r} repeats the class on line {seen[key]}"
            )
        seen[key] = number


def clip_file_stem(youtube_id: str, time_start: int, time_end: int) -> str:
    """Kinetics clip name without extension: ``<youtube_id>_<start:06d>_<end:06d>``."""
    return f"{youtube_id}_{time_start:06d}_{time_end:06d}"


def index_video_files(video_root: Union[str, os.PathLike], max_depth: int = 3) -> dict:
    """Map file stem -> path for every video file under ``video_root``, at most ``max_depth``
    folders deep (depth 1: flat, 2: ``<class>/``, 3: ``<split>/<class>/``).

    When a stem occurs twice, the first in sorted path order wins; the value is a list of all
    paths so callers can prefer the one in the right class folder. A folder named like a video
    (``clip.mp4/``) is listed too, so that it is reported as a folder, not as a missing file.
    """
    found: dict = {}
    root = os.fspath(video_root)

    def walk(folder: str, depth: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            return
        for entry in entries:
            named_like_video = os.path.splitext(entry.name)[1].lower() in VIDEO_EXTENSIONS
            if named_like_video:
                found.setdefault(os.path.splitext(entry.name)[0], []).append(entry.path)
            if entry.is_dir() and not named_like_video and depth < max_depth:
                walk(entry.path, depth + 1)

    walk(root, 1)
    return found


def read_text(path: Union[str, os.PathLike]) -> str:
    """The text of an annotation or class-list file.

    UTF-8 with or without a byte-order mark; UTF-16 / UTF-32 when a byte-order mark says so.
    Byte-order marks elsewhere in the text (files pasted together) are dropped.
    Raises AnnotationError naming the line and byte when the bytes are not valid UTF-8, or
    when the text holds NUL characters (UTF-16 without a byte-order mark).
    """
    data = Path(path).read_bytes()
    encoding = "utf-8"
    for bom, name in _BYTE_ORDER_MARKS:
        if data.startswith(bom):
            data, encoding = data[len(bom):], name
            break
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        guess = " (it looks like Latin-1 / Windows-1252 text)" if encoding == "utf-8" else ""
        raise AnnotationError(path, line, f"byte 0x{data[error.start]:02x} (column {column}) is not {encoding}; "
                                          f"save the file as UTF-8{guess}") from None
    text = text.replace("\ufeff", "")
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise AnnotationError(path, line, "holds NUL characters: UTF-16 text without a byte-order mark, or a "
                                          "binary file? Save it as UTF-8")
    return text


# UTF-32 before UTF-16: the UTF-32 LE mark starts with the UTF-16 LE one.
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _split_lines(text: str) -> List[str]:
    """Lines as an editor numbers them (\\n, \\r\\n or \\r), without the line breaks."""
    return io.StringIO(text, newline=None).read().split("\n") if text else []


def detect_format(path: Union[str, os.PathLike]) -> str:
    """"kinetics_csv" when the first non-empty line is a header naming ``youtube_id``,
    ``time_start`` or ``time_end``, or starting with ``label`` (so a damaged header is reported
    as one), "comma_list" when it holds a comma, "space_list" otherwise."""
    for number, line in enumerate(_split_lines(read_text(path)), start=1):
        if line.strip():
            try:
                header = [field.strip().lower() for field in next(csv.reader([line]))]
            except csv.Error as error:
                raise AnnotationError(path, number, f"not a valid CSV line: {error}") from None
            if {"youtube_id", "time_start", "time_end"} & set(header) or header[0] == "label":
                return "kinetics_csv"
            return "comma_list" if "," in line else "space_list"
    raise AnnotationError(path, 1, "the annotation file is empty")


def read_annotations(
    annotation_file: Union[str, os.PathLike],
    video_root: Union[str, os.PathLike, None] = None,
    *,
    format: str = "auto",
    class_list: Union[ClassList, None] = None,
) -> Annotations:
    """Read an annotation file into video records.

    annotation_file: the CSV or list file.
    video_root: folder the video paths are relative to (lists) or searched in (Kinetics CSV);
        None means the current directory for lists and the annotation file's folder for a
        Kinetics CSV. Absolute paths in lists are kept as they are.
    format: one of ANNOTATION_FORMATS.
    class_list: see :func:`load_class_list`; None derives classes from the CSV's sorted names.
    Returns :class:`Annotations` (records, classes, format).
    Raises AnnotationError (file and line named) on a malformed line, an unknown class name or
    a label outside the class list; FileNotFoundError when the file does not exist.
    """
    if format not in ANNOTATION_FORMATS:
        raise ValueError(f"annotation format {format!r} is not one of {ANNOTATION_FORMATS}")
    if not os.path.isfile(annotation_file):
        raise FileNotFoundError(f"annotation file {os.fspath(annotation_file)!r} does not exist")
    root = os.fspath(video_root) if video_root is not None else ""
    classes = load_class_list(class_list) if class_list is not None else None
    if format == "auto":
        format = detect_format(annotation_file)
    if format == "kinetics_csv":
        root = root or os.path.dirname(os.path.abspath(annotation_file))
        records, classes = _read_kinetics_csv(annotation_file, root, classes)
    else:
        records = _read_list(annotation_file, root, format, classes)
        classes = classes or []
    return Annotations(records, classes, format)


def _csv_rows(path, text: str):
    """(line number, fields) of every CSV row; a row the csv module cannot parse (a NUL, an
    unclosed quote) is an AnnotationError naming its line."""
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise AnnotationError(path, reader.line_num, f"not a valid CSV row: {error}") from None
        yield reader.line_num, row


def _read_kinetics_csv(path, root: str, classes):
    rows = _kinetics_csv_rows(path)
    if classes is None:
        by_key = {}
        for *_, name in rows:
            if name is not None:
                by_key.setdefault(class_key(name), name)
        classes = sorted(by_key.values())
    index_of = {class_key(name): index for index, name in enumerate(classes)}
    return _kinetics_records(path, root, rows, index_of), classes


def _kinetics_csv_rows(path) -> list:
    """The rows of an official Kinetics CSV: [(line, youtube_id, start, end, class name or None)]."""
    rows_of_file = _csv_rows(path, read_text(path))
    header, header_line = None, 0
    for line, row in rows_of_file:
        if any(field.strip() for field in row):
            header, header_line = [field.strip().lower() for field in row], line
            break
    missing = [name for name in ("youtube_id", "time_start", "time_end") if name not in (header or [])]
    if missing:
        raise AnnotationError(path, header_line, f"header lacks column(s) {missing}: {header}")
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:
        raise AnnotationError(path, header_line, f"header names column(s) {repeated} twice: {header}")
    column = {name: position for position, name in enumerate(header)}
    rows = []
    for line, row in rows_of_file:
        if not any(field.strip() for field in row):
            continue
        if len(row) != len(header):
            raise AnnotationError(
                path, line, f"expected {len(header)} fields ({','.join(header)}), got {len(row)}"
            )
        youtube_id = row[column["youtube_id"]].strip()
        if not youtube_id:
            raise AnnotationError(path, line, "empty youtube_id")
        start = _parse_seconds(row[column["time_start"]], path, line, "time_start")
        end = _parse_seconds(row[column["time_end"]], path, line, "time_end")
        if end <= start:
            raise AnnotationError(path, line, f"time_end {end} is not after time_start {start}")
        name = row[column["label"]].strip() if "label" in column else ""
        rows.append((line, youtube_id, start, end, name or None))
    return rows


def _kinetics_records(path, root: str, rows: list, index_of: dict) -> list:
    """The rows' VideoRecords: each found under ``root`` as a trimmed clip (in a class folder
    or not) or, by bare youtube_id, as an untrimmed download cut to the row's window."""
    files = index_video_files(root)
    found_in_class_folder = 0
    resolved = []
    for line, youtube_id, start, end, name in rows:
        if name is not None and class_key(name) not in index_of:
            raise AnnotationError(path, line, f"class {name!r} is not in the class list")
        label = index_of[class_key(name)] if name is not None else -1
        stem = clip_file_stem(youtube_id, start, end)
        # A file named by the bare youtube_id is an untrimmed download: the clip is its window.
        trimmed = files.get(stem)
        candidates = trimmed or files.get(youtube_id) or []
        window = None if trimmed or not candidates else (float(start), float(end))
        in_folder = [p for p in candidates if name and _is_class_folder(p, name)]
        found = (in_folder or candidates or [None])[0]
        found_in_class_folder += bool(in_folder)
        resolved.append((found, stem, line, label, name, window))

    # Missing files get the path they would have in the layout most found files use.
    num_found = sum(found is not None for found, *_ in resolved)
    class_folders = found_in_class_folder * 2 > num_found if num_found else True
    records = []
    for found, stem, line, label, name, window in resolved:
        if found is None:
            folder = name.replace(" ", "_") if (name and class_folders) else ""
            found = os.path.join(root, folder, stem + ".mp4")
        records.append(VideoRecord(found, label, line, name, window))
    return records


def _is_class_folder(file_path: str, name: str) -> bool:
    return class_key(os.path.basename(os.path.dirname(file_path))) == class_key(name)


_WHOLE_SECONDS = re.compile(r"[0-9]+(\.0*)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")


def _parse_seconds(text: str, path, line: int, column: str) -> int:
    value = text.strip()
    if not _WHOLE_SECONDS.fullmatch(value):
        raise AnnotationError(path, line, f"{column} {text!r} is not a whole number of seconds")
    return int(value.split(".")[0])


def _read_list(path, root: str, format: str, classes):
    text = read_text(path)
    if format == "comma_list":
        numbered = _csv_rows(path, text)
    else:
        numbered = ((number, line.split()) for number, line in enumerate(_split_lines(text), start=1))
    records = []
    for line, fields in numbered:
        fields = [field.strip() for field in fields]
        if not any(fields):
            continue
        records.append(_list_record(fields, path, line, root, format, classes))
    return records


def _list_record(fields, path, line: int, root: str, format: str, classes) -> VideoRecord:
    if format == "comma_list":
        expected = "'path', 'path,label' or 'path,num_frames,label'"
        if len(fields) == 3:
            _parse_int(fields[1], path, line, "num_frames")
            fields = [fields[0], fields[2]]
    else:
        expected = "'path' or 'path label' (paths with spaces need the comma format)"
    if len(fields) not in (1, 2) or not fields[0]:
        raise AnnotationError(path, line, f"expected {expected}, got {len(fields)} fields")
    label = _parse_int(fields[1], path, line, "label") if len(fields) == 2 else -1
    if label < -1 or (classes and label >= len(classes)):
        raise AnnotationError(
            path, line, f"label {label} is outside the class list of {len(classes or [])} classes"
        )
    return VideoRecord(os.path.join(root, fields[0]), label, line)


def _parse_int(text: str, path, line: int, what: str) -> int:
    # Stricter than int(): no "1_0", no non-ASCII digits, which a damaged file can produce.
    if not _INTEGER.fullmatch(text):
        raise AnnotationError(path, line, f"{what} {text!r} is not an integer")
    return int(text)


# ---------------------------------------------------------------------------------------------
# What a split needs beyond a well-formed file


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _has(count: int) -> str:
    return "has" if count == 1 else "have"


def _lines(records: Sequence[VideoRecord], limit: int = 10) -> str:
    shown = ", ".join(str(record.line) for record in records[:limit])
    return shown + (", ..." if len(records) > limit else "")


def check_labels(
    records: Sequence[VideoRecord],
    annotation_file: Union[str, os.PathLike],
    *,
    num_classes: Optional[int] = None,
    require_labels: bool = True,
) -> None:
    """Check the labels of a split before any work, so a bad row never waits for the sampler.

    records: what :func:`read_annotations` read from ``annotation_file``.
    num_classes: the model's class count; labels must lie in [0, num_classes). None: no
        upper bound (the reader already checked labels against a class list).
    require_labels: every row needs a label (train and val splits); False lets rows without a
        label through (a test split whose videos are only to be predicted).
    Raises AnnotationError at the first offending row, with the count and the first lines.
    """
    unlabelled = [record for record in records if record.label < 0]
    if require_labels and unlabelled:
        raise AnnotationError(
            annotation_file, unlabelled[0].line,
            f"{len(unlabelled)} of {len(records)} rows {_has(len(unlabelled))} no label (lines {_lines(unlabelled)}); "
            f"a training or validation split needs a label on every row (only a test split may be unlabelled)")
    if num_classes is not None:
        outside = [record for record in records if record.label >= num_classes]
        if outside:
            labels = sorted({record.label for record in outside})
            raise AnnotationError(
                annotation_file, outside[0].line,
                f"{_rows(len(outside))} {_has(len(outside))} a label outside the model's {num_classes} classes "
                f"[0, {num_classes}) "
                f"(labels {labels[:10]}{' ...' if len(labels) > 10 else ''}; lines {_lines(outside)})")


def find_duplicates(records: Sequence[VideoRecord]) -> List[Tuple[VideoRecord, VideoRecord]]:
    """(repeat, first) pairs of records that name the same video (same file and window), in
    file order: a repeated row would be trained on, or counted in the metrics, twice."""
    first_of = {}
    repeats = []
    for record in records:
        key = (os.path.normpath(os.path.abspath(record.path)), record.window)
        if key in first_of:
            repeats.append((record, first_of[key]))
        else:
            first_of[key] = record
    return repeats


def describe_duplicates(repeats: Sequence[Tuple[VideoRecord, VideoRecord]], limit: int = 5) -> str:
    """One line: how many rows repeat an earlier one, and the first few (line -> first line)."""
    shown = ", ".join(f"line {repeat.line} repeats line {first.line}" for repeat, first in repeats[:limit])
    more = ", ..." if len(repeats) > limit else ""
    verb = "repeats" if len(repeats) == 1 else "repeat"
    return f"{_rows(len(repeats))} {verb} a video of an earlier row ({shown}{more})"


def validate_records(records: Sequence[VideoRecord], path, *, num_classes: Optional[int], require_labels: bool,
                     allow_duplicates: bool, how_to_allow: str = "allow_duplicates=True") -> None:
    """Every check a split gets before any work: at least one video, labels (`check_labels`) and
    repeated videos (an AnnotationError naming ``how_to_allow``, or a warning when allowed)."""
    if not records:
        raise AnnotationError(path, 1, "no videos in the annotation file")
    check_labels(records, path, num_classes=num_classes, require_labels=require_labels)
    repeats = find_duplicates(records)
    if repeats and not allow_duplicates:
        raise AnnotationError(path, repeats[0][0].line,
                              f"{describe_duplicates(repeats)}; remove them, or allow them ({how_to_allow})")
    if repeats:
        logger.warning("%s: %s; they are kept", os.fspath(path), describe_duplicates(repeats))
