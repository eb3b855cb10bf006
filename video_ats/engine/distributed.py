"""Process-group helpers for runs launched with torchrun (gloo on CPU, NCCL on GPU).

A single process without torchrun behaves as rank 0 of a world of 1; nothing else changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: rank, world size, and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is an error."""
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("DEVICE is 'cuda' but no CUDA device is available")
    return torch.device("cuda", local_rank)


def init_distributed(device_preference: str = "auto") -> DistContext:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, ...)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def shutdown(context: DistContext) -> None:
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: DistContext) -> None:
    if context.distributed:
        dist.barrier()


def all_gather_objects(context: DistContext, obj: Any) -> List[Any]:
    """Every rank's ``obj``, in rank order (a list of one without a process group)."""
    if not context.distributed:
        return [obj]
    gathered: List[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def all_reduce_sum(context: DistContext, tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over ranks (a copy; unchanged without a process group)."""
    tensor = tensor.clone()
    if context.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
