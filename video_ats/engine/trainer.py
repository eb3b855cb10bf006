"""The training loop: SGD fine-tuning on one CPU or many GPUs, resumable at any checkpoint.

Read top to bottom: checks that stop a bad run before any work, the model (and its pretrained
weights), the data, the optimizer and schedule, resume, then epochs of accumulated steps with
checkpoints and validation. Distributed runs are launched with torchrun (gloo on CPU, NCCL on
GPU); mixed precision is used on CUDA only.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from yacs.config import CfgNode

from ..checkpoint import load_checkpoint
from ..config import build_model_from_cfg, save_config
from .builders import EpochSampler, build_dataset, build_loader, require_readable_video
from .checkpointing import (data_fingerprint, describe_resume_differences, load_training_checkpoint,
                            naming_the_path, newest_readable_checkpoint, resume_differences,
                            save_training_checkpoint)
from .distributed import DistContext, all_reduce_sum, barrier, init_distributed, shutdown
from .evaluator import evaluate
from .optim import build_optimizer, build_scheduler
from .progress import progress_bar


class JsonlLog:
    """One JSON object per line, appended (rank 0 only), each with a wall-clock time."""

    def __init__(self, path: str, enabled: bool):
        self.path, self.enabled = path, enabled

    def write(self, **record) -> None:
        if self.enabled:
            with naming_the_path(self.path), open(self.path, "a") as handle:
                handle.write(json.dumps({"time": time.time(), **record}) + "\n")


def say(context: DistContext, message: str) -> None:
    """A line on the console (stderr, rank 0): what a user must know even without the log."""
    if context.is_main:
        print(message, file=sys.stderr, flush=True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_output_dir(path: str) -> None:
    """Stop before any work when the output directory cannot be written."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write_test.{os.getpid()}")   # one per process: ranks probe at once
        with open(probe, "w") as handle:
            handle.write("ok")
        os.remove(probe)
    except OSError as error:
        raise ValueError(f"output directory {path} (OUTPUT_DIR) cannot be written: {error}") from None


def load_pretrained(model: torch.nn.Module, cfg: CfgNode) -> Optional[object]:
    """MODEL.PRETRAINED into ``model`` (any format `video_ats.load_checkpoint` reads)."""
    if not cfg.MODEL.PRETRAINED:
        return None
    if not os.path.isfile(cfg.MODEL.PRETRAINED) and not os.path.isdir(cfg.MODEL.PRETRAINED):
        raise ValueError(f"pretrained checkpoint {cfg.MODEL.PRETRAINED} (MODEL.PRETRAINED) does not exist")
    return load_checkpoint(model, cfg.MODEL.PRETRAINED, source=cfg.MODEL.PRETRAINED_SOURCE,
                           drop_head=cfg.MODEL.PRETRAINED_DROP_HEAD)


def autocast_dtype(cfg: CfgNode, device: torch.device) -> Optional[torch.dtype]:
    """bf16 / fp16 autocast on CUDA; None (fp32) on CPU or when MIXED_PRECISION is none."""
    if device.type != "cuda" or cfg.TRAIN.MIXED_PRECISION == "none":
        return None
    return torch.bfloat16 if cfg.TRAIN.MIXED_PRECISION == "bf16" else torch.float16


def accumulation_steps(cfg: CfgNode, world_size: int) -> int:
    """Micro-batches per optimizer step, to reach TRAIN.GLOBAL_BATCH_SIZE on fewer devices."""
    per_step = cfg.TRAIN.BATCH_SIZE * world_size
    if cfg.TRAIN.GLOBAL_BATCH_SIZE <= 0:
        return 1
    if cfg.TRAIN.GLOBAL_BATCH_SIZE % per_step:
        raise ValueError(f"TRAIN.GLOBAL_BATCH_SIZE {cfg.TRAIN.GLOBAL_BATCH_SIZE} is not a multiple of "
                         f"TRAIN.BATCH_SIZE x processes = {per_step}")
    return cfg.TRAIN.GLOBAL_BATCH_SIZE // per_step


def train(cfg: CfgNode, progress: bool = True) -> dict:
    """Train as ``cfg`` says; returns a summary (last validation metrics, steps, replaced clips)."""
    context = init_distributed(cfg.DEVICE)
    try:
        return _train(cfg, context, progress)
    finally:
        shutdown(context)


@dataclass
class _Run:
    """What one training run holds: its data, the model and the objects that update it."""

    model: torch.nn.Module
    pretrained: Optional[object]
    train_set: object
    val_set: Optional[object]
    sampler: EpochSampler
    accumulate: int
    batches_per_epoch: int
    log: JsonlLog
    train_data: dict
    resume_from: Optional[str] = None
    resume_state: Optional[dict] = None
    optimizer: Optional[torch.optim.Optimizer] = None
    scheduler: Optional[torch.optim.lr_scheduler.LRScheduler] = None
    scaler: Optional[torch.amp.GradScaler] = None
    amp_dtype: Optional[torch.dtype] = None


def _train(cfg: CfgNode, context: DistContext, progress: bool) -> dict:
    run = _prepare(cfg, context)
    _build_optimization(cfg, context, run)
    start_epoch, start_batch, step = _resume(cfg, context, run)
    network = DistributedDataParallel(run.model, device_ids=[context.device.index]
                                      if context.device.type == "cuda" else None) \
        if context.distributed else run.model
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.SOLVER.LABEL_SMOOTHING)

    summary = {"steps": step, "replaced_clips": 0, "val": None}
    for epoch in range(start_epoch, cfg.SOLVER.MAX_EPOCH):
        step, replaced = _train_epoch(cfg, context, run, network, criterion, epoch, start_batch, step, progress)
        start_batch = 0
        replaced = int(all_reduce_sum(context, torch.tensor(replaced)))
        summary["replaced_clips"] += replaced
        run.log.write(event="epoch", epoch=epoch, step=step, replaced_clips=replaced)
        _checkpoint(cfg, context, run, epoch + 1, 0, step)
        if run.val_set is not None and (epoch + 1) % cfg.TRAIN.EVAL_PERIOD == 0:
            summary["val"] = _validate(cfg, context, run.model, run.val_set, run.amp_dtype, progress)
            if context.is_main:
                run.log.write(event="val", epoch=epoch, step=step,
                              **{k: v for k, v in summary["val"].items() if k != "per_video"})
    summary["steps"] = step
    if summary["val"] is not None:
        summary["val"] = {k: v for k, v in summary["val"].items() if k != "per_video"}
    return summary


def _prepare(cfg: CfgNode, context: DistContext) -> _Run:
    """Everything that can be wrong is found before any work: the output folder, the model and
    its pretrained weights, readable training videos, class counts, batch arithmetic."""
    check_output_dir(cfg.OUTPUT_DIR)
    seed_everything(cfg.SEED)
    model = build_model_from_cfg(cfg)
    pretrained = load_pretrained(model, cfg)
    train_set = build_dataset(cfg, "train")
    require_readable_video(train_set)
    # Without DATA.CLASS_LIST the validation file takes the training file's class indices.
    val_set = build_dataset(cfg, "val", class_list=train_set.classes or None) if cfg.TRAIN.EVAL_PERIOD > 0 else None
    if len(train_set.classes) > cfg.MODEL.NUM_CLASSES:
        raise ValueError(f"the training annotations have {len(train_set.classes)} classes but "
                         f"MODEL.NUM_CLASSES is {cfg.MODEL.NUM_CLASSES}")
    accumulate = accumulation_steps(cfg, context.world_size)
    sampler = EpochSampler(len(train_set), context, cfg.TRAIN.BATCH_SIZE, shuffle=True, seed=cfg.SEED,
                           batches_multiple=accumulate)
    batches_per_epoch = sampler.batches_per_epoch()
    if batches_per_epoch == 0:
        raise ValueError(f"{len(train_set)} training clips do not fill one optimizer step of "
                         f"{cfg.TRAIN.BATCH_SIZE} x {context.world_size} processes x {accumulate} accumulation")
    train_data = data_fingerprint(train_set.records, train_set.classes)
    resume_from, resume_state = _checkpoint_to_resume(cfg, context, train_data)
    if context.is_main:
        with naming_the_path(os.path.join(cfg.OUTPUT_DIR, "config.yaml")):
            save_config(cfg, os.path.join(cfg.OUTPUT_DIR, "config.yaml"))
    log = JsonlLog(os.path.join(cfg.OUTPUT_DIR, "log.jsonl"), context.is_main)
    return _Run(model=model, pretrained=pretrained, train_set=train_set, val_set=val_set, sampler=sampler,
                accumulate=accumulate, batches_per_epoch=batches_per_epoch, log=log, train_data=train_data,
                resume_from=resume_from, resume_state=resume_state)


def _build_optimization(cfg: CfgNode, context: DistContext, run: _Run) -> None:
    """The model on its device, the optimizer, the per-step schedule and the precision."""
    steps_per_epoch = run.batches_per_epoch // run.accumulate
    run.model.to(context.device)
    run.optimizer = build_optimizer(run.model, cfg.SOLVER.BASE_LR, cfg.SOLVER.MOMENTUM, cfg.SOLVER.WEIGHT_DECAY,
                                    cfg.SOLVER.NESTEROV, cfg.SOLVER.ZERO_WD_NORM_BIAS_EMBED, cfg.SOLVER.OPTIMIZER)
    total_steps = cfg.SOLVER.MAX_EPOCH * steps_per_epoch
    run.scheduler = build_scheduler(run.optimizer, total_steps, round(cfg.SOLVER.WARMUP_EPOCHS * steps_per_epoch),
                                    cfg.SOLVER.WARMUP_START_LR / cfg.SOLVER.BASE_LR if cfg.SOLVER.BASE_LR else 0.0,
                                    cfg.SOLVER.COSINE_END_LR_RATIO)
    run.amp_dtype = autocast_dtype(cfg, context.device)
    run.scaler = torch.amp.GradScaler("cuda") if run.amp_dtype == torch.float16 else None


def _resume(cfg: CfgNode, context: DistContext, run: _Run) -> Tuple[int, int, int]:
    """Resume from the checkpoint `_checkpoint_to_resume` chose: (epoch, batches done in it, steps),
    said on the console."""
    if not run.resume_from:
        if run.pretrained is not None:
            run.log.write(event="pretrained", checkpoint=cfg.MODEL.PRETRAINED, report=str(run.pretrained))
        return 0, 0, 0
    position = load_training_checkpoint(run.resume_from, run.model, optimizer=run.optimizer,
                                        scheduler=run.scheduler, scaler=run.scaler, state=run.resume_state)
    run.resume_state = None
    epoch, batch, step = position["epoch"], position["batches_done"], position["step"]
    run.log.write(event="resume", checkpoint=run.resume_from, epoch=epoch, batches_done=batch, step=step)
    total_steps = cfg.SOLVER.MAX_EPOCH * (run.batches_per_epoch // run.accumulate)
    if epoch >= cfg.SOLVER.MAX_EPOCH:
        where = f"the end of its {cfg.SOLVER.MAX_EPOCH} epochs: nothing left to train"
    elif batch == 0:
        where = f"the start of epoch {epoch + 1} of {cfg.SOLVER.MAX_EPOCH}"
    else:
        where = f"epoch {epoch + 1} of {cfg.SOLVER.MAX_EPOCH}, after batch {batch} of {run.batches_per_epoch}"
    say(context, f"resumed from {run.resume_from} at {where} (optimizer step {step} of {total_steps})")
    return epoch, batch, step


def _checkpoint_to_resume(cfg: CfgNode, context: DistContext, train_data: dict):
    """(path, contents) of the newest readable checkpoint of OUTPUT_DIR, (None, None) for a new
    run. Raises ValueError when the checkpoint belongs to another run than ``cfg`` describes,
    or when checkpoints exist but none can be read."""
    if not cfg.TRAIN.AUTO_RESUME:
        return None, None
    path, state, skipped = newest_readable_checkpoint(cfg.OUTPUT_DIR)
    if skipped and path is None:
        raise ValueError(f"none of the {len(skipped)} checkpoints in {cfg.OUTPUT_DIR} can be read (the newest: "
                         f"{skipped[0][1]}); delete them to start the run over, or use another OUTPUT_DIR")
    for unreadable, reason in skipped:
        say(context, f"warning: skipping the unreadable checkpoint {unreadable} ({reason}); resuming from {path}, "
                     f"the newest readable one")
    if path is None:
        return None, None
    differences = resume_differences(state, cfg, context.world_size, train_data)
    if differences:
        raise ValueError(describe_resume_differences(path, differences))
    return path, state


def _train_epoch(cfg: CfgNode, context: DistContext, run: _Run, network: torch.nn.Module, criterion, epoch: int,
                 start_batch: int, step: int, progress: bool) -> Tuple[int, int]:
    """One epoch (from batch ``start_batch``) of accumulated steps with the mid-epoch
    checkpoints; returns (optimizer steps so far, training clips replaced in this epoch)."""
    run.sampler.set_epoch(epoch, start_batch)
    if hasattr(run.train_set, "set_epoch"):
        run.train_set.set_epoch(epoch)
    loader = build_loader(cfg, run.train_set, run.sampler, cfg.TRAIN.BATCH_SIZE)
    run.model.train()
    device = context.device
    autocast = (lambda: torch.autocast(device.type, dtype=run.amp_dtype)) if run.amp_dtype else nullcontext
    bar = progress_bar(loader, desc=f"epoch {epoch + 1}/{cfg.SOLVER.MAX_EPOCH}", initial=start_batch,
                       total=run.batches_per_epoch, enabled=progress and context.is_main, unit="batch", leave=False)
    step_loss, replaced = 0.0, 0
    for batch_index, batch in enumerate(bar, start=start_batch):
        video = batch["video"].to(device, non_blocking=True)
        label = batch["label"].to(device, non_blocking=True)
        replaced += int((batch["replaced_from"] >= 0).sum())
        last_micro = (batch_index + 1) % run.accumulate == 0
        sync = nullcontext() if last_micro or not context.distributed else network.no_sync()
        with sync:
            with autocast():
                loss = criterion(network(video), label) / run.accumulate
            (run.scaler.scale(loss) if run.scaler else loss).backward()
        step_loss += loss.item()
        if not last_micro:
            continue
        lr = _optimizer_step(cfg, run)
        step += 1
        if not math.isfinite(step_loss):
            raise FloatingPointError(f"the training loss became {step_loss} at step {step} (epoch {epoch + 1})")
        bar.set_postfix(loss=f"{step_loss:.4f}", lr=f"{lr:.3g}")
        if step % max(1, cfg.TRAIN.LOG_PERIOD) == 0 or batch_index + 1 == run.batches_per_epoch:
            run.log.write(event="train", epoch=epoch, batch=batch_index + 1, step=step, loss=step_loss, lr=lr)
        step_loss = 0.0
        if (cfg.TRAIN.CHECKPOINT_ITERS > 0 and step % cfg.TRAIN.CHECKPOINT_ITERS == 0
                and batch_index + 1 < run.batches_per_epoch):
            _checkpoint(cfg, context, run, epoch, batch_index + 1, step)
    bar.close()
    return step, replaced


def _optimizer_step(cfg: CfgNode, run: _Run) -> float:
    """Unscale, clip, step, zero the gradients and advance the schedule; returns the step's lr."""
    if run.scaler:
        run.scaler.unscale_(run.optimizer)
    if cfg.SOLVER.CLIP_GRAD_NORM > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.SOLVER.CLIP_GRAD_NORM)
    lr = run.optimizer.param_groups[0]["lr"]
    if run.scaler:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    return lr


def _checkpoint(cfg: CfgNode, context: DistContext, run: _Run, epoch: int, batches_done: int, step: int) -> None:
    if context.is_main:
        path = save_training_checkpoint(cfg.OUTPUT_DIR, run.model, cfg, optimizer=run.optimizer,
                                        scheduler=run.scheduler, scaler=run.scaler, epoch=epoch,
                                        batches_done=batches_done, step=step, keep_recent=cfg.TRAIN.KEEP_CHECKPOINTS,
                                        world_size=context.world_size, train_data=run.train_data)
        run.log.write(event="checkpoint", path=path, epoch=epoch, batches_done=batches_done, step=step)
    barrier(context)


def _validate(cfg, context, model, val_set, amp_dtype, progress) -> Optional[dict]:
    sampler = EpochSampler(len(val_set), context, cfg.TEST.BATCH_SIZE, shuffle=False)
    loader = build_loader(cfg, val_set, sampler, cfg.TEST.BATCH_SIZE)
    result = evaluate(model, loader, context, ensemble_method=cfg.TEST.ENSEMBLE_METHOD,
                      views_per_video=val_set.num_views, labels=val_set.labels, progress=progress,
                      autocast_dtype=amp_dtype, description="val")
    model.train()
    return result
