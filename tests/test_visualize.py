"""The kept-token visualizer: masks, masked frames, figures and files, dataset histograms."""

import json
import os

import numpy as np
import pytest
import torch
from model_helpers import tiny_model
from PIL import Image
from tool_helpers import load_tool

from video_ats.ats import SCOPES
from video_ats.engine import visualization as viz
from video_ats.config import load_config
from video_ats.engine.builders import build_dataset
from video_ats.engine.tester import model_to_test

CONFIG = "configs/synthetic/timesformer_tiny.yaml"
pytestmark = pytest.mark.usefixtures("viz_one_thread")


def stage(block, kept_positions, token_valid=None):
    """A hand-written ats_stats entry."""
    positions = torch.tensor(kept_positions)
    entry = {"block": block, "kept_positions": positions, "kept": (positions >= 0).sum(dim=1)}
    if token_valid is not None:
        entry["token_valid"] = torch.tensor(token_valid)
    return entry


def test_kept_masks_mark_the_kept_positions_in_row_major_order():
    # 3 x 4 grid, 2 frames, one clip keeping positions 0, 5 and 11 (padding -1 in the last slot).
    masks = viz.kept_masks([stage(3, [[0, 5, 11, -1]])], (3, 4), num_frames=2)
    assert masks.shape == (1, 1, 2, 3, 4)
    expected = torch.zeros(3, 4, dtype=torch.bool)
    expected[0, 0] = expected[1, 1] = expected[2, 3] = True
    assert torch.equal(masks[0, 0, 0], expected) and torch.equal(masks[0, 0, 1], expected)


def test_kept_masks_follow_token_valid_per_frame():
    # frame scope: position 5 is kept in frame 0 only, position 2 in frame 1 only.
    entry = stage(4, [[2, 5]], token_valid=[[[False, True], [True, False]]])
    masks = viz.kept_masks([entry], 3, num_frames=2)[0, 0]
    assert masks[0].flatten().nonzero().flatten().tolist() == [5]
    assert masks[1].flatten().nonzero().flatten().tolist() == [2]


def test_a_position_outside_the_grid_is_an_error():
    with pytest.raises(ValueError, match="outside a 2x2 patch grid"):
        viz.kept_masks([stage(3, [[0, 4]])], 2, num_frames=1)


def test_masked_frames_leave_kept_patches_and_grey_out_dropped_ones():
    frames = np.zeros((1, 16, 16, 3), np.uint8)
    frames[..., 0] = 255                                  # pure red: luma 0.299 * 255 = 76.245
    mask = torch.tensor([[[True, False], [False, True]]])   # 2 x 2 grid of 8-pixel patches
    out = viz.masked_frames(frames, mask, patch_size=8)
    assert (out[0, :8, :8] == [255, 0, 0]).all() and (out[0, 8:, 8:] == [255, 0, 0]).all()
    grey = round(0.3 * 76.245 + 0.7 * 215)                # (1 - fade) * luma + fade * fill = 173
    assert (out[0, :8, 8:] == grey).all() and (out[0, 8:, :8] == grey).all()


@pytest.mark.parametrize("scope", SCOPES)
def test_masks_of_a_forward_equal_its_kept_positions_and_counts(scope):
    model = tiny_model("timesformer_tiny", ats={"ratio": 0.7, "scope": scope}, num_classes=3, embed_dim=32,
                       num_heads=2)
    clips = torch.randn(3, 3, 8, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model(clips)
    masks = viz.kept_masks(model.ats_stats, viz.model_grid(model), model.num_frames)    # (B, S, T, 8, 8)
    for index, entry in enumerate(model.ats_stats):
        for clip in range(3):
            union = masks[clip, index].any(dim=0).flatten().nonzero().flatten().tolist()
            kept = entry["kept_positions"][clip]
            assert union == sorted(kept[kept >= 0].tolist())
            assert masks[clip, index].flatten(1).sum(dim=1).tolist() == entry["frame_kept"][clip].tolist()
            if index:
                assert not (masks[clip, index] & ~masks[clip, index - 1]).any()    # nested stages


def video_tool_run(overrides, viz_dataset, tmp_path, *extra):
    video = sorted((viz_dataset / "val").rglob("*.mp4"))[0]
    out = tmp_path / "viz"
    code = load_tool("visualize").main(["--video", str(video), "--out", str(out), *extra, "--cfg", CONFIG,
                                        *overrides])
    assert code == 0
    return video, out / f"{video.stem}_tokens"


def test_video_figures_are_written_and_show_the_kept_positions_of_that_view(viz_overrides, viz_dataset, tmp_path):
    video, stem = video_tool_run(viz_overrides, viz_dataset, tmp_path, "--animation", "both")
    cfg = load_config(CONFIG, viz_overrides)
    model = model_to_test(cfg)[0].eval()
    frames, clip = viz.test_view_of_video(video, cfg, model.num_frames)
    with torch.no_grad():
        model(clip[None])
    stages = viz.stage_tokens(model.ats_stats, viz.model_grid(model), model.num_frames)

    summary = json.loads(stem.with_suffix(".json").read_text())
    for written, entry in zip(summary["stages"], model.ats_stats):
        kept = entry["kept_positions"][0]
        assert written["kept_position_indices"] == kept[kept >= 0].tolist()
        assert written["kept_positions"] == int(entry["kept"][0])
    # The PNG is, pixel for pixel, the grid of these masks over the frames the model saw.
    assert np.array_equal(np.asarray(Image.open(stem.with_suffix(".png")).convert("RGB")),
                          viz.frame_grid(frames, stages, model.patch_size))
    gif = Image.open(stem.with_suffix(".gif"))
    assert gif.n_frames == model.num_frames == 8
    import av

    with av.open(str(stem.with_suffix(".mp4"))) as container:
        assert sum(1 for _ in container.decode(video=0)) == 8


def test_frames_drawn_are_the_model_input_before_normalisation(viz_overrides, viz_dataset):
    cfg = load_config(CONFIG, viz_overrides)
    video = sorted((viz_dataset / "val").rglob("*.mp4"))[0]
    frames, clip = viz.test_view_of_video(video, cfg, 8)
    dataset = build_dataset(cfg, "test")
    item = dataset[[r.path for r in dataset.records].index(str(video))]
    assert torch.equal(clip, item["video"])                # the evaluation's own test view
    mean = torch.tensor(cfg.DATA.MEAN).view(3, 1, 1, 1)
    std = torch.tensor(cfg.DATA.STD).view(3, 1, 1, 1)
    pixels = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255
    assert torch.allclose(pixels, clip * std + mean, atol=0.5 / 255 + 1e-6)


def test_dataset_histograms_count_the_kept_positions_of_every_view(viz_overrides, viz_dataset, tmp_path, capsys):
    out = tmp_path / "dataset"
    code = load_tool("visualize").main(["--dataset", "--no-progress", "--out", str(out), "--cfg", CONFIG,
                                        *viz_overrides])
    assert code == 0
    assert {p.name for p in out.iterdir()} == {"kept_histograms.png", "kept_vs_clutter.png", "kept_tokens.json"}
    for name in ("kept_histograms.png", "kept_vs_clutter.png"):
        Image.open(out / name).verify()
    report = json.loads((out / "kept_tokens.json").read_text())

    # The same views run one by one, counted from model.ats_stats.
    cfg = load_config(CONFIG, viz_overrides)
    model = model_to_test(cfg)[0].eval()
    dataset = build_dataset(cfg, "test")
    direct = []
    for index in range(len(dataset)):
        with torch.no_grad():
            model(dataset[index]["video"][None])
        direct.append([int(entry["kept"][0]) for entry in model.ats_stats])
    assert report["views"]["kept_positions"] == direct
    assert len(set(map(tuple, direct))) > 1                # the counts depend on the content
    for stage_index, histogram in enumerate(report["histograms"]):
        counts = np.bincount([row[stage_index] for row in direct], minlength=65)    # one bin per count (N = 64)
        assert histogram["counts"] == counts.tolist()
        assert histogram["mean"] == pytest.approx(np.mean([row[stage_index] for row in direct]))

    # Clutter: the synthetic dataset's clips.csv alternates levels 0 and 3 within each class.
    levels = viz.read_clutter_levels(viz_dataset / "clips.csv")
    clutter = [levels[os.path.realpath(record.path)] for record in dataset.records]
    for stage_index, by_level in enumerate(report["kept_by_clutter"]):
        for row in by_level["levels"]:
            values = [direct[v][stage_index] for v in range(len(direct)) if clutter[v] == row["level"]]
            assert row["views"] == len(values) == 3 and row["mean"] == pytest.approx(np.mean(values))
    assert "block 3: positions kept mean" in capsys.readouterr().out


def test_a_model_without_ats_is_refused_with_a_clear_message(viz_overrides, viz_dataset, tmp_path):
    overrides = list(viz_overrides)
    overrides[overrides.index("ATS.ENABLE") + 1] = "False"
    with pytest.raises(ValueError, match="ATS.ENABLE True"):
        video_tool_run(overrides, viz_dataset, tmp_path)
