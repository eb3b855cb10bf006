#!/usr/bin/env python
"""Check an annotation file and its videos before a long run.

    python tools/check_data.py k400/annotations/validate.csv --video-root k400/val --workers 2 \\
        --class-list kinetics400 --num-classes 400 --out bad_val.tsv

The file is validated as the dataset validates it (encoding, format, a label on every row of a
train / val split, labels inside --num-classes, no repeated video); then every video is opened
and its first, middle and last frames decoded. Writes `line<TAB>kind<TAB>path<TAB>reason` rows
to --out and prints a summary line.

Exit codes: 0 every video is usable; 1 some videos are missing or undecodable (listed in --out);
2 the annotation file itself is wrong, or a usage error (one line on stderr).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from video_ats.cli import EXIT_FINDINGS, run_tool, tool_parser  # noqa: E402
from video_ats.data.annotations import ANNOTATION_FORMATS  # noqa: E402
from video_ats.data.check import SPLITS, check_annotation_file, write_problems  # noqa: E402
from video_ats.data.decoders import DECODER_NAMES  # noqa: E402


def main(argv=None) -> int:
    parser = tool_parser(__doc__)
    parser.add_argument("annotation", help="Kinetics CSV, 'path label' list or comma list")
    parser.add_argument("--video-root", default=None, help="folder the videos are in (default: "
                        "the CSV's folder for a Kinetics CSV, the current folder for lists)")
    parser.add_argument("--format", default="auto", choices=ANNOTATION_FORMATS)
    parser.add_argument("--decoder", default="decord", choices=DECODER_NAMES)
    parser.add_argument("--class-list", default=None,
                        help="class names, one per line, or kinetics400 / kinetics600 (as DATA.CLASS_LIST)")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="the model's class count (MODEL.NUM_CLASSES): labels must lie below it")
    parser.add_argument("--split", choices=SPLITS, default=None,
                        help="train / val: every row needs a label; test: rows may have none (predictions "
                             "only). Default: every row has a label, or none has")
    parser.add_argument("--allow-duplicates", action="store_true",
                        help="count rows that repeat a video instead of failing (DATA.ALLOW_DUPLICATES)")
    parser.add_argument("--workers", type=int, default=0, help="processes (0: check in this one)")
    parser.add_argument("--out", default="bad_videos.tsv", help="problem list (default: %(default)s)")
    args = parser.parse_args(argv)
    report = check_annotation_file(
        args.annotation, args.video_root, annotation_format=args.format,
        decoder=args.decoder, num_workers=args.workers, class_list=args.class_list,
        num_classes=args.num_classes, split=args.split, allow_duplicates=args.allow_duplicates,
    )
    write_problems(report, args.out)
    print(f"{report.summary()} (problems listed in {args.out})")
    return EXIT_FINDINGS if report.problems else 0


if __name__ == "__main__":
    run_tool(main)
