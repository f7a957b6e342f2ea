"""Fidelity of every runtime x precision on the validation split of the real training
scans (never on ``Testing/``): the measurement behind the product's default precision
and the int8 plan (``hscc_mri/deploy.py``: ``DEFAULT_PRECISION``, ``INT8_TARGET``).

For the uncompressed model and each compressed artifact, in each choice: accuracy,
top-1 agreement with the uncompressed model in PyTorch fp32, agreement with the same
model in PyTorch fp32 (what the runtime/precision alone costs), mean KL, and the
seconds the compile (and for int8 the calibration and plan) took. Every model's int8
runs with its measured plan (``hscc_mri.deploy.int8_plan``, computed once and kept as
``<artifact>.int8-<runtime>.json``, or for the dense registry model in ``artifacts/``);
``--plain-int8`` adds every-layer int8 rows (the runtime's default settings).

    python scripts/runtime_validation.py --data ../shared/data/brain-mri \\
        --artifacts artifacts/vgg16-brain-mri-hscc-6x-537fdf6c32.safetensors \\
        --choices openvino:fp32 openvino:int8 --plain-int8 --json reports/real/runtime_validation.json
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
from hscc_mri.deploy import Deployable  # noqa: E402
from hscc_mri.resolve import resolve_model  # noqa: E402
from hscc_mri.runtimes import Request, cpu_summary, decide  # noqa: E402
from preprocessing import load_scan, scan_to_model_input  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="data-set root with Training/")
    ap.add_argument("--model", default="vgg16-brain-mri")
    ap.add_argument("--artifacts", nargs="*", default=[])
    ap.add_argument("--choices", nargs="+", default=["openvino:fp32", "openvino:int8"])
    ap.add_argument("--plain-int8", action="store_true", help="also every-layer int8 of each artifact")
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dense = resolve_model(args.model)
    spec = dense.spec
    val = validation_subset(args.data, spec, args.per_class, 0)
    labels = np.array([y for _, y in val])
    xs = [scan_to_model_input(load_scan(p), spec) for p, _ in val]
    p_dense = probabilities(dense, xs)
    rows = []

    def add(name: str, choice: str, probs: np.ndarray, own: np.ndarray, seconds: float, details=None) -> None:
        vs_dense, vs_own = fidelity(p_dense, probs), fidelity(own, probs)
        row = {"model": name, "choice": choice, "accuracy": float(np.mean(probs.argmax(1) == labels)),
               "agreement": vs_dense["agreement"], "mean_kl": vs_dense["mean_kl"],
               "agreement_vs_own_fp32": vs_own["agreement"], "mean_kl_vs_own_fp32": vs_own["mean_kl"],
               "seconds": seconds, "details": details}
        rows.append(row)
        print(f"{name:<44} {choice:<18} acc {row['accuracy']:.3f} agree {row['agreement']:.3f} "
              f"agree-own {row['agreement_vs_own_fp32']:.3f} KL-own {row['mean_kl_vs_own_fp32']:.4f} "
              f"({seconds:.0f} s)", flush=True)

    models = [(args.model, dense, None)] + [(Path(a).name, resolve_model(a), a) for a in args.artifacts]
    for name, model, artifact in models:
        own = p_dense if artifact is None else probabilities(model, xs)
        add(name, "torch:fp32", own, own, 0.0)
        for item in args.choices:
            runtime, _, precision = item.partition(":")
            t0 = time.perf_counter()
            target = Deployable(model, artifact)
            choice = decide(Request(runtime, precision, [target])).choice  # explicit: checked, as asked
            compiled = target.deploy(choice)
            probs = probabilities(compiled, xs)
            add(name, item, probs, own, time.perf_counter() - t0, compiled.details.get("plan"))
            if precision == "int8" and args.plain_int8:
                t0 = time.perf_counter()
                plain = target.deploy(choice, plan=False)
                add(name, item + " (every layer)", probabilities(plain, xs), own, time.perf_counter() - t0)
    if args.json:
        out = {"cpu": cpu_summary(), "validation_scans": len(xs), "threads": args.threads, "rows": rows}
        Path(args.json).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
