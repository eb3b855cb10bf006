"""A synthetic action dataset in Kinetics layout, and index-encoding test videos.

:func:`make_synthetic_dataset` writes real H.264 mp4 clips (PyAV) where the class is how a
foreground object moves, over a background whose clutter is controlled per clip::

    root/<split>/<class_folder>/<youtube_id>_<start:06d>_<end:06d>.mp4
    root/train.csv, root/validate.csv (root/test.csv, root/<split>.csv for other splits)
                      official header: label,youtube_id,time_start,time_end,split
    root/classes.txt  class names in index order (sorted, as the Kinetics lists)
    root/clips.csv    one row per clip: path, split, class, clutter level, seed, ...
    root/manifest.json the generation parameters; same parameters -> nothing is regenerated

Classes (the first ``num_classes`` of MOTION_CLASSES; each is closed under horizontal
flipping, so ``random_flip=True`` never changes a label): "move up", "move down",
"move sideways" (left or right), "grow", "shrink", "spin" (either way),
"bounce up and down", "bounce sideways", "circle" (either way), "pulse", "stay still".
Pairs such as up/down and grow/shrink differ only in the direction of time.

Clutter levels (CLUTTER_LEVELS): 0 plain background; 1 light multi-scale block texture;
2 strong texture and 2 moving distractors; 3 heavy texture and 4 moving distractors. The
texture makes every image region carry detail and the distractors add motion, so clutter
changes how many patches hold information. Other difficulty knobs: ``object_size``,
``motion_amplitude``, ``noise_std``, ``distractor_similarity`` (1: distractors have the
foreground's shape and color), ``distractor_speed``.

Every clip is drawn from its own seed (recorded in clips.csv), derived from ``seed``, its
split, class and number, so the dataset is deterministic.

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
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple, Union

import numpy as np

GENERATOR_VERSION = 1
MOTION_CLASSES = (
    "move up",
    "move down",
    "move sideways",
    "grow",
    "shrink",
    "spin",
    "bounce up and down",
    "bounce sideways",
    "circle",
    "pulse",
    "stay still",
)
# clutter level -> (texture amplitude in gray levels, number of moving distractors)
CLUTTER_LEVELS = {0: (0.0, 0), 1: (14.0, 0), 2: (30.0, 2), 3: (48.0, 4)}
SPLIT_CSV_NAMES = {"train": "train.csv", "val": "validate.csv", "test": "test.csv"}
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
    num_classes: int = 6,
    classes: Optional[Sequence[str]] = None,
    videos_per_class: Dict[str, int] = None,
    num_frames: int = 40,
    height: int = 96,
    width: int = 128,
    fps: float = 20,
    clutter_levels: Sequence[int] = (0, 1, 2, 3),
    object_size: float = 0.2,
    motion_amplitude: float = 0.7,
    noise_std: float = 4.0,
    distractor_similarity: float = 0.5,
    distractor_speed: float = 1.0,
    crf: int = 23,
    seed: int = 0,
) -> SyntheticDataset:
    """Write (or reuse) a synthetic dataset in Kinetics layout; see the module docstring.

    num_classes: how many of MOTION_CLASSES (at most 11), taken in order.
    classes: instead of num_classes, these names from MOTION_CLASSES (e.g. only motions that
        look the same played backwards, which a model with zero-initialized temporal
        embeddings learns much sooner than the pairs that differ only in time direction).
    videos_per_class: split -> clips per class; default {"train": 32, "val": 8}.
    num_frames, height, width, fps: clip format (height and width even).
    clutter_levels: levels (keys of CLUTTER_LEVELS) assigned in turn to the clips of each
        class and split, so every class sees every level equally often.
    object_size: foreground size as a fraction of the short side.
    motion_amplitude: fraction of the free space a moving object travels.
    noise_std: per-frame Gaussian pixel noise (gray levels).
    distractor_similarity: 0 distractors are gray squares or disks, 1 they copy the
        foreground's shape and color (then only the motion tells the foreground apart).
    distractor_speed: distractor speed relative to the foreground's.
    crf: x264 quality (lower = better). seed: dataset seed.
    Returns :class:`SyntheticDataset`.
    """
    videos_per_class = dict(videos_per_class or {"train": 32, "val": 8})
    motions = _chosen_motions(num_classes, classes)
    if height % 2 or width % 2:
        raise ValueError(f"height and width must be even for H.264 yuv420p, got {height}x{width}")
    unknown = [level for level in clutter_levels if level not in CLUTTER_LEVELS]
    if unknown or not clutter_levels:
        raise ValueError(f"clutter levels {list(clutter_levels)} must be among {sorted(CLUTTER_LEVELS)}")
    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    root = Path(root)
    clip_format = dict(num_frames=num_frames, height=height, width=width, fps=fps)
    render_options = dict(object_size=object_size, motion_amplitude=motion_amplitude, noise_std=noise_std,
                          distractor_similarity=distractor_similarity, distractor_speed=distractor_speed)
    params = {"version": GENERATOR_VERSION, "num_classes": len(motions), "motions": list(motions),
              "videos_per_class": videos_per_class, **clip_format, "clutter_levels": list(clutter_levels),
              **render_options, "crf": crf, "seed": seed}
    classes = tuple(sorted(motions))
    layout = SyntheticDataset(root=root, classes=classes,
                              annotations={split: root / _csv_name(split) for split in videos_per_class},
                              class_list=root / "classes.txt", clips=root / "clips.csv", generated=True)
    if _is_complete(root, params):
        return SyntheticDataset(**{**layout.__dict__, "generated": False})
    _remove_previous(root)
    root.mkdir(parents=True, exist_ok=True)

    clip_rows, used_ids = [], set()
    for split_number, (split, per_class) in enumerate(videos_per_class.items()):
        csv_rows = []
        for motion in motions:
            for number in range(per_class):
                clip_seed = int(np.random.SeedSequence([seed, split_number, MOTION_CLASSES.index(motion), number])
                                .generate_state(1)[0])
                row = _write_clip(root, split, motion, classes.index(motion), clip_seed, used_ids,
                                  clutter_levels[number % len(clutter_levels)], clip_format, render_options, crf)
                csv_rows.append((motion, row["youtube_id"], row["time_start"], row["time_end"], split))
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


def _chosen_motions(num_classes: int, classes: Optional[Sequence[str]]) -> Tuple[str, ...]:
    """The motions of a dataset: ``classes`` (checked) or the first ``num_classes``."""
    if classes is not None:
        unknown = [name for name in classes if name not in MOTION_CLASSES]
        if unknown or not classes or len(set(classes)) != len(classes):
            raise ValueError(f"classes {list(classes)} must be distinct names among {list(MOTION_CLASSES)}")
        return tuple(classes)
    if not 1 <= num_classes <= len(MOTION_CLASSES):
        raise ValueError(f"num_classes must be in [1, {len(MOTION_CLASSES)}], got {num_classes}")
    return MOTION_CLASSES[:num_classes]


def _write_clip(root: Path, split: str, motion: str, label: int, clip_seed: int, used_ids: set, clutter: int,
                clip_format: dict, render_options: dict, crf: int) -> dict:
    """Render and encode one clip from its own seed; returns its clips.csv row."""
    folder = root / split / motion.replace(" ", "_")
    folder.mkdir(parents=True, exist_ok=True)
    num_frames, fps = clip_format["num_frames"], clip_format["fps"]
    rng = np.random.default_rng(clip_seed)
    youtube_id = _youtube_id(rng, used_ids)
    time_start = int(rng.integers(0, 600))
    time_end = time_start + max(1, round(num_frames / fps))
    frames, details = render_clip(motion, rng, num_frames=num_frames, height=clip_format["height"],
                                  width=clip_format["width"], clutter=clutter, **render_options)
    path = folder / f"{youtube_id}_{time_start:06d}_{time_end:06d}.mp4"
    write_mp4(path, frames, fps, crf=crf)
    return {"path": path.relative_to(root).as_posix(), "split": split, "youtube_id": youtube_id,
            "time_start": time_start, "time_end": time_end, "label": motion, "label_index": label,
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
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value)) * 255.0


def render_clip(
    motion: str,
    rng: np.random.Generator,
    *,
    num_frames: int,
    height: int,
    width: int,
    clutter: int,
    object_size: float,
    motion_amplitude: float,
    noise_std: float,
    distractor_similarity: float,
    distractor_speed: float,
):
    """Frames of one clip, uint8 (num_frames, height, width, 3), and a dict of what was drawn
    (texture_amplitude, num_distractors, object_size_px, direction, speed)."""
    texture_amplitude, num_distractors = CLUTTER_LEVELS[clutter]
    size = object_size * min(height, width) * rng.uniform(0.85, 1.15)
    speed = rng.uniform(0.75, 1.25)
    direction = int(rng.choice([-1, 1]))
    foreground_hue = rng.random()
    foreground_color = _hsv(foreground_hue, 0.85, 0.95)
    background = _background(rng, height, width, texture_amplitude)
    track = _foreground_track(motion, rng, num_frames, height, width, size, motion_amplitude, speed, direction)

    distractors = []
    for _ in range(num_distractors):
        similar = rng.random() < distractor_similarity
        other = _hsv(foreground_hue + rng.uniform(0.3, 0.7), 0.2, rng.uniform(0.5, 0.9))
        color = (1 - distractor_similarity) * other + distractor_similarity * foreground_color
        shape = "L" if similar else str(rng.choice(["square", "disk"]))
        distractors.append(
            _drift_track(rng, num_frames, height, width, size * rng.uniform(0.7, 1.1),
                         distractor_speed * speed * motion_amplitude, shape, color)
        )

    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        image = background.copy()
        for objects in distractors:
            _draw(image, *objects[t])
        x, y, scale, angle = track[t]
        _draw(image, x, y, size * scale, angle, "L", foreground_color)
        if noise_std > 0:
            image += rng.normal(0.0, noise_std, image.shape).astype(np.float32)
        frames[t] = np.clip(image, 0, 255).round().astype(np.uint8)
    details = {
        "texture_amplitude": texture_amplitude,
        "num_distractors": num_distractors,
        "object_size_px": round(float(size), 2),
        "direction": direction,
        "speed": round(float(speed), 3),
    }
    return frames, details


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


def _foreground_track(motion, rng, num_frames, height, width, size, amplitude, speed, direction):
    """(num_frames, 4) rows (x, y, scale, angle) of the foreground for one motion class."""
    u = np.linspace(0.0, 1.0, num_frames)
    reach = size * 0.8  # keep the object's center this far from the border
    free_x, free_y = width - 2 * reach, height - 2 * reach
    travel = min(1.0, amplitude * speed)
    x = np.full(num_frames, rng.uniform(reach, width - reach))
    y = np.full(num_frames, rng.uniform(reach, height - reach))
    scale = np.ones(num_frames)
    angle = np.full(num_frames, rng.uniform(0, 2 * math.pi))
    cycles = 2.0 * speed
    if motion in ("move up", "move down"):
        start = rng.uniform(reach + travel * free_y, height - reach)
        y = start - travel * free_y * u
        if motion == "move down":
            y = height - y
    elif motion == "move sideways":
        start = rng.uniform(reach, width - reach - travel * free_x)
        x = start + travel * free_x * u
        if direction < 0:
            x = width - x
    elif motion in ("grow", "shrink"):
        scale = 0.55 + 0.9 * (u if motion == "grow" else 1 - u)
        x = np.full(num_frames, rng.uniform(1.2 * reach, width - 1.2 * reach))
        y = np.full(num_frames, rng.uniform(1.2 * reach, height - 1.2 * reach))
    elif motion == "spin":
        angle = angle + direction * 2 * math.pi * speed * u
    elif motion in ("bounce up and down", "bounce sideways"):
        wave = np.sin(2 * math.pi * cycles * u + rng.uniform(0, 2 * math.pi))
        if motion == "bounce up and down":
            y = height / 2 + 0.5 * travel * free_y * wave
        else:
            x = width / 2 + 0.5 * travel * free_x * wave
    elif motion == "circle":
        radius = 0.5 * travel * min(free_x, free_y)
        theta = rng.uniform(0, 2 * math.pi) + direction * 2 * math.pi * speed * u
        x, y = width / 2 + radius * np.cos(theta), height / 2 + radius * np.sin(theta)
    elif motion == "pulse":
        scale = 1 + 0.4 * np.sin(2 * math.pi * cycles * u)
    elif motion != "stay still":
        raise ValueError(f"unknown motion {motion!r}; known: {MOTION_CLASSES}")
    return np.stack([x, y, scale, angle], axis=1)


def _drift_track(rng, num_frames, height, width, size, speed, shape, color):
    """Per frame (x, y, size, angle, shape, color) of a distractor drifting in a straight line
    and bouncing off the borders, turning slowly."""
    position = rng.uniform([size, size], [width - size, height - size])
    heading = rng.uniform(0, 2 * math.pi)
    step = speed * min(height, width) / num_frames
    velocity = step * np.array([math.cos(heading), math.sin(heading)])
    angle, turn = rng.uniform(0, 2 * math.pi), rng.uniform(-0.1, 0.1)
    low, high = np.array([size / 2] * 2), np.array([width - size / 2, height - size / 2])
    track = []
    for _ in range(num_frames):
        track.append((position[0], position[1], size, angle, shape, color))
        position = position + velocity
        outside = (position < low) | (position > high)
        velocity = np.where(outside, -velocity, velocity)
        position = np.clip(position, low, high)
        angle += turn
    return track


def _draw(image: np.ndarray, x: float, y: float, size: float, angle: float, shape: str, color) -> None:
    """Blend an anti-aliased shape of side ``size`` centered at (x, y) into image in place."""
    radius = size * 0.75 + 2
    top, bottom = max(int(y - radius), 0), min(int(y + radius) + 1, image.shape[0])
    left, right = max(int(x - radius), 0), min(int(x + radius) + 1, image.shape[1])
    if top >= bottom or left >= right:
        return
    rows, cols = np.mgrid[top:bottom, left:right].astype(np.float32)
    dx, dy = cols + 0.5 - x, rows + 0.5 - y
    cos, sin = math.cos(angle), math.sin(angle)
    u, v = (dx * cos + dy * sin) / size, (-dx * sin + dy * cos) / size
    if shape == "disk":
        distance = np.hypot(u, v) - 0.45
    elif shape == "square":
        distance = np.maximum(abs(u), abs(v)) - 0.4
    else:  # "L": a vertical bar and a horizontal foot, so rotation is visible
        bar = np.maximum(abs(u + 0.3) - 0.2, abs(v) - 0.5)
        foot = np.maximum(abs(u) - 0.5, abs(v - 0.3) - 0.2)
        distance = np.minimum(bar, foot)
    alpha = np.clip(0.5 - distance * size, 0.0, 1.0)[..., None]
    patch = image[top:bottom, left:right]
    patch += alpha * (np.asarray(color, np.float32) - patch)
