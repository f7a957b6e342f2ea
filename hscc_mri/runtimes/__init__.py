"""Inference runtimes behind one interface: PyTorch eager, ONNX Runtime and OpenVINO, in
fp32, bf16 (where the CPU has it natively) and int8.

Each runtime is a :class:`~hscc_mri.runtimes.backend.Backend` (:data:`BACKENDS`) that says
what it can run and how; :func:`decide` is the one deployment policy (which runtime and
precision, why, and what to fall back to).

>>> from hscc_mri.runtimes import Request, compile_model, decide
>>> choice = decide(Request("auto", "auto")).choice    # doctest: +SKIP
>>> fast = compile_model(model, choice.runtime, choice.precision)  # doctest: +SKIP
>>> logits = fast(batch)                                # a torch tensor in, out
"""
from .backend import Backend
from .base import PRECISIONS, RUNTIMES, CompiledModel, Precision, Runtime, RuntimeUnavailable, source_model
from .cpu import CpuKind, cpu_flags, cpu_summary, has_native_bf16, has_vnni
from .export import export_onnx, layer_groups, max_probability_gap, node_group, onnx_bytes
from .policy import Decision, Fallback, KnownPlans, Request, decide
from .registry import BACKENDS, backend, runtime_label
from .select import Choice, available, compile_model, resolve_choice

__all__ = ["BACKENDS", "PRECISIONS", "RUNTIMES", "Backend", "Choice", "CompiledModel", "CpuKind", "Decision",
           "Fallback", "KnownPlans", "Precision", "Request", "Runtime", "RuntimeUnavailable", "available", "backend",
           "compile_model", "cpu_flags", "cpu_summary", "decide", "export_onnx", "has_native_bf16", "has_vnni",
           "layer_groups", "max_probability_gap", "node_group", "onnx_bytes", "resolve_choice", "runtime_label",
           "source_model"]
