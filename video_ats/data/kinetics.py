"""The Kinetics dataset: annotation records -> decoded, sampled, transformed clips.

Modes:

- ``"train"``: one random clip (:func:`~video_ats.data.sampling.train_clip_indices`) with
  scale jitter, random crop and flip per item; ``len(dataset) == num_videos``.
- ``"val"``: one middle clip, short side to ``crop_size``, one center crop per video
  (cheap validation during training); ``len(dataset) == num_videos``.
- ``"test"``: ``test_num_clips x test_num_crops`` views per video;
  ``len(dataset) == num_videos * num_views``. Item ``i`` is view ``i % num_views`` of video
  ``i // num_views``; view ``v`` is temporal clip ``v // test_num_crops`` (position rule
  ``clip_position``) and spatial crop ``v % test_num_crops``.

Every item is a dict::

    video         float32 (C, T, crop_size, crop_size), normalized
    label         int, -1 when the annotation has no label
    video_index   int, the video the clip comes from
    view_index    int, temporal_index * num_crops + spatial_index (0 in train / val)
    ok            bool, False when the video could not be decoded (val / test only);
                  ``video`` is then zeros of the right shape
    replaced_from int, train only: the video index the sampler asked for when that video was
                  broken and ``video_index`` was loaded instead; -1 otherwise

Broken videos (missing, empty, unreadable, truncated, no video stream):

- train: the item is replaced by another random video not yet known to be broken, at most
  ``max_retries`` times; the failure is recorded in ``dataset.failed`` and
  ``dataset.num_replaced``. If every try fails (or no video is left), a RuntimeError names
  every file tried and why.
- val / test: never raises; the items of the video have ``ok=False`` and the video is
  recorded in ``dataset.failed``, so evaluation excludes and reports it.

Annotations are validated completely when the dataset is built, before any item is loaded:
every row of a train or val split needs a label, labels must lie inside ``num_classes``, and a
video named twice is an error (``allow_duplicates=True``: a warning with the count). A test
split may have rows without a label; its videos are predicted, not scored.

An untrimmed download found by bare ``youtube_id`` (see
:func:`~video_ats.data.annotations.read_annotations`) is sampled inside the row's
``time_start``-``time_end`` window; a file no longer than that window is taken as the trimmed
clip itself.

DataLoader workers are separate processes: ``dataset.failed`` and ``dataset.num_replaced``
grow only inside the process that loaded the item. The items themselves carry the failure
(``ok``, ``replaced_from``), so the training loop and the evaluator count in the main process.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .annotations import ClassList, read_annotations, validate_records
from .decoders import VideoDecodeError, VideoReader, get_decoder
from .sampling import CLIP_POSITIONS, test_clip_indices, train_clip_indices
from .transforms import NUM_CROPS_CHOICES, test_transform, train_transform

MODES = ("train", "val", "test")
logger = logging.getLogger(__name__)


class KineticsDataset(Dataset):
    """Kinetics-400/600 (or any dataset in these formats) as clips; see the module docstring.

    annotation_file: Kinetics CSV, "path label" list or comma list (``annotation_format``).
    video_root: folder the annotation's videos are relative to / searched in.
    mode: "train", "val" or "test".
    num_frames: T, frames per clip. sampling_rate: frame stride at ``target_fps``.
    crop_size: output height and width. train_jitter_scales: (min, max) short side in train.
    random_flip: horizontal flip with probability 0.5 in train.
    test_num_clips, test_num_crops (1 or 3): views per video in test mode.
    clip_position: "start" (PySlowFast) or "middle" (papers / mmaction2) test clip rule.
    mean, std: per-channel normalization of [0, 1] RGB (TimeSformer 0.45/0.225, XViT 0.5/0.5).
    decoder: one of :data:`~video_ats.data.decoders.DECODER_NAMES` ("decord", "pyav", "auto").
    class_list: see :func:`~video_ats.data.load_class_list`.
    num_classes: the model's class count; every label must lie in [0, num_classes) (None: only
        the class list, if any, bounds them).
    allow_duplicates: accept rows that name the same video (a warning with their count)
        instead of raising AnnotationError.
    max_retries: replacement tries for a broken training video. seed: base of the
        augmentation randomness: item i of epoch e draws from (seed, e, i); see ``set_epoch``.

    Attributes: records, classes, labels (per video), num_videos, num_views, failed
    (video_index -> reason, this process only), num_replaced (this process only).
    """

    def __init__(
        self,
        annotation_file: Union[str, os.PathLike],
        video_root: Union[str, os.PathLike],
        mode: str,
        *,
        num_frames: int,
        sampling_rate: float,
        target_fps: float = 30,
        crop_size: int,
        train_jitter_scales: Tuple[int, int] = (256, 320),
        random_flip: bool = True,
        test_num_clips: int = 1,
        test_num_crops: int = 3,
        clip_position: str = "start",
        mean: Sequence[float] = (0.45,) * 3,
        std: Sequence[float] = (0.225,) * 3,
        decoder: str = "decord",
        class_list: Union[ClassList, None] = None,
        annotation_format: str = "auto",
        num_classes: Union[int, None] = None,
        allow_duplicates: bool = False,
        max_retries: int = 10,
        seed: int = 0,
    ):
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {MODES}")
        if clip_position not in CLIP_POSITIONS:
            raise ValueError(f"clip_position {clip_position!r} is not one of {CLIP_POSITIONS}")
        if test_num_crops not in NUM_CROPS_CHOICES:
            raise ValueError(f"test_num_crops must be one of {NUM_CROPS_CHOICES}, got {test_num_crops}")
        if test_num_clips < 1 or num_frames < 1 or sampling_rate <= 0 or target_fps <= 0:
            raise ValueError(
                "need test_num_clips >= 1, num_frames >= 1, sampling_rate > 0, target_fps > 0"
            )
        low, high = train_jitter_scales
        if not crop_size <= low <= high:
            raise ValueError(
                f"train_jitter_scales {tuple(train_jitter_scales)} must satisfy "
                f"crop_size ({crop_size}) <= min <= max"
            )
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got {mean} and {std}")
        self.decoder_name = decoder
        self._open_video = get_decoder(decoder)

        annotations = read_annotations(
            annotation_file, video_root, format=annotation_format, class_list=class_list
        )
        # Every row is checked now: a bad label must not wait hours for the sampler to draw it.
        validate_records(annotations.records, annotation_file, num_classes=num_classes, require_labels=mode != "test",
                         allow_duplicates=allow_duplicates,
                         how_to_allow="allow_duplicates=True, DATA.ALLOW_DUPLICATES True")
        self.annotation_file = os.fspath(annotation_file)
        self.records = annotations.records
        self.classes = annotations.classes
        self.labels = [record.label for record in self.records]
        self.mode = mode
        self.num_frames = num_frames
        self.sampling_rate = sampling_rate
        self.target_fps = target_fps
        self.crop_size = crop_size
        self.train_jitter_scales = (low, high)
        self.random_flip = random_flip
        self.num_clips = test_num_clips if mode == "test" else 1
        self.num_crops = test_num_crops if mode == "test" else 1
        self.clip_position = clip_position if mode == "test" else "middle"
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.max_retries = max_retries
        self.seed = seed

        self.num_videos = len(self.records)
        self.num_views = self.num_clips * self.num_crops
        self.failed = {}
        self.num_replaced = 0
        self.epoch = 0
        self._cached_clip = (None, None)

    def __len__(self) -> int:
        return self.num_videos * self.num_views

    @property
    def failed_paths(self) -> dict:
        """path -> reason for every video that failed in this process."""
        return {self.records[index].path: reason for index, reason in self.failed.items()}

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} outside the {len(self)} items of the dataset")
        if self.mode == "train":
            return self._train_item(index)
        return self._view_item(index)

    def _train_item(self, index: int) -> dict:
        rng = self._rng(index)
        video_index = index
        tried = []
        while video_index is not None and len(tried) <= self.max_retries:
            if video_index not in self.failed:
                try:
                    frames = self._decode(video_index, None, rng)
                except VideoDecodeError as error:
                    self._record_failure(video_index, error, "replaced by another video")
                else:
                    replaced = video_index != index
                    self.num_replaced += replaced
                    video = train_transform(
                        frames,
                        crop_size=self.crop_size,
                        jitter_scales=self.train_jitter_scales,
                        random_flip=self.random_flip,
                        mean=self.mean,
                        std=self.std,
                        rng=rng,
                    )
                    return self._item(video, video_index, 0, True, index if replaced else -1)
            tried.append(video_index)
            video_index = self._replacement(rng)
        failures = "; ".join(f"{self.records[i].path}: {self.failed[i]}" for i in tried)
        raise RuntimeError(
            f"{self.annotation_file}: no decodable video in {len(tried)} tries "
            f"(item {index}, max_retries={self.max_retries}): {failures}"
        )

    def _replacement(self, rng: np.random.Generator):
        """A random video not known to be broken in this process, None when none is left."""
        for _ in range(100):  # cheap while broken videos are few
            candidate = int(rng.integers(self.num_videos))
            if candidate not in self.failed:
                return candidate
        healthy = [i for i in range(self.num_videos) if i not in self.failed]
        return int(rng.choice(healthy)) if healthy else None

    def _view_item(self, index: int) -> dict:
        video_index, view_index = divmod(index, self.num_views)
        temporal_index, spatial_index = divmod(view_index, self.num_crops)
        if video_index not in self.failed:
            try:
                frames = self._decode(video_index, temporal_index, None)
            except VideoDecodeError as error:
                self._record_failure(video_index, error, "excluded from evaluation")
            else:
                video = test_transform(
                    frames,
                    crop_size=self.crop_size,
                    spatial_index=spatial_index,
                    num_crops=self.num_crops,
                    mean=self.mean,
                    std=self.std,
                )
                return self._item(video, video_index, view_index, True, -1)
        empty = torch.zeros(3, self.num_frames, self.crop_size, self.crop_size)
        return self._item(empty, video_index, view_index, False, -1)

    def _record_failure(self, video_index: int, error: VideoDecodeError, consequence: str) -> None:
        self.failed[video_index] = error.reason
        logger.warning("video %d (%s), %s", video_index, error, consequence)

    def _item(self, video, video_index: int, view_index: int, ok: bool, replaced_from: int) -> dict:
        return {
            "video": video,
            "label": self.labels[video_index],
            "video_index": video_index,
            "view_index": view_index,
            "ok": ok,
            "replaced_from": replaced_from,
        }

    def _decode(self, video_index: int, temporal_index, rng) -> np.ndarray:
        """uint8 (T, H, W, 3) frames of the clip: random (temporal_index None) or test clip."""
        key = (video_index, temporal_index)
        if temporal_index is not None and self._cached_clip[0] == key:
            # The crops of one test clip come one after the other: decode the clip once.
            return self._cached_clip[1]
        record = self.records[video_index]
        with self._open_video(record.path) as video:
            first, count = clip_frame_range(record, video)
            if temporal_index is None:
                indices = train_clip_indices(
                    count, video.fps, self.num_frames, self.sampling_rate, self.target_fps, rng,
                )
            else:
                indices = test_clip_indices(
                    count, video.fps, self.num_frames, self.sampling_rate,
                    self.target_fps, temporal_index, self.num_clips, self.clip_position,
                )
            frames = video.get_frames(np.asarray(indices) + first)
        if temporal_index is not None:
            self._cached_clip = (key, frames)
        return frames

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations ``__getitem__`` draws (see ``_rng``)."""
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        """The augmentation generator of one training item, seeded by (seed, epoch, index).

        An item's clip window, scale, crop, flip and replacement video depend on nothing else:
        not on the DataLoader worker that loads it, nor on the items loaded before it. So a run
        resumed mid-epoch sees exactly the clips of an uninterrupted run, and results do not
        change with the number of workers.
        """
        return np.random.default_rng([self.seed, self.epoch, index])


@dataclass(frozen=True)
class TestViews:
    """The test-mode views of :class:`KineticsDataset` for a video opened outside a dataset.

    Fields as the dataset's arguments: num_frames (T), sampling_rate, target_fps, crop_size,
    num_clips (temporal clips), num_crops (1 or 3), clip_position, mean, std.
    """

    num_frames: int
    sampling_rate: float
    target_fps: float
    crop_size: int
    num_clips: int
    num_crops: int
    clip_position: str
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    __test__ = False  # not a pytest test class when imported into a test module

    def __post_init__(self):
        if self.num_crops not in NUM_CROPS_CHOICES or self.clip_position not in CLIP_POSITIONS:
            raise ValueError(f"num_crops must be one of {NUM_CROPS_CHOICES} and clip_position one of "
                             f"{CLIP_POSITIONS}, got {self.num_crops} and {self.clip_position!r}")
        if self.num_clips < 1 or self.num_frames < 1 or self.sampling_rate <= 0 or self.target_fps <= 0:
            raise ValueError(f"need num_clips >= 1, num_frames >= 1, sampling_rate > 0, target_fps > 0; got "
                             f"{self.num_clips}, {self.num_frames}, {self.sampling_rate}, {self.target_fps}")

    def decode(self, video: VideoReader, frame_range: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """Every test view of an open video, float32 (V, C, T, crop_size, crop_size), in the
        dataset's view order (view v = temporal clip v // num_crops, crop v % num_crops).

        frame_range: (start, end) frames, end exclusive: the views of that part of the video as
            if it were the whole video (clip indices shifted by start); None is the whole video,
            the views `KineticsDataset` gives in test mode.
        Raises VideoDecodeError when frames cannot be decoded.
        """
        start, end = frame_range if frame_range is not None else (0, video.num_frames)
        if not 0 <= start < end <= video.num_frames:
            raise ValueError(f"frame range {frame_range} outside the {video.num_frames} frames of {video.path}")
        views = []
        for clip_index in range(self.num_clips):
            indices = start + test_clip_indices(end - start, video.fps, self.num_frames, self.sampling_rate,
                                                self.target_fps, clip_index, self.num_clips, self.clip_position)
            frames = video.get_frames(indices)
            views.extend(test_transform(frames, crop_size=self.crop_size, spatial_index=crop_index,
                                        num_crops=self.num_crops, mean=self.mean, std=self.std)
                         for crop_index in range(self.num_crops))
        return torch.stack(views)


# A file at most this much longer than the annotation's window is the trimmed clip itself.
TRIMMED_SLACK_SECONDS = 1.0


def clip_frame_range(record, video) -> Tuple[int, int]:
    """(first frame, frame count) of the clip a record names inside its video file.

    The whole file, unless the record has a ``window`` (an untrimmed download found by bare
    youtube_id) and the file is longer than that window: then the frames whose timestamps
    fall in [time_start, time_end). Raises VideoDecodeError when the window starts after the
    end of the video.
    """
    if record.window is None:
        return 0, video.num_frames
    start, end = record.window
    if video.num_frames / video.fps <= end - start + TRIMMED_SLACK_SECONDS:
        return 0, video.num_frames
    first = int(np.floor(start * video.fps))
    if first >= video.num_frames:
        raise VideoDecodeError(
            record.path, f"the annotation's window {start:g}-{end:g} s starts after the end of the untrimmed "
                         f"video ({video.num_frames / video.fps:.1f} s)")
    last = min(video.num_frames, int(np.ceil(end * video.fps)))
    return first, max(1, last - first)


def collate_views(items: Sequence[dict]) -> dict:
    """DataLoader ``collate_fn`` for dataset items.

    Returns a dict: ``video`` float32 (B, C, T, H, W); ``label``, ``video_index``,
    ``view_index``, ``replaced_from`` int64 (B,); ``ok`` bool (B,). Other keys: tensors are
    stacked, numbers become a tensor, anything else a list.
    """
    if not items:
        raise ValueError("collate_views needs at least one item")
    batch = {}
    for key in items[0]:
        values = [item[key] for item in items]
        first = values[0]
        if isinstance(first, torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(first, bool):
            batch[key] = torch.tensor(values, dtype=torch.bool)
        elif isinstance(first, int):
            batch[key] = torch.tensor(values, dtype=torch.int64)
        elif isinstance(first, float):
            batch[key] = torch.tensor(values, dtype=torch.float32)
        else:
            batch[key] = values
    return batch
