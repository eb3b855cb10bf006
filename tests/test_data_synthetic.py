"""Synthetic dataset writer and index-encoding videos."""

import csv

import av
import numpy as np
import pytest
import torch

from video_ats.data.annotations import read_annotations
from video_ats.data.synthetic import (
    CLUTTER_LEVELS,
    index_frame,
    make_synthetic_dataset,
    read_frame_index,
    render_clip,
    write_index_video,
)

TINY = dict(
    num_classes=3, videos_per_class={"train": 4, "val": 2}, num_frames=16, height=48, width=64,
    fps=10, clutter_levels=(0, 3),
)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "tiny", **TINY)


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_writes_kinetics_layout_with_official_csvs(tiny_dataset):
    root = tiny_dataset.root
    assert tiny_dataset.classes == ("move down", "move sideways", "move up")
    assert (root / "classes.txt").read_text() == "move down\nmove sideways\nmove up\n"
    train = rows(root / "train.csv")
    assert train[0] == ["label", "youtube_id", "time_start", "time_end", "split"]
    assert len(train) == 1 + 3 * 4 and len(rows(root / "validate.csv")) == 1 + 3 * 2
    label, youtube_id, start, end, split = train[1]
    assert (label, split, int(end) - int(start)) == ("move up", "train", 2)  # 16 frames at 10 fps
    clip = root / "train" / "move_up" / f"{youtube_id}_{int(start):06d}_{int(end):06d}.mp4"
    assert clip.is_file()


def test_official_reader_finds_every_clip_with_its_label(tiny_dataset):
    records, classes, fmt = read_annotations(tiny_dataset.annotations["val"], tiny_dataset.root)
    assert fmt == "kinetics_csv" and tuple(classes) == tiny_dataset.classes
    assert len(records) == 6
    for record in records:
        assert record.path.endswith(".mp4") and "/val/" in record.path
        assert classes[record.label].replace(" ", "_") in record.path


def test_clips_are_h264_with_the_asked_format(tiny_dataset):
    path = tiny_dataset.root / rows(tiny_dataset.clips)[1][0]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height, float(stream.average_rate)) == (64, 48, 10.0)
    assert len(frames) == 16


def test_clip_metadata_records_clutter_cycling_over_each_class(tiny_dataset):
    with open(tiny_dataset.clips, newline="") as handle:
        clips = list(csv.DictReader(handle))
    assert len(clips) == 18
    train_move_up = [row for row in clips if row["split"] == "train" and row["label"] == "move up"]
    assert [row["clutter"] for row in train_move_up] == ["0", "3", "0", "3"]
    assert [row["num_distractors"] for row in train_move_up] == ["0", "4", "0", "4"]
    assert all(row["seed"].isdigit() for row in clips)


def test_same_seed_gives_the_same_dataset(tiny_dataset, tmp_path):
    again = make_synthetic_dataset(tmp_path / "again", **TINY)
    assert rows(again.clips) == rows(tiny_dataset.clips)
    # Every clip byte for byte: libx264's macroblock-tree rate control made the later frames of
    # the same clips differ from run to run, while the first frames still agreed.
    paths = [row[0] for row in rows(again.clips)[1:]]
    assert paths and all((again.root / path).read_bytes() == (tiny_dataset.root / path).read_bytes()
                         for path in paths)


def test_other_seed_gives_other_clips(tiny_dataset, tmp_path):
    other = make_synthetic_dataset(tmp_path / "other", **{**TINY, "seed": 1})
    assert rows(other.annotations["train"])[1] != rows(tiny_dataset.annotations["train"])[1]


def test_existing_dataset_with_same_parameters_is_reused(tmp_path):
    first = make_synthetic_dataset(tmp_path / "d", **TINY)
    stamp = (first.clips.stat().st_mtime_ns, (first.root / "train.csv").stat().st_mtime_ns)
    second = make_synthetic_dataset(tmp_path / "d", **TINY)
    assert first.generated and not second.generated
    assert stamp == (second.clips.stat().st_mtime_ns, (second.root / "train.csv").stat().st_mtime_ns)


def test_changed_parameters_regenerate_and_drop_old_clips(tmp_path):
    make_synthetic_dataset(tmp_path / "d", **TINY)
    smaller = make_synthetic_dataset(tmp_path / "d", **{**TINY, "videos_per_class": {"train": 1}})
    assert smaller.generated
    assert len(list((tmp_path / "d" / "train").rglob("*.mp4"))) == 3
    assert not (tmp_path / "d" / "val").exists() and not (tmp_path / "d" / "validate.csv").exists()


def informative_patch_fraction(frames, patch=8, threshold=2.0):
    """Fraction of patch x patch regions (over all frames) whose gray-level std exceeds threshold."""
    gray = torch.as_tensor(frames, dtype=torch.float32).mean(-1)
    t, h, w = gray.shape
    patches = gray[:, : h // patch * patch, : w // patch * patch].reshape(t, h // patch, patch, w // patch, patch)
    return (patches.std(dim=(2, 4)) > threshold).float().mean().item()


def test_clutter_raises_the_share_of_image_regions_with_detail():
    shares = []
    for level in sorted(CLUTTER_LEVELS):
        frames, details = render_clip(
            "move up", np.random.default_rng(5), num_frames=8, height=48, width=64, clutter=level,
            object_size=0.2, motion_amplitude=0.7, noise_std=0.0, distractor_similarity=0.5,
            distractor_speed=1.0,
        )
        assert details["num_distractors"] == CLUTTER_LEVELS[level][1]
        shares.append(informative_patch_fraction(frames))
    # plain: only the object's patches (a ~10 px object touches at most 9 of the 48 patches)
    assert shares[0] <= 9 / 48
    assert shares[3] > 0.95
    assert shares == sorted(shares)


def foreground_track(frames):
    """Per frame (row centroid, column centroid, area) of the saturated foreground pixels."""
    frames = frames.astype(int)
    mask = frames.max(-1) - frames.min(-1) > 100
    rows_, cols = np.mgrid[: frames.shape[1], : frames.shape[2]]
    return [(rows_[m].mean(), cols[m].mean(), m.sum()) for m in mask]


@pytest.mark.parametrize(
    "motion, check",
    [
        ("move up", lambda track: track[-1][0] < track[0][0] - 10),
        ("move down", lambda track: track[-1][0] > track[0][0] + 10),
        ("move sideways", lambda track: abs(track[-1][1] - track[0][1]) > 15),
        ("grow", lambda track: track[-1][2] > 3 * track[0][2]),
        ("shrink", lambda track: track[0][2] > 3 * track[-1][2]),
        ("stay still", lambda track: abs(track[-1][0] - track[0][0]) + abs(track[-1][1] - track[0][1]) < 1),
    ],
)
def test_classes_are_defined_by_the_foreground_motion(motion, check):
    frames, _ = render_clip(
        motion, np.random.default_rng(3), num_frames=16, height=48, width=64, clutter=0,
        object_size=0.2, motion_amplitude=0.7, noise_std=0.0, distractor_similarity=0.5,
        distractor_speed=1.0,
    )
    assert check(foreground_track(frames))


def test_index_frame_reads_back_after_downscaling_and_cropping_the_width():
    frame = index_frame(45, num_bits=6, height=48, width=80)
    assert read_frame_index(frame, num_frames=60) == 45
    small = torch.nn.functional.interpolate(
        torch.as_tensor(frame, dtype=torch.float32).permute(2, 0, 1)[None], size=(32, 53), mode="bilinear"
    )[0].permute(1, 2, 0)
    assert read_frame_index(small[:, 10:42].numpy(), num_frames=60) == 45


def test_index_video_frames_decode_to_their_own_index(tmp_path):
    path = tmp_path / "index.mp4"
    write_index_video(path, num_frames=20, fps=25, height=40, width=64)
    with av.open(str(path)) as container:
        decoded = [read_frame_index(f.to_ndarray(format="rgb24"), 20) for f in container.decode(video=0)]
    assert decoded == list(range(20))
