"""A synthetic action benchmark in Kinetics layout, and index-encoding test videos.

:func:`make_synthetic_dataset` writes real H.264 mp4 clips (PyAV) in which the class is what
one small object, the *actor*, does; everything else in the frame is there to be ignored::

    root/<split>/<class_folder>/<youtube_id>_<start:06d>_<end:06d>.mp4
    root/train.csv, root/validate.csv (root/test.csv, root/<split>.csv for other splits)
                      official header: label,youtube_id,time_start,time_end,split
    root/classes.txt  class names in index order (sorted, as the Kinetics lists)
    root/clips.csv    one row per clip: path, split, class, clutter level, the actor's box, seed, ...
    root/manifest.json the generation parameters; same parameters -> nothing is regenerated

The actor is a square with a white frame around a colored center (about 10 pixels, so it
covers a few 8-pixel patches); it is the only object with a white frame. Its action is the
class (ACTION_CLASSES): "stay still", "move back and forth", "shake", "blink",
"change colour", "pulse". Each action looks the same played backwards and mirrored, so time
reversal and ``random_flip=True`` never change a label.

Clutter levels (CLUTTER_LEVELS): 0 plain background; 1 light multi-scale block texture and one
distractor; 2 stronger texture and 2 distractors; 3 heavy texture and 4 distractors.
Distractors are filled disks and squares of the actor's size range and palette, each doing
a random action from the same list (a blinking distractor in a "stay still" clip), so only
the actor's patches tell the class and most tokens of a clip are irrelevant to it.

Every clip is drawn from its own seed (:func:`synthetic_clip_seed`, recorded in clips.csv),
derived from ``seed``, the split's name, the action and the clip's number, so the dataset is
byte-reproducible and any part of it (e.g. the first 12 validation clips of each class) can
be written again on its own.

:func:`write_index_video` writes a clip whose frames encode their own index as horizontal
stripes (one bit each, white = 1, top = least significant bit) spanning the full width;
:func:`read_frame_index` reads it back after decoding, resizing and cropping along the width.
"""

from __future__ import annotations

import colorsys
import csv
import itertools
import json
import math
import os
import shutil
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple, Union

import numpy as np

GENERATOR_VERSION = 2
ACTION_CLASSES = ("stay still", "move back and forth", "shake", "blink", "change colour", "pulse")
# clutter level -> (texture amplitude in gray levels, number of distractors)
CLUTTER_LEVELS = {0: (0.0, 0), 1: (14.0, 1), 2: (28.0, 2), 3: (40.0, 4)}
# The actor: a white frame around a center of ACTOR_INNER of its side; "pulse" scales it by 1 +- MAX_PULSE.
ACTOR_INNER = 0.7
MAX_PULSE = 0.4
_ACTOR_FRAME = np.full(3, 245.0, np.float32)
SPLIT_CSV_NAMES = {"train": "train.csv", "val": "validate.csv", "test": "test.csv"}
_SPLIT_KEYS = {"train": 0, "val": 1, "test": 2}  # other split names: their CRC-32
KINETICS_CSV_HEADER = ("label", "youtube_id", "time_start", "time_end", "split")
_YOUTUBE_ID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
_WHITE, _BLACK = 235, 16  # gray levels that come back within a level or two after H.264


def write_mp4(
    path: Union[str, os.PathLike],
    frames: Iterable[np.ndarray],
    fps: float,
    crf: int = 20,
    faststart: bool = False,
) -> None:
    """Encode uint8 RGB frames (each (H, W, 3), H and W even) as H.264 with PyAV; the
    container follows the file extension (.mp4, .mkv, ...). ``faststart`` puts the mp4 index
    (moov) before the frames, as web downloads do."""
    import av

    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(os.fspath(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # Without the macroblock-tree rate control: with it, libx264 encoded the same small frames
        # to different pixels from run to run (also with one thread), and a seeded dataset must
        # come out the same every time.
        stream.options = {"crf": str(crf), "x264-params": "mbtree=0"}
        for image in itertools.chain([first], frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


# ---------------------------------------------------------------------------------------------
# Index-encoding videos


def index_bits(num_frames: int) -> int:
    """Bits (= stripes) needed to write frame indices 0 .. num_frames - 1."""
    return max(1, (num_frames - 1).bit_length())


def index_frame(index: int, num_bits: int, height: int, width: int) -> np.ndarray:
    """uint8 (height, width, 3): stripe b (rows [b*height//num_bits, (b+1)*height//num_bits))
    is white when bit b of ``index`` is 1, black otherwise."""
    image = np.full((height, width, 3), _BLACK, np.uint8)
    for bit in range(num_bits):
        if (index >> bit) & 1:
            image[bit * height // num_bits : (bit + 1) * height // num_bits] = _WHITE
    return image


def write_index_video(
    path: Union[str, os.PathLike],
    num_frames: int,
    fps: float,
    height: int,
    width: int,
    faststart: bool = False,
) -> None:
    """Write an H.264 video (container from the extension) whose frame i shows i in binary
    stripes (see :func:`index_frame`)."""
    num_bits = index_bits(num_frames)
    if height < 4 * num_bits:
        raise ValueError(f"height {height} leaves under 4 rows per stripe for {num_bits} bits")
    frames = (index_frame(i, num_bits, height, width) for i in range(num_frames))
    write_mp4(path, frames, fps, crf=12, faststart=faststart)


def read_frame_index(image, num_frames: int) -> int:
    """The index written by :func:`write_index_video` in one frame.

    image: (H, W) gray or (H, W, C) color, values on the 0..255 scale (float or uint8); it
        may be resized or cropped along the width. Reads the middle half of each stripe.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3:
        image = image.mean(axis=2)
    height = image.shape[0]
    num_bits = index_bits(num_frames)
    index = 0
    for bit in range(num_bits):
        top, bottom = bit * height / num_bits, (bit + 1) * height / num_bits
        quarter = (bottom - top) / 4
        band = image[int(math.ceil(top + quarter)) : int(math.floor(bottom - quarter))]
        if band.mean() > (_WHITE + _BLACK) / 2:
            index |= 1 << bit
    return index


# ---------------------------------------------------------------------------------------------
# Synthetic action clips


@dataclass(frozen=True)
class SyntheticDataset:
    """Where :func:`make_synthetic_dataset` put things.

    root: the dataset folder (also the video_root to give KineticsDataset).
    classes: class names in index order (as in classes.txt).
    annotations: split -> official-style CSV path.
    class_list: classes.txt path. clips: clips.csv path. generated: False when reused.
    """

    root: Path
    classes: Tuple[str, ...]
    annotations: Dict[str, Path]
    class_list: Path
    clips: Path
    generated: bool


def make_synthetic_dataset(
    root: Union[str, os.PathLike],
    *,
    num_classes: int = len(ACTION_CLASSES),
    classes: Optional[Sequence[str]] = None,
    videos_per_class: Dict[str, int] = None,
    num_frames: int = 8,
    height: int = 48,
    width: int = 56,
    fps: float = 8,
    clutter_levels: Sequence[int] = (0, 1, 2, 3),
    actor_size: float = 10.0,
    amplitude: float = 8.0,
    noise_std: float = 2.0,
    crf: int = 18,
    seed: int = 0,
) -> SyntheticDataset:
    """Write (or reuse) a synthetic dataset in Kinetics layout; see the module docstring.

    num_classes: how many of ACTION_CLASSES, taken in order.
    classes: instead of num_classes, these names from ACTION_CLASSES.
    videos_per_class: split -> clips per class; default {"train": 32, "val": 8}. Clip k of a
        class and split is the same whatever the other counts, so {"val": 4} rewrites exactly
        the first 4 validation clips of each class of a larger dataset with the same seed.
    num_frames, height, width, fps: clip format (height and width even).
    clutter_levels: levels (keys of CLUTTER_LEVELS) assigned in turn to the clips of each
        class and split, so every class sees every level equally often.
    actor_size: side of the actor's square in pixels (before its +-10 % jitter).
    amplitude: how far (pixels) the actor and the distractors travel when they move.
    noise_std: per-frame Gaussian pixel noise (gray levels).
    crf: x264 quality (lower = better). seed: dataset seed.
    Returns :class:`SyntheticDataset`.
    """
    videos_per_class = dict(videos_per_class or {"train": 32, "val": 8})
    actions = _chosen_actions(num_classes, classes)
    if height % 2 or width % 2:
        raise ValueError(f"height and width must be even for H.264 yuv420p, got {height}x{width}")
    unknown = [level for level in clutter_levels if level not in CLUTTER_LEVELS]
    if unknown or not clutter_levels:
        raise ValueError(f"clutter levels {list(clutter_levels)} must be among {sorted(CLUTTER_LEVELS)}")
    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    root = Path(root)
    clip_format = dict(num_frames=num_frames, height=height, width=width, fps=fps)
    render_options = dict(actor_size=actor_size, amplitude=amplitude, noise_std=noise_std)
    params = {"version": GENERATOR_VERSION, "actions": list(actions), "videos_per_class": videos_per_class,
              **clip_format, "clutter_levels": list(clutter_levels), **render_options, "crf": crf, "seed": seed}
    classes = tuple(sorted(actions))
    layout = SyntheticDataset(root=root, classes=classes,
                              annotations={split: root / _csv_name(split) for split in videos_per_class},
                              class_list=root / "classes.txt", clips=root / "clips.csv", generated=True)
    if _is_complete(root, params):
        return SyntheticDataset(**{**layout.__dict__, "generated": False})
    _remove_previous(root)
    root.mkdir(parents=True, exist_ok=True)

    clip_rows, used_ids = [], set()
    for split, per_class in videos_per_class.items():
        csv_rows = []
        for action in actions:
            for number in range(per_class):
                clip_seed = synthetic_clip_seed(seed, split, action, number)
                row = _write_clip(root, split, action, classes.index(action), clip_seed, used_ids,
                                  clutter_levels[number % len(clutter_levels)], clip_format, render_options, crf)
                csv_rows.append((action, row["youtube_id"], row["time_start"], row["time_end"], split))
                clip_rows.append(row)
        _write_csv(layout.annotations[split], KINETICS_CSV_HEADER, csv_rows)
    layout.class_list.write_text("".join(name + "\n" for name in classes), encoding="utf-8")
    with open(layout.clips, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(clip_rows[0]))
        writer.writeheader()
        writer.writerows(clip_rows)
    # Written last: a manifest means the dataset is complete.
    (root / "manifest.json").write_text(json.dumps({"params": params, "splits": list(videos_per_class)}, indent=2))
    return layout


def _chosen_actions(num_classes: int, classes: Optional[Sequence[str]]) -> Tuple[str, ...]:
    """The actions a dataset uses: ``classes`` (checked) or the first ``num_classes``."""
    if classes is not None:
        unknown = [name for name in classes if name not in ACTION_CLASSES]
        if unknown or not classes or len(set(classes)) != len(classes):
            raise ValueError(f"classes {list(classes)} must be distinct names among {list(ACTION_CLASSES)}")
        return tuple(classes)
    if not 1 <= num_classes <= len(ACTION_CLASSES):
        raise ValueError(f"num_classes must be in [1, {len(ACTION_CLASSES)}], got {num_classes}")
    return ACTION_CLASSES[:num_classes]


def synthetic_clip_seed(seed: int, split: str, action: str, number: int) -> int:
    """The seed clip ``number`` of ``action`` in ``split`` is drawn from.

    It depends on the split's name (not on its position among the splits asked for) and on
    the action's place in ACTION_CLASSES (not on the classes asked for), so any subset of a
    dataset can be written again on its own and comes out byte for byte the same.
    """
    split_key = _SPLIT_KEYS.get(split, zlib.crc32(split.encode("utf-8")))
    sequence = np.random.SeedSequence([seed, split_key, ACTION_CLASSES.index(action), number])
    return int(sequence.generate_state(1)[0])


def _write_clip(root: Path, split: str, action: str, label: int, clip_seed: int, used_ids: set, clutter: int,
                clip_format: dict, render_options: dict, crf: int) -> dict:
    """Render and encode one clip from its own seed; returns its clips.csv row."""
    folder = root / split / action.replace(" ", "_")
    folder.mkdir(parents=True, exist_ok=True)
    num_frames, fps = clip_format["num_frames"], clip_format["fps"]
    rng = np.random.default_rng(clip_seed)
    youtube_id = _youtube_id(rng, used_ids)
    time_start = int(rng.integers(0, 600))
    time_end = time_start + max(1, round(num_frames / fps))
    frames, details = render_clip(action, rng, num_frames=num_frames, height=clip_format["height"],
                                  width=clip_format["width"], clutter=clutter, **render_options)
    path = folder / f"{youtube_id}_{time_start:06d}_{time_end:06d}.mp4"
    write_mp4(path, frames, fps, crf=crf)
    return {"path": path.relative_to(root).as_posix(), "split": split, "youtube_id": youtube_id,
            "time_start": time_start, "time_end": time_end, "label": action, "label_index": label,
            "clutter": clutter, **details, "seed": clip_seed}


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _csv_name(split: str) -> str:
    return SPLIT_CSV_NAMES.get(split, f"{split}.csv")


def _is_complete(root: Path, params: dict) -> bool:
    try:
        manifest = json.loads((root / "manifest.json").read_text())
        with open(root / "clips.csv", newline="", encoding="utf-8") as handle:
            paths = [row["path"] for row in csv.DictReader(handle)]
    except (OSError, ValueError, KeyError):
        return False
    return manifest.get("params") == params and all((root / path).is_file() for path in paths)


def _remove_previous(root: Path) -> None:
    """Remove what an earlier generation wrote (listed by its manifest) before a new one."""
    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return
    (root / "manifest.json").unlink()
    for split in manifest.get("splits", []):
        shutil.rmtree(root / split, ignore_errors=True)
        (root / _csv_name(split)).unlink(missing_ok=True)
    for name in ("classes.txt", "clips.csv"):
        (root / name).unlink(missing_ok=True)


def _youtube_id(rng: np.random.Generator, used: set) -> str:
    while True:
        youtube_id = "".join(rng.choice(_YOUTUBE_ID_ALPHABET, 11))
        if youtube_id not in used:
            used.add(youtube_id)
            return youtube_id


def _hsv(hue: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value), np.float32) * 255.0


@dataclass(frozen=True)
class ActionTrack:
    """What an object does in each of T frames: offsets from its rest position (dx, dy,
    pixels), size factor (scale), drawn or not (visible), hue shift (hue, in turns); each (T,)."""

    dx: np.ndarray
    dy: np.ndarray
    scale: np.ndarray
    visible: np.ndarray
    hue: np.ndarray


def action_track(action: str, rng: np.random.Generator, num_frames: int, amplitude: float) -> ActionTrack:
    """The frame-by-frame track of one object doing ``action`` (one of ACTION_CLASSES).

    Every action draws the same path first: about one sine period of +-``amplitude`` pixels
    (0.85 to 1.15 of it) along a random axis. "move back and forth" follows it; every other
    action rests at the point of it where a random frame would be, so where an object is in a
    frame says nothing about its action. Then "shake" steps 2.5 to 3.5 pixels to the other side
    every frame, "blink" is drawn every other frame or two frames on, two off, "change colour"
    turns the hue of its center by 0.3 to 0.5 every frame, "pulse" scales its side by
    1 + MAX_PULSE * the path's sine, "stay still" does nothing more. Every action looks the same
    played backwards or mirrored (a tiny model trained from scratch tells those apart only late).
    """
    frames = np.arange(num_frames)
    wave = np.sin(2 * math.pi * rng.uniform(0.8, 1.2) * frames / num_frames + rng.uniform(0, 2 * math.pi))
    axis, reach = rng.uniform(0, math.pi), amplitude * rng.uniform(0.85, 1.15)
    dx, dy = reach * wave * math.cos(axis), reach * wave * math.sin(axis)
    if action != "move back and forth":
        rest = int(rng.integers(num_frames))
        dx, dy = np.full(num_frames, dx[rest]), np.full(num_frames, dy[rest])
    scale, hue = np.ones(num_frames), np.zeros(num_frames)
    visible = np.ones(num_frames, dtype=bool)
    if action == "shake":
        sign = (-1.0) ** frames * rng.choice([-1.0, 1.0])
        dx = dx + sign * rng.uniform(2.5, 3.5, num_frames)
        dy = dy + sign * rng.uniform(2.5, 3.5, num_frames) * rng.uniform(-1.0, 1.0)
    elif action == "blink":
        half_period = int(rng.choice([1, 2]))
        visible = (frames + int(rng.integers(0, 2 * half_period))) // half_period % 2 == 0
    elif action == "change colour":
        hue = np.concatenate([[0.0], np.cumsum(rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.5, num_frames - 1))])
    elif action == "pulse":
        scale = 1.0 + MAX_PULSE * wave
    elif action not in ("stay still", "move back and forth"):
        raise ValueError(f"unknown action {action!r}; known: {ACTION_CLASSES}")
    return ActionTrack(dx=dx, dy=dy, scale=scale, visible=visible, hue=hue)


def render_clip(
    action: str,
    rng: np.random.Generator,
    *,
    num_frames: int,
    height: int,
    width: int,
    clutter: int,
    actor_size: float = 10.0,
    amplitude: float = 8.0,
    noise_std: float = 2.0,
):
    """Frames of one clip where the actor does ``action``, and what was drawn.

    The scene (background and distractors), the actor and the pixel noise draw from three
    generators spawned from ``rng``, and the actor's place and colour are drawn before its
    action, so the same ``rng`` state with another action changes only the actor's pixels.

    Returns frames uint8 (num_frames, height, width, 3) and a dict: texture_amplitude,
    num_distractors, actor_size_px, actor_x and actor_y (the center of its path, pixels),
    actor_left, actor_top, actor_right, actor_bottom (the pixel box, right and bottom
    exclusive, that holds the actor in every frame).
    """
    texture_amplitude, num_distractors = CLUTTER_LEVELS[clutter]
    scene_rng, actor_rng, noise_rng = rng.spawn(3)
    background = _background(scene_rng, height, width, texture_amplitude)
    distractors = [_distractor(scene_rng, num_frames, height, width, actor_size, amplitude)
                   for _ in range(num_distractors)]
    size = actor_size * actor_rng.uniform(0.9, 1.1)
    center_x, center_y = _actor_rest_position(actor_rng, height, width, size, amplitude)
    hue = actor_rng.random()
    track = action_track(action, actor_rng, num_frames, amplitude)

    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        image = background.copy()
        for x, y, side, shape, object_hue, object_track in distractors:
            if object_track.visible[t]:
                half = side * object_track.scale[t] / 2
                distance = _DISTRACTOR_SHAPES[shape](cols, rows, x + object_track.dx[t], y + object_track.dy[t], half)
                _blend(image, distance, _hsv(object_hue + object_track.hue[t], 0.8, 0.9))
        if track.visible[t]:
            x, y, half = center_x + track.dx[t], center_y + track.dy[t], size * track.scale[t] / 2
            _blend(image, _square(cols, rows, x, y, half), _ACTOR_FRAME)
            _blend(image, _square(cols, rows, x, y, half * ACTOR_INNER), _hsv(hue + track.hue[t], 0.8, 0.9))
        if noise_std > 0:
            image += noise_rng.normal(0.0, noise_std, image.shape).astype(np.float32)
        frames[t] = np.clip(image, 0, 255).round().astype(np.uint8)
    left, top, right, bottom = _actor_box(track, center_x, center_y, size, height, width)
    details = {
        "texture_amplitude": texture_amplitude,
        "num_distractors": num_distractors,
        "actor_size_px": round(float(size), 2),
        "actor_x": round(float(center_x), 2),
        "actor_y": round(float(center_y), 2),
        "actor_left": left,
        "actor_top": top,
        "actor_right": right,
        "actor_bottom": bottom,
    }
    return frames, details


def actor_reach(size: float, amplitude: float) -> float:
    """How far (pixels) any pixel of an actor of side ``size`` can get from its rest center."""
    return size * (1.0 + MAX_PULSE) / 2 + amplitude * 1.15 + 1.0


def _actor_rest_position(rng, height: int, width: int, size: float, amplitude: float) -> Tuple[float, float]:
    """(x, y) center of the actor's path (see `action_track`): its whole track stays in the
    frame, and an actor at the center lies inside the square that every test crop along the
    long side shares."""
    reach = actor_reach(size, amplitude)
    shared_x, shared_y = max(width - height, 0), max(height - width, 0)
    low_x, high_x = max(reach, shared_x + size / 2), width - max(reach, shared_x + size / 2)
    low_y, high_y = max(reach, shared_y + size / 2), height - max(reach, shared_y + size / 2)
    x = rng.uniform(low_x, high_x) if high_x > low_x else width / 2
    y = rng.uniform(low_y, high_y) if high_y > low_y else height / 2
    return x, y


def _actor_box(track: ActionTrack, x: float, y: float, size: float, height: int, width: int):
    """(left, top, right, bottom) integer pixel box, right and bottom exclusive, around every
    pixel the actor touches in any frame (anti-aliasing included), clipped to the frame."""
    shown = track.visible
    half = size * track.scale[shown] / 2 + 1.0
    left = int(math.floor(np.min(x + track.dx[shown] - half))) if shown.any() else 0
    right = int(math.ceil(np.max(x + track.dx[shown] + half))) if shown.any() else 0
    top = int(math.floor(np.min(y + track.dy[shown] - half))) if shown.any() else 0
    bottom = int(math.ceil(np.max(y + track.dy[shown] + half))) if shown.any() else 0
    return max(left, 0), max(top, 0), min(right, width), min(bottom, height)


def _distractor(rng, num_frames: int, height: int, width: int, actor_size: float, amplitude: float):
    """(x, y, side, shape, hue, ActionTrack) of one distractor: a filled disk or square of the
    actor's size range and palette doing a random action, somewhere in the frame."""
    side = actor_size * rng.uniform(0.8, 1.2)
    reach = actor_reach(side, amplitude)
    x, y = rng.uniform(min(reach, width / 2), max(width - reach, width / 2)), \
        rng.uniform(min(reach, height / 2), max(height - reach, height / 2))
    shape = str(rng.choice(sorted(_DISTRACTOR_SHAPES)))
    hue = rng.random()
    action = ACTION_CLASSES[int(rng.integers(len(ACTION_CLASSES)))]
    return x, y, side, shape, hue, action_track(action, rng, num_frames, amplitude)


def _background(rng, height: int, width: int, amplitude: float) -> np.ndarray:
    """float32 (H, W, 3): a muted flat color plus multi-scale random blocks of +-amplitude."""
    base = _hsv(rng.random(), 0.25, rng.uniform(0.3, 0.5))
    image = np.broadcast_to(base, (height, width, 3)).astype(np.float32)
    if amplitude > 0:
        for block, weight in ((4, 0.5), (8, 0.8), (16, 1.0)):
            cells = rng.uniform(-1, 1, (height // block + 2, width // block + 2, 3))
            grid = np.repeat(np.repeat(cells, block, axis=0), block, axis=1)
            top, left = rng.integers(0, block, 2)
            image += (amplitude * weight / 1.5) * grid[top : top + height, left : left + width]
    return image


def _square(cols: np.ndarray, rows: np.ndarray, x: float, y: float, half: float) -> np.ndarray:
    """Signed distance (pixels, negative inside) of every pixel center to an axis-aligned
    square of half side ``half`` centered at (x, y)."""
    return np.maximum(np.abs(cols - x), np.abs(rows - y)) - half


def _disk(cols: np.ndarray, rows: np.ndarray, x: float, y: float, half: float) -> np.ndarray:
    """Signed distance of every pixel center to a disk of radius ``half`` centered at (x, y)."""
    return np.hypot(cols - x, rows - y) - half


_DISTRACTOR_SHAPES = {"square": _square, "disk": _disk}


def _blend(image: np.ndarray, distance: np.ndarray, color: np.ndarray) -> None:
    """Paint ``color`` into image (H, W, 3) in place where distance < 0, anti-aliased over one pixel."""
    alpha = np.clip(0.5 - distance, 0.0, 1.0)[..., None]
    image += alpha * (color - image)
