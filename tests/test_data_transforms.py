"""Spatial transforms: resize sizes, crop boxes, normalization, full train/test views."""

import numpy as np
import pytest
import torch

from video_ats.data import transforms


class ScriptedRng:
    """An rng stand-in: integers(low, high) returns values from a script, clamped into
    [low, high - 1]; random() returns ``coin``."""

    def __init__(self, integers=(), coin=0.9):
        self.script = list(integers)
        self.coin = coin
        self.calls = []

    def integers(self, low, high):
        self.calls.append((low, high))
        return min(max(self.script.pop(0), low), high - 1)

    def random(self):
        return self.coin


def column_frames(num_frames, height, width):
    """uint8 (T, H, W, 3) whose red channel holds the column index and green the row index."""
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    frames[..., 0] = np.arange(width)[None, None, :]
    frames[..., 1] = np.arange(height)[None, :, None]
    return frames


@pytest.mark.parametrize(
    "height, width, size, expected",
    [
        (96, 128, 64, (64, 85)),  # 128 * 64 / 96 = 85.33
        (128, 96, 64, (85, 64)),
        (256, 340, 224, (224, 297)),  # 340 * 224 / 256 = 297.5
        (240, 320, 224, (224, 298)),  # 320 * 224 / 240 = 298.67
        (50, 50, 32, (32, 32)),
    ],
)
def test_short_side_size(height, width, size, expected):
    assert transforms.short_side_size(height, width, size) == expected


def test_short_side_resize_changes_the_shape_and_skips_a_frame_already_at_size():
    frames = torch.rand(2, 3, 48, 80)
    assert transforms.short_side_resize(frames, 32).shape == (2, 3, 32, 53)  # 80 * 32 / 48 = 53.3
    assert transforms.short_side_resize(frames, 48) is frames


def test_three_crops_of_a_landscape_frame_run_left_center_right():
    # slack 85 - 64 = 21: center ceil(21 / 2) = 11, right 21
    assert transforms.spatial_crops(64, 85, 64, 3) == [(0, 0), (0, 11), (0, 21)]


def test_three_crops_of_a_portrait_frame_run_top_center_bottom():
    assert transforms.spatial_crops(85, 64, 64, 3) == [(0, 0), (11, 0), (21, 0)]


def test_three_crops_of_a_square_frame_run_along_the_width():
    # slack 8 both ways: center 4
    assert transforms.spatial_crops(64, 64, 56, 3) == [(4, 0), (4, 4), (4, 8)]


def test_one_crop_is_the_center():
    assert transforms.spatial_crops(64, 85, 64, 1) == [(0, 11)]
    assert transforms.spatial_crops(70, 85, 64, 1) == [(3, 11)]


def test_crop_larger_than_the_frame_is_an_error():
    with pytest.raises(ValueError, match="crop 65 does not fit in a 64x85 frame"):
        transforms.spatial_crops(64, 85, 65, 3)
    with pytest.raises(ValueError, match="num_crops must be one of"):
        transforms.spatial_crops(64, 85, 64, 2)


def test_random_crop_box_reaches_both_borders():
    assert transforms.random_crop_box(70, 85, 64, ScriptedRng([0, 0])) == (0, 0)
    rng = ScriptedRng([99, 99])
    assert transforms.random_crop_box(70, 85, 64, rng) == (6, 21)
    assert rng.calls == [(0, 7), (0, 22)]


def test_normalize_subtracts_mean_and_divides_by_std_per_channel():
    frames = torch.full((1, 3, 1, 1), 0.5)
    out = transforms.normalize(frames, (0.45, 0.5, 0.25), (0.225, 0.5, 0.5))
    assert out.flatten().tolist() == pytest.approx([0.05 / 0.225, 0.0, 0.5])


def test_test_view_takes_the_documented_crop_of_the_resized_frame():
    # 48 x 80 frames, crop 48: no resize (short side is 48), slack 32 -> center 16, right 32
    frames = column_frames(2, 48, 80)
    for spatial_index, left in enumerate([0, 16, 32]):
        view = transforms.test_transform(
            frames, crop_size=48, spatial_index=spatial_index, num_crops=3, mean=(0, 0, 0), std=(1, 1, 1)
        )
        assert view.shape == (3, 2, 48, 48) and view.dtype == torch.float32
        columns = (view[0, 1, 0] * 255).round().int().tolist()
        assert columns == list(range(left, left + 48))


def test_test_view_of_a_portrait_frame_crops_along_the_height():
    frames = column_frames(1, 80, 48)
    view = transforms.test_transform(frames, crop_size=48, spatial_index=2, num_crops=3, mean=(0,) * 3, std=(1,) * 3)
    rows = (view[1, 0, :, 0] * 255).round().int().tolist()
    assert rows == list(range(32, 80))


def test_train_view_scales_crops_and_flips_as_drawn():
    # short side 48 -> drawn 48 (no resize); crop at top 0, left 10; coin 0.2 < 0.5 flips
    frames = column_frames(3, 48, 80)
    rng = ScriptedRng([48, 0, 10], coin=0.2)
    view = transforms.train_transform(
        frames, crop_size=32, jitter_scales=(48, 64), random_flip=True, mean=(0,) * 3, std=(1,) * 3, rng=rng
    )
    assert view.shape == (3, 3, 32, 32)
    assert rng.calls == [(48, 65), (0, 17), (0, 49)]
    columns = (view[0, 0, 0] * 255).round().int().tolist()
    assert columns == list(range(41, 9, -1))  # columns 10..41, mirrored
    rows = (view[1, 0, :, 0] * 255).round().int().tolist()
    assert rows == list(range(0, 32))


def test_train_view_without_flip_keeps_the_orientation():
    frames = column_frames(1, 48, 80)
    view = transforms.train_transform(
        frames, crop_size=32, jitter_scales=(48, 48), random_flip=False, mean=(0,) * 3, std=(1,) * 3,
        rng=ScriptedRng([48, 0, 10], coin=0.0),
    )
    assert (view[0, 0, 0] * 255).round().int().tolist() == list(range(10, 42))


def test_train_view_resizes_to_the_drawn_short_side():
    frames = np.zeros((1, 48, 80, 3), np.uint8)
    rng = ScriptedRng([64, 0, 0])
    view = transforms.train_transform(
        frames, crop_size=64, jitter_scales=(48, 64), random_flip=False, mean=(0,) * 3, std=(1,) * 3, rng=rng
    )
    # drawn 64: frame becomes 64 x 106 (80 * 64 / 48 = 106.7), so the left offset is in [0, 42]
    assert view.shape == (3, 1, 64, 64)
    assert rng.calls[1:] == [(0, 1), (0, 43)]


def test_three_crops_of_a_kinetics_frame_at_224():
    # 340x256 -> 297x224, slack 73: center ceil(36.5) = 37, right 73
    height, width = transforms.short_side_size(256, 340, 224)
    assert transforms.spatial_crops(height, width, 224, 3) == [(0, 0), (0, 37), (0, 73)]
