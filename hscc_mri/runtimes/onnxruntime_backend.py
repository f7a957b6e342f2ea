"""ONNX Runtime on the CPU: float32, and int8 by static QDQ quantisation (per-channel
weights, activation ranges from the calibration set)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from hscc_core import atomic_write

from ..errors import SettingsError
from .backend import Backend
from .base import CompiledModel, Precision, Runtime, RuntimeUnavailable
from .cpu import cpu_summary, has_vnni
from .export import INPUT_NAME, layer_groups, never_quantised, node_group, onnx_bytes

__all__ = ["ONNXRUNTIME", "OnnxRuntimeBackend", "compile_onnxruntime"]


def _session(model_bytes: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle threads sleep instead of spinning: spinning keeps cores busy after a run, which
    # slows whatever runs next (the other model of an interleaved comparison, the app).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


class _Reader:
    """ONNX Runtime's calibration-data reader over model-input arrays."""

    def __init__(self, batches: Iterable[np.ndarray]) -> None:
        self._batches = iter(list(batches))

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


#: 7-bit weights against the u8 x s8 saturation of CPUs without VNNI (ORT's advice for
#: such CPUs; ``None``: on them only). Off: measured on the validation split
#: (scripts/int8_options.py, AVX2), 7-bit weights cost the real VGG16 far more agreement
#: with fp32 (0.50 against 0.89) than the saturation they avoid.
REDUCE_RANGE: bool | None = False


def _quantized_bytes(model: nn.Module, fp32_bytes: bytes, calibration: Sequence[np.ndarray],
                     keep_fp32: Sequence[str], reduce_range: bool | None = None) -> tuple[bytes, dict[str, Any]]:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    reduce = reduce_range if reduce_range is not None else (REDUCE_RANGE if REDUCE_RANGE is not None
                                                            else not has_vnni())
    graph = onnx.load_from_string(fp32_bytes)
    groups = layer_groups(model) + never_quantised(model)
    unquantised = set(keep_fp32) | set(never_quantised(model))
    excluded = [n.name for n in graph.graph.node if node_group(n.name, groups) in unquantised]
    with tempfile.TemporaryDirectory(prefix="hscc-ort-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32_bytes)
        quantize_static(str(src), str(dst), _Reader(calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=reduce, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=excluded)
        data = dst.read_bytes()
    return data, {"method": "onnxruntime static QDQ", "per_channel": True, "reduce_range": reduce,
                  "calibration_batches": len(calibration), "fp32_layers": list(keep_fp32)}


def compile_onnxruntime(model: nn.Module, precision: str, calibration: Sequence[torch.Tensor] | None = None,
                        keep_fp32: Sequence[str] = (), threads: int | None = None,
                        reduce_range: bool | None = None, quantized: bytes | None = None) -> CompiledModel:
    """``model`` exported to ONNX and run by ONNX Runtime in ``precision``.

    Args:
        model: the PyTorch model (dense or compressed).
        precision: ``fp32`` or ``int8``.
        calibration: model-input batches for the int8 activation ranges (required for int8).
        keep_fp32: layer groups (:func:`~hscc_mri.runtimes.export.layer_groups`) left in fp32.
        threads: intra-op threads (default: ``torch.get_num_threads()``).
        reduce_range: 7-bit weights (default: :data:`REDUCE_RANGE`).
        quantized: int8 QDQ ONNX bytes made before (by this function: the result's
            ``onnx_graph``) to run instead of quantising again.

    Raises:
        RuntimeUnavailable: onnxruntime is not installed, or ``bf16`` (no CPU kernels).
        SettingsError: int8 without calibration data.
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:  # pragma: no cover - a dependency of the product
        raise RuntimeUnavailable("onnxruntime is not installed (pip install -r requirements.txt)") from e
    if precision == "bf16":
        raise RuntimeUnavailable(f"ONNX Runtime has no bf16 CPU kernels; use --runtime openvino "
                                 f"(this CPU: {cpu_summary()})")
    threads = threads or torch.get_num_threads()
    data = onnx_bytes(model)
    details: dict[str, Any] = {}
    if precision == "int8" and quantized is not None:
        data = quantized
        details = {"method": "onnxruntime static QDQ (kept from an earlier quantisation)", "per_channel": True,
                   "fp32_layers": list(keep_fp32)}
    elif precision == "int8":
        if not calibration:
            raise SettingsError("int8 needs calibration batches")
        data, details = _quantized_bytes(model, data, [b.float().numpy() for b in calibration], keep_fp32,
                                         reduce_range)
    elif precision != "fp32":
        raise SettingsError(f"precision must be fp32, bf16 or int8, got {precision!r}")
    session = _session(data, threads)
    output = session.get_outputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run([output], {INPUT_NAME: x})[0]

    out = CompiledModel(run, model, Runtime.ONNXRUNTIME, precision, {**details, "threads": threads},
                        label=ONNXRUNTIME.choice_label(precision))
    out.onnx_graph = data  # for keeping a quantised graph
    return out


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime: fp32 and int8 (static QDQ); no bf16 CPU kernels. Its quantised graph
    is kept as QDQ ONNX bytes."""

    runtime = Runtime.ONNXRUNTIME
    label = "ONNX Runtime"
    package = "onnxruntime"
    precisions = (Precision.FP32, Precision.INT8)
    int8_options = frozenset({"reduce_range"})
    graph_suffix = "onnx"

    def int8_candidates(self) -> list[dict[str, Any]]:
        # One candidate: 7-bit reduce_range lost on both models (see REDUCE_RANGE); named
        # explicitly so a plan's key records the setting it was measured with.
        return [{"reduce_range": REDUCE_RANGE}]

    def compile(self, model: nn.Module, precision: str, calibration: Sequence[torch.Tensor] | None = None,
                keep_fp32: Sequence[str] = (), threads: int | None = None, quantized: Any = None,
                **int8_options: Any) -> nn.Module:
        return compile_onnxruntime(model, precision, calibration, keep_fp32, threads, quantized=quantized,
                                   **int8_options)

    def read_graph(self, path: Path) -> bytes:
        return Path(path).read_bytes()

    def write_graph(self, compiled: nn.Module, path: Path) -> None:
        data = compiled.onnx_graph
        atomic_write(path, lambda tmp: tmp.write_bytes(data))


#: The ONNX Runtime backend (see :mod:`hscc_mri.runtimes.registry`).
ONNXRUNTIME = OnnxRuntimeBackend()
