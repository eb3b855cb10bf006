"""The library from a wheel: built from this checkout, installed (not editable) into a fresh
virtual environment, used from a folder outside the checkout.

The environment sees this interpreter's packages (--system-site-packages: torch and the other
requirements come from there, nothing is downloaded), but the package itself is only the
wheel's copy: the script checks that ``video_ats`` is imported from the environment, so an
editable install or the checkout on the path cannot make the test pass.
"""

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Run by the installed package, from a folder outside the checkout.
CHECKS = r'''
import importlib.metadata as metadata
import os
import sys
from pathlib import Path

import torch

import video_ats
from video_ats.checkpoint import build_model_from_checkpoint, save_model_checkpoint
from video_ats.data import load_class_list

environment = Path(sys.argv[1]).resolve()
assert Path(video_ats.__file__).resolve().is_relative_to(environment), video_ats.__file__

# every requirement of the wheel is installed
missing = []
for requirement in metadata.requires("video-ats"):
    name = requirement.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip()
    if "extra ==" not in requirement:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
assert not missing, missing

# the shipped class lists are package data
assert len(load_class_list("kinetics400")) == 400 and len(load_class_list("kinetics600")) == 600
assert load_class_list("kinetics400")[0] == "abseiling"

# build, GFLOPs (TimeSformer 8x224: 195.8 GFLOPs per view, video_models.md section 1.5)
assert "timesformer_base" in video_ats.list_models()
with torch.device("meta"):
    base = video_ats.build_model("timesformer_base")
assert abs(video_ats.model_gflops(base) / 195.8 - 1) < 5e-4, video_ats.model_gflops(base)
assert video_ats.flops.model_gflops is video_ats.model_gflops

# a forward with ATS, its per-clip GFLOPs, and a checkpoint round trip
torch.manual_seed(0)
model = video_ats.build_model("timesformer_tiny", num_classes=5, ats={"ratio": 0.5, "sampler": "topk"}).eval()
clips = torch.randn(2, 3, 8, 64, 64)
with torch.no_grad():
    logits = model(clips)
assert logits.shape == (2, 5) and [stage["block"] for stage in model.ats_stats] == [3, 4, 5]
per_clip = video_ats.clip_gflops(model, clips)
assert per_clip.shape == (2,) and bool((per_clip < video_ats.model_gflops(model)).all())
save_model_checkpoint("tiny.pt", model, model_name="timesformer_tiny")
other = video_ats.build_model("timesformer_tiny", num_classes=5, ats={"ratio": 0.5, "sampler": "topk"}).eval()
report = video_ats.load_checkpoint(other, "tiny.pt")
assert report.source == "video_ats"
with torch.no_grad():
    assert torch.equal(other(clips), logits)
    assert torch.equal(build_model_from_checkpoint("tiny.pt").eval()(clips), logits)
print("wheel ok", video_ats.__file__)
'''


def _sources_without_build_outputs(destination: Path) -> Path:
    """The files a wheel is built from, copied so the build writes nothing into the checkout."""
    destination.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, destination / name)
    shutil.copytree(ROOT / "video_ats", destination / "video_ats",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return destination


@pytest.mark.slow
def test_the_wheel_installs_and_works_outside_the_checkout(tmp_path):
    source = _sources_without_build_outputs(tmp_path / "source")
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(wheels), str(source)], check=True, timeout=300)
    wheel = next(wheels.glob("video_ats-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {"video_ats/data/class_lists/kinetics400_classes.txt",
            "video_ats/data/class_lists/kinetics600_classes.txt"} <= set(names)
    assert not [name for name in names if name.split("/")[0] in ("experiments", "tools", "tests", "configs")]

    environment = tmp_path / "env"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(environment)
    python = environment / "bin" / "python"
    site_packages = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                   check=True, capture_output=True, text=True).stdout.strip()
    # pip of this interpreter installs into the environment's site-packages; --ignore-installed
    # because the checkout may also be installed (editable) in this interpreter.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed",
                    "--target", site_packages, str(wheel)], check=True, timeout=300)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run([str(python), "-c", CHECKS, str(environment)], cwd=outside, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wheel ok" in result.stdout
