#!/usr/bin/env python
"""Parameters and GFLOPs per view and per video of a config; for ATS, over a dataset.

    python tools/flops.py --cfg configs/kinetics400/timesformer_base.yaml
    python tools/flops.py --cfg configs/kinetics400/timesformer_base.yaml --fvcore
    python tools/flops.py --cfg configs/kinetics600/xvit_b16_16.yaml ATS.ENABLE True ATS.RATIO 0.8 \
        MODEL.PRETRAINED ckpt.pth DATA.PATH_TO_DATA_DIR /data/k600 --source dataset --max-videos 500
    python tools/flops.py --cfg ... ATS.ENABLE True --source random --random-views 64   # random input

GFLOPs follow fvcore's convention (one multiply-add = one FLOP); see docs/benchmarks.md.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from video_ats.cli import run_tool, tool_parser  # noqa: E402
from video_ats.config import load_config  # noqa: E402
from video_ats.engine.flops_report import CLIP_SOURCES, flops_report  # noqa: E402


def main(argv=None):
    parser = tool_parser(__doc__)
    parser.add_argument("--cfg", required=True, help="config YAML")
    parser.add_argument("--source", choices=CLIP_SOURCES, default=None,
                        help="clips for the ATS distribution (default: dataset when ATS is enabled)")
    parser.add_argument("--random-views", type=int, default=32, help="random clips for --source random")
    parser.add_argument("--max-videos", type=int, default=None, help="stop after this many videos")
    parser.add_argument("--batch-size", type=int, default=None, help="default TEST.BATCH_SIZE")
    parser.add_argument("--num-workers", type=int, default=None, help="default DATA_LOADER.NUM_WORKERS")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fvcore", action="store_true", help="also count the model without ATS with fvcore")
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("overrides", nargs="*", help="KEY VALUE config overrides")
    args = parser.parse_intermixed_args(argv)
    cfg = load_config(args.cfg, args.overrides)
    source = args.source or ("dataset" if cfg.ATS.ENABLE else "none")
    report = flops_report(cfg, source=source, batch_size=args.batch_size or cfg.TEST.BATCH_SIZE,
                          max_videos=args.max_videos, random_views=args.random_views, with_fvcore=args.fvcore,
                          num_workers=cfg.DATA_LOADER.NUM_WORKERS if args.num_workers is None else args.num_workers,
                          device=args.device, log=lambda message: print(message, file=sys.stderr))
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)


def _g(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"


def format_report(report: dict) -> str:
    plain = report["no_ats"]
    lines = [f"model {report['model']} ({report['num_classes']} classes): {report['parameters'] / 1e6:.2f} M parameters",
             f"views per video: {report['views_per_video']} ({report['views']})",
             f"GFLOPs ({report['convention']})",
             f"  without ATS: {_g(plain['gflops_per_view'])} per view, {_g(plain['gflops_per_video'])} per video"]
    if "fvcore_gflops_per_view" in plain:
        lines.append(f"  without ATS, fvcore trace: {_g(plain['fvcore_gflops_per_view'])} per view")
    ats = report.get("ats")
    if ats:
        lines.append(f"  with ATS {ats['options']} over {ats['clips']}:")
        for key in ("gflops_per_view", "gflops_per_video"):
            d = ats[key]
            if d.get("count"):
                lines.append(f"    {key.replace('gflops_', '')}: mean {_g(d['mean'])} (std {_g(d['std'])}, "
                             f"min {_g(d['min'])}, p5 {_g(d['p5'])}, median {_g(d['p50'])}, p95 {_g(d['p95'])}, "
                             f"max {_g(d['max'])}; {d['count']} {key.split('_')[-1]}s)")
        if ats["saving"] is not None:
            lines.append(f"    saving per view: {100 * ats['saving']:.1f} %")
    return "\n".join(lines)


if __name__ == "__main__":
    run_tool(main)
