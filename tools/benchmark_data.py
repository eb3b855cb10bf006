#!/usr/bin/env python
"""Data-loading benchmark: clips/s for decord vs PyAV in train and test mode (median of
repeats). Without --annotation it runs on the synthetic dataset in --data-root, writing it
first if needed."""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from experiments.data_benchmark import benchmark_loading, format_table  # noqa: E402
from video_ats.data.decoders import DECODER_BACKENDS, DECODER_NAMES  # noqa: E402
from video_ats.cli import run_tool, tool_parser  # noqa: E402
from video_ats.data.synthetic import make_synthetic_dataset  # noqa: E402


def main(argv=None) -> int:
    parser = tool_parser(__doc__)
    parser.add_argument("--annotation", help="annotation file (default: the synthetic train CSV)")
    parser.add_argument("--video-root", help="video folder for --annotation")
    parser.add_argument("--data-root", default="cache/synthetic_benchmark",
                        help="synthetic dataset folder (default: %(default)s)")
    parser.add_argument("--synthetic-size", nargs=4, type=int, metavar=("FRAMES", "HEIGHT", "WIDTH", "FPS"),
                        default=[40, 96, 128, 20], help="synthetic clip format (default: %(default)s)")
    parser.add_argument("--synthetic-clips", type=int, default=16, help="synthetic clips per class")
    parser.add_argument("--decoders", nargs="+", default=list(DECODER_BACKENDS), choices=list(DECODER_NAMES))
    parser.add_argument("--modes", nargs="+", default=["train", "test"])
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--sampling-rate", type=float, default=4)
    parser.add_argument("--crop-size", type=int, default=64)
    parser.add_argument("--jitter", type=int, nargs=2, default=[64, 80], metavar=("MIN", "MAX"))
    parser.add_argument("--test-clips", type=int, default=1)
    parser.add_argument("--test-crops", type=int, default=3)
    parser.add_argument("--items", type=int, default=64, help="clips loaded per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads while loading (default: %(default)s, as in a worker)")
    parser.add_argument("--json", help="also write the rows as JSON to this path")
    args = parser.parse_args(argv)

    annotation, video_root = args.annotation, args.video_root
    if annotation is None:
        frames, height, width, fps = args.synthetic_size
        synthetic = make_synthetic_dataset(
            args.data_root, num_frames=frames, height=height, width=width, fps=fps,
            videos_per_class={"train": args.synthetic_clips},
        )
        annotation, video_root = synthetic.annotations["train"], synthetic.root
    load_before = os.getloadavg()[0]
    rows = benchmark_loading(
        annotation, video_root,
        decoders=args.decoders, modes=args.modes, num_items=args.items, repeats=args.repeats,
        batch_size=args.batch_size, num_workers=args.workers, torch_threads=args.torch_threads,
        num_frames=args.num_frames, sampling_rate=args.sampling_rate, crop_size=args.crop_size,
        train_jitter_scales=tuple(args.jitter), test_num_clips=args.test_clips,
        test_num_crops=args.test_crops,
    )
    load_after = os.getloadavg()[0]
    print(format_table(rows))
    # Other processes on the machine change the numbers; say how busy it was.
    print(f"1-minute load average before / after: {load_before:.2f} / {load_after:.2f} "
          f"on {os.cpu_count()} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "args": vars(args), "rows": rows, "load_average": [load_before, load_after],
            "cpus": os.cpu_count(),
        }, indent=2))
    return 0


if __name__ == "__main__":
    run_tool(main)
