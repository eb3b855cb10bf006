"""Synthetic dataset writer (the action benchmark) and index-encoding videos."""

import csv

import av
import numpy as np
import pytest
import torch

from video_ats.data.annotations import read_annotations
from video_ats.data.synthetic import (
    ACTION_CLASSES,
    CLUTTER_LEVELS,
    action_track,
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
# The zoo's clip format (configs/synthetic/*_zoo.yaml): 8 frames of 48x56.
ZOO_FORMAT = dict(num_frames=8, height=48, width=56)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "tiny", **TINY)


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_writes_kinetics_layout_with_official_csvs(tiny_dataset):
    root = tiny_dataset.root
    assert tiny_dataset.classes == ("move back and forth", "shake", "stay still")
    assert (root / "classes.txt").read_text() == "move back and forth\nshake\nstay still\n"
    train = rows(root / "train.csv")
    assert train[0] == ["label", "youtube_id", "time_start", "time_end", "split"]
    assert len(train) == 1 + 3 * 4 and len(rows(root / "validate.csv")) == 1 + 3 * 2
    label, youtube_id, start, end, split = train[1]
    assert (label, split, int(end) - int(start)) == ("stay still", "train", 2)  # 16 frames at 10 fps
    clip = root / "train" / "stay_still" / f"{youtube_id}_{int(start):06d}_{int(end):06d}.mp4"
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
    train_still = [row for row in clips if row["split"] == "train" and row["label"] == "stay still"]
    assert [row["clutter"] for row in train_still] == ["0", "3", "0", "3"]
    assert [row["num_distractors"] for row in train_still] == ["0", "4", "0", "4"]
    assert all(row["seed"].isdigit() for row in clips)
    for row in clips:   # the actor's box lies in the frame
        assert 0 <= int(row["actor_left"]) < int(row["actor_right"]) <= 64
        assert 0 <= int(row["actor_top"]) < int(row["actor_bottom"]) <= 48


def test_same_seed_gives_the_same_dataset(tiny_dataset, tmp_path):
    again = make_synthetic_dataset(tmp_path / "again", **TINY)
    assert rows(again.clips) == rows(tiny_dataset.clips)
    # Every clip byte for byte: libx264's macroblock-tree rate control made the later frames of
    # the same clips differ from run to run, while the first frames still agreed.
    paths = [row[0] for row in rows(again.clips)[1:]]
    assert paths and all((again.root / path).read_bytes() == (tiny_dataset.root / path).read_bytes()
                         for path in paths)


def test_a_part_of_the_dataset_written_alone_is_byte_identical(tiny_dataset, tmp_path):
    # the first validation clip of each class, without the training split or the other clips
    part = make_synthetic_dataset(tmp_path / "part", **{**TINY, "videos_per_class": {"val": 1}})
    part_rows = rows(part.clips)[1:]
    full_val = [row for row in rows(tiny_dataset.clips)[1:] if row[1] == "val"]
    assert [row[0] for row in part_rows] == [row[0] for row in full_val[::2]]
    assert all((part.root / row[0]).read_bytes() == (tiny_dataset.root / row[0]).read_bytes() for row in part_rows)


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


def test_unknown_action_names_are_refused_with_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="move back and forth"):
        make_synthetic_dataset(tmp_path / "d", classes=["move up"])


def render(action, seed=3, clutter=0, noise_std=0.0, **clip_format):
    return render_clip(action, np.random.default_rng(seed), clutter=clutter, noise_std=noise_std,
                       **{**ZOO_FORMAT, **clip_format})


def patch_grid(mask, patch=8):
    """(H // patch, W // patch) bool: which patch x patch cells hold any True pixel of mask (H, W)."""
    height, width = mask.shape[0] // patch * patch, mask.shape[1] // patch * patch
    return mask[:height, :width].reshape(height // patch, patch, width // patch, patch).any(axis=(1, 3))


@pytest.mark.parametrize("clutter", sorted(CLUTTER_LEVELS))
def test_the_class_changes_only_the_actors_pixels(clutter):
    # Same seed, every other action: background, distractors and noise stay; only the actor's box differs.
    reference, details = render("stay still", clutter=clutter, noise_std=2.0)
    for action in ACTION_CLASSES[1:]:
        frames, other = render(action, clutter=clutter, noise_std=2.0)
        changed = (frames != reference).any(axis=(0, 3))
        inside = np.zeros_like(changed)
        inside[other["actor_top"]:other["actor_bottom"], other["actor_left"]:other["actor_right"]] = True
        assert changed.any() and not (changed & ~inside).any(), action
        # a small region: the box covers at most 12 of the 42 patches of 8x8 pixels of a 48x56 frame
        assert patch_grid(inside).sum() <= 12, action


def test_only_the_actor_has_a_white_frame():
    # distractors (saturation 0.8, value 0.9) and textures never reach 200 in all three channels
    for seed in range(5):
        frames, details = render("stay still", seed=seed, clutter=3, noise_std=2.0)
        white = (frames.min(axis=-1) > 200).any(axis=0)
        rows_, cols = np.nonzero(white)
        assert rows_.min() >= details["actor_top"] and rows_.max() < details["actor_bottom"]
        assert cols.min() >= details["actor_left"] and cols.max() < details["actor_right"]


def informative_patch_fraction(frames, patch=8, threshold=2.0):
    """Fraction of patch x patch regions (over all frames) whose gray-level std exceeds threshold."""
    gray = torch.as_tensor(frames, dtype=torch.float32).mean(-1)
    t, h, w = gray.shape
    patches = gray[:, : h // patch * patch, : w // patch * patch].reshape(t, h // patch, patch, w // patch, patch)
    return (patches.std(dim=(2, 4)) > threshold).float().mean().item()


def test_clutter_raises_the_share_of_image_regions_with_detail():
    shares = []
    for level in sorted(CLUTTER_LEVELS):
        frames, details = render("stay still", seed=5, clutter=level)
        assert details["num_distractors"] == CLUTTER_LEVELS[level][1]
        shares.append(informative_patch_fraction(frames))
    # plain: only the actor's patches (a still square of at most 11 pixels, 13 with its anti-aliased
    # edge, touches at most 3 x 3 of the 42 patches)
    assert shares[0] <= 9 / 42
    assert shares[3] > 0.95
    assert shares == sorted(shares)


def actor_track(frames):
    """Per frame of a clutter-0 clip: (row, column) center of the actor's white frame (pixels
    weighted by how far their darkest channel rises above the plain background's 128 at most,
    i.e. by how much of them the frame covers) and that weight's sum, 0 when the actor is not
    drawn; and the mean color of the frame's box (NaN when not drawn)."""
    weight = np.clip(frames.min(axis=-1).astype(float) - 128.0, 0.0, None)
    rows_, cols = np.mgrid[: frames.shape[1], : frames.shape[2]] + 0.5
    track, colors = [], []
    for frame, mass in zip(frames.astype(float), weight):
        total = mass.sum()
        if total == 0:
            track.append((np.nan, np.nan, 0.0))
            colors.append(np.full(3, np.nan))
            continue
        track.append(((rows_ * mass).sum() / total, (cols * mass).sum() / total, total))
        inside = np.nonzero(mass > 0)
        box = frame[inside[0].min():inside[0].max() + 1, inside[1].min():inside[1].max() + 1]
        colors.append(box.reshape(-1, 3).mean(axis=0))
    return np.array(track), np.array(colors)


def steps(values):
    return np.abs(np.diff(values, axis=0))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "action, check",
    [
        # still: nothing changes
        ("stay still", lambda track, colors: steps(track).max() == 0 and steps(colors).max() == 0),
        # back and forth: the center travels over more than 8 pixels (+-8 pixels, 0.85 to 1.15 of it)
        ("move back and forth", lambda track, colors: np.ptp(track[:, 0]) + np.ptp(track[:, 1]) > 8),
        # shake: every frame the center jumps 5 to 7 pixels across its rest position
        ("shake", lambda track, colors: steps(track[:, 1]).min() > 4.5 and np.ptp(track[:, 1]) < 7.5),
        # blink: drawn in some frames, absent in others
        ("blink", lambda track, colors: 0 < (track[:, 2] == 0).sum() < len(track)),
        # change colour: the same place, another mean color every frame
        ("change colour",
         lambda track, colors: steps(track[:, :2]).max() < 0.5 and steps(colors).max(axis=1).min() > 20),
        # pulse: the frame's area varies by more than a factor 2 (side 1 +- 0.4 times)
        ("pulse", lambda track, colors: track[:, 2].max() > 2 * track[:, 2].min()),
    ],
)
def test_each_action_does_what_its_name_says(action, check, seed):
    frames, _ = render(action, seed=seed)
    track, colors = actor_track(frames)
    assert check(track, colors)


@pytest.mark.parametrize("action", ["stay still", "shake", "blink", "change colour", "pulse"])
def test_a_resting_actor_sits_where_the_moving_one_passes(action):
    # Same seed: the resting actor's place is the moving one's place in one of the frames, so the
    # actor's position says nothing about the class.
    for seed in range(30):
        moving = action_track("move back and forth", np.random.default_rng(seed), 8, amplitude=8.0)
        resting = action_track(action, np.random.default_rng(seed), 8, amplitude=8.0)
        if action == "shake":   # around that place, one step to each side
            resting_x, resting_y = resting.dx.mean(), resting.dy.mean()
            assert np.ptp(resting.dx) > 4.5
        else:
            resting_x, resting_y = resting.dx[0], resting.dy[0]
            assert np.ptp(resting.dx) == np.ptp(resting.dy) == 0
        assert np.any(np.isclose(moving.dx, resting_x, atol=0.6) & np.isclose(moving.dy, resting_y, atol=0.6)), seed


def test_the_actor_rests_inside_every_test_crop_and_stays_in_the_frame():
    # 1x3 test views of a 48x56 frame: 48-pixel crops at x = 0, 4, 8 share the columns 8..48
    for seed in range(40):
        action = ACTION_CLASSES[seed % len(ACTION_CLASSES)]
        _, details = render(action, seed=seed)
        half = details["actor_size_px"] / 2
        assert 8 <= details["actor_x"] - half and details["actor_x"] + half <= 48
        assert 0 <= details["actor_y"] - half and details["actor_y"] + half <= 48
        assert details["actor_left"] >= 0 and details["actor_right"] <= 56 and details["actor_bottom"] <= 48


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
