#!/usr/bin/env python
"""Clips/s, latency and peak memory without and with ATS (and mmaction2's TimeSformer).

    python tools/benchmark.py --cfg configs/kinetics400/timesformer_base.yaml \
        --cfg configs/kinetics600/xvit_b16_16.yaml --saving 0.4 --batch-sizes 1 8 --json bench.json
    python tools/benchmark.py --cfg ... --ratio 0.72                    # fixed budget: topk at 0.72
    python tools/benchmark.py --cfg ... ATS.ENABLE True ATS.RATIO 0.8   # the config's own ATS
    python tools/benchmark.py --cfg ... --device cuda --dtypes fp32 bf16 fp16 --compile
    python tools/benchmark.py --cfg ... --adaptive --sampler its --ratio 1.0 --batch-sizes 8   # padding
    python tools/benchmark.py --cfg ... --sampler its --ratio 1.0 ATS.GRID official  # the released ATS grid

Random weights; every candidate is timed in turns (one forward each per round) after warm-up,
and the medians are reported. See docs/benchmarks.md for what each column means.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.benchmark import (DTYPES, BenchmarkSpec, PeakMemory, benchmark_config, environment,  # noqa: E402
                                 markdown_table, write_json)
from video_ats.ats import SAMPLERS  # noqa: E402
from video_ats.cli import run_tool  # noqa: E402
from video_ats.config import load_config  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", action="append", required=True, help="config YAML (repeat for several models)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--ratio", type=float, help="fixed budget: keep round(ratio x N) positions per stage")
    budget.add_argument("--saving", type=float, help="fixed budget at the ratio that removes this GFLOPs share")
    parser.add_argument("--sampler", default="topk", choices=list(SAMPLERS),
                        help="sampler with --ratio/--saving (topk: the count does not depend on the weights)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (the median is reported)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtypes", nargs="+", default=None, choices=sorted(DTYPES),
                        help="default: fp32 on CPU; fp32 bf16 fp16 on CUDA")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models (CUDA)")
    parser.add_argument("--no-mmaction", action="store_true", help="skip mmaction2's TimeSformer")
    parser.add_argument("--adaptive", action="store_true",
                        help="make kept counts differ (sharpened attention, varied synthetic clips) and time ATS "
                             "with the padded and with the packed row-wise layers")
    parser.add_argument("--sharpen", type=float, default=4.0, help="q/k scale for --adaptive")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("overrides", nargs="*", help="KEY VALUE overrides applied to every config")
    args = parser.parse_intermixed_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    dtypes = args.dtypes or (["fp32", "bf16", "fp16"] if args.device.startswith("cuda") else ["fp32"])
    spec = BenchmarkSpec(batch_sizes=args.batch_sizes, ratio=args.ratio, saving=args.saving, sampler=args.sampler,
                         warmup=args.warmup, rounds=args.rounds, device=args.device, dtypes=dtypes,
                         compile=args.compile, mmaction=not args.no_mmaction, adaptive=args.adaptive,
                         sharpen=args.sharpen)
    start = time.time()
    rows = []
    for path in args.cfg:
        rows.extend(benchmark_config(load_config(path, args.overrides), spec))
    elapsed = time.time() - start
    print(markdown_table(rows))
    print(f"\n{elapsed:.0f} s; peak memory: {PeakMemory(torch.device(args.device)).what}")
    if args.json:
        meta = {"command": " ".join(["python", "tools/benchmark.py"] + (argv or sys.argv[1:])),
                "environment": environment(args.device), "spec": vars(spec), "elapsed_s": elapsed,
                "memory": PeakMemory(torch.device(args.device)).what}
        write_json(args.json, rows, meta)


if __name__ == "__main__":
    run_tool(main)
