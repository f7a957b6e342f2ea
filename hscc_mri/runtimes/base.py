"""The one interface every runtime presents: a model that takes and returns torch tensors.

A :class:`CompiledModel` is an ``nn.Module`` without parameters whose ``forward`` hands
the batch to another runtime (ONNX Runtime, OpenVINO) as a float32 NCHW array and
returns its logits as a tensor. So everything written against PyTorch models (the
product's ``predict_tensor``, ``probabilities``, the interleaved timers, the test-set
evaluation) runs any runtime unchanged; :func:`source_model` gives the PyTorch model it
was made from, for what only PyTorch can do (counting FLOPs).
"""
from __future__ import annotations

import enum
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..errors import ProductError

__all__ = ["PRECISIONS", "RUNTIMES", "CompiledModel", "Precision", "Runtime", "RuntimeUnavailable", "source_model"]


# StrEnum, not ``(str, Enum)``: on Python 3.11+ a plain str mix-in formats as
# "Runtime.OPENVINO" in f-strings, and these values go into file names, messages and JSON.
class Runtime(enum.StrEnum):
    """Where a model runs (the value is what the CLI, JSON, manifests and file names say)."""

    TORCH = "torch"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"


class Precision(enum.StrEnum):
    """The arithmetic a runtime runs a model in (inference; training's is
    :data:`hscc_mri.recipes.TRAIN_PRECISIONS`)."""

    FP32 = "fp32"
    BF16 = "bf16"
    INT8 = "int8"


#: Runtimes a model can run in (the values of :class:`Runtime`, e.g. for argparse choices).
RUNTIMES: tuple[str, ...] = tuple(r.value for r in Runtime)
#: Arithmetic a runtime can be asked for (the values of :class:`Precision`).
PRECISIONS: tuple[str, ...] = tuple(p.value for p in Precision)


class RuntimeUnavailable(ProductError, RuntimeError):
    """A runtime or precision this machine cannot run (not installed, or not native here)."""


class CompiledModel(nn.Module):
    """A model compiled for another runtime, callable like the PyTorch model it came from.

    Attributes:
        spec: the source model's :class:`models.ModelSpec` (input contract, classes).
        runtime, precision: what runs it (see :data:`RUNTIMES`, :data:`PRECISIONS`).
        details: what was done to get here (e.g. quantisation settings), JSON-ready.
        label: how output and the page name it, e.g. ``"ONNX Runtime FP32"`` (given by
            the backend that compiled it, which declares its runtime's name).
    """

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], source: nn.Module, runtime: str,
                 precision: str, details: dict[str, Any] | None = None, label: str = "") -> None:
        super().__init__()
        self._run = run
        # Not a submodule: the compiled model owns no PyTorch weights (and is not moved).
        object.__setattr__(self, "_source", source)
        self.spec = getattr(source, "spec", None)
        self.runtime = runtime
        self.precision = precision
        self.details = dict(details or {})
        self.label = label or f"{runtime} {precision.upper()}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the batch ``x`` (``(N, C, H, W)``) from the compiled runtime."""
        array = np.ascontiguousarray(x.detach().to(torch.float32).cpu().contiguous().numpy())
        return torch.from_numpy(np.asarray(self._run(array), dtype=np.float32))


def source_model(model: nn.Module) -> nn.Module:
    """The PyTorch model a compiled one was made from (``model`` itself otherwise)."""
    return getattr(model, "_source", model)
