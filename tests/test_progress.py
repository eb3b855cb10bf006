"""Progress output: a bar on a terminal, one line per loop in a log, a pipe or CI."""

import io
import os
import re
import subprocess
import sys
from pathlib import Path

from video_ats.engine.progress import LineProgress, progress_bar

REPO = Path(__file__).parents[1]
CONFIG = str(REPO / "configs" / "synthetic" / "timesformer_tiny.yaml")


def test_a_loop_without_a_terminal_prints_one_line_when_it_ends(capsys):
    bar = progress_bar(range(50), desc="epoch 1/3", unit="batch", interactive=False)
    for step in bar:
        bar.set_postfix(loss=f"{1 / (step + 1):.4f}")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"epoch 1/3: 50/50 batchs in \d+\.\d s \(.*\), loss=0\.0200", lines[0])


def test_a_resumed_loop_counts_from_where_it_started_and_a_disabled_one_is_silent(capsys):
    stream = io.StringIO()
    bar = LineProgress(range(4), desc="epoch 2/2", total=10, initial=6, unit="batch", stream=stream)
    list(bar)
    assert stream.getvalue().startswith("epoch 2/2: 10/10 batchs in ")
    list(progress_bar(range(4), enabled=False, desc="quiet"))
    assert capsys.readouterr().err == ""


def test_updates_by_hand_count_and_close_prints_once(capsys):
    bar = progress_bar(total=3, unit="video", interactive=False)
    for _ in range(3):
        bar.update(1)
    bar.close()
    bar.close()
    assert re.fullmatch(r"3/3 videos in \d+\.\d s \(.*\)\n", capsys.readouterr().err)


def test_training_into_a_pipe_prints_one_progress_line_per_epoch_and_evaluation(engine_overrides):
    overrides = engine_overrides + ["TRAIN.EVAL_PERIOD", "1"]
    output = subprocess.run([sys.executable, str(REPO / "tools" / "train.py"), "--cfg", CONFIG, *overrides],
                            cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert output.returncode == 0, output.stderr
    progress = [line for line in output.stderr.splitlines() if re.match(r"(epoch \d/2|val): ", line)]
    assert [line.split(":")[0] for line in progress] == ["epoch 1/2", "val", "epoch 2/2", "val"]
    assert "\r" not in output.stderr
