"""Training on several processes with ``torch.distributed`` (``torchrun``), CPU (gloo) or GPUs (NCCL).

``torchrun --nproc_per_node N -m hmmnlab train ...`` starts N copies of the training loop. Each
draws the same batch of clips from the same random generator (the runs stay in step, and a resume
restores one generator state), trains on its share ``clips[rank::world_size]``, and the gradients
are summed over the processes (:func:`all_reduce_gradients`) before the optimizer step, so every
process applies the same update: the update a single process would make on the whole batch. Only
rank 0 validates, logs and writes checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that logs, validates and saves."""
        return self.rank == 0


def setup(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE``,
    ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``); a single process without it. On CUDA each
    process takes the GPU of its local rank."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size()), device


def all_reduce_gradients(parameters: list[torch.nn.Parameter], world: World) -> None:
    """Sum every gradient over the processes (each process's loss is its share of the batch
    mean, so the sum is the batch mean's gradient). One flat buffer, one collective."""
    if world.size <= 1:
        return
    for p in parameters:  # the same buffer layout on every process
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def all_reduce_sum(value: float, world: World, device: torch.device) -> float:
    if world.size <= 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item())


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()
