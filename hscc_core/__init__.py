"""HSCC: hierarchical spatio-channel clustering compression for CNN classifiers.

A compression library for any CNN built from ``Conv2d``/``Linear`` layers: it imports
the standard library, torch, numpy, scipy, safetensors and tqdm only — no model zoo, no
file formats, no UI, no command line (those live in the product layer, ``hscc_mri``).

    >>> import hscc_core
    >>> config = hscc_core.CompressionConfig(method=hscc_core.Method.HSCC, budget=6)
    >>> compressed, report = hscc_core.compress(model, calibration_batches, config)  # doctest: +SKIP
    >>> hscc_core.save(compressed, "model.safetensors", base="my-net")  # doctest: +SKIP
    >>> hscc_core.load("model.safetensors", build_base=lambda name, spec: make_net())  # doctest: +SKIP

Errors raised on purpose derive from :class:`HSCCError`.
"""
from __future__ import annotations

from .artifacts import atomic_write, file_sha256, load, load_metadata, report_path, save, save_with_report
from .bench import BenchResult, LatencyStats, ModelBench, bench_pair
from .compression import METHOD_RUNNERS, CalibrationStatistics, calibration_statistics, compress
from .config import METHODS, Allocation, CompressionConfig, CompressionReport, Method
from .errors import ArtifactError, CompressionError, ConfigError, DistillationError, HSCCError
from .finetune import FinetuneConfig, distill, distillation_loss
from .flops import count_flops, count_params, flops_by_module, input_shape_of
from .graph import replace_submodule, target_layers
from .matching import (MatchingConfig, MatchingResult, best_weights, checkpoint_summary, function_matching,
                       load_checkpoint, module_teacher)
from .metrics import (ClassificationReport, accuracy, bootstrap_indices, classification_report, confusion_matrix,
                      fidelity, macro_f1, paired_difference, pareto_front, replicate_se)
from .modules import MODULE_TYPES, register_module_type
from .safety_net import SafetyNetChoice, choose_safety_net, choose_threshold
from .target import TargetResult, TargetTrial, compress_to_target
from .timing import optimize_for_inference, time_forward, time_forward_interleaved
from .views import ViewConfig, draw_views

__all__ = [
    "accuracy", "Allocation", "ArtifactError", "atomic_write", "bench_pair", "BenchResult", "best_weights",
    "checkpoint_summary", "bootstrap_indices", "paired_difference", "pareto_front", "replicate_se",
    "classification_report", "ClassificationReport", "compress", "CompressionConfig", "CompressionError",
    "CompressionReport", "ConfigError", "confusion_matrix", "count_flops", "count_params", "distill",
    "distillation_loss", "DistillationError", "draw_views", "fidelity", "file_sha256", "FinetuneConfig", "flops_by_module", "function_matching",
    "HSCCError", "input_shape_of", "LatencyStats", "load", "load_checkpoint", "load_metadata", "macro_f1",
    "MatchingConfig", "MatchingResult", "Method", "METHOD_RUNNERS", "METHODS", "ModelBench", "module_teacher",
    "MODULE_TYPES", "optimize_for_inference", "register_module_type", "replace_submodule", "report_path", "save",
    "SafetyNetChoice", "save_with_report", "target_layers", "choose_safety_net", "choose_threshold",
    "time_forward", "time_forward_interleaved", "ViewConfig",
    "CalibrationStatistics", "calibration_statistics", "compress_to_target", "TargetResult", "TargetTrial",
]
