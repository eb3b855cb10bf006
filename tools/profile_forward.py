#!/usr/bin/env python
"""Where a forward's time goes, without and with ATS: per-op self time grouped into GEMMs,
attention and the rest, the median wall time and the minor page faults per forward.

    python tools/profile_forward.py --cfg configs/kinetics400/timesformer_base.yaml \
        --cfg configs/kinetics600/xvit_b16_16.yaml --saving 0.4 --threads 2 --json docs/bench/profile_cpu_2threads.json
    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 python tools/profile_forward.py --cfg ... --json other.json

The models are the ones tools/benchmark.py times (random weights, ATS topk at the budget of
--saving); allocator environment variables in effect are recorded in the JSON. The docs'
profile table is rendered from the JSON files docs/bench/profile*.json (tools/render_benchmarks.py).
"""

import os
import sys
import time
from dataclasses import asdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.bench_report import profile_table  # noqa: E402
from experiments.benchmark import BenchmarkSpec, environment, load_average, write_json  # noqa: E402
from experiments.forward_profile import allocator_environment, profile_config  # noqa: E402
from video_ats.cli import run_tool, tool_parser  # noqa: E402
from video_ats.config import load_config  # noqa: E402


def main(argv=None) -> int:
    parser = tool_parser(__doc__)
    parser.add_argument("--cfg", action="append", required=True, help="model config (repeatable)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--saving", type=float, default=0.4, help="GFLOPs saving of the fixed ATS budget")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (page faults counted over them)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", help="write the profiles here")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = BenchmarkSpec(batch_sizes=(args.batch_size,), saving=args.saving, rounds=args.rounds, mmaction=False)
    start, load_before = time.time(), load_average()
    profiles = []
    for path in args.cfg:
        profiles += profile_config(load_config(path), spec, args.batch_size)
    rows = [asdict(profile) for profile in profiles]
    print(profile_table([{"meta": {"allocator_env": allocator_environment()}, "rows": rows}]))
    if args.json:
        settings = [f"{name}={value}" for name, value in allocator_environment().items()]
        meta = {"command": " ".join(settings + ["python", "tools/profile_forward.py"] + list(argv or sys.argv[1:])),
                "date": time.strftime("%Y-%m-%d", time.gmtime(start)), "environment": environment("cpu"),
                "allocator_env": allocator_environment(), "elapsed_s": time.time() - start,
                "loadavg": {"before": load_before, "after": load_average()}}
        write_json(args.json, profiles, meta)
    return 0


if __name__ == "__main__":
    run_tool(main)
