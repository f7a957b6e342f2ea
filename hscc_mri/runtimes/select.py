"""Choosing and building a runtime: one call for every runtime x precision.

``auto`` resolves to the fastest choice known for this CPU that keeps the model's answers
(see :data:`hscc_mri.recipes.DEFAULT_RUNTIME`): OpenVINO, in bf16 where the CPU has it
natively and float32 elsewhere; PyTorch when OpenVINO is not installed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ..errors import SettingsError
from .base import PRECISIONS, RUNTIMES, Precision, Runtime, RuntimeUnavailable
from .cpu import cpu_summary, has_native_bf16
from .registry import BACKENDS, backend, runtime_label

__all__ = ["Choice", "available", "compile_model", "resolve_choice"]


@dataclass(frozen=True)
class Choice:
    """A runtime and precision, with why it was chosen (for output and the page).
    :func:`resolve_choice` gives :class:`Runtime` / :class:`Precision` members, which are
    strings (equal to ``"openvino"``, ``"int8"``...)."""

    runtime: str
    precision: str
    reason: str = ""

    @property
    def label(self) -> str:
        return runtime_label(self.runtime, self.precision)


def available() -> list[tuple[str, str]]:
    """Every ``(runtime, precision)`` this machine can run (see :meth:`Backend.runs`:
    installed, and bf16 only where native)."""
    return [(b.runtime, p) for b in BACKENDS.values() for p in Precision if b.runs(p)]


def resolve_choice(runtime: str = "auto", precision: str = "auto", default_precision: str | None = None) -> Choice:
    """Turn ``auto`` into a concrete choice for this machine and check that it can run.

    Args:
        runtime: one of :data:`RUNTIMES` or ``auto`` (OpenVINO if installed, else PyTorch).
        precision: one of :data:`PRECISIONS` or ``auto``: ``default_precision`` when given
            and runnable, else bf16 where native (OpenVINO), else fp32.
        default_precision: the product's measured choice for this model (e.g. int8).

    Raises:
        RuntimeUnavailable: the runtime is not installed or cannot run the precision here.
        SettingsError: an unknown runtime or precision.
    """
    if runtime != "auto" and runtime not in RUNTIMES:
        raise SettingsError(f"runtime must be auto or one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if precision != "auto" and precision not in PRECISIONS:
        raise SettingsError(f"precision must be auto or one of {', '.join(PRECISIONS)}, got {precision!r}")
    reasons = []
    if runtime == "auto":
        runtime = Runtime.OPENVINO if BACKENDS[Runtime.OPENVINO].installed() else Runtime.TORCH
        reasons.append("OpenVINO: the fastest CPU runtime measured here" if runtime == Runtime.OPENVINO
                       else "PyTorch (OpenVINO is not installed)")
    elif not backend(runtime).installed():
        raise RuntimeUnavailable(f"{runtime} is not installed (pip install -r requirements.txt)")
    runtime = Runtime(runtime)
    runnable = {p for r, p in available() if r == runtime}
    if precision == "auto":
        if default_precision in runnable:
            precision = default_precision
            reasons.append(f"{precision}: the measured default for this model")
        elif "bf16" in runnable:
            precision = "bf16"
            reasons.append("bf16: native on this CPU")
        else:
            precision = "fp32"
            reasons.append(f"fp32 (this CPU: {cpu_summary()})")
    elif precision not in runnable:
        if precision == "bf16" and not has_native_bf16():
            raise RuntimeUnavailable(f"bf16 needs a CPU with native bfloat16 (AVX512-BF16 or AMX); this one has "
                                     f"{cpu_summary()}. Use --precision fp32 or int8")
        raise RuntimeUnavailable(f"{runtime} cannot run {precision} here; it can run: {', '.join(sorted(runnable))}")
    return Choice(runtime, Precision(precision), "; ".join(reasons))


def compile_model(model: nn.Module, runtime: str = "torch", precision: str = "fp32",
                  calibration: Sequence[torch.Tensor] | None = None, keep_fp32: Sequence[str] = (),
                  threads: int | None = None, int8_options: Mapping[str, Any] | None = None,
                  quantized: Any = None) -> nn.Module:
    """``model`` ready to run in ``runtime`` at ``precision``: called like the PyTorch model
    (a batch tensor in, logits out) and carrying its ``spec``, ``runtime``, ``precision``,
    ``label`` and ``details``.

    Args:
        model: the PyTorch model, dense or compressed (left unchanged but for
            :func:`hscc_core.optimize_for_inference` with ``torch``).
        runtime, precision: a concrete choice (see :func:`resolve_choice` for ``auto``).
        calibration: input batches for int8 (activation ranges).
        keep_fp32: layer groups left unquantised in int8.
        threads: runtime threads (default: ``torch.get_num_threads()``).
        int8_options: quantiser settings for int8, keyword arguments of the runtime's
            compile (OpenVINO: ``overflow_fix``; ONNX Runtime: ``reduce_range``); an int8
            plan's ``options`` (:class:`~hscc_mri.runtimes.quantize.Int8Plan`).
        quantized: for int8, a graph quantised before (an ``openvino.Model`` read from
            IR, or ONNX QDQ bytes) to compile instead of quantising again (no calibration
            needed); the result's ``openvino_graph`` / ``onnx_graph`` is what to keep.

    Raises:
        RuntimeUnavailable: the runtime or precision cannot run here (message says why).
        SettingsError: an option the runtime does not have.
    """
    found = backend(runtime)
    opts = dict(int8_options or {}) if precision == Precision.INT8 else {}
    found.check_int8_options(opts)
    return found.compile(model, precision, calibration, keep_fp32, threads, quantized=quantized, **opts)
