"""The runtime backends, by :class:`~hscc_mri.runtimes.base.Runtime`: the one place that
lists them (a new runtime is a new :class:`~hscc_mri.runtimes.backend.Backend` here)."""
from __future__ import annotations

from typing import Mapping

from ..errors import SettingsError
from .backend import Backend
from .base import RUNTIMES, Runtime
from .onnxruntime_backend import ONNXRUNTIME
from .openvino_backend import OPENVINO
from .torch_backend import TORCH

__all__ = ["BACKENDS", "backend", "runtime_label"]

#: Every backend, in :class:`Runtime` order (the order :func:`hscc_mri.runtimes.available` lists).
BACKENDS: Mapping[Runtime, Backend] = {b.runtime: b for b in (TORCH, ONNXRUNTIME, OPENVINO)}


def backend(runtime: str) -> Backend:
    """The backend of ``runtime`` (a :class:`Runtime` or its value).

    Raises:
        SettingsError: no such runtime.
    """
    try:
        return BACKENDS[Runtime(runtime)]
    except ValueError:
        raise SettingsError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}") from None


def runtime_label(runtime: str, precision: str) -> str:
    """How output and the page name a choice, e.g. ``"OpenVINO INT8"`` (an unknown runtime
    by its own name)."""
    found = BACKENDS.get(runtime) if runtime in RUNTIMES else None
    return found.choice_label(precision) if found else f"{runtime} {str(precision).upper()}"
