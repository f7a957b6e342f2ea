"""Run a test function in two real processes joined by a Gloo process group on loopback."""
from __future__ import annotations

import socket
from typing import Any, Callable

import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, port: int, fn: Callable[..., Any], args: tuple) -> None:
    import torch

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        fn(rank, world, *args)
    finally:
        dist.destroy_process_group()


def run_processes(fn: Callable[..., Any], *args: Any, world: int = 2) -> None:
    """Call ``fn(rank, world, *args)`` in ``world`` spawned processes of one Gloo group;
    raises if any of them fails. ``fn`` must be a module-level function."""
    mp.start_processes(_entry, args=(world, free_port(), fn, args), nprocs=world, join=True, start_method="spawn")
