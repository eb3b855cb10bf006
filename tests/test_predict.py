"""Predicting your own videos: tools/predict.py and video_ats.Predictor.

The model is the sharpened random tiny TimeSformer of the visualizer tests (conftest viz_*),
with ATS at ratio 0.7, on the 6 validation clips of a synthetic dataset (24 frames at 12 fps,
86x64).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tool_helpers import load_tool

import video_ats
from video_ats.cli import run_tool as run_main
from video_ats.config import load_config
from video_ats.data import KineticsDataset, TestViews, get_decoder, sliding_windows
from video_ats.engine.prediction_files import csv_columns
from video_ats.engine.predict import expand_inputs

REPO = Path(__file__).parents[1]
CONFIG = str(REPO / "configs" / "synthetic" / "timesformer_tiny.yaml")

pytestmark = pytest.mark.usefixtures("viz_one_thread")


@pytest.fixture(scope="module")
def predict_tool():
    return load_tool("predict")


@pytest.fixture()
def videos(viz_dataset):
    """The 6 validation videos of viz_dataset, in sorted path order."""
    return sorted(str(path) for path in (viz_dataset / "val").rglob("*.mp4"))


@pytest.fixture()
def overrides(viz_overrides):
    """viz_overrides with 2 temporal clips x 3 crops per video, 4 views per forward (so batches
    cut across videos) and no DataLoader workers."""
    out = list(viz_overrides)
    out[out.index("TEST.NUM_SPATIAL_CROPS") + 1] = "3"
    out[out.index("TEST.BATCH_SIZE") + 1] = "4"
    return out + ["TEST.NUM_ENSEMBLE_VIEWS", "2"]


def run_tool(tool, argv, capsys):
    """(exit code, stdout, stderr) of tools/predict.py run in this process, as the shell sees it."""
    with pytest.raises(SystemExit) as exit_info:
        run_main(tool.main, argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


# ---------------------------------------------------------------------------------------------
# Windows and views (pure)


def test_windows_step_by_the_stride_and_the_last_fits_the_video_end():
    # 60 frames at 12 fps (5 s), windows of 2 s = 24 frames every 1.5 s = 18 frames.
    assert sliding_windows(60, 12.0, 2.0, 1.5) == [(0, 24), (18, 42), (36, 60)]


def test_a_last_window_that_would_end_early_is_moved_to_end_at_the_video_end():
    # 50 frames at 10 fps, windows of 20 frames every 20: 0-20, 20-40, then 30-50 (not 40-60).
    assert sliding_windows(50, 10.0, 2.0, 2.0) == [(0, 20), (20, 40), (30, 50)]


def test_a_video_shorter_than_a_window_is_one_window():
    assert sliding_windows(10, 10.0, 5.0, 1.0) == [(0, 10)]


def test_a_stride_longer_than_the_window_leaves_gaps_but_still_reaches_the_end():
    assert sliding_windows(100, 10.0, 1.0, 3.0) == [(0, 10), (30, 40), (60, 70), (90, 100)]


def test_window_settings_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        sliding_windows(10, 10.0, 0.0, 1.0)


class FrameRecorder:
    """A reader of a 60-frame, 30 fps video of gray frames that records the indices asked for."""

    path, num_frames, fps = "recorded.mp4", 60, 30.0

    def __init__(self):
        self.asked = []

    def get_frames(self, indices):
        self.asked.append([int(index) for index in indices])
        return np.full((len(indices), 48, 80, 3), 128, dtype=np.uint8)


def test_views_of_a_frame_range_sample_the_range_as_a_whole_video():
    # T=4, rate 2 at 30 fps: a clip spans W = 8 frames. Range [30, 60) has slack 22; with the
    # "start" rule clip 0 of 2 starts at 0 and clip 1 at 11: floor(linspace(s, s + 7, 4)).
    views = TestViews(num_frames=4, sampling_rate=2, target_fps=30, crop_size=48, num_clips=2, num_crops=3,
                      clip_position="start", mean=(0.45,) * 3, std=(0.225,) * 3)
    reader = FrameRecorder()
    clips = views.decode(reader, (30, 60))
    assert reader.asked == [[30, 32, 34, 37], [41, 43, 45, 48]]
    assert clips.shape == (6, 3, 4, 48, 48)


def test_views_of_a_whole_video_are_the_datasets_test_items(viz_dataset):
    dataset = KineticsDataset(viz_dataset / "validate.csv", viz_dataset, "test", num_frames=8, sampling_rate=4,
                              crop_size=64, train_jitter_scales=(64, 80), test_num_clips=2, test_num_crops=3,
                              clip_position="middle", decoder="pyav")
    views = TestViews(num_frames=8, sampling_rate=4, target_fps=30, crop_size=64, num_clips=2, num_crops=3,
                      clip_position="middle", mean=(0.45,) * 3, std=(0.225,) * 3)
    with get_decoder("pyav")(dataset.records[1].path) as reader:
        decoded = views.decode(reader)
    expected = torch.stack([dataset[1 * 6 + view]["video"] for view in range(6)])
    assert torch.equal(decoded, expected)


# ---------------------------------------------------------------------------------------------
# Inputs


def test_inputs_expand_folders_globs_and_lists_once_each_skipping_hidden_files(tmp_path):
    for name in ("a/one.mp4", "a/deep/two.MKV", "a/.hidden.mp4", "a/._one.mp4", "a/notes.txt.bak", "b/three.webm"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "b" / "list.txt").write_text("# my videos\nthree.webm\n\n../a/one.mp4\n")
    paths, problems = expand_inputs([tmp_path / "a", str(tmp_path / "b" / "*.webm"), tmp_path / "b" / "list.txt",
                                     str(tmp_path / "none" / "*.mp4")])
    assert paths == [str(tmp_path / "a" / "deep" / "two.MKV"), str(tmp_path / "a" / "one.mp4"),
                     str(tmp_path / "b" / "three.webm")]
    assert problems == [(str(tmp_path / "none" / "*.mp4"), "no file matches the pattern")]


# ---------------------------------------------------------------------------------------------
# The tool against tools/test.py


def test_predicted_scores_are_the_per_video_scores_of_tools_test(predict_tool, overrides, videos, viz_dataset,
                                                                 tmp_path, capsys):
    load_tool("test").main(["--no-progress", "--cfg", CONFIG, *overrides])
    tested = np.load(Path(overrides[overrides.index("OUTPUT_DIR") + 1]) / "per_video_scores.npz")
    results = json.loads((Path(overrides[overrides.index("OUTPUT_DIR") + 1]) / "results.json").read_text())
    output = tmp_path / "predictions.jsonl"
    code, _, err = run_tool(predict_tool, ["--no-progress", "--cfg", CONFIG, "--all-scores", "-o", str(output),
                                           str(viz_dataset / "val"), *overrides, "DATA_LOADER.NUM_WORKERS", "2"],
                            capsys)
    assert code == 0, err
    predicted = {row["path"]: row for row in rows(output)}
    assert sorted(predicted) == videos
    for path, scores in zip(tested["path"], tested["scores"]):
        np.testing.assert_allclose(predicted[os.path.abspath(path)]["scores"], scores, rtol=0, atol=1e-6)
        assert predicted[os.path.abspath(path)]["views"] == 6
    gflops = [row["gflops"] for row in predicted.values()]
    assert np.mean(gflops) == pytest.approx(results["gflops_per_video_mean"], rel=1e-9)
    for stage, tested_stage in enumerate(results["kept_tokens_per_stage"]):
        kept = np.mean([row["kept_tokens"][stage]["tokens"] for row in predicted.values()])
        assert kept == pytest.approx(tested_stage["mean_kept_tokens"], rel=1e-9)


def test_the_top_classes_are_the_highest_scores_with_their_names(predict_tool, overrides, videos, tmp_path, capsys):
    output = tmp_path / "predictions.jsonl"
    code, _, err = run_tool(predict_tool, ["--no-progress", "--cfg", CONFIG, "--all-scores", "--top-k", "2",
                                           "-o", str(output), videos[0], *overrides], capsys)
    assert code == 0, err
    (row,) = rows(output)
    order = np.argsort(row["scores"])[::-1][:2]
    classes = (Path(overrides[overrides.index("DATA.PATH_TO_DATA_DIR") + 1]) / "classes.txt").read_text().split("\n")
    assert [entry["index"] for entry in row["top_k"]] == order.tolist()
    assert [entry["name"] for entry in row["top_k"]] == [classes[index] for index in order]
    assert [entry["prob"] for entry in row["top_k"]] == [row["scores"][index] for index in order]   # mean softmax
    assert row["frames"] == 24 and row["fps"] == 12.0 and row["duration"] == 2.0
    assert row["seconds"]["decode"] > 0 and row["seconds"]["model"] > 0


# ---------------------------------------------------------------------------------------------
# Archives: broken files, resume


def test_broken_files_are_listed_with_their_reason_and_end_with_exit_code_1(predict_tool, viz_overrides, videos,
                                                                          data_broken_videos, tmp_path, capsys):
    notes = tmp_path / "notes.md"
    notes.write_text("not a video")
    broken = [data_broken_videos[kind] for kind in ("truncated", "random_bytes", "zero_length", "missing")]
    output = tmp_path / "predictions.jsonl"
    code, _, err = run_tool(predict_tool, ["--no-progress", "--cfg", CONFIG, "-o", str(output), videos[0],
                                           *map(str, broken), str(notes), *viz_overrides], capsys)
    assert code == 1
    written = {row["path"]: row["error"] for row in rows(output)}
    assert written[videos[0]] is None
    assert written[str(data_broken_videos["zero_length"])] == "empty file (0 bytes)"
    assert written[str(data_broken_videos["missing"])] == "missing file"
    for path in [*broken, notes]:
        assert written[str(path)], path
        assert f"failed: {path}: {written[str(path)]}" in err
    assert "predicted 1 videos" in err and "5 failed" in err


def test_a_run_killed_mid_archive_and_resumed_writes_each_video_once(viz_overrides, videos, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    for number in range(60):
        os.link(videos[number % len(videos)], archive / f"clip{number:03d}.mp4")
    output = tmp_path / "predictions.jsonl"
    command = [sys.executable, str(REPO / "tools" / "predict.py"), "--no-progress", "--cfg", CONFIG,
               "-o", str(output), "--resume", str(archive), *viz_overrides, "TEST.BATCH_SIZE", "1"]
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if output.exists() and output.read_bytes().count(b"\n") >= 5:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    before = output.read_bytes().count(b"\n")
    assert 5 <= before < 60

    resumed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    paths = [row["path"] for row in rows(output)]
    assert sorted(paths) == sorted(str(path) for path in archive.iterdir())
    assert f"resumed: {before} videos were already in the output" in resumed.stderr


def test_resume_drops_a_cut_row_and_the_windows_of_an_unfinished_video(viz_overrides, videos, tmp_path):
    from video_ats.engine.prediction_files import write_predictions

    cfg = load_config(CONFIG, viz_overrides)
    output = str(tmp_path / "predictions.jsonl")
    predictor = video_ats.Predictor(cfg, window=1.0)
    write_predictions(predictor, videos[:1], output)
    with open(output, "a") as handle:
        handle.write(json.dumps({"path": videos[1], "window": 0, "start": 0.0, "end": 1.0}) + "\n")
        handle.write('{"path": "' + videos[1] + '", "window": 1, "sta')
    summary = write_predictions(predictor, videos[:2], output, resume=True)
    assert summary.earlier_videos == 1 and summary.stats.videos == 1
    written = rows(output)
    assert [(row["path"], row["window"]) for row in written] == [
        (videos[0], 0), (videos[0], 1), (videos[0], None), (videos[1], 0), (videos[1], 1), (videos[1], None)]


def test_resume_refuses_a_file_written_with_other_settings(predict_tool, viz_overrides, videos, tmp_path, capsys):
    output = tmp_path / "predictions.jsonl"
    base = ["--no-progress", "--cfg", CONFIG, "-o", str(output), "--resume", videos[0]]
    assert run_tool(predict_tool, base + viz_overrides, capsys)[0] == 0
    content = output.read_bytes()
    code, _, err = run_tool(predict_tool, base + [videos[1], *viz_overrides, "ATS.RATIO", "0.5"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "other settings" in err and "ats" in err
    assert output.read_bytes() == content


def test_an_existing_file_is_appended_to_only_with_resume_and_never_when_it_is_not_ours(
        predict_tool, viz_overrides, videos, tmp_path, capsys):
    output = tmp_path / "predictions.jsonl"
    output.write_text("my own notes\n")
    argv = ["--no-progress", "--cfg", CONFIG, "-o", str(output), videos[0], *viz_overrides]
    code, _, err = run_tool(predict_tool, argv, capsys)
    assert code == 2 and "--resume" in err and "--overwrite" in err
    code, _, err = run_tool(predict_tool, ["--resume", *argv], capsys)
    assert code == 2 and "not from an earlier predict run" in err
    assert output.read_text() == "my own notes\n"


def test_no_inputs_is_a_usage_error(predict_tool, viz_overrides, capsys):
    code, _, err = run_tool(predict_tool, ["--no-progress", "--cfg", CONFIG, *viz_overrides], capsys)
    assert code == 2 and "no inputs" in err


def test_a_class_list_of_another_length_is_an_error_before_any_video_is_read(predict_tool, viz_overrides, tmp_path,
                                                                            capsys):
    classes = tmp_path / "classes.txt"
    classes.write_text("walk\nrun\n")
    output = tmp_path / "predictions.jsonl"
    code, _, err = run_tool(predict_tool, ["--no-progress", "--cfg", CONFIG, "--classes", str(classes), "-o",
                                           str(output), str(tmp_path / "missing.mp4"), *viz_overrides], capsys)
    assert code == 2
    assert err == f"error: the class list '{classes}' has 2 classes but the model has 3\n"
    assert not output.exists()


# ---------------------------------------------------------------------------------------------
# Windows, formats, overlays


def test_windows_cover_the_whole_video_and_end_with_the_videos_row(predict_tool, viz_overrides, videos, tmp_path,
                                                                   capsys):
    output = tmp_path / "predictions.jsonl"
    code, _, err = run_tool(predict_tool, ["--no-progress", "--cfg", CONFIG, "--window", "0.75", "--stride", "0.5",
                                           "-o", str(output), videos[0], *viz_overrides], capsys)
    assert code == 0, err
    *windows, video = rows(output)
    # 24 frames at 12 fps: windows of 9 frames every 6 -> 0-9, 6-15, 12-21, then 15-24.
    assert [(row["start"], row["end"]) for row in windows] == [(0.0, 0.75), (0.5, 1.25), (1.0, 1.75), (1.25, 2.0)]
    assert [row["window"] for row in windows] == [0, 1, 2, 3]
    assert video["window"] is None and video["windows"] == 4 and video["duration"] == 2.0
    assert video["views"] == 4 and video["gflops"] == pytest.approx(sum(row["gflops"] for row in windows))


def test_a_window_longer_than_the_video_gives_the_videos_own_prediction(viz_overrides, videos):
    cfg = load_config(CONFIG, viz_overrides)
    (whole,) = video_ats.Predictor(cfg, all_scores=True).predict(videos[:1])
    (windowed,) = video_ats.Predictor(cfg, all_scores=True, window=60.0).predict(videos[:1])
    (window,) = windowed["windows"]
    assert (window["start"], window["end"]) == (0.0, 2.0)
    assert window["scores"] == whole["scores"] == windowed["scores"]


def test_csv_has_one_row_per_video_with_flat_columns(predict_tool, viz_overrides, videos, tmp_path, capsys):
    import csv

    output = tmp_path / "predictions.csv"
    code, _, err = run_tool(predict_tool, ["--no-progress", "--cfg", CONFIG, "--top-k", "2", "-o", str(output),
                                           *videos[:2], *viz_overrides], capsys)
    assert code == 0, err
    with open(output, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [row["path"] for row in table] == videos[:2]
    assert list(table[0]) == ["path", "window", "start", "end", "top1_index", "top1_name", "top1_prob",
                              "top2_index", "top2_name", "top2_prob", "gflops", "views",
                              "kept_tokens_b3", "kept_positions_b3", "kept_tokens_b4", "kept_positions_b4",
                              "kept_tokens_b5", "kept_positions_b5", "frames", "fps", "duration", "windows",
                              "decode_seconds", "model_seconds", "error"]
    assert table[0]["views"] == "1" and table[0]["window"] == "" and table[0]["error"] == ""


def test_the_table_shows_a_line_per_video_with_its_top_classes(predict_tool, viz_overrides, videos, capsys):
    code, out, err = run_tool(predict_tool, ["--no-progress", "--cfg", CONFIG, "--format", "table", *videos[:2],
                                             *viz_overrides], capsys)
    assert code == 0, err
    header, rule, *lines = out.splitlines()
    assert header.split()[:3] == ["video", "window", "top"] and set(rule) == {"-"}
    assert [line.split()[0] for line in lines] == [os.path.basename(path) for path in videos[:2]]
    assert all("move" in line for line in lines)


def test_options_may_follow_the_inputs(predict_tool, viz_overrides, videos, tmp_path, capsys):
    output = tmp_path / "predictions.jsonl"
    code, _, err = run_tool(predict_tool, ["--no-progress", "--cfg", CONFIG, videos[0], *viz_overrides,
                                           "--top-k", "1", "-o", str(output)], capsys)
    assert code == 0, err
    assert len(rows(output)[0]["top_k"]) == 1


def test_visualize_writes_each_videos_kept_token_overlay(viz_overrides, videos, tmp_path):
    from PIL import Image

    cfg = load_config(CONFIG, viz_overrides)
    records = list(video_ats.Predictor(cfg, visualize=tmp_path / "overlays").predict(videos[:2]))
    images = [Path(record["visualization"]) for record in records]
    assert [image.parent for image in images] == [tmp_path / "overlays"] * 2
    assert images[0].name.startswith(Path(videos[0]).stem) and images[0] != images[1]
    assert Image.open(images[0]).size[0] > 64


# ---------------------------------------------------------------------------------------------
# The Python API


def test_the_api_predicts_with_a_model_object_and_a_class_list(viz_checkpoint, videos):
    from model_helpers import tiny_model

    model = tiny_model("timesformer_tiny", num_classes=3, embed_dim=32, num_heads=2, ats={"ratio": 0.7})
    predictor = video_ats.Predictor(model, viz_checkpoint, ["a", "b", "c"], top_k=1, num_workers=0)
    records = list(predictor.predict(videos[:2]))
    assert [record["path"] for record in records] == videos[:2]
    assert all(record["top_k"][0]["name"] in ("a", "b", "c") and record["views"] == 3 for record in records)
    assert predictor.stats.videos == 2 and predictor.stats.failed == 0


def test_the_api_refuses_a_class_list_of_another_length(viz_checkpoint):
    from model_helpers import tiny_model

    model = tiny_model("timesformer_tiny", num_classes=3, embed_dim=32, num_heads=2)
    with pytest.raises(ValueError, match="has 4 classes but the model has 3"):
        video_ats.Predictor(model, viz_checkpoint, ["a", "b", "c", "d"])


def test_csv_columns_name_every_class_score_when_asked(viz_overrides):
    predictor = video_ats.Predictor(load_config(CONFIG, viz_overrides), all_scores=True, top_k=1)
    assert csv_columns(predictor)[-4:] == ["score_0", "score_1", "score_2", "error"]
