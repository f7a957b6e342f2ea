"""``hscc-mri export``'s work: write a model as ONNX (and OpenVINO IR), then check every
written file against PyTorch on real sample scans.

:func:`export_and_check` turns an :class:`ExportRequest` (what the command line asked) into
the files and the check's result: ONNX Runtime runs the ``.onnx`` file, OpenVINO reads the
``.xml`` file, and both are compared with the PyTorch model on the inputs of
:func:`check_inputs`, at batch 1 and at batch N (so the dynamic batch axis is checked too).
The writing of ONNX itself is serving's (:func:`hscc_mri.runtimes.export_onnx`); this module
only adds the check, which only the lab runs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .errors import SettingsError

__all__ = ["TOLERANCE", "ExportRequest", "check_inputs", "export_and_check", "write_openvino"]

#: Largest softmax-probability difference to PyTorch an export may show (float32 both).
TOLERANCE = 1e-3

#: A runtime's forward pass: a float32 ``(N, C, H, W)`` batch in, logits out.
Runner = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ExportRequest:
    """What to export and how to check it (``export``'s options of the same names).

    Attributes:
        model: a registry name or an artifact path.
        out: the ONNX file to write (``.onnx``); OpenVINO IR goes beside it.
        openvino: also write OpenVINO IR (``.xml`` + ``.bin``) and check it.
        check: inputs of the check (the sample scans, topped up with random images).
        threads: torch CPU threads (``None``: torch's default, all cores).
        tolerance: the largest max |dp| a runtime may show and pass.
    """

    model: str
    out: str | os.PathLike
    openvino: bool = False
    check: int = 8
    threads: int | None = None
    tolerance: float = TOLERANCE


def _check(request: ExportRequest) -> None:
    if Path(request.out).suffix.lower() != ".onnx":
        raise SettingsError(f"--out must name a .onnx file, got {str(request.out)!r}")
    if request.check < 1:
        raise SettingsError(f"--check must be at least 1, got {request.check}")


def check_inputs(spec, n: int, seed: int = 0) -> tuple[torch.Tensor, int]:
    """``(N, C, H, W)`` inputs for ``spec``: the sample scans (at most ``n``), then random
    ``[0, 1]`` images (seeded) through the same input contract. Returns the batch and how
    many of its inputs are real scans."""
    from preprocessing import ScanError, load_scan, scan_to_model_input, to_model_input

    from .calibration import sample_scans

    inputs: list[torch.Tensor] = []
    try:
        files = sample_scans()
    except ValueError:  # no samples/ folder (an installed package without the repository)
        files = []
    for path in files[:n]:
        try:
            inputs.append(scan_to_model_input(load_scan(path), spec))
        except ScanError:
            continue
    real = len(inputs)
    rng = np.random.default_rng(seed)
    height, width = spec.input_size
    while len(inputs) < n:
        inputs.append(to_model_input(rng.random((height, width), dtype=np.float32), spec, normalize=False))
    return torch.stack(inputs), real


def _max_gap(run: Runner, batches: list[np.ndarray], refs: list[np.ndarray]) -> float:
    from .runtimes import max_probability_gap

    return max(max_probability_gap(np.asarray(run(b)), r) for b, r in zip(batches, refs))


def _onnxruntime_runner(path: Path) -> Runner:
    from .runtimes import RuntimeUnavailable

    try:
        import onnxruntime as ort
    except ImportError as e:
        raise RuntimeUnavailable("checking the export needs onnxruntime: pip install -r requirements.txt") from e
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _openvino_runner(xml: Path) -> Runner:
    import openvino as ov

    # f32: on CPUs with native bf16 OpenVINO would otherwise run bf16 and fail the check.
    compiled = ov.Core().compile_model(ov.Core().read_model(str(xml)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda x: np.array(request.infer({0: x})[0], copy=True)


def write_openvino(model: nn.Module, onnx_path: Path) -> tuple[Path, Path]:
    """Write ``model`` as OpenVINO IR beside ``onnx_path`` (float32 weights).

    Returns:
        ``(the .xml file, the .bin file)``.

    Raises:
        RuntimeUnavailable: the openvino package is missing, or the model cannot be
            converted (the message names ``--openvino``).
    """
    from .runtimes import RuntimeUnavailable

    try:
        import openvino as ov

        from .runtimes.openvino_backend import openvino_model
    except ImportError as e:
        raise RuntimeUnavailable("--openvino needs the openvino package: pip install -r requirements.txt") from e
    xml = onnx_path.with_suffix(".xml")
    try:
        graph = openvino_model(model)
    except RuntimeUnavailable as e:
        raise RuntimeUnavailable(f"--openvino: {e}") from e
    # Float32 weights: save_model's default fp16 compression would not be the model checked.
    ov.save_model(graph, str(xml), compress_to_fp16=False)
    return xml, xml.with_suffix(".bin")


def export_and_check(request: ExportRequest) -> dict[str, Any]:
    """Write the files ``request`` asks for and check each against PyTorch.

    Returns:
        The result, as ``export --json`` prints it: ``model``, ``files`` (path and bytes of
        each file written), ``max_dp`` (runtime -> the largest softmax-probability
        difference to PyTorch), ``batch_sizes``, ``inputs`` (sample scans, random),
        ``tolerance`` and ``ok`` (every ``max_dp`` within the tolerance).

    Raises:
        SettingsError: ``out`` is not a ``.onnx`` file, ``check`` is below 1, or the model
            carries no input contract.
        hscc_core.ArtifactError: the model cannot be resolved.
        RuntimeUnavailable: a runtime the check needs is not installed (or cannot take the
            model).
    """
    from .resolve import resolve_model
    from .runtimes import export_onnx

    _check(request)
    if request.threads:
        torch.set_num_threads(request.threads)
    model = resolve_model(request.model).eval()
    if getattr(model, "spec", None) is None:
        raise SettingsError(f"{request.model!r} carries no input contract (model spec); cannot export it")

    onnx_path = export_onnx(model, Path(request.out))
    files: dict[str, Path] = {"onnx": onnx_path}
    runners: dict[str, Runner] = {"onnxruntime": _onnxruntime_runner(onnx_path)}
    if request.openvino:
        files["openvino_xml"], files["openvino_bin"] = write_openvino(model, onnx_path)
        runners["openvino"] = _openvino_runner(files["openvino_xml"])

    x, real = check_inputs(model.spec, request.check)
    batches = [x[:1]] + ([x] if len(x) > 1 else [])  # batch 1 and batch N: the dynamic axis works
    with torch.inference_mode():
        refs = [model(b).float().numpy() for b in batches]
    arrays = [np.ascontiguousarray(b.numpy(), dtype=np.float32) for b in batches]
    max_dp = {name: _max_gap(r, arrays, refs) for name, r in runners.items()}
    return {
        "model": request.model,
        "files": {k: {"path": str(p), "bytes": p.stat().st_size} for k, p in files.items()},
        "max_dp": max_dp, "batch_sizes": [len(b) for b in batches],
        "inputs": {"sample_scans": real, "random": len(x) - real}, "tolerance": request.tolerance,
        "ok": all(v <= request.tolerance for v in max_dp.values()),
    }
