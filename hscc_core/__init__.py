"""HSCC: hierarchical spatio-channel clustering compression for CNN classifiers.

A compression library for any CNN built from ``Conv2d``/``Linear`` layers: it imports
the standard library, torch, numpy, scipy, safetensors and tqdm only — no model zoo, no
file formats, no UI, no command line (those live in the product layer, ``hscc_mri``).

    >>> import hscc_core
    >>> config = hscc_core.CompressionConfig(method=hscc_core.Method.HSCC, budget=6)
    >>> compressed, report = hscc_core.compression(model, calibration_batches, config)  # doctest: +SKIP
    >>> hscc_core.save(compressed, "model.safetensors", base="my-net")  # doctest: +SKIP
    >>> hscc_core.load("model.safetensors", build_base=lambda name, spec: make_net())  # doctest: +SKIP

Errors raised on purpose derive from :class:`HSCCError`.
"""
from __future__ import annotations

from .artifacts import atomic_write, load, load_metadata, report_path, save, save_with_report
from .bench import BenchResult, LatencyStats, ModelBench, bench_pair
from .compression import METHOD_RUNNERS, compress
from .config import METHODS, Allocation, CompressionConfig, CompressionReport, Method
from .errors import ArtifactError, CompressionError, HSCCError
from .finetune import FinetuneConfig, distill, distillation_loss
from .flops import count_flops, count_params, flops_by_module, input_shape_of
from .graph import replace_submodule, target_layers
from .metrics import ClassificationReport, accuracy, classification_report, confusion_matrix, fidelity, macro_f1
from .modules import MODULE_TYPES, register_module_type
from .timing import optimize_for_inference, time_forward, time_forward_interleaved

__all__ = [
    "Allocation", "ArtifactError", "BenchResult", "ClassificationReport", "CompressionConfig", "CompressionError",
    "CompressionReport", "FinetuneConfig", "HSCCError", "LatencyStats", "METHODS", "METHOD_RUNNERS",
    "MODULE_TYPES", "Method", "ModelBench", "accuracy", "atomic_write", "bench_pair", "classification_report",
    "compress", "confusion_matrix", "count_flops", "count_params", "distill", "distillation_loss", "fidelity",
    "flops_by_module", "input_shape_of", "load", "load_metadata", "macro_f1", "optimize_for_inference",
    "register_module_type", "replace_submodule", "report_path", "save", "save_with_report", "target_layers",
    "time_forward", "time_forward_interleaved",
]
