"""Resuming continues the run a checkpoint belongs to, or stops before any work and says why.

One tiny run is trained once (1 epoch of 6 steps, a checkpoint after step 3 and at the end of
the epoch); each test resumes a copy of it.
"""

import shutil
from pathlib import Path

import pytest
import torch

from video_ats.checkpoint import read_checkpoint_file
from video_ats.config import build_model_from_cfg, load_config
from video_ats.engine import train
from video_ats.engine.checkpointing import (TRAINING_DATA, WORLD_SIZE, list_checkpoints, load_training_checkpoint,
                                            resume_differences)
from video_ats.engine.optim import build_optimizer, build_scheduler

CONFIG = str(Path(__file__).parents[1] / "configs" / "synthetic" / "timesformer_tiny.yaml")
MID, END = "checkpoint_e0000_b0000003.pt", "checkpoint_e0001_b0000000.pt"


@pytest.fixture(scope="module")
def finished_run(engine_dataset, tmp_path_factory):
    """(output dir, its overrides) of a finished 1-epoch run; never modified by the tests."""
    from conftest import ENGINE_CLASSES

    output = tmp_path_factory.mktemp("resume") / "run"
    overrides = ["OUTPUT_DIR", str(output), "DATA.PATH_TO_DATA_DIR", str(engine_dataset),
                 "MODEL.NUM_CLASSES", str(ENGINE_CLASSES), "MODEL.EMBED_DIM", "32", "MODEL.NUM_HEADS", "2",
                 "SOLVER.MAX_EPOCH", "1", "SOLVER.WARMUP_EPOCHS", "0.5", "TRAIN.BATCH_SIZE", "4",
                 "TEST.BATCH_SIZE", "4", "DATA_LOADER.NUM_WORKERS", "0", "DATA.SAMPLING_RATE", "4",
                 "TRAIN.CHECKPOINT_ITERS", "3", "TRAIN.EVAL_PERIOD", "0"]
    train(load_config(CONFIG, overrides), progress=False)
    assert [Path(path).name for path in list_checkpoints(str(output))] == [MID, END]
    return output, overrides


@pytest.fixture()
def run_copy(finished_run, tmp_path):
    """A copy of the finished run and overrides that point at it."""
    output, overrides = finished_run
    copy = tmp_path / "run"
    shutil.copytree(output, copy)
    overrides = list(overrides)
    overrides[overrides.index("OUTPUT_DIR") + 1] = str(copy)
    return copy, overrides


def config(overrides, *more):
    return load_config(CONFIG, list(overrides) + list(more))


@pytest.mark.parametrize("key, value, stored", [
    ("TRAIN.BATCH_SIZE", "8", "4"),            # would skip clips and jump the schedule
    ("SOLVER.OPTIMIZER", "sgd", "adamw"),      # would die with KeyError: 'momentum'
    ("MODEL.DEPTH", "4", "null"),              # would die in load_state_dict
    ("SOLVER.BASE_LR", "0.01", "0.001"),       # the schedule
    ("DATA.SAMPLING_RATE", "2", "4"),          # the clips
])
def test_resuming_with_a_change_that_alters_the_run_stops_before_any_work(run_copy, key, value, stored):
    output, overrides = run_copy
    before = sorted(path.name for path in (output / "checkpoints").iterdir())
    saved_config = (output / "config.yaml").read_text()
    with pytest.raises(ValueError) as error:
        train(config(overrides, key, value, "SOLVER.MAX_EPOCH", "1"), progress=False)
    message = str(error.value)
    assert message.startswith(f"cannot resume from {output / 'checkpoints' / END}: the checkpoint's run differs "
                              f"from this config in 1 place ({key}: {stored} in the checkpoint, {value} now)")
    assert f"to continue that run, restore them (KEY VALUE overrides: {key} {stored})" in message
    assert f"start a new run: OUTPUT_DIR <a new folder> MODEL.PRETRAINED {output / 'checkpoints' / END}" in message
    assert "\n" not in message
    assert sorted(path.name for path in (output / "checkpoints").iterdir()) == before
    assert (output / "config.yaml").read_text() == saved_config


def test_changes_that_do_not_alter_the_run_resume_and_the_console_says_where(run_copy, capsys):
    output, overrides = run_copy
    train(config(overrides, "DATA.DECODER", "pyav", "TRAIN.LOG_PERIOD", "1", "DATA_LOADER.NUM_WORKERS", "1",
                 "TEST.BATCH_SIZE", "2"), progress=False)
    assert capsys.readouterr().err == (f"resumed from {output / 'checkpoints' / END} at the end of its 1 epochs: "
                                       f"nothing left to train (optimizer step 6 of 6)\n")


def test_an_unreadable_newest_checkpoint_falls_back_to_the_newest_readable_one(run_copy, finished_run, capsys):
    output, overrides = run_copy
    newest = output / "checkpoints" / END
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])     # a crash while copying
    train(config(overrides), progress=False)
    console = capsys.readouterr().err.splitlines()
    assert console[0].startswith(f"warning: skipping the unreadable checkpoint {newest} (cannot read checkpoint")
    assert console[0].endswith(f"; resuming from {output / 'checkpoints' / MID}, the newest readable one")
    assert console[1] == (f"resumed from {output / 'checkpoints' / MID} at epoch 1 of 1, after batch 3 of 6 "
                          f"(optimizer step 3 of 6)")
    # Resuming is exact: the last 3 steps again give the uninterrupted run's weights.
    redone, original = read_checkpoint_file(newest), read_checkpoint_file(finished_run[0] / "checkpoints" / END)
    assert redone["step"] == original["step"] == 6
    for key, value in original["model"].items():
        assert torch.equal(redone["model"][key], value), key


def test_a_run_whose_checkpoints_are_all_unreadable_stops_instead_of_starting_over(run_copy):
    output, overrides = run_copy
    for path in (output / "checkpoints").iterdir():
        path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"none of the 2 checkpoints in .* can be read \(the newest: cannot read "
                                         r"checkpoint .*checkpoint_e0001_b0000000\.pt \(0 bytes\): the file is empty"):
        train(config(overrides), progress=False)


def test_another_process_count_or_other_training_data_is_a_difference(finished_run):
    output, overrides = finished_run
    state = read_checkpoint_file(output / "checkpoints" / END)
    cfg = config(overrides)
    assert state["world_size"] == 1 and state["train_data"]["num_videos"] == 24
    assert resume_differences(state, cfg, world_size=1, train_data=state["train_data"]) == []
    assert resume_differences(state, cfg, world_size=2, train_data=state["train_data"]) == [(WORLD_SIZE, 1, 2)]
    fewer = dict(state["train_data"], num_videos=23, digest="0" * 64)
    [(key, before, after)] = resume_differences(state, cfg, world_size=1, train_data=fewer)
    assert key == TRAINING_DATA and before.startswith("24 videos of 3 classes") and after.startswith("23 videos")


def test_a_checkpoint_without_its_config_still_fails_clearly_on_another_optimizer_or_model(finished_run):
    # Checkpoints written before configs were compared: the state itself must not raise KeyError.
    output, overrides = finished_run
    path = str(output / "checkpoints" / END)
    model = build_model_from_cfg(config(overrides))
    sgd = build_optimizer(model, 0.1, 0.9, 0.0, True, name="sgd")
    with pytest.raises(ValueError, match=r"its optimizer state does not fit this config's optimizer"):
        load_training_checkpoint(path, model, optimizer=sgd, scheduler=build_scheduler(sgd, 6, 0, 0.0, 0.0),
                                 scaler=None)
    shallow = build_model_from_cfg(config(overrides, "MODEL.DEPTH", "4"))
    adamw = build_optimizer(shallow, 0.1, 0.9, 0.0, True, name="adamw")
    with pytest.raises(ValueError, match=r"its weights do not fit the model this config builds \(Unexpected "
                                         r"key\(s\) in state_dict: \"blocks\.4"):
        load_training_checkpoint(path, shallow, optimizer=adamw, scheduler=build_scheduler(adamw, 6, 0, 0.0, 0.0),
                                 scaler=None)
