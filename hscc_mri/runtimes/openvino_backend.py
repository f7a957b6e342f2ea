"""OpenVINO on the CPU: float32, bfloat16 where native, and int8 by NNCF post-training
quantisation (per-channel weights; chosen layers left in higher precision)."""
from __future__ import annotations

import contextlib
import functools
import re
import sys
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import SettingsError
from .backend import Backend
from .base import CompiledModel, Precision, Runtime, RuntimeUnavailable
from .cpu import cpu_summary, has_native_bf16, has_vnni
from .export import never_quantised, onnx_bytes, scope_prefix

__all__ = ["OPENVINO", "OpenVINOBackend", "compile_openvino", "feature_teacher", "openvino_model",
           "quantize_openvino", "read_ir", "save_ir"]


def _core():
    """The process's one ``openvino.Core`` (kept for the life of the process: a Core that
    is garbage-collected while models compiled by it live on can take the process down)."""
    try:
        import openvino as ov
    except ImportError as e:
        raise RuntimeUnavailable("openvino is not installed (pip install -r requirements.txt)") from e
    return ov, _shared_core(ov)


@functools.lru_cache(maxsize=1)
def _shared_core(ov):
    return ov.Core()


def openvino_model(model: nn.Module):
    """``model`` as an (uncompiled) ``openvino.Model``, read from its ONNX export."""
    _, core = _core()
    return core.read_model(onnx_bytes(model), b"")


def save_ir(graph, path) -> None:
    """Write the ``openvino.Model`` ``graph`` as IR at ``path`` (``.xml`` and its ``.bin``),
    unchanged (no fp16 weight compression), replacing any earlier pair atomically enough
    for a cache: the ``.bin`` is written first under a temporary name."""
    import os
    from pathlib import Path

    ov, _ = _core()
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.xml")
    ov.save_model(graph, str(tmp), compress_to_fp16=False)
    os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
    os.replace(tmp, path)


def read_ir(path):
    """The ``openvino.Model`` kept at ``path`` by :func:`save_ir`."""
    _, core = _core()
    return core.read_model(str(path))


def _scope_patterns(groups: Sequence[str]) -> list[str]:
    # OpenVINO keeps the ONNX node names, which carry the PyTorch module scope (nested
    # modules included: "/layer1/layer1.0/conv1/Conv").
    return [re.escape(scope_prefix(g)) + ".*" for g in groups]


#: NNCF's overflow fix (7-bit weights against the u8 x s8 saturation of CPUs without
#: VNNI): ``"first_layer"`` (NNCF's default), ``"enable"`` (every layer) or ``"disable"``.
#: Measured on the validation split (scripts/int8_options.py, AVX2): every layer costs
#: the real VGG16 far more top-1 agreement with fp32 (0.37) than first layer (0.88) or
#: none (0.89).
OVERFLOW_FIX = "first_layer"


def quantize_openvino(model: nn.Module, calibration: Sequence[torch.Tensor], keep_fp32: Sequence[str] = (),
                      ov_model=None, overflow_fix: str | None = None):
    """NNCF post-training int8 quantisation of ``model`` (its OpenVINO graph ``ov_model``
    when already read); the layer groups in ``keep_fp32`` stay unquantised.
    ``overflow_fix``: see :data:`OVERFLOW_FIX` (the default); applies to CPUs without VNNI."""
    try:
        import nncf
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
    except ImportError as e:
        raise RuntimeUnavailable("nncf is not installed (pip install -r requirements.txt)") from e
    ov_model = ov_model if ov_model is not None else openvino_model(model)
    # One image per item: NNCF's statistics (and subset_size) count dataset items.
    samples = [b[i:i + 1].float().numpy() for b in calibration for i in range(len(b))]
    unquantised = [*keep_fp32, *never_quantised(model)]
    ignored = nncf.IgnoredScope(patterns=_scope_patterns(unquantised), validate=False) if unquantised else None
    kwargs: dict[str, Any] = {"subset_size": len(samples)}
    fix = {"first_layer": OverflowFix.FIRST_LAYER, "enable": OverflowFix.ENABLE,
           "disable": OverflowFix.DISABLE}[overflow_fix or OVERFLOW_FIX]
    kwargs["advanced_parameters"] = AdvancedQuantizationParameters(overflow_fix=fix)
    if ignored is not None:
        kwargs["ignored_scope"] = ignored
    _quiet_nncf()
    # NNCF draws its progress bar on stdout, where --json output goes: send it to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        return nncf.quantize(ov_model, nncf.Dataset(samples), **kwargs)


def _quiet_nncf() -> None:
    import logging

    logging.getLogger("nncf").setLevel(logging.ERROR)


def compile_openvino(model: nn.Module, precision: str, calibration: Sequence[torch.Tensor] | None = None,
                     keep_fp32: Sequence[str] = (), threads: int | None = None,
                     quantized=None, overflow_fix: str | None = None) -> CompiledModel:
    """``model`` exported to ONNX, read by OpenVINO and compiled for the CPU in ``precision``.

    Args:
        model: the PyTorch model (dense or compressed).
        precision: ``fp32``, ``bf16`` (native bfloat16 CPUs only) or ``int8``.
        calibration: model-input batches for int8 statistics (required for int8 unless
            ``quantized`` is given).
        keep_fp32: layer groups left unquantised in int8.
        threads: inference threads (default: ``torch.get_num_threads()``).
        quantized: an already quantised ``openvino.Model`` to compile instead.

    Raises:
        RuntimeUnavailable: openvino/nncf missing, or bf16 on a CPU without it natively.
    """
    ov, core = _core()
    threads = threads or torch.get_num_threads()
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    details: dict[str, Any] = {"threads": threads}
    if precision == "bf16":
        if not has_native_bf16():
            raise RuntimeUnavailable(f"bf16 needs a CPU with native bfloat16 (AVX512-BF16 or AMX); this one has "
                                     f"{cpu_summary()}")
        config["INFERENCE_PRECISION_HINT"] = "bf16"
    elif has_native_bf16():
        # On such CPUs OpenVINO's default is bf16; fp32 and the int8 model's unquantised
        # layers stay float32 so a choice means what it says.
        config["INFERENCE_PRECISION_HINT"] = "f32"
    if precision == "int8":
        if quantized is None:
            if not calibration:
                raise SettingsError("int8 needs calibration batches")
            quantized = quantize_openvino(model, calibration, keep_fp32, overflow_fix=overflow_fix)
        graph = quantized
        details.update({"method": "NNCF post-training quantisation", "per_channel": True,
                        "overflow_fix": overflow_fix or OVERFLOW_FIX,
                        "fp32_layers": list(keep_fp32)})
        if calibration:
            details["calibration_images"] = int(sum(len(b) for b in calibration))
    elif precision in ("fp32", "bf16"):
        graph = openvino_model(model)
    else:
        raise SettingsError(f"precision must be fp32, bf16 or int8, got {precision!r}")
    compiled = core.compile_model(graph, "CPU", config)
    request = compiled.create_infer_request()

    def run(x: np.ndarray, _keep=(compiled, core)) -> np.ndarray:  # the request's owners live as long as it
        return np.array(request.infer({0: x})[0], copy=True)

    out = CompiledModel(run, model, Runtime.OPENVINO, precision, details, label=OPENVINO.choice_label(precision))
    out.openvino_graph = graph  # for saving it as IR
    return out


class OpenVINOBackend(Backend):
    """OpenVINO on the CPU: fp32, bf16 where native, int8 by NNCF (which must be installed
    to quantise). Its quantised graph is kept as IR (``.xml`` and its ``.bin``)."""

    runtime = Runtime.OPENVINO
    label = "OpenVINO"
    package = "openvino"
    precisions = (Precision.FP32, Precision.BF16, Precision.INT8)
    extra_packages = {Precision.INT8: ("nncf",)}
    int8_options = frozenset({"overflow_fix"})
    graph_suffix = "xml"

    def int8_candidates(self) -> list[dict[str, Any]]:
        """On a CPU without VNNI: NNCF's overflow fix on the first layer only (its default;
        8-bit weights elsewhere) and on every layer (7-bit weights that cannot saturate the
        u8 x s8 products). Measured on the validation split (scripts/int8_options.py),
        every layer collapses the dense VGG16 (0.37 agreement with fp32 against 0.88) but
        lets the compressed one keep all but one layer in int8, so the choice is the
        model's, made by its plan. With VNNI the overflow fix does nothing: the defaults."""
        if has_vnni():
            return [{}]
        first = OVERFLOW_FIX
        return [{"overflow_fix": first}] + ([{"overflow_fix": "enable"}] if first != "enable" else [])

    def compile(self, model: nn.Module, precision: str, calibration: Sequence[torch.Tensor] | None = None,
                keep_fp32: Sequence[str] = (), threads: int | None = None, quantized: Any = None,
                **int8_options: Any) -> nn.Module:
        return compile_openvino(model, precision, calibration, keep_fp32, threads, quantized=quantized,
                                **int8_options)

    def read_graph(self, path) -> Any:
        return read_ir(path)

    def write_graph(self, compiled: nn.Module, path) -> None:
        save_ir(compiled.openvino_graph, path)


#: The OpenVINO backend (see :mod:`hscc_mri.runtimes.registry`).
OPENVINO = OpenVINOBackend()


def feature_teacher(graph, threads: int | None = None):
    """A distillation teacher (:data:`hscc_core.matching.TeacherFn`) from an OpenVINO graph:
    ``x -> (logits, feature map entering the last max-pooling layer)`` as float32 tensors.

    The feature map is added as a second output of the (typically int8) graph, so the
    teacher of a distillation runs in the fastest faithful runtime and still gives the
    feature term its target; for a quantised graph it is the value the pooling layer reads.

    Args:
        graph: an ``openvino.Model`` with one input and the logits as its first output (e.g.
            the release's int8 graph of the dense reference, :func:`read_ir`).
        threads: inference threads (default: ``torch.get_num_threads()``).

    Raises:
        RuntimeUnavailable: openvino missing, or a graph without a max-pooling layer.
    """
    _, core = _core()
    graph = graph.clone()
    pools = [op for op in graph.get_ordered_ops() if op.get_type_name() == "MaxPool"]
    if not pools:
        raise RuntimeUnavailable("the teacher graph has no max-pooling layer to take the feature map from")
    graph.add_outputs([pools[-1].input_value(0)])
    threads = threads or torch.get_num_threads()
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    if has_native_bf16():
        config["INFERENCE_PRECISION_HINT"] = "f32"  # the unquantised layers stay float32, as when serving
    compiled = core.compile_model(graph, "CPU", config)
    request = compiled.create_infer_request()

    def run(x: torch.Tensor, _keep=(compiled, core)) -> tuple[torch.Tensor, torch.Tensor]:
        out = request.infer({0: np.ascontiguousarray(x.detach().float().cpu().numpy())})
        return torch.from_numpy(np.array(out[0], copy=True)), torch.from_numpy(np.array(out[1], copy=True))

    return run
