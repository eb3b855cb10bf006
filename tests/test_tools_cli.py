"""The command-line convention: 0 ok, 1 findings, 2 a user error as one line on stderr (never a
traceback), one vocabulary of annotation formats from the config to every tool."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tool_helpers import TOOLS, load_tool

from video_ats.cli import run_tool
from video_ats.config import load_config
from video_ats.data.annotations import ANNOTATION_FORMATS

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / "configs" / "synthetic" / "timesformer_tiny.yaml")


def user_error_arguments(tmp_path):
    """tool -> arguments naming an input that does not exist (a folder under a file, for the
    tools that write one); a tool not listed gets a config file that does not exist."""
    missing = str(tmp_path / "no_such_input")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    return {
        "benchmark": ["--cfg", missing, "--no-mmaction"],
        "benchmark_data": ["--annotation", missing],
        "calibrate": ["--cfg", missing, "--target-gflops", "1"],
        "check_data": [missing, "--out", str(tmp_path / "bad.tsv")],
        "convert_checkpoint": ["--input", missing, "--output", str(tmp_path / "out.pt"), "--model", "timesformer_tiny"],
        "demo": ["--data", str(blocker / "data"), "--out", str(tmp_path / "demo")],
        "make_synthetic": [str(blocker / "data")],
        "study": ["--report-only", "--output-dir", missing],
        "visualize": ["--cfg", missing, "--video", missing],
        "predict": ["--cfg", missing, missing],
        "gpu_check": ["--device", "cpu", "--models", "no_such_input"],
        "render_benchmarks": ["--json", missing, "--markdown", missing],
    }


def test_every_tool_ends_a_user_error_with_one_line_and_exit_code_2(tmp_path):
    arguments = user_error_arguments(tmp_path)
    tools = sorted(path.stem for path in TOOLS.glob("*.py"))
    assert len(tools) >= 12
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    runs = {name: subprocess.Popen([sys.executable, str(TOOLS / f"{name}.py"),
                                    *arguments.get(name, ["--cfg", str(tmp_path / "no_such_input")])],
                                   cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
            for name in tools}
    for name, run in runs.items():
        out, err = run.communicate(timeout=300)
        lines = [line for line in err.splitlines() if line.strip()]
        assert run.returncode == 2, (name, out, err)
        assert "Traceback" not in out + err, (name, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        assert "no_such_input" in lines[0] or "a_file" in lines[0], (name, lines[0])


def test_argparse_usage_errors_also_exit_with_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_tool(load_tool("check_data").main, ["list.txt", "--decoder", "opencv"])
    assert exit_info.value.code == 2
    assert "error: argument --decoder: invalid choice: 'opencv'" in capsys.readouterr().err


def check_data(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_tool(load_tool("check_data").main, argv)
    return exit_info.value.code, capsys.readouterr()


def test_check_data_exits_with_2_on_a_malformed_annotation_and_1_only_for_bad_videos(tmp_path, data_index_videos,
                                                                                   data_broken_videos, capsys):
    bad_row = tmp_path / "bad_row.txt"
    bad_row.write_text(f"{data_index_videos['landscape']} 0\n{data_index_videos['fps15']} zero\n")
    code, output = check_data([str(bad_row), "--out", str(tmp_path / "p.tsv")], capsys)
    assert code == 2 and output.out == ""
    assert output.err == f"error: {bad_row}:2: label 'zero' is not an integer\n"

    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(f"{data_index_videos['landscape']} 0\n".encode() + b"caf\xe9.mp4 1\n")
    code, output = check_data([str(latin1), "--out", str(tmp_path / "p.tsv")], capsys)
    assert code == 2 and output.err.startswith(f"error: {latin1}:2: byte 0xe9 (column 4) is not utf-8")

    bad_video = tmp_path / "bad_video.txt"
    bad_video.write_text(f"{data_index_videos['landscape']} 0\n{data_broken_videos['random_bytes']} 1\n")
    code, output = check_data([str(bad_video), "--out", str(tmp_path / "p.tsv")], capsys)
    assert code == 1 and output.out.startswith("checked 2 videos: 0 missing, 1 undecodable, 1 ok")


def test_check_data_validates_labels_like_the_dataset(tmp_path, data_index_videos, capsys):
    listing = tmp_path / "list.txt"
    listing.write_text(f"{data_index_videos['landscape']} 0\n{data_index_videos['fps15']} 7\n")
    code, output = check_data([str(listing), "--num-classes", "6", "--out", str(tmp_path / "p.tsv")], capsys)
    assert code == 2 and "list.txt:2: 1 row has a label outside the model's 6 classes" in output.err

    mixed = tmp_path / "mixed.txt"           # a label lost from one row: a damaged file, not a test split
    mixed.write_text(f"{data_index_videos['landscape']} 0\n{data_index_videos['fps15']}\n")
    code, output = check_data([str(mixed), "--out", str(tmp_path / "p.tsv")], capsys)
    assert code == 2 and "mixed.txt:2: 1 of 2 rows has no label (lines 2)" in output.err
    code, output = check_data([str(mixed), "--split", "test", "--out", str(tmp_path / "p.tsv")], capsys)
    assert code == 0 and "1 without a label (predicted, not scored)" in output.out

    unlabelled = tmp_path / "test.txt"
    unlabelled.write_text(f"{data_index_videos['landscape']}\n{data_index_videos['fps15']}\n")
    code, output = check_data([str(unlabelled), "--out", str(tmp_path / "p.tsv")], capsys)
    assert code == 0 and output.out.startswith("checked 2 videos: 0 missing, 0 undecodable, 2 ok; no labels: "
                                               "predictions only")

    repeated = tmp_path / "repeated.txt"
    repeated.write_text(f"{data_index_videos['landscape']} 0\n{data_index_videos['landscape']} 0\n")
    code, output = check_data([str(repeated), "--out", str(tmp_path / "p.tsv")], capsys)
    assert code == 2 and "repeated.txt:2: 1 row repeats a video of an earlier row (line 2 repeats line 1)" in output.err
    code, output = check_data([str(repeated), "--allow-duplicates", "--out", str(tmp_path / "p.tsv")], capsys)
    assert code == 0 and "; 1 repeated rows (allowed)" in output.out


# --- One vocabulary of annotation formats. ------------------------------------------------------


def test_the_config_takes_its_annotation_formats_from_the_reader():
    for name in ANNOTATION_FORMATS:
        assert load_config(None, ["DATA.ANNOTATION_FORMAT", name]).DATA.ANNOTATION_FORMAT == name
    with pytest.raises(ValueError, match=r"DATA\.ANNOTATION_FORMAT = 'path_label' is not one of \['auto', "
                                         r"'kinetics_csv', 'space_list', 'comma_list'\]"):
        load_config(None, ["DATA.ANNOTATION_FORMAT", "path_label"])


@pytest.fixture()
def annotation_in_every_format(engine_dataset, tmp_path):
    """format -> the engine dataset's validation split written in that format (same videos,
    same labels), paths relative to the dataset folder."""
    import csv

    with open(engine_dataset / "clips.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "val"]
    files = {"kinetics_csv": engine_dataset / "validate.csv"}
    files["space_list"] = tmp_path / "val_space.txt"
    files["space_list"].write_text("".join(f"{row['path']} {row['label_index']}\n" for row in rows))
    files["comma_list"] = tmp_path / "val_comma.txt"
    files["comma_list"].write_text("".join(f"{row['path']},24,{row['label_index']}\n" for row in rows))
    return files


@pytest.mark.parametrize("name", [name for name in ANNOTATION_FORMATS if name != "auto"])
def test_every_annotation_format_can_be_named_from_check_data(name, annotation_in_every_format, engine_dataset,
                                                              tmp_path, capsys):
    code, output = check_data([str(annotation_in_every_format[name]), "--format", name, "--video-root",
                               str(engine_dataset), "--out", str(tmp_path / "p.tsv")], capsys)
    assert (code, output.err) == (0, "")
    assert output.out.startswith("checked 6 videos: 0 missing, 0 undecodable, 6 ok")


def test_every_annotation_format_can_be_named_from_the_test_tool(annotation_in_every_format, engine_overrides,
                                                                 tmp_path, capsys):
    from video_ats.checkpoint import save_model_checkpoint
    from video_ats.config import build_model_from_cfg

    cfg = load_config(CONFIG, engine_overrides)
    torch.manual_seed(0)
    checkpoint = tmp_path / "model.pt"
    save_model_checkpoint(checkpoint, build_model_from_cfg(cfg), model_name=cfg.MODEL.NAME)
    results = {}
    for name, path in annotation_in_every_format.items():
        output = tmp_path / name
        argv = ["--no-progress", "--cfg", CONFIG, *engine_overrides, "OUTPUT_DIR", str(output),
                "TEST.CHECKPOINT_FILE", str(checkpoint), "TEST.NUM_SPATIAL_CROPS", "1",
                "DATA.TEST_ANNOTATION", str(path), "DATA.ANNOTATION_FORMAT", name]
        with pytest.raises(SystemExit) as exit_info:
            run_tool(load_tool("test").main, argv)
        assert exit_info.value.code == 0, capsys.readouterr().err
        results[name] = json.loads((output / "results.json").read_text())
    assert {name: result["num_videos"] for name, result in results.items()} == dict.fromkeys(results, 6)
    assert len({result["top1"] for result in results.values()}) == 1


def test_the_test_tool_on_an_unlabelled_set_reports_predictions_only(engine_dataset, engine_overrides, tmp_path,
                                                                     capsys):
    from video_ats.checkpoint import save_model_checkpoint
    from video_ats.config import build_model_from_cfg

    lines = (engine_dataset / "validate.csv").read_text().splitlines()
    unlabelled = tmp_path / "test.csv"           # the official test CSV has no label column
    unlabelled.write_text("youtube_id,time_start,time_end,split\n"
                          + "".join(",".join(line.split(",")[1:]) + "\n" for line in lines[1:]))
    cfg = load_config(CONFIG, engine_overrides)
    checkpoint = tmp_path / "model.pt"
    save_model_checkpoint(checkpoint, build_model_from_cfg(cfg), model_name=cfg.MODEL.NAME)
    with pytest.raises(SystemExit) as exit_info:
        run_tool(load_tool("test").main, ["--no-progress", "--cfg", CONFIG, *engine_overrides,
                                          "TEST.CHECKPOINT_FILE", str(checkpoint), "TEST.NUM_SPATIAL_CROPS", "1",
                                          "DATA.TEST_ANNOTATION", str(unlabelled)])
    output = capsys.readouterr()
    assert exit_info.value.code == 0, output.err
    assert output.out.splitlines()[0] == "no labels: predictions only (per-video scores in per_video_scores.npz)"
    written = json.loads((Path(cfg.OUTPUT_DIR) / "results.json").read_text())
    assert written["predictions_only"] is True and written["top1"] is None and written["num_videos"] == 6


# --- A full disk. ---------------------------------------------------------------------------------


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_naming_the_folder(engine_overrides, monkeypatch, capsys):
    import video_ats.checkpoint as checkpoint_module

    def full_disk_mkstemp(prefix="", suffix="", dir=None):
        # The temporary checkpoint goes to /dev/full, where every write fails with ENOSPC.
        return os.open("/dev/full", os.O_WRONLY), os.path.join(dir, prefix + "full" + suffix)

    monkeypatch.setattr(checkpoint_module.tempfile, "mkstemp", full_disk_mkstemp)
    cfg = load_config(CONFIG, engine_overrides)
    with pytest.raises(SystemExit) as exit_info:
        run_tool(load_tool("train").main, ["--no-progress", "--cfg", CONFIG, *engine_overrides,
                                           "TRAIN.CHECKPOINT_ITERS", "1", "SOLVER.MAX_EPOCH", "1"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: no space left on {os.path.join(cfg.OUTPUT_DIR, 'checkpoints')}\n"


def test_torch_write_failures_become_a_full_disk_only_when_the_disk_is_full(tmp_path, monkeypatch):
    import shutil as shutil_module

    from video_ats.engine import checkpointing

    try:
        torch.save({"weights": torch.zeros(1000)}, "/dev/full")       # what torch raises on a full disk
    except RuntimeError as error:
        failure = error
    assert "inline_container.cc" in str(failure)
    usage = shutil_module.disk_usage(tmp_path)
    monkeypatch.setattr(checkpointing.shutil, "disk_usage", lambda path: usage._replace(free=1024))
    full = checkpointing._disk_full(failure, str(tmp_path))
    assert (full.errno, full.filename) == (errno.ENOSPC, str(tmp_path))
    monkeypatch.setattr(checkpointing.shutil, "disk_usage", lambda path: usage._replace(free=2 ** 40))
    other = checkpointing._disk_full(failure, str(tmp_path))
    assert other.errno == errno.EIO and "writing a checkpoint failed ([enforce fail at inline_container.cc" \
        in other.strerror


def test_a_full_disk_while_writing_a_log_or_results_names_the_file():
    from video_ats.cli import error_line
    from video_ats.engine.trainer import JsonlLog

    with pytest.raises(OSError) as error:
        JsonlLog("/dev/full", enabled=True).write(event="train", loss=1.0)     # every write: ENOSPC
    assert error_line(error.value) == "no space left on /dev/full"
