#!/usr/bin/env python3
"""The model zoo: the synthetic action benchmark, tiny TimeSformer and tiny XViT trained on it
from nothing (seeds 0, 1, 2), stored fp16 in zoo/ with zoo/manifest.json.

    python experiments/zoo.py                      # `make zoo`: everything, from nothing
    python experiments/zoo.py --models xvit_tiny --seeds 1   # one model again; other entries kept

Every step is a real tool command run as a subprocess (tools/make_synthetic.py, tools/train.py,
tools/test.py), and the manifest records that command beside the number it produced: training
wall time (with the host, the threads and the load average while it ran, since the 2-core
machine is shared), top-1 (1x3 views, no ATS) on the full validation split, and top-1 on the
check subset that tests/test_zoo.py writes again and re-evaluates in CI (the first
CHECK_VIDEOS_PER_CLASS validation clips of each class; see docs/zoo.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout

import torch  # noqa: E402

from video_ats.checkpoint import build_model_from_checkpoint, read_checkpoint_file, save_model_checkpoint  # noqa: E402
from video_ats.config import load_config  # noqa: E402
from video_ats.data.synthetic import make_synthetic_dataset  # noqa: E402
from video_ats.engine import test  # noqa: E402
from video_ats.engine.checkpointing import latest_checkpoint  # noqa: E402

ZOO_DIR = "zoo"
MANIFEST = f"{ZOO_DIR}/manifest.json"
CONFIGS = {"timesformer_tiny": "configs/synthetic/timesformer_tiny_zoo.yaml",
           "xvit_tiny": "configs/synthetic/xvit_tiny_zoo.yaml"}
SEEDS = (0, 1, 2)
# The benchmark as the configs expect it (DATA.PATH_TO_DATA_DIR): tools/make_synthetic.py with
# these arguments; every other setting is the generator's default.
DATA_ROOT = "cache/synthetic_zoo"
# The four actions a tiny XViT tells apart (with "shake" and "change colour" it stayed near 65 %
# top-1 on six; docs/zoo.md).
ZOO_ACTIONS = ("stay still", "move back and forth", "blink", "pulse")
DATA_ARGS = ["--classes", *ZOO_ACTIONS, "--train", "1000", "--val", "100", "--seed", "0"]
# The CI check: the first CHECK_VIDEOS_PER_CLASS validation clips of each class, written again.
CHECK_VIDEOS_PER_CLASS = 12


def sha256(path: os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(path: os.PathLike = ROOT / MANIFEST) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_benchmark_part(manifest: dict, root: os.PathLike, videos_per_class: Dict[str, int]) -> Path:
    """Write the first ``videos_per_class[split]`` clips of each class of the zoo's benchmark
    into ``root`` (byte for byte those clips of the full dataset) and return ``root``."""
    make_synthetic_dataset(root, **{**manifest["dataset"]["arguments"], "videos_per_class": videos_per_class})
    return Path(root)


def write_check_subset(manifest: dict, root: os.PathLike) -> Path:
    """Write the manifest's check subset (its first validation clips of each class) into ``root``."""
    return write_benchmark_part(manifest, root, {"val": manifest["check_subset"]["videos_per_class"]})


def evaluate_checkpoint(config: str, checkpoint: os.PathLike, data_root: os.PathLike, output_dir: os.PathLike) -> dict:
    """Test results (1x3 views, no ATS, as the config says) of ``checkpoint`` on the validation
    split in ``data_root``, through the engine tools/test.py runs, in this process."""
    cfg = load_config(str(ROOT / config), ["DATA.PATH_TO_DATA_DIR", str(data_root),
                                           "TEST.CHECKPOINT_FILE", str(checkpoint), "OUTPUT_DIR", str(output_dir),
                                           "DATA_LOADER.NUM_WORKERS", "0"])
    if cfg.ATS.ENABLE or cfg.TEST.NUM_ENSEMBLE_VIEWS * cfg.TEST.NUM_SPATIAL_CROPS != 3:
        raise ValueError(f"{config}: the zoo is evaluated with 1x3 views and without ATS")
    return test(cfg, progress=False)


class LoadSampler:
    """The 1-minute load average, sampled every ``period`` seconds while a run lasts."""

    def __init__(self, period: float = 10.0):
        self.period, self.samples = period, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        samples = self.samples or [float("nan")]
        return {"mean": round(sum(samples) / len(samples), 2), "max": round(max(samples), 2),
                "samples": len(self.samples), "period_s": self.period}


def run_command(command: List[str], threads: int, log_path: Path) -> dict:
    """Run a tool command from the repository root with OMP_NUM_THREADS=threads; stdout and
    stderr go to ``log_path``. Returns the command as one shell line, its wall time and the load
    average while it ran; raises CalledProcessError (naming the log) when it fails."""
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    line = f"OMP_NUM_THREADS={threads} python " + shlex.join(command)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"[zoo] {line}", flush=True)
    start = time.perf_counter()
    with open(log_path, "w") as log, LoadSampler() as load:
        result = subprocess.run([sys.executable, *command], cwd=ROOT, env=environment, stdout=log,
                                stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise subprocess.CalledProcessError(result.returncode, line, output=f"see {log_path}")
    return {"command": line, "wall_seconds": round(seconds, 1), "load_average": load.summary()}


def host_description(threads: int) -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"host": platform.node(), "cpu": cpu, "cpu_count": os.cpu_count(), "threads": threads,
            "torch": torch.__version__, "python": platform.python_version()}


def export_fp16(training_checkpoint: str, path: Path) -> None:
    """This toolkit's model checkpoint of a finished run, weights in fp16 (about 2 MB)."""
    state = read_checkpoint_file(training_checkpoint)
    model = build_model_from_checkpoint(training_checkpoint)
    save_model_checkpoint(path, model, model_name=state["model_name"], model_kwargs=state["model_kwargs"],
                          extra={"config": state["config"]}, weights_dtype=torch.float16)


def train_one(model: str, seed: int, threads: int, runs: Path, resume: bool) -> dict:
    """Train, export and test one zoo model; returns its manifest entry (without the check subset)."""
    name = f"{model}_seed{seed}"
    output_dir = runs / name
    if output_dir.exists() and not resume:
        shutil.rmtree(output_dir)  # from nothing: the engine would otherwise resume this run
    config = CONFIGS[model]
    relative = os.path.relpath(output_dir, ROOT)
    training = run_command(["tools/train.py", "--cfg", config, "--no-progress", "SEED", str(seed),
                            "OUTPUT_DIR", relative], threads, output_dir / "train.log")
    file = f"{ZOO_DIR}/{name}.pt"
    final = latest_checkpoint(str(output_dir))
    export_fp16(final, ROOT / file)
    testing = run_command(["tools/test.py", "--cfg", config, "--no-progress", "TEST.CHECKPOINT_FILE", file,
                           "OUTPUT_DIR", f"{relative}/test"], threads, output_dir / "test.log")
    with open(output_dir / "test" / "results.json") as handle:
        results = json.load(handle)
    return {"name": name, "model": model, "seed": seed, "file": file, "sha256": sha256(ROOT / file),
            "size_bytes": (ROOT / file).stat().st_size, "config": config,
            "trained_from": os.path.relpath(final, ROOT),
            "command": training["command"], "train_wall_seconds": training["wall_seconds"],
            "train_load_average": training["load_average"], "host": host_description(threads),
            "test_command": testing["command"], "views": "1x3", "ats": False,
            "top1": round(results["top1"], 2), "top5": round(results["top5"], 2),
            "num_val_videos": results["num_videos"]}


def make_dataset(threads: int, runs: Path) -> dict:
    run = run_command(["tools/make_synthetic.py", DATA_ROOT, *DATA_ARGS], threads, runs / "make_synthetic.log")
    with open(ROOT / DATA_ROOT / "manifest.json") as handle:
        params = json.load(handle)["params"]
    arguments = {("classes" if key == "actions" else key): value for key, value in params.items() if key != "version"}
    return {"command": run["command"], "wall_seconds": run["wall_seconds"], "root": DATA_ROOT,
            "generator_version": params["version"], "arguments": arguments}


ZOO_TABLE_MARKERS = ("<!-- zoo:table -->", "<!-- /zoo:table -->")


def zoo_table(manifest: dict) -> str:
    """The zoo as a Markdown table, from its manifest (docs/zoo.md shows it between
    ZOO_TABLE_MARKERS; tests/test_zoo.py checks that it is this manifest's)."""
    lines = ["| file | model | seed | top-1 (1×3, no ATS) | top-5 | check subset top-1 | training time | "
             "mean load | size | sha256 |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for e in manifest["models"]:
        lines.append(f"| `{e['file']}` | {e['model']} | {e['seed']} | {e['top1']:.2f} | {e['top5']:.2f} | "
                     f"{e['check_top1']:.2f} | {e['train_wall_seconds'] / 60:.1f} min | "
                     f"{e['train_load_average']['mean']:.2f} | {e['size_bytes'] / 2**20:.1f} MB | "
                     f"`{e['sha256'][:12]}…` |")
    return "\n".join(lines)


def write_zoo_table(manifest: dict, path: Path = ROOT / "docs" / "zoo.md") -> None:
    """Replace the table between ZOO_TABLE_MARKERS in ``path`` by `zoo_table` of ``manifest``."""
    start, end = ZOO_TABLE_MARKERS
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(start, 1)
    path.write_text(f"{head}{start}\n{zoo_table(manifest)}\n{end}{rest.split(end, 1)[1]}", encoding="utf-8")


def check_subset_entry(dataset: dict) -> dict:
    return {"videos_per_class": CHECK_VIDEOS_PER_CLASS,
            "definition": (f"the first {CHECK_VIDEOS_PER_CLASS} validation clips of each class of the dataset "
                           f"above, written again on their own: make_synthetic_dataset(root, **arguments) with "
                           f"videos_per_class={{'val': {CHECK_VIDEOS_PER_CLASS}}} (byte-identical to those "
                           f"clips of the full split)"),
            "num_videos": CHECK_VIDEOS_PER_CLASS * len(dataset["arguments"]["classes"])}


def add_check_top1(manifest: dict, entries: List[dict]) -> None:
    """Evaluate ``entries`` on the check subset (written in a temporary folder) and record the top-1."""
    with tempfile.TemporaryDirectory(prefix="zoo_check_") as folder:
        data_root = write_check_subset(manifest, Path(folder) / "data")
        for entry in entries:
            result = evaluate_checkpoint(entry["config"], ROOT / entry["file"], data_root,
                                         Path(folder) / entry["name"])
            entry["check_top1"] = round(result["top1"], 2)
            print(f"[zoo] {entry['name']}: top-1 {entry['top1']} (full val), {entry['check_top1']} (check subset)",
                  flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every command")
    parser.add_argument("--jobs", type=int, default=2, help="training runs at once (2 on the 2-core machine)")
    parser.add_argument("--runs", default="runs/zoo", help="training runs (checkpoints, logs)")
    parser.add_argument("--resume", action="store_true",
                        help="continue unfinished runs in --runs instead of training from nothing")
    args = parser.parse_args(argv)
    runs = ROOT / args.runs
    dataset = make_dataset(args.threads, runs)
    old = read_manifest() if (ROOT / MANIFEST).exists() else {"models": []}
    entries: Dict[str, dict] = {}
    if old.get("dataset", {}).get("arguments") == dataset["arguments"]:
        entries = {entry["name"]: entry for entry in old["models"]}  # same data: keep the models not retrained
    jobs = [(model, seed) for seed in args.seeds for model in args.models]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # each job is a subprocess
        fresh = list(pool.map(lambda job: train_one(*job, args.threads, runs, args.resume), jobs))
    entries.update({entry["name"]: entry for entry in fresh})
    manifest = {"about": "tiny TimeSformer and XViT trained from scratch on the synthetic action benchmark; "
                         "see docs/zoo.md. Written by experiments/zoo.py (make zoo).",
                "dataset": dataset, "check_subset": check_subset_entry(dataset),
                "models": [entries[name] for name in sorted(entries)]}
    add_check_top1(manifest, manifest["models"])
    (ROOT / ZOO_DIR).mkdir(exist_ok=True)
    with open(ROOT / MANIFEST, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2)
        handle.write("\n")
    write_zoo_table(manifest)
    print(f"[zoo] wrote {MANIFEST} ({len(manifest['models'])} models) and the table of docs/zoo.md", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
