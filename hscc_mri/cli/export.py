"""``hscc-mri export``: write a model as ONNX (and OpenVINO IR), then check the files
against PyTorch on real sample scans."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ._common import CliError, set_threads

#: Largest softmax-probability difference to PyTorch an export may show (float32 both).
TOLERANCE = 1e-3

_DESCRIPTION = """\
Export a registry model or a saved artifact (dense or compressed) to ONNX, with a
dynamic batch axis (input "input", output "logits"), and with --openvino also as
OpenVINO IR beside it (PATH.xml + PATH.bin, float32 weights).

Then every written file is checked: ONNX Runtime runs the .onnx file, OpenVINO reads
the .xml file, and both are compared with the PyTorch model on N inputs (the sample
scans in samples/, topped up with fixed-seed random images to N), at batch 1 and at
batch N (so the dynamic batch is checked too). Printed per runtime: max |dp|, the
largest difference of the softmax probabilities. Exit status 1 if any max |dp| > 1e-3.

With --json, one JSON object: model, files (path and bytes of each file written),
max_dp (runtime -> max |dp|), batch_sizes, inputs (sample scans, random), tolerance, ok.
"""

_EPILOG = """\
examples:
  hscc-mri export --model vgg16-brain-mri --out exports/vgg16.onnx --openvino
  hscc-mri export --model checkpoints/alexnet-hscc-3x.safetensors --out exports/alexnet-hscc.onnx --json
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``export`` subcommand on the CLI's subparsers."""
    p = sub.add_parser("export", help="export a model to ONNX (and OpenVINO IR), checked against PyTorch",
                       description=_DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="NAME_OR_ARTIFACT", help="registry name or artifact path")
    p.add_argument("--out", required=True, type=Path, metavar="PATH.onnx", help="the ONNX file to write")
    p.add_argument("--openvino", action="store_true",
                   help="also write OpenVINO IR beside it (PATH.xml + PATH.bin); needs the openvino package")
    p.add_argument("--check", type=int, default=8, metavar="N",
                   help="inputs of the check: the sample scans plus random images up to N; checked at "
                        "batch 1 and batch N (default: 8)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of text")
    p.set_defaults(func=run)


def check_inputs(spec, n: int, seed: int = 0) -> tuple[torch.Tensor, int]:
    """``(N, C, H, W)`` inputs for ``spec``: the sample scans (at most ``n``), then random
    ``[0, 1]`` images (seeded) through the same input contract. Returns the batch and how
    many of its inputs are real scans."""
    from preprocessing import ScanError, load_scan, scan_to_model_input, to_model_input

    from ..calibration import sample_scans

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


def _max_gap(run: Callable[[np.ndarray], np.ndarray], batches: list[np.ndarray], refs: list[np.ndarray]) -> float:
    from ..runtimes import max_probability_gap

    return max(max_probability_gap(np.asarray(run(b)), r) for b, r in zip(batches, refs))


def _onnxruntime_runner(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise CliError("checking the export needs onnxruntime: pip install -r requirements.txt") from e
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _openvino_runner(xml: Path) -> Callable[[np.ndarray], np.ndarray]:
    import openvino as ov

    # f32: on CPUs with native bf16 OpenVINO would otherwise run bf16 and fail the check.
    compiled = ov.Core().compile_model(ov.Core().read_model(str(xml)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda x: np.array(request.infer({0: x})[0], copy=True)


def _write_openvino(model: nn.Module, onnx_path: Path) -> tuple[Path, Path]:
    try:
        import openvino as ov

        from ..runtimes.openvino_backend import openvino_model
    except ImportError as e:
        raise CliError("--openvino needs the openvino package: pip install -r requirements.txt") from e
    xml = onnx_path.with_suffix(".xml")
    # Float32 weights: save_model's default fp16 compression would not be the model checked.
    ov.save_model(openvino_model(model), str(xml), compress_to_fp16=False)
    return xml, xml.with_suffix(".bin")


def run(args: argparse.Namespace) -> int:
    from hscc_core import ArtifactError

    from ..resolve import resolve_model
    from ..runtimes import RuntimeUnavailable, export_onnx

    if args.out.suffix.lower() != ".onnx":
        raise CliError(f"--out must name a .onnx file, got {str(args.out)!r}")
    if args.check < 1:
        raise CliError(f"--check must be at least 1, got {args.check}")
    set_threads(args.threads)
    try:
        model = resolve_model(args.model).eval()
    except ArtifactError as e:
        raise CliError(str(e)) from e
    if getattr(model, "spec", None) is None:
        raise CliError(f"{args.model!r} carries no input contract (model spec); cannot export it")

    onnx_path = export_onnx(model, args.out)
    files: dict[str, Path] = {"onnx": onnx_path}
    runners: dict[str, Callable[[np.ndarray], np.ndarray]] = {"onnxruntime": _onnxruntime_runner(onnx_path)}
    if args.openvino:
        try:
            files["openvino_xml"], files["openvino_bin"] = _write_openvino(model, onnx_path)
        except RuntimeUnavailable as e:
            raise CliError(f"--openvino: {e}") from e
        runners["openvino"] = _openvino_runner(files["openvino_xml"])

    x, real = check_inputs(model.spec, args.check)
    batches = [x[:1]] + ([x] if len(x) > 1 else [])  # batch 1 and batch N: the dynamic axis works
    with torch.inference_mode():
        refs = [model(b).float().numpy() for b in batches]
    arrays = [np.ascontiguousarray(b.numpy(), dtype=np.float32) for b in batches]
    max_dp = {name: _max_gap(r, arrays, refs) for name, r in runners.items()}
    ok = all(v <= TOLERANCE for v in max_dp.values())

    result: dict[str, Any] = {
        "model": args.model,
        "files": {k: {"path": str(p), "bytes": p.stat().st_size} for k, p in files.items()},
        "max_dp": max_dp, "batch_sizes": [len(b) for b in batches],
        "inputs": {"sample_scans": real, "random": len(x) - real}, "tolerance": TOLERANCE, "ok": ok,
    }
    if args.json:
        print(json.dumps(result, indent=2), flush=True)
    else:
        _print_text(result)
    if not ok:
        bad = ", ".join(f"{k} {v:.2e}" for k, v in max_dp.items() if v > TOLERANCE)
        print(f"error: the exported model disagrees with PyTorch: max |dp| {bad} > {TOLERANCE:g}",
              file=sys.stderr, flush=True)
        return 1
    return 0


def _print_text(result: dict[str, Any]) -> None:
    for f in result["files"].values():
        print(f"wrote {f['path']} ({f['bytes'] / 1e6:.1f} MB)")
    inputs = result["inputs"]
    sizes = " and ".join(str(b) for b in result["batch_sizes"])
    print(f"check: {inputs['sample_scans']} sample scan(s) + {inputs['random']} random input(s), batch {sizes}; "
          f"max |dp| against PyTorch (tolerance {result['tolerance']:g}):")
    names = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
    for runtime, dp in result["max_dp"].items():
        print(f"  {names[runtime]:<13} {dp:.2e}  {'ok' if dp <= result['tolerance'] else 'FAILED'}", flush=True)
