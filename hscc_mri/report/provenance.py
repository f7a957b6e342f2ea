"""Where and how a report was made: seeds, package versions, CPU, threads, wall times."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

__all__ = ["PartTimer", "environment"]

_PACKAGES = ("torch", "torchvision", "numpy", "scipy", "albumentations", "opencv-python-headless", "matplotlib",
             "safetensors", "tqdm", "pillow")


class PartTimer:
    """Wall time of each named part of a run, and of the whole run.

    >>> timer = PartTimer()
    >>> with timer.part("demo"):
    ...     pass
    >>> sorted(timer.seconds)
    ['demo']
    """

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.seconds: dict[str, float] = {}

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        """Time the ``with`` block under ``name`` (times of repeated names add up)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    @property
    def total(self) -> float:
        """Seconds since the timer was made."""
        return time.perf_counter() - self.start


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(dirty)}


def _blas() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{k: info.get(k) for k in ("internal_api", "num_threads", "version")} for info in threadpool_info()]


def _program() -> str:
    name = Path(sys.argv[0]).name
    if name == "__main__.py":
        return f"python -m {Path(sys.argv[0]).parent.name}"
    return "hscc-mri" if name in ("", "-c") else name


def environment() -> dict[str, Any]:
    """The machine and software a report ran on (JSON-able)."""
    import torch

    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "torch_threads": torch.get_num_threads(),
        "blas": _blas(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "packages": versions,
        "git": _git(),
        "command": " ".join([_program(), *sys.argv[1:]]),
    }
