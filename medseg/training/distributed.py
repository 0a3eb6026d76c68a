"""DistributedDataParallel set-up for runs started with ``torchrun``; single-process otherwise.

torchrun (``torchrun --nproc_per_node N -m medseg train ...``) starts N processes and
describes the group to each; ``torch.distributed.is_torchelastic_launched()`` tells them
apart from a plain run. CPU runs use the gloo backend, CUDA runs NCCL with one GPU per
process. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the group.

    Attributes:
        rank: this process (0 writes files and validates).
        world_size: processes in the group (1 = not distributed).
        device: the device this process trains on.
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on the process that writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every process (no-op when alone)."""
        if self.distributed:
            dist.barrier()

    def any_true(self, flag: bool) -> bool:
        """True when ``flag`` is true on any process (so all stop together)."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every process."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.broadcast(value, src=0)
        return bool(value.item() > 0)


def launcher_rank() -> int:
    """This process's rank before the group is joined: torchrun's ``RANK``, 0 for a plain run."""
    if not dist.is_torchelastic_launched():
        return 0
    return int(os.environ.get("RANK", "0"))  # torchrun's documented way to tell each process its rank


def start(device_name: str) -> DistContext:
    """Join the torchrun group when launched by torchrun; pick the device.

    Args:
        device_name: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    """
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if not dist.is_torchelastic_launched():
        return DistContext(device=torch.device("cuda" if use_cuda else "cpu"))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if use_cuda:
        # LOCAL_RANK is torchrun's documented way to tell each process its GPU.
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    return DistContext(rank=rank, world_size=world, device=device)


def stop(context: DistContext) -> None:
    """Leave the group."""
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()
