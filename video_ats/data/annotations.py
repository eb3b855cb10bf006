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

A malformed line raises :class:`AnnotationError` naming the file and line number.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence, Union

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
    """

    path: str
    label: int
    line: int
    class_name: Union[str, None] = None


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
    lines = path.read_text(encoding="utf-8").splitlines()
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
    paths so callers can prefer the one in the right class folder.
    """
    found: dict = {}
    root = os.fspath(video_root)

    def walk(folder: str, depth: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            return
        for entry in entries:
            if entry.is_dir():
                if depth < max_depth:
                    walk(entry.path, depth + 1)
            elif os.path.splitext(entry.name)[1].lower() in VIDEO_EXTENSIONS:
                found.setdefault(os.path.splitext(entry.name)[0], []).append(entry.path)

    walk(root, 1)
    return found


def detect_format(path: Union[str, os.PathLike]) -> str:
    """"kinetics_csv" when the first non-empty line is a header naming ``youtube_id``,
    "comma_list" when it holds a comma, "space_list" otherwise."""
    with open(path, encoding="utf-8", newline="") as handle:
        for line in handle:
            if line.strip():
                header = [field.strip().lower() for field in next(csv.reader([line]))]
                if "youtube_id" in header:
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


def _read_kinetics_csv(path, root: str, classes):
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header, header_line = None, 0
        for row in reader:
            if any(field.strip() for field in row):
                header, header_line = [field.strip().lower() for field in row], reader.line_num
                break
        missing = [name for name in ("youtube_id", "time_start", "time_end") if name not in header]
        if missing:
            raise AnnotationError(path, header_line, f"header lacks column(s) {missing}: {header}")
        column = {name: position for position, name in enumerate(header)}
        rows = []
        for row in reader:
            if not any(field.strip() for field in row):
                continue
            line = reader.line_num
            if len(row) != len(header):
                raise AnnotationError(
                    path, line, f"expected {len(header)} fields ({','.join(header)}), got {len(row)}"
                )
            youtube_id = row[column["youtube_id"]].strip()
            if not youtube_id:
                raise AnnotationError(path, line, "empty youtube_id")
            start = _parse_seconds(row[column["time_start"]], path, line, "time_start")
            end = _parse_seconds(row[column["time_end"]], path, line, "time_end")
            name = row[column["label"]].strip() if "label" in column else ""
            rows.append((line, youtube_id, start, end, name or None))

    if classes is None:
        by_key = {}
        for *_, name in rows:
            if name is not None:
                by_key.setdefault(class_key(name), name)
        classes = sorted(by_key.values())
    index_of = {class_key(name): index for index, name in enumerate(classes)}

    files = index_video_files(root)
    found_in_class_folder = 0
    resolved = []
    for line, youtube_id, start, end, name in rows:
        if name is not None and class_key(name) not in index_of:
            raise AnnotationError(path, line, f"class {name!r} is not in the class list")
        label = index_of[class_key(name)] if name is not None else -1
        stem = clip_file_stem(youtube_id, start, end)
        candidates = files.get(stem) or files.get(youtube_id) or []
        in_folder = [p for p in candidates if name and _is_class_folder(p, name)]
        found = (in_folder or candidates or [None])[0]
        found_in_class_folder += bool(in_folder)
        resolved.append((found, stem, line, label, name))

    # Missing files get the path they would have in the layout most found files use.
    num_found = sum(found is not None for found, *_ in resolved)
    class_folders = found_in_class_folder * 2 > num_found if num_found else True
    records = []
    for found, stem, line, label, name in resolved:
        if found is None:
            folder = name.replace(" ", "_") if (name and class_folders) else ""
            found = os.path.join(root, folder, stem + ".mp4")
        records.append(VideoRecord(found, label, line, name))
    return records, classes


def _is_class_folder(file_path: str, name: str) -> bool:
    return class_key(os.path.basename(os.path.dirname(file_path))) == class_key(name)


def _parse_seconds(text: str, path, line: int, column: str) -> int:
    value = text.strip()
    try:
        return int(value)
    except ValueError:
        pass
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is None or not seconds.is_integer():
        raise AnnotationError(path, line, f"{column} {text!r} is not a whole number of seconds")
    return int(seconds)


def _read_list(path, root: str, format: str, classes):
    records = []
    with open(path, encoding="utf-8", newline="") as handle:
        if format == "comma_list":
            reader = csv.reader(handle)
            numbered = ((reader.line_num, row) for row in reader)
        else:
            numbered = ((number, line.split()) for number, line in enumerate(handle, start=1))
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
    try:
        return int(text)
    except ValueError:
        raise AnnotationError(path, line, f"{what} {text!r} is not an integer") from None
