#!/usr/bin/env python
"""List the missing and undecodable videos of an annotation file before a long run.

Writes `line<TAB>kind<TAB>path<TAB>reason` rows to --out, prints a summary line, and exits
with 1 when any video has a problem (0 when all are usable)."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from video_ats.data.annotations import ANNOTATION_FORMATS  # noqa: E402
from video_ats.data.check import check_annotation_file, write_problems  # noqa: E402
from video_ats.data.decoders import DECODERS  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("annotation", help="Kinetics CSV, 'path label' list or comma list")
    parser.add_argument("--video-root", default=None, help="folder the videos are in (default: "
                        "the CSV's folder for a Kinetics CSV, the current folder for lists)")
    parser.add_argument("--format", default="auto", choices=ANNOTATION_FORMATS)
    parser.add_argument("--decoder", default="decord", choices=sorted(DECODERS))
    parser.add_argument("--workers", type=int, default=0, help="processes (0: check in this one)")
    parser.add_argument("--out", default="bad_videos.tsv", help="problem list (default: %(default)s)")
    args = parser.parse_args(argv)
    report = check_annotation_file(
        args.annotation, args.video_root, annotation_format=args.format,
        decoder=args.decoder, num_workers=args.workers,
    )
    write_problems(report, args.out)
    print(f"{report.summary()} (problems listed in {args.out})")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
