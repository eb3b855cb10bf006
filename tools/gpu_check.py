#!/usr/bin/env python
"""The GPU check (`make gpu-check`): CPU-CUDA parity, batch invariance, an autocast training
step with ATS, a one-process NCCL DDP step, and the benchmark in fp32 / bf16, eager and
compiled; the results go to docs/bench/gpu_check.json and docs/benchmarks.md's CUDA section.

    python tools/gpu_check.py                       # all of it, within --budget-s (default 7 min)
    python tools/gpu_check.py --no-benchmark        # the checks only (under a minute)
    python tools/gpu_check.py --device cpu          # the CPU half, as on a machine without CUDA

Without CUDA it says so and runs the CPU half (tiny models; CPU-CUDA parity and the
benchmark skipped), writing cache/gpu_check_cpu.json. Exit status 1 if any check failed.
See experiments/gpu_check.py for what each check asserts.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from video_ats.cli import run_tool, tool_parser  # noqa: E402
from video_ats.models import get_preset  # noqa: E402


def main(argv=None) -> int:
    parser = tool_parser(__doc__)
    parser.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda when available)")
    parser.add_argument("--models", nargs="+", default=None,
                        help="presets to check (default: timesformer_base xvit_b16_16 on CUDA, the tiny ones on CPU)")
    parser.add_argument("--no-benchmark", action="store_true", help="only the checks")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="benchmark parts that would start after this many seconds are skipped (and listed)")
    parser.add_argument("--json", default=None, help="default: docs/bench/gpu_check.json with CUDA, "
                                                     "cache/gpu_check_cpu.json without")
    parser.add_argument("--no-render", action="store_true",
                        help="do not re-render docs/benchmarks.md from the new JSON (CUDA runs only)")
    args = parser.parse_args(argv)
    for name in args.models or ():
        get_preset(name)                         # an unknown preset stops here, before any check runs
    os.chdir(ROOT)                              # configs/ and docs/ are relative to the repository
    import torch

    from experiments.gpu_check import default_json, failed, run_checks, write_report

    device = torch.device(args.device) if args.device else None
    command = " ".join(["python", "tools/gpu_check.py"] + (sys.argv[1:] if argv is None else list(argv)))
    report = run_checks(device, args.models, run_benchmark=not args.no_benchmark, budget_s=args.budget_s,
                        command=command)
    path = args.json or default_json(report["meta"]["cuda"])
    write_report(path, report)
    print(f"[gpu-check] wrote {path}")
    if report["meta"]["cuda"] and not args.no_render and os.path.abspath(path) == os.path.abspath(default_json(True)):
        from experiments.bench_report import render_files

        render_files(os.path.join("docs", "bench", "cpu_2threads.json"), [os.path.join("docs", "benchmarks.md")], path)
        print("[gpu-check] rendered docs/benchmarks.md's CUDA section from it")
    if not report["meta"]["cuda"]:
        print("[gpu-check] CUDA is not available: this was the CPU half only; nothing ran on a GPU")
    bad = failed(report)
    print(f"[gpu-check] {'FAILED: ' + ', '.join(bad) if bad else 'every check that ran passed'} "
          f"({report['meta']['elapsed_s']:.0f} s)")
    return 1 if bad else 0


if __name__ == "__main__":
    run_tool(main)
