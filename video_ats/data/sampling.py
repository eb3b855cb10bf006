"""Temporal clip sampling: which frame indices of a video make up one clip.

All functions are pure (randomness comes in through ``rng``) and follow the PySlowFast /
TimeSformer rule, restated here in our own words (n = frames in the video, T = frames per
clip, r = sampling rate, f = the video's fps, F = the target fps, default 30):

- The clip covers a window of ``W = T * r * f / F`` video frames: T*r frames at the target
  fps, scaled to the video's own fps.
- The window may start anywhere in ``[0, D]`` with ``D = max(n - W, 0)``.
- Training: ``start ~ Uniform(0, D)`` (a real number).
- Testing, clip k of N (``position``):
    ``"start"``  (PySlowFast / official TimeSformer and XViT): ``start = D * k / N``; one
                 clip starts at frame 0 and the last start ``D`` is never reached.
    ``"middle"`` (the papers and mmaction2): one clip sits in the middle, ``start = D / 2``;
                 N > 1 clips spread evenly over ``[0, D]``, ends included:
                 ``start = D * k / (N - 1)``.
- The T indices are evenly spaced from ``start`` to ``start + W - 1``:
  ``index_j = floor(start + j * (W - 1) / (T - 1))`` (T = 1: ``floor(start)``), then clamped
  to ``[0, n - 1]``. A video shorter than the window therefore repeats its last frame.
"""

from __future__ import annotations

import numpy as np

CLIP_POSITIONS = ("start", "middle")
# floor() of a value that is mathematically an integer but computed as k - 1e-15 must give k.
_FLOOR_TOLERANCE = 1e-6


def clip_window(video_fps: float, num_frames: int, sampling_rate: float, target_fps: float) -> float:
    """W = num_frames * sampling_rate * video_fps / target_fps: video frames one clip covers."""
    if num_frames < 1 or sampling_rate <= 0 or video_fps <= 0 or target_fps <= 0:
        raise ValueError(
            f"need num_frames >= 1 and positive sampling_rate, video_fps, target_fps; got "
            f"{num_frames}, {sampling_rate}, {video_fps}, {target_fps}"
        )
    return num_frames * sampling_rate * video_fps / target_fps


def window_indices(start: float, window: float, num_frames: int, num_video_frames: int) -> np.ndarray:
    """The num_frames evenly spaced indices of the window [start, start + window - 1].

    Returns int64 (num_frames,), each clamped to [0, num_video_frames - 1].
    """
    if num_video_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_video_frames}")
    positions = np.linspace(start, start + window - 1, num_frames, dtype=np.float64)
    indices = np.floor(positions + _FLOOR_TOLERANCE).astype(np.int64)
    return np.clip(indices, 0, num_video_frames - 1)


def train_clip_indices(
    num_video_frames: int,
    video_fps: float,
    num_frames: int,
    sampling_rate: float,
    target_fps: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Indices of a random training clip: the window starts at ``rng.uniform(0, D)``.

    Returns int64 (num_frames,).
    """
    window = clip_window(video_fps, num_frames, sampling_rate, target_fps)
    slack = max(num_video_frames - window, 0.0)
    start = float(rng.uniform(0.0, slack)) if slack > 0 else 0.0
    return window_indices(start, window, num_frames, num_video_frames)


def test_clip_start(slack: float, clip_index: int, num_clips: int, position: str = "start") -> float:
    """Start of test clip ``clip_index`` of ``num_clips`` given the slack D (module docstring)."""
    if position not in CLIP_POSITIONS:
        raise ValueError(f"clip position {position!r} is not one of {CLIP_POSITIONS}")
    if not 0 <= clip_index < num_clips:
        raise ValueError(f"clip_index {clip_index} outside [0, {num_clips})")
    if position == "start":
        return slack * clip_index / num_clips
    if num_clips == 1:
        return slack / 2
    return slack * clip_index / (num_clips - 1)


def test_clip_indices(
    num_video_frames: int,
    video_fps: float,
    num_frames: int,
    sampling_rate: float,
    target_fps: float,
    clip_index: int,
    num_clips: int,
    position: str = "start",
) -> np.ndarray:
    """Indices of test clip ``clip_index`` of ``num_clips`` under the ``position`` rule.

    Returns int64 (num_frames,).
    """
    window = clip_window(video_fps, num_frames, sampling_rate, target_fps)
    slack = max(num_video_frames - window, 0.0)
    start = test_clip_start(slack, clip_index, num_clips, position)
    return window_indices(start, window, num_frames, num_video_frames)


def sliding_windows(num_video_frames: int, video_fps: float, window_seconds: float,
                    stride_seconds: float) -> list:
    """Frame ranges of the windows a long video is cut into, each predicted on its own.

    Windows of ``w = max(1, round(window_seconds * fps))`` frames start every
    ``s = max(1, round(stride_seconds * fps))`` frames from frame 0 while they fit in the video;
    when the last of them ends before the video does, one more window ends exactly at the end
    (it overlaps the one before). A video no longer than a window is one window, the whole video.
    So the first window starts at 0, the last ends at the video's end, and with s <= w no frame
    is left out.

    Returns a list of (start_frame, end_frame) pairs, end exclusive, in order.
    """
    if num_video_frames < 1 or video_fps <= 0 or window_seconds <= 0 or stride_seconds <= 0:
        raise ValueError(f"need num_video_frames >= 1 and positive video_fps, window and stride; got "
                         f"{num_video_frames}, {video_fps}, {window_seconds}, {stride_seconds}")
    window = max(1, round(window_seconds * video_fps))
    stride = max(1, round(stride_seconds * video_fps))
    starts = list(range(0, max(num_video_frames - window, 0) + 1, stride))
    if starts[-1] + window < num_video_frames:
        starts.append(num_video_frames - window)
    return [(start, min(start + window, num_video_frames)) for start in starts]


# Named test_* by contract; tell pytest these are not tests when a test module imports them.
test_clip_start.__test__ = False
test_clip_indices.__test__ = False
