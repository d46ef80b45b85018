"""Training under torchrun: which process this is (``Distributed``), joining the process group
the environment describes (``setup_distributed``), and the two collectives the training run
needs (``any_rank``, ``gather_counts``). A single process needs no process group: each helper
answers for it alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @staticmethod
    def from_env() -> Distributed:
        if dist.is_available() and dist.is_initialized():
            return Distributed(dist.get_rank(), dist.get_world_size())
        return Distributed()


def setup_distributed(device: str) -> Distributed:
    """Join the process group torchrun describes in the environment; single process otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
        if device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return Distributed.from_env()


def any_rank(flag: bool, world: Distributed) -> bool:
    """Whether ``flag`` holds on any process, so that all of them stop at the same step."""
    if world.world_size == 1:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def gather_counts(count: int, world: Distributed, device: torch.device) -> list[int]:
    """Every process's ``count``, by rank (NCCL gathers on the GPU, gloo on the CPU)."""
    if world.world_size == 1:
        return [count]
    backend_device = device if dist.get_backend() == "nccl" else torch.device("cpu")
    counts = [torch.zeros(1, dtype=torch.long, device=backend_device)
              for _ in range(world.world_size)]
    dist.all_gather(counts, torch.tensor([count], device=backend_device))
    return [int(c.item()) for c in counts]
