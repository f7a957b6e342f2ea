"""PyTorch eager: float32 in ``channels_last`` (the training and calibration runtime), and
bfloat16 where the CPU computes it natively."""
from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import nn

from hscc_core import optimize_for_inference

from .backend import Backend
from .base import Precision, Runtime, RuntimeUnavailable
from .cpu import cpu_summary, has_native_bf16

__all__ = ["TORCH", "TorchBackend", "TorchModel", "compile_torch"]


class TorchModel(nn.Module):
    """A PyTorch model prepared for inference in one precision (same call as the source).

    Attributes:
        model: the prepared module (eval, channels-last; bf16 weights for ``bf16``).
        spec, runtime, precision, details: as :class:`hscc_mri.runtimes.CompiledModel`.
    """

    runtime = Runtime.TORCH

    def __init__(self, model: nn.Module, source: nn.Module, precision: str) -> None:
        super().__init__()
        self.model = model
        object.__setattr__(self, "_source", source)
        self.spec = getattr(source, "spec", None)
        self.precision = precision
        self.details: dict[str, Any] = {"memory_format": "channels_last"}
        self._dtype = torch.bfloat16 if precision == "bf16" else torch.float32

    @property
    def label(self) -> str:
        return TORCH.choice_label(self.precision)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self._dtype)).float()


def compile_torch(model: nn.Module, precision: str) -> TorchModel:
    """``model`` for PyTorch eager in ``precision`` (``fp32`` shares its weights; ``bf16``
    is a bfloat16 copy).

    Raises:
        RuntimeUnavailable: ``int8`` (use ONNX Runtime or OpenVINO), or ``bf16`` on a CPU
            without native bfloat16, where PyTorch would emulate it slower than float32.
    """
    if precision == "fp32":
        return TorchModel(optimize_for_inference(model), model, precision)
    if precision == "bf16":
        if not has_native_bf16():
            raise RuntimeUnavailable(f"bf16 needs a CPU with native bfloat16 (AVX512-BF16 or AMX); this one has "
                                     f"{cpu_summary()}, so PyTorch would emulate it, slower than fp32")
        return TorchModel(optimize_for_inference(copy.deepcopy(model).to(torch.bfloat16)), model, precision)
    raise RuntimeUnavailable("PyTorch eager has no int8 path here; use --runtime openvino or onnxruntime")


class TorchBackend(Backend):
    """PyTorch eager: fp32, and bf16 where native; no int8 path (nor quantised graphs)."""

    runtime = Runtime.TORCH
    label = "PyTorch"
    package = "torch"
    precisions = (Precision.FP32, Precision.BF16)

    def compile(self, model: nn.Module, precision: str, calibration: Sequence[torch.Tensor] | None = None,
                keep_fp32: Sequence[str] = (), threads: int | None = None, quantized: Any = None,
                **int8_options: Any) -> nn.Module:
        return compile_torch(model, precision)


#: The PyTorch backend (see :mod:`hscc_mri.runtimes.registry`).
TORCH = TorchBackend()
