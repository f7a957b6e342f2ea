"""Running the ``train`` and ``compress`` commands under ``torchrun``.

``torchrun --nproc_per_node N -m hscc_core train ...`` starts N processes with the
environment variables of PyTorch's launcher (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). :func:`process_group_from_env`
joins them into one process group (Gloo on CPUs, NCCL on GPUs) and gives each process
its share of the CPU cores; :mod:`hscc_core.distributed` does the collective arithmetic.
Started any other way, the commands run in one process as before.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import torch
import torch.distributed as dist

from hscc_core.distributed import collective_device, is_distributed, rank, world_size

__all__ = ["broadcast_float", "is_distributed", "launched_by_torchrun", "process_group_from_env", "rank",
           "shard", "world_size"]

T = TypeVar("T")


def launched_by_torchrun() -> bool:
    """Whether the environment describes a group of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextmanager
def process_group_from_env(device: str = "cpu", threads: int | None = None) -> Iterator[torch.device]:
    """Join the process group ``torchrun`` describes, for the duration of the block.

    Args:
        device: ``"cpu"`` (Gloo) or ``"cuda"`` (NCCL; each process takes the GPU of its
            local rank).
        threads: torch threads per process; default: in one process torch's own (all
            cores), under torchrun the machine's cores shared equally among the processes on
            it (N processes of all cores each would fight).

    Yields:
        The device this process computes on (``cuda:<local rank>`` for GPUs).
    """
    if not launched_by_torchrun() or dist.is_initialized():
        if threads:
            torch.set_num_threads(threads)
        yield torch.device(device)
        return
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(local_rank)
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // local_world))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        yield torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    finally:
        dist.destroy_process_group()


def broadcast_float(value: float, src: int = 0) -> float:
    """``value`` as rank ``src`` has it (itself in a single process)."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=collective_device())
    dist.broadcast(t, src=src)
    return float(t.item())


def shard(items: Sequence[T]) -> list[T]:
    """This process's share of ``items`` (every ``world_size``-th, from its rank)."""
    return list(items[rank()::world_size()])
