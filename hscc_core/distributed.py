"""Calibration split across processes: PyTorch's own process groups, nothing else.

HSCC's calibration statistics are sums (pixel counts, ``Σ y``, ``Σ y yᵀ`` and, for the
sequential refit, the joint sums; :mod:`hscc_core.stats`), so a calibration set can be
split across processes and the per-process sums added: every process then holds exactly
the statistics of the whole set and fits the same factors. Start the processes with
``torchrun`` (or any launcher that calls :func:`torch.distributed.init_process_group`);
give each process its own share of the calibration batches. Without an initialised
process group of more than one process every function here is a no-op, so single-process
code pays nothing.

With the NCCL backend (GPUs) the sums travel through the process's current CUDA device;
with Gloo (CPUs) they stay in float64 on the CPU.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["all_reduce_sum_", "broadcast_module_", "collective_device", "is_distributed", "rank", "world_size"]


def is_distributed() -> bool:
    """Whether this process is one of several in an initialised default process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Processes in the default group (1 without one)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank in the default group (0 without one)."""
    return dist.get_rank() if is_distributed() else 0


def collective_device() -> torch.device:
    """Where tensors must be for the default group's collectives: the current CUDA device
    under NCCL, the CPU under Gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum_(tensors: Iterable[torch.Tensor | None]) -> None:
    """Replace each tensor (``None`` skipped) by its sum over all processes, in place.

    Every process must call this with tensors of the same shapes, in the same order.
    """
    if not is_distributed():
        return
    device = collective_device()
    for t in tensors:
        if t is None:
            continue
        if t.device == device:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        else:
            moved = t.to(device)
            dist.all_reduce(moved, op=dist.ReduceOp.SUM)
            t.copy_(moved.to(t.device))


@torch.no_grad()
def broadcast_module_(module: nn.Module, src: int = 0) -> None:
    """Copy every parameter and buffer of ``module`` from rank ``src`` to all processes.

    The factors are computed from identical statistics on every process, so they agree
    already; broadcasting them removes any doubt left by a different BLAS on another host.
    """
    if not is_distributed():
        return
    device = collective_device()
    for t in [*module.parameters(), *module.buffers()]:
        moved = t.detach().to(device).contiguous()
        dist.broadcast(moved, src=src)
        t.copy_(moved.to(t.device))
