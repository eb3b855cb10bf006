"""Data-loading benchmark: clips per second for each decoder in train and test mode.

A clip is one dataset item, (C, T, H, W) after decoding, sampling and transforms (one view in
test mode). Each (decoder, mode) pair loads the same first ``num_items`` items through a
DataLoader ``repeats`` times; the median rate is reported.

torch runs the transforms with ``torch_threads`` intra-op threads (default 1, what a
DataLoader worker uses); on a loaded machine several threads per small op cost more than they
bring.
"""

from __future__ import annotations

import statistics
import time
from typing import Dict, List, Sequence

import torch
from torch.utils.data import DataLoader, Subset

from video_ats.data.decoders import DECODER_BACKENDS
from video_ats.data.kinetics import KineticsDataset, collate_views


def benchmark_loading(
    annotation_file,
    video_root,
    *,
    decoders: Sequence[str] = DECODER_BACKENDS,
    modes: Sequence[str] = ("train", "test"),
    num_items: int = 64,
    repeats: int = 5,
    batch_size: int = 8,
    num_workers: int = 0,
    torch_threads: int = 1,
    **dataset_kwargs,
) -> List[Dict]:
    """Time clip loading; ``dataset_kwargs`` go to :class:`KineticsDataset` (num_frames,
    sampling_rate, crop_size, ... ; ``decoder`` and ``mode`` are set here).

    Returns one dict per (decoder, mode): decoder, mode, items, repeats, seconds (list),
    clips_per_s (items / median seconds).
    """
    threads_before = torch.get_num_threads()
    torch.set_num_threads(torch_threads)
    try:
        return [
            _time_loading(annotation_file, video_root, decoder, mode, num_items, repeats,
                          batch_size, num_workers, dataset_kwargs)
            for decoder in decoders
            for mode in modes
        ]
    finally:
        torch.set_num_threads(threads_before)


def _time_loading(annotation_file, video_root, decoder, mode, num_items, repeats, batch_size,
                  num_workers, dataset_kwargs) -> Dict:
    dataset = KineticsDataset(annotation_file, video_root, mode, decoder=decoder, **dataset_kwargs)
    items = Subset(dataset, range(min(num_items, len(dataset))))
    seconds = []
    for _ in range(repeats):
        loader = DataLoader(items, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_views)
        begin = time.perf_counter()
        for _batch in loader:
            pass
        seconds.append(time.perf_counter() - begin)
    return {
        "decoder": decoder,
        "mode": mode,
        "items": len(items),
        "repeats": repeats,
        "seconds": [round(value, 4) for value in seconds],
        "clips_per_s": round(len(items) / statistics.median(seconds), 1),
    }


def format_table(rows: Sequence[Dict]) -> str:
    """A Markdown table of benchmark rows."""
    lines = ["| decoder | mode | clips | repeats | clips/s (median) |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['decoder']} | {row['mode']} | {row['items']} | {row['repeats']} | "
            f"{row['clips_per_s']:.1f} |"
        )
    return "\n".join(lines)
