"""Training checkpoints: written atomically, found by name, resumed exactly.

A training checkpoint is this toolkit's model checkpoint (see `video_ats.checkpoint`) plus the
training state: optimizer, scheduler, gradient scaler, position in the run (epoch and batches
done in it, optimizer steps) and every RNG state, the merged config, the number of processes
and a fingerprint of the training annotations. Files are named
``checkpoint_e{epoch:04d}_b{batches:07d}.pt`` so the newest sorts last.

Resuming is only resuming when it continues the same run: `resume_differences` compares the
checkpoint's config, process count and training data with the new ones, and the trainer stops
on any difference that alters the run (everything except the keys in `RESUME_SAFE_KEYS`,
which say where things are or how they are logged, not what is computed). The newest
checkpoint that cannot be read (a crash while the disk was full, a copy cut short) is skipped
for the newest readable one (`newest_readable_checkpoint`).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import random
import re
import shlex
import shutil
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import yaml
from yacs.config import CfgNode

from ..checkpoint import CheckpointError, read_checkpoint_file, save_model_checkpoint
from ..config import get_cfg, iter_keys, model_overrides

_NAME = re.compile(r"checkpoint_e(\d{4})_b(\d{7})\.pt$")


def checkpoint_dir(output_dir: str) -> str:
    return os.path.join(output_dir, "checkpoints")


def checkpoint_path(output_dir: str, epoch: int, batches_done: int) -> str:
    return os.path.join(checkpoint_dir(output_dir), f"checkpoint_e{epoch:04d}_b{batches_done:07d}.pt")


def list_checkpoints(output_dir: str) -> list:
    """Training checkpoints of a run, oldest first."""
    found = []
    for path in glob.glob(os.path.join(checkpoint_dir(output_dir), "checkpoint_e*_b*.pt")):
        match = _NAME.search(path)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), path))
    return [path for _, _, path in sorted(found)]


def latest_checkpoint(output_dir: str) -> Optional[str]:
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


def rng_states() -> dict:
    """Every global RNG state, as tensors and plain values (readable with weights_only)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    states = {"python": random.getstate(),
              "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                        "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    numpy_state = states["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["position"], numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def data_fingerprint(records: Sequence[Any], classes: Sequence[str]) -> dict:
    """What identifies a training split: its video count, class names and a digest of every
    (file name, label) in order. File names, not paths: moving the data does not change a run."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(f"{os.path.basename(record.path)}\t{record.label}\n".encode("utf-8"))
    return {"num_videos": len(records), "classes": list(classes), "digest": digest.hexdigest()}


def save_training_checkpoint(output_dir: str, model: torch.nn.Module, cfg: CfgNode, *, optimizer, scheduler,
                             scaler, epoch: int, batches_done: int, step: int, keep_recent: int = 2,
                             world_size: int = 1, train_data: Optional[dict] = None) -> str:
    """Write the full training state; keep every end-of-epoch checkpoint and the newest
    ``keep_recent`` mid-epoch ones.

    world_size: processes of the run; train_data: `data_fingerprint` of its training split
    (both checked when the run resumes). Raises OSError(ENOSPC) naming the folder when the
    disk is full (torch reports that as an unrelated-looking ``inline_container.cc`` error).
    """
    path = checkpoint_path(output_dir, epoch, batches_done)
    extra = {
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": epoch, "batches_done": batches_done, "step": step, "rng": rng_states(), "config": cfg.dump(),
        "world_size": int(world_size), "train_data": train_data,
    }
    try:
        save_model_checkpoint(path, model, model_name=cfg.MODEL.NAME, model_kwargs=model_overrides(cfg), extra=extra)
    except (RuntimeError, OSError) as error:
        raise _disk_full(error, os.path.dirname(path)) from None
    mid_epoch = [p for p in list_checkpoints(output_dir) if not p.endswith("_b0000000.pt")]
    for stale in mid_epoch[:max(0, len(mid_epoch) - max(1, keep_recent))]:
        os.remove(stale)
    return path


# torch.save reports a failed write from its zip writer, e.g. "[enforce fail at
# inline_container.cc:...] . PytorchStreamWriter failed writing file data/3: file write failed".
_WRITE_FAILED = ("file write failed", "inline_container", "unexpected pos")


def _disk_full(error: BaseException, folder: str) -> BaseException:
    """The error to raise for a failed checkpoint write: OSError(ENOSPC, ..., folder) when the
    disk is full, OSError(EIO, ..., folder) for another failed write, else ``error`` itself."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), folder)
    if isinstance(error, RuntimeError) and any(text in str(error) for text in _WRITE_FAILED):
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            free = 0
        # The half-written temporary file is removed on failure; little room left means a full disk.
        if free < 64 * 2 ** 20:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), folder)
        first = str(error).strip().splitlines()[0]
        return OSError(errno.EIO, f"writing a checkpoint failed ({first})", folder)
    return error


@contextlib.contextmanager
def naming_the_path(path: str):
    """A full disk while writing ``path`` raises OSError(ENOSPC) that names ``path`` (a failed
    ``write()`` names no file, so the user would not know which disk filled up)."""
    try:
        yield
    except OSError as error:
        if error.errno == errno.ENOSPC and not error.filename:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path) from None
        raise


def newest_readable_checkpoint(output_dir: str) -> Tuple[Optional[str], Optional[dict], List[Tuple[str, str]]]:
    """The newest training checkpoint of a run that can be read.

    Returns (path, its contents, skipped) where skipped lists (path, reason) of the newer
    checkpoints that could not be read (truncated, empty, damaged); (None, None, skipped) when
    none can be read (or there is none).
    """
    skipped = []
    for path in reversed(list_checkpoints(output_dir)):
        try:
            return path, read_checkpoint_file(path), skipped
        except CheckpointError as error:
            skipped.append((path, str(error)))
    return None, None, skipped


# Keys that say where things are, how often to log or keep, or how to evaluate: changing them
# does not change what a resumed training run computes. Every other key does.
RESUME_SAFE_KEYS = (
    "OUTPUT_DIR", "DEVICE",
    "MODEL.PRETRAINED", "MODEL.PRETRAINED_SOURCE", "MODEL.PRETRAINED_DROP_HEAD",
    "DATA.PATH_TO_DATA_DIR", "DATA.VIDEO_ROOT", "DATA.VAL_ANNOTATION", "DATA.TEST_ANNOTATION",
    "DATA.DECODER", "DATA.TEST_CROP_SIZE", "DATA.MAX_RETRIES", "DATA.ALLOW_DUPLICATES",
    "DATA_LOADER.NUM_WORKERS", "DATA_LOADER.PIN_MEMORY",
    "TRAIN.ENABLE", "TRAIN.EVAL_PERIOD", "TRAIN.CHECKPOINT_ITERS", "TRAIN.KEEP_CHECKPOINTS",
    "TRAIN.AUTO_RESUME", "TRAIN.LOG_PERIOD",
)
RESUME_SAFE_PREFIXES = ("TEST.",)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _flat(tree: Any, prefix: str = "") -> Dict[str, Any]:
    flat = {}
    for key, value in (tree or {}).items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = _plain(value)
    return flat


WORLD_SIZE, TRAINING_DATA = "world size (processes)", "training data"


def resume_differences(state: dict, cfg: CfgNode, world_size: int,
                       train_data: Optional[dict] = None) -> List[Tuple[str, Any, Any]]:
    """What would make resuming from ``state`` (a training checkpoint) a different run.

    Returns (key, checkpoint value, new value) for every config key outside RESUME_SAFE_KEYS
    that differs (a key the checkpoint predates counts with its default), WORLD_SIZE for
    another number of processes, and TRAINING_DATA for another training split.
    """
    stored = _flat(yaml.safe_load(state.get("config") or "{}"))
    defaults = _flat(yaml.safe_load(get_cfg().dump()))
    current = _flat(yaml.safe_load(cfg.dump()))
    differences = []
    for key in iter_keys(cfg):
        if key in RESUME_SAFE_KEYS or key.startswith(RESUME_SAFE_PREFIXES):
            continue
        before = stored.get(key, defaults.get(key))
        if before != current[key]:
            differences.append((key, before, current[key]))
    if state.get("world_size") is not None and int(state["world_size"]) != int(world_size):
        differences.append((WORLD_SIZE, int(state["world_size"]), int(world_size)))
    before_data = state.get("train_data")
    if before_data and train_data and before_data != train_data:
        differences.append((TRAINING_DATA, _describe_data(before_data), _describe_data(train_data)))
    return differences


def _describe_data(data: dict) -> str:
    return f"{data['num_videos']} videos of {len(data['classes'])} classes (digest {data['digest'][:12]})"


def _yaml_value(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    return text[:-3].strip() if text.endswith("...") else text


def describe_resume_differences(path: str, differences: List[Tuple[str, Any, Any]]) -> str:
    """One line: what differs from the checkpoint, and the ways out."""
    listed = "; ".join(f"{key}: {_yaml_value(before)} in the checkpoint, {_yaml_value(after)} now"
                       for key, before, after in differences)
    overrides = " ".join(f"{key} {shlex.quote(_yaml_value(before))}" for key, before, _ in differences
                         if key not in (WORLD_SIZE, TRAINING_DATA))
    restore = f"restore them (KEY VALUE overrides: {overrides})" if overrides else "restore them"
    return (f"cannot resume from {path}: the checkpoint's run differs from this config in {len(differences)} "
            f"place{'s' if len(differences) > 1 else ''} ({listed}); to continue that run, {restore}; to train "
            f"this config from the checkpoint's weights with a new schedule, start a new run: OUTPUT_DIR <a new "
            f"folder> MODEL.PRETRAINED {path}")


_NOT_HYPERPARAMETERS = {"params", "initial_lr", "foreach", "maximize", "capturable", "differentiable", "fused",
                        "decoupled_weight_decay"}


def load_training_checkpoint(path: str, model: torch.nn.Module, *, optimizer, scheduler, scaler,
                             state: Optional[dict] = None) -> dict:
    """Restore model, optimizer, scheduler, scaler and RNG states; return the run position.

    ``state``: the checkpoint's contents when already read (else ``path`` is read).
    Raises ValueError naming the file when it is not a training checkpoint or its model or
    optimizer state does not fit (the model is left as it was in that case).
    """
    state = read_checkpoint_file(path) if state is None else state
    missing = [key for key in ("model", "optimizer", "scheduler", "epoch", "batches_done", "step", "rng")
               if key not in state]
    if missing:
        raise ValueError(f"{path} is not a training checkpoint of this toolkit (missing {missing})")
    try:
        model.load_state_dict(state["model"], strict=True)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise ValueError(f"{path}: its weights do not fit the model this config builds "
                         f"({'; '.join(lines[1:4]) or lines[0]})") from None
    # torch loads another optimizer's state without a word; the first step then dies
    # (SGD after AdamW: KeyError 'momentum'). The hyperparameter names tell the optimizers apart
    # (not torch's implementation flags, which change between torch versions).
    wanted = [sorted(set(group) - _NOT_HYPERPARAMETERS) for group in optimizer.param_groups]
    held = [sorted(set(group) - _NOT_HYPERPARAMETERS) for group in state["optimizer"].get("param_groups", [])]
    if wanted != held:
        raise ValueError(f"{path}: its optimizer state does not fit this config's optimizer (SOLVER.OPTIMIZER "
                         f"{type(optimizer).__name__}: parameter groups with {wanted} expected, the checkpoint has "
                         f"{held})")
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    except (KeyError, ValueError) as error:
        raise ValueError(f"{path}: its optimizer state does not fit this config's optimizer "
                         f"(SOLVER.OPTIMIZER; {type(error).__name__}: {error})") from None
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    restore_rng_states(state["rng"])
    return {"epoch": state["epoch"], "batches_done": state["batches_done"], "step": state["step"], "path": path}
