#!/usr/bin/env python
"""Clips/s, latency and peak memory without and with ATS (and mmaction2's TimeSformer);
with --train a full training step, with --memory the memory table.

    python tools/benchmark.py --cfg configs/kinetics400/timesformer_base.yaml \
        --cfg configs/kinetics600/xvit_b16_16.yaml --saving 0.4 --batch-sizes 1 8 --json bench.json
    python tools/benchmark.py --cfg ... --saving 0.4 --train --memory --json bench.json  # + training, memory
    python tools/benchmark.py --cfg ... --ratio 0.72                    # fixed budget: topk at 0.72
    python tools/benchmark.py --cfg ... ATS.ENABLE True ATS.RATIO 0.8   # the config's own ATS
    python tools/benchmark.py --cfg ... --linear-kernel default --compare-kernels   # CPU linear paths
    python tools/benchmark.py --cfg ... --device cuda --dtypes fp32 bf16 fp16 --compile
    python tools/benchmark.py --cfg ... --adaptive --sampler its --ratio 1.0 --batch-sizes 8   # padding
    python tools/benchmark.py --cfg ... --sampler its --ratio 1.0 ATS.GRID official  # the released ATS grid

Random weights; every candidate is timed in turns (one call each per round) after warm-up,
and the medians are reported. `make bench` runs the recorded command and renders the tables
of docs/benchmarks.md and README.md from its JSON (tools/render_benchmarks.py). See
docs/benchmarks.md for what each column means.
"""

import argparse
import os
import sys
import time
from dataclasses import asdict, replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.bench_report import memory_table, train_table  # noqa: E402
from experiments.benchmark import (DTYPES, BenchmarkSpec, PeakMemory, benchmark_config, cpu_isa,  # noqa: E402
                                   environment, load_average, markdown_table, write_json)
from experiments.train_benchmark import (TrainSpec, benchmark_training, default_train_dtypes,  # noqa: E402
                                         memory_config, training_pair)
from video_ats.ats import SAMPLERS  # noqa: E402
from video_ats.cli import run_tool  # noqa: E402
from video_ats.config import load_config  # noqa: E402
from video_ats.models.linear_kernels import KERNELS, kernel_choices  # noqa: E402


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
    parser.add_argument("--linear-kernel", default="auto", choices=KERNELS,
                        help="CPU linear-layer path of our models: auto (timed trial per shape), default, onednn")
    parser.add_argument("--compare-kernels", action="store_true",
                        help="also time the model without ATS with each linear path forced (extra rows)")
    parser.add_argument("--no-inference", action="store_true", help="skip the inference timing")
    parser.add_argument("--train", action="store_true", help="time a training step without and with ATS")
    parser.add_argument("--train-batch-size", type=int, default=2)
    parser.add_argument("--train-dtype", choices=sorted(DTYPES), nargs="+", default=None,
                        help="autocast dtype(s) of the training step, each timed in turn (default: bf16 on CUDA; "
                             "fp32 on CPU, then bf16 too where the CPU has bf16 arithmetic); the memory search "
                             "uses the first")
    parser.add_argument("--memory", action="store_true",
                        help="inference memory at --memory-batch-sizes and the largest training batch within "
                             "--memory-limit-gb")
    parser.add_argument("--memory-batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--memory-limit-gb", type=float, default=8.0)
    parser.add_argument("--json", help="write the rows here (rewritten after every part, so a killed run keeps "
                                       "what it finished)")
    parser.add_argument("overrides", nargs="*", help="KEY VALUE overrides applied to every config")
    args = parser.parse_intermixed_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    dtypes = args.dtypes or (["fp32", "bf16", "fp16"] if args.device.startswith("cuda") else ["fp32"])
    spec = BenchmarkSpec(batch_sizes=args.batch_sizes, ratio=args.ratio, saving=args.saving, sampler=args.sampler,
                         warmup=args.warmup, rounds=args.rounds, device=args.device, dtypes=dtypes,
                         compile=args.compile, mmaction=not args.no_mmaction, adaptive=args.adaptive,
                         sharpen=args.sharpen, linear_kernel=args.linear_kernel,
                         compare_kernels=args.compare_kernels)
    train_dtypes = args.train_dtype or default_train_dtypes(torch.device(args.device), cpu_isa())
    train = TrainSpec(batch_size=args.train_batch_size, dtype=train_dtypes[0], warmup=args.warmup,
                      rounds=args.rounds, memory_batch_sizes=tuple(args.memory_batch_sizes),
                      memory_limit_gb=args.memory_limit_gb)
    start, load_before = time.time(), load_average()
    rows, train_rows, memory_rows = [], [], []

    def save():
        if not args.json:
            return
        meta = {"command": " ".join(["python", "tools/benchmark.py"] + (argv or sys.argv[1:])),
                "date": time.strftime("%Y-%m-%d", time.gmtime(start)),
                "environment": environment(args.device), "spec": vars(spec), "train_spec": vars(train),
                "elapsed_s": time.time() - start, "memory": PeakMemory(torch.device(args.device)).what,
                "loadavg": {"before": load_before, "after": load_average()}, "kernel_trials": kernel_choices()}
        write_json(args.json, rows, meta, train_rows=train_rows, memory_rows=memory_rows)

    for path in args.cfg:
        cfg = load_config(path, args.overrides)
        config_rows = [] if args.no_inference else benchmark_config(cfg, spec)
        rows.extend(config_rows)
        save()
        totals, pair = {}, None
        if args.train:
            pair = training_pair(cfg, spec)           # the memory search reuses it (momentum allocated)
            for index, dtype in enumerate(train_dtypes):
                timed, dtype_totals = benchmark_training(cfg, spec, replace(train, dtype=dtype), pair=pair)
                if index == 0:                          # the memory search runs in the first dtype
                    totals = dtype_totals
                train_rows.extend(timed)
                save()
        if args.memory:
            measured = {("inference", row.variant, row.batch_size): row.peak_memory_mb for row in config_rows
                        if row.implementation == "video_ats" and row.dtype == dtypes[0] and not row.compiled}
            memory_rows.extend(memory_config(cfg, spec, train, measured, totals, pair=pair))
            save()
        del pair
    elapsed = time.time() - start
    if rows:
        print(markdown_table(rows))
    if train_rows:
        print("\n" + train_table([asdict(row) for row in train_rows]))
    if memory_rows:
        print("\n" + memory_table([asdict(row) for row in memory_rows], train.memory_limit_gb))
    print(f"\n{elapsed:.0f} s; peak memory: {PeakMemory(torch.device(args.device)).what}")


if __name__ == "__main__":
    run_tool(main)
