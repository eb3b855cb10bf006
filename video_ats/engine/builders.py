"""From a config to datasets and loaders (the only place that maps DATA.* onto the data module)."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, Subset
from yacs.config import CfgNode

from ..data import KineticsDataset, TestViews, collate_views, load_class_list
from ..data.annotations import SHIPPED_CLASS_LISTS
from ..data.check import check_video
from ..models import get_preset
from .distributed import DistContext


def data_path(cfg: CfgNode, path: str) -> str:
    """A path relative to DATA.PATH_TO_DATA_DIR (absolute paths are kept)."""
    return path if os.path.isabs(path) or not cfg.DATA.PATH_TO_DATA_DIR else os.path.join(cfg.DATA.PATH_TO_DATA_DIR, path)


def num_frames(cfg: CfgNode, model=None) -> int:
    if cfg.DATA.NUM_FRAMES is not None:
        return int(cfg.DATA.NUM_FRAMES)
    if model is not None:
        return int(model.num_frames)
    return int(cfg.MODEL.NUM_FRAMES or get_preset(cfg.MODEL.NAME).num_frames)


def build_dataset(cfg: CfgNode, mode: str, class_list=None):
    """KineticsDataset for ``mode`` (train | val | test) from the DATA and TEST sections.

    The annotations are validated completely here (labels inside MODEL.NUM_CLASSES, a label
    on every train / val row, no repeated video unless DATA.ALLOW_DUPLICATES).
    class_list: the class names to use when DATA.CLASS_LIST is empty (the trainer passes the
    training split's, so a validation file missing a class keeps the same indices).
    """
    annotation = {"train": cfg.DATA.TRAIN_ANNOTATION, "val": cfg.DATA.VAL_ANNOTATION,
                  "test": cfg.DATA.TEST_ANNOTATION}[mode]
    annotation = data_path(cfg, annotation)
    if not os.path.isfile(annotation):
        raise ValueError(f"annotation file {annotation} (DATA.{mode.upper()}_ANNOTATION) does not exist")
    video_root = data_path(cfg, cfg.DATA.VIDEO_ROOT) if cfg.DATA.VIDEO_ROOT else (cfg.DATA.PATH_TO_DATA_DIR or ".")
    class_list = class_names(cfg) or class_list
    crop = cfg.DATA.TRAIN_CROP_SIZE if mode == "train" else cfg.DATA.TEST_CROP_SIZE
    return KineticsDataset(
        annotation, video_root, mode, num_frames=num_frames(cfg), sampling_rate=cfg.DATA.SAMPLING_RATE,
        target_fps=cfg.DATA.TARGET_FPS, crop_size=crop, train_jitter_scales=tuple(cfg.DATA.TRAIN_JITTER_SCALES),
        random_flip=cfg.DATA.RANDOM_FLIP, test_num_clips=cfg.TEST.NUM_ENSEMBLE_VIEWS,
        test_num_crops=cfg.TEST.NUM_SPATIAL_CROPS, clip_position=cfg.TEST.CLIP_POSITION,
        mean=tuple(cfg.DATA.MEAN), std=tuple(cfg.DATA.STD), decoder=cfg.DATA.DECODER, class_list=class_list,
        annotation_format=cfg.DATA.ANNOTATION_FORMAT, num_classes=cfg.MODEL.NUM_CLASSES,
        allow_duplicates=cfg.DATA.ALLOW_DUPLICATES, max_retries=cfg.DATA.MAX_RETRIES, seed=cfg.SEED)


def test_views(cfg: CfgNode, model=None):
    """The test views of `build_dataset` in "test" mode as a `video_ats.data.TestViews`, for
    videos opened without an annotation file (tools/predict.py)."""

    return TestViews(num_frames=num_frames(cfg, model), sampling_rate=cfg.DATA.SAMPLING_RATE,
                     target_fps=cfg.DATA.TARGET_FPS, crop_size=cfg.DATA.TEST_CROP_SIZE,
                     num_clips=cfg.TEST.NUM_ENSEMBLE_VIEWS, num_crops=cfg.TEST.NUM_SPATIAL_CROPS,
                     clip_position=cfg.TEST.CLIP_POSITION, mean=tuple(cfg.DATA.MEAN), std=tuple(cfg.DATA.STD))


test_views.__test__ = False  # not a pytest test when imported into a test module


def class_names(cfg: CfgNode):
    """DATA.CLASS_LIST: "kinetics400" / "kinetics600" (package data), a file relative to
    DATA.PATH_TO_DATA_DIR (or absolute), or empty for the sorted names of the annotations."""
    name = cfg.DATA.CLASS_LIST
    if not name:
        return None
    if name in SHIPPED_CLASS_LISTS:
        return load_class_list(name)
    path = data_path(cfg, name)
    if not os.path.isfile(path):
        raise ValueError(f"class list {path} (DATA.CLASS_LIST) does not exist; use a file or one of "
                         f"{sorted(SHIPPED_CLASS_LISTS)}")
    return load_class_list(path)


def require_readable_video(dataset, max_probes: int = 32) -> None:
    """Stop before any work when none of the first videos of a dataset can be decoded.

    Probes videos in annotation order until one decodes; raises ValueError listing the files
    and reasons when ``max_probes`` (or all) fail.
    """
    failures = []
    for record in dataset.records[:max_probes]:
        reason = check_video(record.path, dataset.decoder_name, record)
        if reason is None:
            return
        failures.append(f"{record.path}: {reason}")
    shown = "; ".join(failures[:10])
    raise ValueError(f"no readable video among the first {len(failures)} of {dataset.annotation_file} "
                     f"(decoder {dataset.decoder_name}): {shown}")


class EpochSampler(Sampler):
    """A rank's share of one epoch, in an order fixed by (seed, epoch), resumable mid-epoch.

    Training: a seeded permutation, cut to a whole number of global batches, each rank taking
    every world_size-th batch of it. Evaluation: contiguous shards without padding, so every
    item is seen exactly once over all ranks.
    """

    def __init__(self, num_items: int, context: DistContext, batch_size: int, shuffle: bool, seed: int = 0,
                 batches_multiple: int = 1):
        self.num_items, self.context, self.batch_size = num_items, context, batch_size
        self.shuffle, self.seed, self.batches_multiple = shuffle, seed, batches_multiple
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def batches_per_epoch(self) -> int:
        """Batches this rank yields in a full epoch (training: equal on every rank)."""
        if not self.shuffle:
            return -(-len(self._indices()) // self.batch_size)
        per_rank = self.num_items // (self.batch_size * self.context.world_size)
        return per_rank - per_rank % self.batches_multiple

    def _indices(self) -> list:
        world, rank = self.context.world_size, self.context.rank
        if not self.shuffle:
            start, stop = rank * self.num_items // world, (rank + 1) * self.num_items // world
            return list(range(start, stop))
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.num_items, generator=generator).tolist()
        batches = self.batches_per_epoch()
        indices = []
        for batch in range(batches):
            first = (batch * world + rank) * self.batch_size
            indices.extend(order[first:first + self.batch_size])
        return indices

    def __iter__(self):
        return iter(self._indices()[self.start_batch * self.batch_size:])

    def __len__(self) -> int:
        return max(0, len(self._indices()) - self.start_batch * self.batch_size)


def video_subset(dataset, max_videos: Optional[int], seed: int = 0) -> Subset:
    """Every view of at most ``max_videos`` videos of a dataset, drawn at random without
    replacement (seeded) and kept in annotation order.

    Not the first N: annotation files are often sorted by class (the Kinetics CSVs are). Not
    every k-th either: a regular stride can alias with a pattern in the file (the synthetic
    dataset cycles its clutter levels within each class). None (or at least as many videos
    as there are) keeps every video.
    """
    total = dataset.num_videos
    if max_videos is not None and max_videos < 1:
        raise ValueError(f"need at least one video, got max_videos={max_videos}")
    if max_videos is None or max_videos >= total:
        chosen = range(total)
    else:
        chosen = sorted(np.random.default_rng(seed).choice(total, size=int(max_videos), replace=False).tolist())
    views = dataset.num_views
    return Subset(dataset, [video * views + view for video in chosen for view in range(views)])


def build_loader(cfg: CfgNode, dataset, sampler: Optional[Sampler], batch_size: int,
                 num_workers: Optional[int] = None) -> DataLoader:
    """A DataLoader whose randomness never touches the global torch RNG (sampler None: in order)."""
    workers = cfg.DATA_LOADER.NUM_WORKERS if num_workers is None else num_workers
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate_views, pin_memory=cfg.DATA_LOADER.PIN_MEMORY,
                      generator=torch.Generator().manual_seed(cfg.SEED), drop_last=False,
                      persistent_workers=False)
