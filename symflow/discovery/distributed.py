"""Multi-process training with ``torch.distributed`` under ``torchrun`` (DDP).

``torchrun --nproc_per_node=N $(which symflow) train node ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`setup` then joins the process group (``nccl`` on CUDA, ``gloo`` on CPU), and
the training loop wraps the objective in ``DistributedDataParallel`` and shards trajectories with a
``DistributedSampler``. Without those variables everything runs in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup(device: str | None = None) -> DistInfo:
    """Join the process group when launched by torchrun; choose the device for this rank."""
    if not launched_by_torchrun():
        dev = torch.device(device) if device else torch.device("cpu")
        return DistInfo(device=dev)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = (device or "").startswith("cuda") and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_mean(value: float, info: DistInfo) -> float:
    """Average a scalar over ranks (for logged metrics).

    The buffer lives on this rank's device: NCCL reduces CUDA tensors only (a CPU tensor there fails
    with "No backend type associated with device type cpu"), gloo reduces CPU tensors.
    """
    if not info.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return float(t.item()) / info.world_size
