#!/usr/bin/env python3
"""Train or fine-tune a model (SGD, cosine schedule, resumable; torchrun for several processes).

    python tools/train.py --cfg configs/kinetics400/timesformer_base_ats.yaml OUTPUT_DIR runs/k400_ats
    torchrun --nproc_per_node 8 tools/train.py --cfg ... (gloo on CPU, NCCL on GPU)
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from video_ats.cli import config_from_args, config_parser, run_tool  # noqa: E402
from video_ats.engine import train  # noqa: E402


def main(argv=None) -> int:
    args = config_parser(__doc__.strip().splitlines()[0]).parse_args(argv)
    summary = train(config_from_args(args), progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    run_tool(main)
