"""Scan an annotation file and its videos before a long run: is the file well formed, do its
labels fit the split, which videos are missing or cannot be decoded, and why.

The annotation file is read and validated exactly as the dataset does it (an error there is an
AnnotationError, raised before any video is opened). A video passes when it opens with the
chosen decoder, holds at least one frame, and the first, middle and last frames of its clip
decode (a truncated file fails on the last frame at the latest). For an untrimmed download the
clip is the row's time window.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import List, NamedTuple, Sequence, Union

from .annotations import (
    AnnotationError,
    VideoRecord,
    check_labels,
    describe_duplicates,
    find_duplicates,
    read_annotations,
)
from .decoders import VideoDecodeError, get_decoder
from .kinetics import clip_frame_range

SPLITS = ("train", "val", "test")


class VideoProblem(NamedTuple):
    """One video that cannot be used: ``kind`` is "missing" or "undecodable"."""

    line: int
    path: str
    kind: str
    reason: str


class CheckReport(NamedTuple):
    """num_videos scanned and the problems found, in annotation order; num_unlabelled rows
    without a label (a test split: predictions only); num_repeated rows naming a video an
    earlier row names (allowed with ``allow_duplicates``)."""

    num_videos: int
    problems: List[VideoProblem]
    num_unlabelled: int = 0
    num_repeated: int = 0

    @property
    def num_missing(self) -> int:
        return sum(problem.kind == "missing" for problem in self.problems)

    @property
    def num_undecodable(self) -> int:
        return sum(problem.kind == "undecodable" for problem in self.problems)

    def summary(self) -> str:
        """One line: counts of videos checked, missing, undecodable and usable."""
        usable = self.num_videos - len(self.problems)
        line = (
            f"checked {self.num_videos} videos: {self.num_missing} missing, "
            f"{self.num_undecodable} undecodable, {usable} ok"
        )
        if self.num_unlabelled == self.num_videos:
            line += "; no labels: predictions only"
        elif self.num_unlabelled:
            line += f"; {self.num_unlabelled} without a label (predicted, not scored)"
        if self.num_repeated:
            line += f"; {self.num_repeated} repeated rows (allowed)"
        return line


def check_video(path: str, decoder: str = "decord", record: Union[VideoRecord, None] = None) -> Union[str, None]:
    """None when the video is usable, else the reason it is not. ``record``: the annotation
    row, whose time window (untrimmed downloads) bounds the frames checked."""
    try:
        with get_decoder(decoder)(path) as video:
            first, count = clip_frame_range(record, video) if record is not None else (0, video.num_frames)
            last = count - 1
            video.get_frames(sorted({first, first + last // 2, first + last}))
    except VideoDecodeError as error:
        return error.reason
    return None


def _check_record(args) -> Union[VideoProblem, None]:
    record, decoder = args
    reason = check_video(record.path, decoder, record)
    if reason is None:
        return None
    kind = "missing" if reason == "missing file" else "undecodable"
    return VideoProblem(record.line, record.path, kind, reason)


def check_videos(
    records: Sequence[VideoRecord], decoder: str = "decord", num_workers: int = 0
) -> CheckReport:
    """Check every record's video; ``num_workers`` > 0 checks in that many processes."""
    get_decoder(decoder)  # an unknown name fails here, not in a worker
    jobs = [(record, decoder) for record in records]
    if num_workers > 0:
        with ProcessPoolExecutor(num_workers) as pool:
            results = list(pool.map(_check_record, jobs, chunksize=16))
    else:
        results = [_check_record(job) for job in jobs]
    return CheckReport(len(records), [problem for problem in results if problem is not None])


def check_annotation_file(
    annotation_file,
    video_root=None,
    *,
    annotation_format: str = "auto",
    decoder: str = "decord",
    num_workers: int = 0,
    class_list=None,
    num_classes: Union[int, None] = None,
    split: Union[str, None] = None,
    allow_duplicates: bool = False,
) -> CheckReport:
    """Read an annotation file (any format of :func:`read_annotations`), validate it as the
    dataset would, and check its videos.

    class_list, num_classes: as for the dataset (labels must lie inside them).
    split: "train" / "val" (every row needs a label), "test" (rows may have none), or None:
        either every row has a label or none has (rows without one among labelled rows are
        an error: a damaged file, not a test split).
    allow_duplicates: count rows that repeat a video instead of raising.
    Raises AnnotationError (a ValueError) for a malformed file or a label that does not fit,
    before any video is opened.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS} (or None)")
    records = read_annotations(annotation_file, video_root, format=annotation_format, class_list=class_list).records
    if not records:
        raise AnnotationError(annotation_file, 1, "no videos in the annotation file")
    unlabelled = sum(record.label < 0 for record in records)
    require_labels = split in ("train", "val") or (split is None and unlabelled < len(records))
    check_labels(records, annotation_file, num_classes=num_classes, require_labels=require_labels)
    repeats = find_duplicates(records)
    if repeats and not allow_duplicates:
        raise AnnotationError(annotation_file, repeats[0][0].line,
                              f"{describe_duplicates(repeats)}; remove them, or allow them (--allow-duplicates)")
    report = check_videos(records, decoder, num_workers)
    return report._replace(num_unlabelled=unlabelled, num_repeated=len(repeats))


def write_problems(report: CheckReport, path: Union[str, os.PathLike]) -> None:
    """Write the problems as tab-separated ``line  kind  path  reason`` with a header row."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("line\tkind\tpath\treason\n")
        for problem in report.problems:
            reason = problem.reason.replace("\t", " ").replace("\n", " ")
            handle.write(f"{problem.line}\t{problem.kind}\t{problem.path}\t{reason}\n")
