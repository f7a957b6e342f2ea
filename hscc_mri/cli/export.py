"""``hscc-mri export``: write a model as ONNX (and OpenVINO IR), then check the files
against PyTorch on real sample scans."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..export_check import TOLERANCE
from ._common import CliError

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


def run(args: argparse.Namespace) -> int:
    """Export and check as ``args`` say (:func:`hscc_mri.export_check.export_and_check`), print
    the result; exit status 1 when a runtime disagrees with PyTorch beyond the tolerance.

    Raises:
        CliError: bad options, a model that cannot be loaded, or a runtime not installed.
    """
    from hscc_core import HSCCError

    from ..errors import ProductError
    from ..export_check import ExportRequest, export_and_check

    # This module's TOLERANCE, read as the command runs: the limit its help promises is the
    # command's to set (a test lowers it to see a failing check).
    request = ExportRequest(model=args.model, out=args.out, openvino=args.openvino, check=args.check,
                            threads=args.threads, tolerance=TOLERANCE)
    try:
        result = export_and_check(request)
    except (ProductError, HSCCError) as e:  # SettingsError, RuntimeUnavailable, ArtifactError
        raise CliError(str(e)) from e
    if args.json:
        print(json.dumps(result, indent=2), flush=True)
    else:
        _print_text(result)
    if not result["ok"]:
        tolerance = result["tolerance"]
        bad = ", ".join(f"{k} {v:.2e}" for k, v in result["max_dp"].items() if v > tolerance)
        print(f"error: the exported model disagrees with PyTorch: max |dp| {bad} > {tolerance:g}",
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
