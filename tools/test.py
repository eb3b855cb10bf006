#!/usr/bin/env python3
"""Multi-view test of a checkpoint (1x3 views by default): writes OUTPUT_DIR/results.json.

    python tools/test.py --cfg configs/kinetics400/timesformer_base_ats.yaml \
        TEST.CHECKPOINT_FILE TimeSformer_divST_8x32_224_K400.pyth OUTPUT_DIR runs/k400_ats_test
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from video_ats.cli import config_from_args, config_parser, run_tool  # noqa: E402
from video_ats.engine import format_results, test  # noqa: E402


def main(argv=None) -> int:
    args = config_parser(__doc__.strip().splitlines()[0]).parse_args(argv)
    cfg = config_from_args(args)
    results = test(cfg, progress=not args.no_progress)
    if results:
        print(format_results(results))
        print(f"results: {os.path.join(cfg.OUTPUT_DIR, 'results.json')}")
    return 0


if __name__ == "__main__":
    run_tool(main)
