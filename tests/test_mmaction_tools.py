"""mmaction2's own tools (train.py, test.py from its wheel's .mim/tools) with the shipped config,
as the config's header says to run them: train -> test -> resume, then test.py with an
off-the-shelf (official-layout) TimeSformer checkpoint, on a tiny synthetic dataset written where
the config looks for it. Needs the mmaction extra (installed in CI).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from optional_extras import require_extra

mmaction = require_extra("mmaction", "mmaction")

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "mmaction2" / "timesformer_tiny_ats_synthetic.py"
TOOLS = Path(mmaction.__file__).parent / ".mim" / "tools"
# CPU, no worker processes (2 shared cores): the only overrides; the data are where the config says.
NO_WORKERS = [f"{loader}.{key}={value}" for loader in ("train_dataloader", "val_dataloader", "test_dataloader")
              for key, value in (("num_workers", 0), ("persistent_workers", False))]


def mmaction2(tool, *arguments, cwd):
    environment = dict(os.environ, OMP_NUM_THREADS="1",
                       PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, str(TOOLS / f"{tool}.py"), str(CONFIG), *arguments], cwd=cwd,
                         env=environment, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    return output


def accuracy(output):
    return float(re.findall(r"Epoch\(test\) \[\d+/\d+\]\s+acc/top1: ([0-9.]+)", output)[-1])


@pytest.mark.slow
def test_train_test_resume_and_an_official_checkpoint_through_mmaction2s_own_tools(tmp_path):
    from video_ats import build_model, load_checkpoint
    from video_ats.data import make_synthetic_dataset

    assert (TOOLS / "train.py").is_file() and (TOOLS / "test.py").is_file()
    # Where the shipped config looks: cache/synthetic of the working folder (6 classes).
    make_synthetic_dataset(tmp_path / "cache" / "synthetic", num_classes=6, videos_per_class={"train": 1, "val": 1},
                           num_frames=24, height=64, width=86, fps=12)
    work = tmp_path / "work"

    mmaction2("train", "--work-dir", str(work), "--cfg-options", "train_cfg.max_epochs=1", *NO_WORKERS, cwd=tmp_path)
    assert (work / "epoch_1.pth").is_file()

    # test.py on a checkpoint mmaction2's runner saved (HistoryBuffer inside: weights_only).
    tested = mmaction2("test", str(work / "epoch_1.pth"), "--work-dir", str(work), "--cfg-options", *NO_WORKERS,
                       cwd=tmp_path)
    assert "Weights only load failed" not in tested

    resumed = mmaction2("train", "--work-dir", str(work), "--resume", "--cfg-options", "train_cfg.max_epochs=2",
                        *NO_WORKERS, cwd=tmp_path)
    assert "resumed epoch: 1, iter: 2" in resumed          # 6 clips / batch 4 = 2 iterations per epoch
    assert (work / "epoch_2.pth").is_file()

    # The trained weights in the official TimeSformer layout: test.py must give the same accuracy.
    plain = build_model("timesformer_tiny", num_classes=6)
    load_checkpoint(plain, work / "epoch_1.pth")
    torch.save({"model_state": {f"model.{key}": value for key, value in plain.state_dict().items()}},
               tmp_path / "official.pyth")
    official = mmaction2("test", str(tmp_path / "official.pyth"), "--work-dir", str(work), "--cfg-options",
                         *NO_WORKERS, cwd=tmp_path)
    assert accuracy(official) == accuracy(tested)
