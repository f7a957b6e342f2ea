"""The safety net measured as a clinic would run it: the release's compressed model with its
threshold, against the uncompressed model alone, on a labelled folder of real scans.

    python scripts/safety_net_report.py --data runs/halves/report --json reports/real/safety-net-report.json

Both arms go through ``predict``'s own path (:func:`hscc_mri.batch_predict.predict_files`:
files read and preprocessed, models in the runtime and precision the release serves on
this CPU, one process), taking turns (``--rounds`` of: net, dense) so that the load on a
shared machine falls on both alike. Measured:

* the share of scans the net hands to the uncompressed model, the effective agreement of
  the answers with the uncompressed model in PyTorch float32 (the release's reference
  answers), the compressed model's agreement alone, accuracy against the folder labels,
  each with its binomial SE; agreement where the reference is >= 0.9 sure;
* the mean latency per scan, two ways: ``--repeats`` timed batch-1 passes per scan (the
  single-scan latency a clinician waits; the reference's passes added for a scan handed
  over) and the wall time of the batched run per scan (the throughput of a folder).

Use the *report* half only once the threshold was chosen on the selection half
(``hscc-mri release --select``); the JSON names the folder and its SHA-256.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hscc_mri.batch_predict import Fallback, predict_files  # noqa: E402
from hscc_mri.inference import input_batches, probabilities  # noqa: E402
from hscc_mri.release import REFERENCE, load_release, load_release_models  # noqa: E402
from hscc_mri.runtimes import cpu_summary  # noqa: E402
from hscc_mri.safety_net import safety_net_for  # noqa: E402
from hscc_mri.testset import load_test_set  # noqa: E402


def _rate(hits: np.ndarray) -> dict[str, float | int]:
    n = len(hits)
    p = float(hits.mean()) if n else float("nan")
    return {"value": p, "se": math.sqrt(p * (1 - p) / n) if n else float("nan"), "n": int(n)}


def _run(model, files, fallback, repeats):
    t0 = time.perf_counter()
    lines = list(predict_files(model, files, repeats=repeats, fallback=fallback))
    return lines, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="labelled class folders (the report half of Testing/)")
    ap.add_argument("--release", default=str(ROOT / "release"))
    ap.add_argument("--budget", type=float, default=None, help="compressed model at this budget (default: release's)")
    ap.add_argument("--repeats", type=int, default=3, help="timed batch-1 passes per scan (0: batched run only)")
    ap.add_argument("--rounds", type=int, default=2, help="turns of (net, dense) for the timings")
    ap.add_argument("--json", default=None, help="write the result here")
    args = ap.parse_args(argv)

    release = load_release(args.release)
    key = release.key_for(args.budget)
    compressed, reference = load_release_models(release, [key, REFERENCE],
                                                log=lambda m: print(m, file=sys.stderr, flush=True))
    choice = compressed.choice
    rule = safety_net_for(release.models[key], choice.precision)
    if rule is None:
        sys.exit(f"the release has no safety net for {key} in {choice.precision}: hscc-mri release --select DIR")
    print(f"{compressed.name} + net ({rule.describe()}) vs {reference.name}, both in {choice.label}",
          file=sys.stderr, flush=True)
    data = load_test_set(args.data, reference.source.spec, progress=False)
    root = Path(args.data)
    files = [str(root / f) for f in data.files]
    ref_fp32 = reference.source  # the PyTorch float32 model, whatever the choice
    ref_probs = probabilities(ref_fp32, input_batches(data.inputs, 16))
    ref_labels, truth = ref_probs.argmax(1), data.labels.numpy()
    names = list(reference.source.spec.class_names)
    fallback = Fallback(reference.model, rule)

    timings: dict[str, list[float]] = {"net_batched_s": [], "dense_batched_s": [], "net_batch1_ms": [],
                                       "dense_batch1_ms": []}
    net_lines = None
    for r in range(args.rounds):
        lines, wall = _run(compressed.model, files, fallback, 0)
        timings["net_batched_s"].append(wall)
        net_lines = net_lines or lines
        _, wall = _run(reference.model, files, None, 0)
        timings["dense_batched_s"].append(wall)
        if args.repeats:
            timed, _ = _run(compressed.model, files, fallback, args.repeats)
            timings["net_batch1_ms"].append(float(np.mean([t["latency_ms"] for t in timed])))
            timed, _ = _run(reference.model, files, None, args.repeats)
            timings["dense_batch1_ms"].append(float(np.mean([t["latency_ms"] for t in timed])))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in timings.items() if v),
              file=sys.stderr, flush=True)
    assert net_lines is not None and all("error" not in x for x in net_lines), "a report scan could not be read"
    answered = np.array([names.index(x["label"]) for x in net_lines])
    alone = np.array([names.index(x["confidence"]["compressed_label"]) for x in net_lines])
    handed = np.array([x["answered_by"] == "uncompressed" for x in net_lines])
    sure = ref_probs.max(1) >= 0.9
    n = len(files)
    per_scan_batched = {k: float(np.median(v)) / n * 1e3 for k, v in timings.items() if k.endswith("_s")}
    result = {
        "release": {"model": compressed.name, "reference": reference.name, "runtime": choice.runtime,
                    "precision": choice.precision, "rule": {"measure": rule.measure, "threshold": rule.threshold,
                                                            "chosen_on": rule.selection}},
        "data": {"folder": data.folder, "n": n, "sha256": data.sha256, "class_counts": data.class_counts()},
        "handed_over": _rate(handed),
        "effective_agreement": _rate(answered == ref_labels),
        "compressed_alone_agreement": _rate(alone == ref_labels),
        "effective_agreement_where_reference_sure": _rate((answered == ref_labels)[sure]),
        "accuracy": {"net": _rate(answered == truth), "compressed_alone": _rate(alone == truth),
                     "reference": _rate(ref_labels == truth)},
        "latency": {
            "batch1_mean_ms": {"net": float(np.median(timings["net_batch1_ms"])) if args.repeats else None,
                               "dense": float(np.median(timings["dense_batch1_ms"])) if args.repeats else None},
            "batched_ms_per_scan": {"net": per_scan_batched["net_batched_s"],
                                    "dense": per_scan_batched["dense_batched_s"]},
            "rounds": timings, "repeats": args.repeats,
        },
        "cpu": cpu_summary(), "threads": torch.get_num_threads(),
        "command": " ".join(["python scripts/safety_net_report.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    lat = result["latency"]
    if args.repeats:
        lat["batch1_speedup"] = lat["batch1_mean_ms"]["dense"] / lat["batch1_mean_ms"]["net"]
    lat["batched_speedup"] = lat["batched_ms_per_scan"]["dense"] / lat["batched_ms_per_scan"]["net"]
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")

    def pct(d):
        return f"{100 * d['value']:.1f}% ± {100 * d['se']:.1f}"

    print(f"{n} scans of {data.folder}: handed over {pct(result['handed_over'])}; effective agreement "
          f"{pct(result['effective_agreement'])} (compressed alone {pct(result['compressed_alone_agreement'])}; "
          f"where the reference is >= 0.9 sure {pct(result['effective_agreement_where_reference_sure'])}); "
          f"accuracy {pct(result['accuracy']['net'])} vs reference {pct(result['accuracy']['reference'])}")
    if args.repeats:
        print(f"mean batch-1 latency: net {lat['batch1_mean_ms']['net']:.1f} ms, dense "
              f"{lat['batch1_mean_ms']['dense']:.1f} ms ({lat['batch1_speedup']:.2f}x)")
    print(f"batched: net {lat['batched_ms_per_scan']['net']:.1f} ms/scan, dense "
          f"{lat['batched_ms_per_scan']['dense']:.1f} ms/scan ({lat['batched_speedup']:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
