"""Training checkpoints: written atomically, found by name, resumed exactly.

A training checkpoint is this toolkit's model checkpoint (see `video_ats.checkpoint`) plus the
training state: optimizer, scheduler, gradient scaler, position in the run (epoch and batches
done in it, optimizer steps) and every RNG state, and the merged config. Files are named
``checkpoint_e{epoch:04d}_b{batches:07d}.pt`` so the newest sorts last.
"""

from __future__ import annotations

import glob
import os
import random
import re
from typing import Optional

import numpy as np
import torch
from yacs.config import CfgNode

from ..checkpoint import read_checkpoint_file, save_model_checkpoint
from ..config import model_overrides

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


def save_training_checkpoint(output_dir: str, model: torch.nn.Module, cfg: CfgNode, *, optimizer, scheduler,
                             scaler, epoch: int, batches_done: int, step: int, keep_recent: int = 2) -> str:
    """Write the full training state; keep every end-of-epoch checkpoint and the newest
    ``keep_recent`` mid-epoch ones."""
    path = checkpoint_path(output_dir, epoch, batches_done)
    extra = {
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": epoch, "batches_done": batches_done, "step": step, "rng": rng_states(), "config": cfg.dump(),
    }
    save_model_checkpoint(path, model, model_name=cfg.MODEL.NAME, model_kwargs=model_overrides(cfg), extra=extra)
    mid_epoch = [p for p in list_checkpoints(output_dir) if not p.endswith("_b0000000.pt")]
    for stale in mid_epoch[:max(0, len(mid_epoch) - max(1, keep_recent))]:
        os.remove(stale)
    return path


def load_training_checkpoint(path: str, model: torch.nn.Module, *, optimizer, scheduler, scaler) -> dict:
    """Restore model, optimizer, scheduler, scaler and RNG states; return the run position."""
    state = read_checkpoint_file(path)
    missing = [key for key in ("model", "optimizer", "scheduler", "epoch", "batches_done", "step", "rng")
               if key not in state]
    if missing:
        raise ValueError(f"{path} is not a training checkpoint of this toolkit (missing {missing})")
    model.load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    restore_rng_states(state["rng"])
    return {"epoch": state["epoch"], "batches_done": state["batches_done"], "step": state["step"], "path": path}
