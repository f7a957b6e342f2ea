"""The one interface every runtime presents: a model that takes and returns torch tensors.

A :class:`CompiledModel` is an ``nn.Module`` without parameters whose ``forward`` hands
the batch to another runtime (ONNX Runtime, OpenVINO) as a float32 NCHW array and
returns its logits as a tensor. So everything written against PyTorch models (the
product's ``predict_tensor``, ``probabilities``, the interleaved timers, the test-set
evaluation) runs any runtime unchanged; :func:`source_model` gives the PyTorch model it
was made from, for what only PyTorch can do (counting FLOPs).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..errors import ProductError

__all__ = ["PRECISIONS", "RUNTIMES", "CompiledModel", "RuntimeUnavailable", "runtime_label", "source_model"]

#: Runtimes a model can run in.
RUNTIMES: tuple[str, ...] = ("torch", "onnxruntime", "openvino")
#: Arithmetic a runtime can be asked for.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")

_RUNTIME_NAMES = {"torch": "PyTorch", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}


class RuntimeUnavailable(ProductError, RuntimeError):
    """A runtime or precision this machine cannot run (not installed, or not native here)."""


def runtime_label(runtime: str, precision: str) -> str:
    """How output and the page name a choice, e.g. ``"OpenVINO INT8"``."""
    return f"{_RUNTIME_NAMES.get(runtime, runtime)} {precision.upper()}"


class CompiledModel(nn.Module):
    """A model compiled for another runtime, callable like the PyTorch model it came from.

    Attributes:
        spec: the source model's :class:`models.ModelSpec` (input contract, classes).
        runtime, precision: what runs it (see :data:`RUNTIMES`, :data:`PRECISIONS`).
        details: what was done to get here (e.g. quantisation settings), JSON-ready.
    """

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], source: nn.Module, runtime: str,
                 precision: str, details: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._run = run
        # Not a submodule: the compiled model owns no PyTorch weights (and is not moved).
        object.__setattr__(self, "_source", source)
        self.spec = getattr(source, "spec", None)
        self.runtime = runtime
        self.precision = precision
        self.details = dict(details or {})

    @property
    def label(self) -> str:
        """E.g. ``"ONNX Runtime FP32"``."""
        return runtime_label(self.runtime, self.precision)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the batch ``x`` (``(N, C, H, W)``) from the compiled runtime."""
        array = np.ascontiguousarray(x.detach().to(torch.float32).cpu().contiguous().numpy())
        return torch.from_numpy(np.asarray(self._run(array), dtype=np.float32))


def source_model(model: nn.Module) -> nn.Module:
    """The PyTorch model a compiled one was made from (``model`` itself otherwise)."""
    return getattr(model, "_source", model)
