"""Which int8 settings keep the answers, measured on the validation split of the real
training scans (never ``Testing/``): OpenVINO/NNCF's overflow fix (first layer, every
layer, none) and ONNX Runtime's ``reduce_range`` (7-bit weights), each on the dense
model and a compressed artifact, every layer quantised (no plan), calibrated on the
default calibration set. Prints agreement with the same model in PyTorch fp32.

    python scripts/int8_options.py --data ../shared/data/brain-mri \\
        --artifacts artifacts/vgg16-brain-mri-hscc-6x-537fdf6c32.safetensors --per-class 25
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from choose_preprocessing import probabilities, validation_subset  # noqa: E402
from hscc_core import fidelity  # noqa: E402
from hscc_mri.calibration import calibration_set  # noqa: E402
from hscc_mri.recipes import default_recipe  # noqa: E402
from hscc_mri.resolve import resolve_model  # noqa: E402
from hscc_mri.runtimes import cpu_summary  # noqa: E402
from hscc_mri.runtimes.onnxruntime_backend import compile_onnxruntime  # noqa: E402
from hscc_mri.runtimes.openvino_backend import compile_openvino  # noqa: E402
from preprocessing import load_scan, scan_to_model_input  # noqa: E402

OPTIONS = {
    "openvino overflow_fix=first_layer": lambda m, c: compile_openvino(m, "int8", c, overflow_fix="first_layer"),
    "openvino overflow_fix=enable": lambda m, c: compile_openvino(m, "int8", c, overflow_fix="enable"),
    "openvino overflow_fix=disable": lambda m, c: compile_openvino(m, "int8", c, overflow_fix="disable"),
    "onnxruntime reduce_range=False": lambda m, c: compile_onnxruntime(m, "int8", c, reduce_range=False),
    "onnxruntime reduce_range=True": lambda m, c: compile_onnxruntime(m, "int8", c, reduce_range=True),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="vgg16-brain-mri")
    ap.add_argument("--artifacts", nargs="*", default=[])
    ap.add_argument("--options", nargs="*", default=list(OPTIONS), choices=list(OPTIONS))
    ap.add_argument("--per-class", type=int, default=25)
    ap.add_argument("--json", default="reports/real/int8_options.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    dense = resolve_model(args.model)
    val = validation_subset(args.data, dense.spec, args.per_class, 0)
    xs = [scan_to_model_input(load_scan(p), dense.spec) for p, _ in val]
    calib = calibration_set(dense.spec, default_recipe(dense.spec.name))
    rows = []
    for name, model in [(args.model, dense)] + [(Path(a).name, resolve_model(a)) for a in args.artifacts]:
        own = probabilities(model, xs)
        for option in args.options:
            t0 = time.perf_counter()
            fid = fidelity(own, probabilities(OPTIONS[option](model, calib), xs))
            rows.append({"model": name, "option": option, **fid, "seconds": time.perf_counter() - t0})
            print(f"{name:<44} {option:<34} agreement {fid['agreement']:.3f} KL {fid['mean_kl']:.4f} "
                  f"({rows[-1]['seconds']:.0f} s)", flush=True)
    Path(args.json).write_text(json.dumps({"cpu": cpu_summary(), "validation_scans": len(xs), "rows": rows},
                                          indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
