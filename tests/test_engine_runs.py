"""End to end: train, kill and resume, torchrun with 2 processes, multi-view test, bad input."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from video_ats.checkpoint import read_checkpoint_file, save_model_checkpoint
from video_ats.config import build_model_from_cfg, load_config
from video_ats.data import KineticsDataset
from video_ats.engine import test as run_test
from video_ats.engine import train
from video_ats.engine.checkpointing import latest_checkpoint, list_checkpoints
from video_ats.flops import clip_gflops

REPO = Path(__file__).parents[1]
CONFIG = str(REPO / "configs" / "synthetic" / "timesformer_tiny.yaml")
RESULT_FIELDS = ("top1", "top5", "mean_class_acc", "num_videos", "num_failed_videos", "views_per_video",
                 "gflops_per_view_mean", "gflops_per_video_mean", "clips_per_second", "kept_tokens_per_stage")


def tool(name, overrides, launcher=(), **kwargs):
    command = [sys.executable, *launcher, str(REPO / "tools" / name), "--no-progress", "--cfg", CONFIG, *overrides]
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kwargs)


def finish(process, timeout=300):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def override(overrides, key, value):
    out = list(overrides)
    out[out.index(key) + 1] = value
    return out


def test_a_run_killed_mid_epoch_resumes_to_the_weights_of_an_uninterrupted_run(engine_overrides, tmp_path):
    common = engine_overrides + ["TRAIN.CHECKPOINT_ITERS", "1", "TRAIN.KEEP_CHECKPOINTS", "2"]
    uninterrupted = override(common, "OUTPUT_DIR", str(tmp_path / "uninterrupted"))
    interrupted = override(common, "OUTPUT_DIR", str(tmp_path / "interrupted"))
    finish(tool("train.py", uninterrupted))

    process = tool("train.py", interrupted)
    checkpoints = tmp_path / "interrupted" / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        # Second epoch (index 1), after its second optimizer step: well inside the epoch.
        if list(checkpoints.glob("checkpoint_e0001_b000000[2-4].pt")):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the run should have been killed mid-epoch"
    assert not (checkpoints / "checkpoint_e0002_b0000000.pt").exists()
    killed_at = latest_checkpoint(str(tmp_path / "interrupted"))

    output = finish(tool("train.py", interrupted))
    assert re.search(rf"^resumed from {re.escape(killed_at)} at epoch 2 of 2, after batch [2-4] of 6 \(optimizer "
                     rf"step (?:[89]|10) of 12\)$", output, re.MULTILINE), output
    log = [json.loads(line) for line in (tmp_path / "interrupted" / "log.jsonl").read_text().splitlines()]
    resumes = [entry for entry in log if entry["event"] == "resume"]
    assert len(resumes) == 1 and resumes[0]["checkpoint"] == killed_at and resumes[0]["epoch"] == 1

    final = {name: read_checkpoint_file(tmp_path / name / "checkpoints" / "checkpoint_e0002_b0000000.pt")
             for name in ("uninterrupted", "interrupted")}
    for key, value in final["uninterrupted"]["model"].items():
        assert torch.equal(value, final["interrupted"]["model"][key]), key
    states = [final[name]["optimizer"]["state"] for name in ("uninterrupted", "interrupted")]
    assert states[0].keys() == states[1].keys() and states[0]
    for index, state in states[0].items():              # the optimizer's buffers (AdamW moments, SGD momentum)
        assert state.keys() == states[1][index].keys()
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(states[1][index][name])), (index, name)
    assert final["interrupted"]["step"] == final["uninterrupted"]["step"] == 12


def test_torchrun_with_two_processes_trains_and_tests_like_one_process(engine_overrides, tmp_path):
    run = override(engine_overrides, "OUTPUT_DIR", str(tmp_path / "distributed"))
    run = override(run, "SOLVER.MAX_EPOCH", "1")
    torchrun = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    output = finish(tool("train.py", run, launcher=torchrun))
    assert '"steps": 3' in output                      # 24 clips / (4 per process x 2 processes)
    checkpoint = latest_checkpoint(str(tmp_path / "distributed"))
    assert checkpoint.endswith("checkpoint_e0001_b0000000.pt")

    results = {}
    for name, launcher in (("single", ()), ("double", torchrun)):
        test_run = override(engine_overrides, "OUTPUT_DIR", str(tmp_path / name))
        finish(tool("test.py", test_run + ["TEST.CHECKPOINT_FILE", checkpoint, "ATS.ENABLE", "True",
                                            "ATS.RATIO", "0.5"], launcher=launcher))
        results[name] = (json.loads((tmp_path / name / "results.json").read_text()),
                         np.load(tmp_path / name / "per_video_scores.npz"))
    (single, single_scores), (double, double_scores) = results["single"], results["double"]
    assert double["num_processes"] == 2 and single["num_processes"] == 1
    for key in ("top1", "top5", "mean_class_acc", "num_videos", "num_failed_videos", "views_per_video"):
        assert single[key] == double[key], key
    assert single["gflops_per_view_mean"] == pytest.approx(double["gflops_per_view_mean"], rel=1e-12)
    assert np.array_equal(single_scores["video_index"], double_scores["video_index"])
    assert np.allclose(single_scores["scores"], double_scores["scores"], atol=1e-5)


def test_test_writes_results_whose_gflops_equal_a_count_clip_by_clip(engine_overrides, tmp_path):
    overrides = engine_overrides + ["ATS.ENABLE", "True", "ATS.RATIO", "0.5", "TEST.BATCH_SIZE", "5"]
    cfg = load_config(CONFIG, overrides)
    torch.manual_seed(0)
    model = build_model_from_cfg(cfg)
    checkpoint = tmp_path / "model.pt"
    save_model_checkpoint(checkpoint, model, model_name=cfg.MODEL.NAME)
    cfg.defrost()
    cfg.TEST.CHECKPOINT_FILE = str(checkpoint)
    results = run_test(cfg, progress=False)

    written = json.loads((Path(cfg.OUTPUT_DIR) / "results.json").read_text())
    assert set(RESULT_FIELDS) <= set(written)
    assert written["num_videos"] == 6 and written["num_failed_videos"] == 0 and written["views_per_video"] == 3
    assert [stage["block"] for stage in written["kept_tokens_per_stage"]] == [3, 4, 5]
    dataset = KineticsDataset(Path(cfg.DATA.PATH_TO_DATA_DIR) / "validate.csv", cfg.DATA.PATH_TO_DATA_DIR, "test",
                              num_frames=8, sampling_rate=cfg.DATA.SAMPLING_RATE, crop_size=64,
                              train_jitter_scales=(64, 80), mean=cfg.DATA.MEAN, std=cfg.DATA.STD)
    model.eval()
    one_by_one = [clip_gflops(model, dataset[i]["video"][None]).item() for i in range(len(dataset))]
    assert written["gflops_per_view_mean"] == pytest.approx(float(np.mean(one_by_one)), rel=1e-6)
    assert written["gflops_per_video_mean"] == pytest.approx(3 * written["gflops_per_view_mean"], rel=1e-12)
    assert results["top1"] == written["top1"]


def test_broken_videos_are_reported_and_excluded_from_test_metrics(engine_overrides, engine_dataset, tmp_path):
    lines = (engine_dataset / "validate.csv").read_text().splitlines()
    annotation = tmp_path / "with_missing.csv"
    missing = "missing_video_000001_000003.mp4"
    label = lines[1].split(",")[0]   # a class of the dataset
    annotation.write_text("\n".join(lines + [f"{label},missing_video,1,3,val"]) + "\n")
    cfg = load_config(CONFIG, engine_overrides + ["DATA.TEST_ANNOTATION", str(annotation)])
    torch.manual_seed(0)
    checkpoint = tmp_path / "model.pt"
    save_model_checkpoint(checkpoint, build_model_from_cfg(cfg), model_name=cfg.MODEL.NAME)
    cfg.defrost()
    cfg.TEST.CHECKPOINT_FILE = str(checkpoint)
    results = run_test(cfg, progress=False)
    assert results["num_failed_videos"] == 1 and results["num_videos"] == 6
    assert results["failed_videos"][0].endswith(missing)
    assert results["num_videos_total"] == 7


def test_bad_config_key_stops_the_tool_with_a_clear_message(engine_overrides):
    output = finish_failing(tool("train.py", engine_overrides + ["TRAIN.BATCH_SIZ", "2"]))
    assert "error: bad command-line override: Non-existent key: TRAIN.BATCH_SIZ" in output
    assert "Traceback" not in output


def finish_failing(process):
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 2, output
    return output


def test_a_file_that_is_not_a_checkpoint_stops_training_before_any_work(engine_overrides, tmp_path):
    fake = tmp_path / "weights.pyth"
    fake.write_bytes(os.urandom(2048))
    cfg = load_config(CONFIG, engine_overrides + ["MODEL.PRETRAINED", str(fake)])
    with pytest.raises(ValueError, match=r"weights\.pyth"):
        train(cfg, progress=False)
    assert not list_checkpoints(cfg.OUTPUT_DIR)
    assert not (Path(cfg.OUTPUT_DIR) / "log.jsonl").exists()


def test_an_output_directory_that_cannot_be_written_stops_training(engine_overrides, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    cfg = load_config(CONFIG, override(engine_overrides, "OUTPUT_DIR", str(blocker / "run")))
    with pytest.raises(ValueError, match=r"output directory .*a_file/run .*cannot be written"):
        train(cfg, progress=False)


def test_a_dataset_without_readable_videos_stops_training_and_names_the_files(engine_overrides, tmp_path):
    (tmp_path / "bad").mkdir()
    for name in ("a_000001_000003.mp4", "b_000001_000003.mp4"):
        (tmp_path / "bad" / name).write_bytes(os.urandom(1024))
    (tmp_path / "bad" / "train.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                                "grow,a,1,3,train\nshrink,b,1,3,train\n")
    overrides = override(engine_overrides, "DATA.PATH_TO_DATA_DIR", str(tmp_path / "bad"))
    cfg = load_config(CONFIG, overrides + ["DATA.CLASS_LIST", "", "TRAIN.EVAL_PERIOD", "0"])
    with pytest.raises(ValueError, match=r"(?s)no readable video .*a_000001_000003\.mp4"):
        train(cfg, progress=False)
    assert not list_checkpoints(cfg.OUTPUT_DIR)
