"""Scan the videos of an annotation file before a long run: which are missing, which cannot be
decoded, and why.

A video passes when it opens with the chosen decoder, holds at least one frame, and its first,
middle and last frames decode (a truncated file fails on the last frame at the latest).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import List, NamedTuple, Sequence, Union

from .annotations import VideoRecord, read_annotations
from .decoders import VideoDecodeError, get_decoder


class VideoProblem(NamedTuple):
    """One video that cannot be used: ``kind`` is "missing" or "undecodable"."""

    line: int
    path: str
    kind: str
    reason: str


class CheckReport(NamedTuple):
    """num_videos scanned and the problems found, in annotation order."""

    num_videos: int
    problems: List[VideoProblem]

    @property
    def num_missing(self) -> int:
        return sum(problem.kind == "missing" for problem in self.problems)

    @property
    def num_undecodable(self) -> int:
        return sum(problem.kind == "undecodable" for problem in self.problems)

    def summary(self) -> str:
        """One line: counts of videos checked, missing, undecodable and usable."""
        usable = self.num_videos - len(self.problems)
        return (
            f"checked {self.num_videos} videos: {self.num_missing} missing, "
            f"{self.num_undecodable} undecodable, {usable} ok"
        )


def check_video(path: str, decoder: str = "decord") -> Union[str, None]:
    """None when the video is usable, else the reason it is not."""
    try:
        with get_decoder(decoder)(path) as video:
            last = video.num_frames - 1
            video.get_frames(sorted({0, last // 2, last}))
    except VideoDecodeError as error:
        return error.reason
    return None


def _check_record(args) -> Union[VideoProblem, None]:
    record, decoder = args
    reason = check_video(record.path, decoder)
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
) -> CheckReport:
    """Read an annotation file (any format of :func:`read_annotations`) and check its videos."""
    records = read_annotations(annotation_file, video_root, format=annotation_format).records
    return check_videos(records, decoder, num_workers)


def write_problems(report: CheckReport, path: Union[str, os.PathLike]) -> None:
    """Write the problems as tab-separated ``line  kind  path  reason`` with a header row."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("line\tkind\tpath\treason\n")
        for problem in report.problems:
            reason = problem.reason.replace("\t", " ").replace("\n", " ")
            handle.write(f"{problem.line}\t{problem.kind}\t{problem.path}\t{reason}\n")
