"""The pretrained VGG16 on real scans: cost, fidelity and sample accuracy of each method.

Fidelity is measured on the real sample scans and on augmented views of them. HSCC
calibrates on scans, so it is judged leave-one-scan-out
(:func:`hscc_core.evaluate.leave_one_scan_out`): each scan is tested by a model whose
calibration set did not contain it. The weights-only baselines need no calibration, so
one compression serves every fold. FLOPs, parameters and latency are those of the
deployable model, compressed on the calibration set built from every scan.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from hscc_core import CompressionConfig, bench_pair, compress, count_flops, count_params
from hscc_core.progress import progress_bar

from ..calibration import sample_scans
from ..inference import probabilities
from ..loso import leave_one_scan_out
from .settings import ReportSettings

__all__ = ["PREFIX_CLASSES", "pick_scans", "sample_scans", "true_label", "vgg_table"]

#: The public data set's test-file prefixes and their classes.
PREFIX_CLASSES = {"Te-gl": "glioma", "Te-me": "meningioma", "Te-no": "notumor", "Te-pi": "pituitary"}
_NAMES = {"svd": "Global SVD", "tucker": "Tucker-2", "hscc": "HSCC"}


def true_label(path: str | Path) -> str | None:
    """The class of a sample scan from its file name prefix (``Te-me_0016.jpg`` -> meningioma)."""
    name = Path(path).name
    return next((c for prefix, c in PREFIX_CLASSES.items() if name.startswith(prefix)), None)


def pick_scans(scans: Sequence[Path], n: int | None) -> list[Path]:
    """``n`` scans covering as many classes as possible (round robin over classes)."""
    scans = list(scans)
    if n is None or n >= len(scans):
        return scans
    by_class: dict[str | None, list[Path]] = {}
    for s in scans:
        by_class.setdefault(true_label(s), []).append(s)
    picked: list[Path] = []
    while len(picked) < n:
        for group in by_class.values():
            if group and len(picked) < n:
                picked.append(group.pop(0))
    return sorted(picked)


def _bench(model: nn.Module, compressed: nn.Module, s: ReportSettings, progress: bool) -> dict[str, Any]:
    res = bench_pair(model, compressed, batch_sizes=(1,), runs=s.vgg_bench_runs, warmup=s.bench_warmup,
                     threads=s.threads, channels_last=True, progress=progress).to_dict()
    lat = res["model_b"]["latency"][0]
    return {"latency_ms": lat["median_ms"], "latency_p90_ms": lat["p90_ms"],
            "original_latency_ms": res["model_a"]["latency"][0]["median_ms"],
            "speedup": res["speedup"]["1"], "efficiency": res["efficiency"]["1"]}


def vgg_table(settings: ReportSettings, model: nn.Module | None = None, progress: bool = True,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Rows original, Global SVD / Tucker-2 / HSCC at every budget (no fine-tuning).

    Returns:
        ``rows`` (FLOPs, params, latency, speed-up; agreement and mean KL on held-out
        scans and on their augmented views; accuracy on the sample scans), ``scans``
        (file, true class, original prediction) and the evaluation settings.
    """
    from models import build_model
    from ..calibration import calibration_batches, default_calibration, load_slices

    s = settings
    model = (model or build_model("vgg16-brain-mri")).eval()
    spec = model.spec
    scans = pick_scans(sample_scans(), s.vgg_scans)
    truth = [true_label(p) for p in scans]
    slices = load_slices(scans, spec)
    p_orig = probabilities(model, calibration_batches(slices, spec))
    orig_labels = [spec.class_names[i] for i in p_orig.argmax(1)]
    flops_orig = count_flops(model)
    orig_correct = sum(a == b for a, b in zip(orig_labels, truth))
    rows: list[dict[str, Any]] = [{
        "name": "original", "method": "original", "budget": 1.0, "status": "ok", "flops": flops_orig,
        "gflops": flops_orig / 1e9, "flops_reduction": 0.0, "params": count_params(model),
        "scan_agreement": 1.0, "scan_agreement_count": len(scans), "scan_mean_kl": 0.0,
        "views_agreement": 1.0, "views_mean_kl": 0.0, "sample_accuracy": orig_correct / len(scans),
        "sample_correct": orig_correct, "speedup": 1.0, "efficiency": 1.0}]
    original_latency = []
    jobs = [(m, b) for m in ("svd", "tucker", "hscc") for b in (s.vgg_budgets or s.budgets)]
    for method, budget in progress_bar(jobs, desc="VGG16 on real scans", unit="model", disable=not progress):
        name = f"{_NAMES[method]} {budget:g}x"
        log(f"VGG16: {name}: leave-one-scan-out over {len(scans)} scans")
        config = CompressionConfig(method=method, budget=budget, seed=s.seed)
        loso = leave_one_scan_out(model, config, scans, views=s.vgg_views, phantoms=s.vgg_phantoms,
                                  test_views=s.vgg_test_views, seed=s.seed, progress=progress)
        calib = (default_calibration(spec, sample_views=s.vgg_views, n_phantoms=s.vgg_phantoms, seed=s.seed,
                                     scans=scans) if method == "hscc" else None)
        deployed, report = compress(model, calib, config, progress=progress, name=model.spec.name)
        report = report.to_dict()
        bench = _bench(model, deployed, s, progress)
        original_latency.append(bench["original_latency_ms"])
        by_file = {f["file"]: f for f in loso["folds"]}
        correct = sum(by_file[p.name]["label_compressed"] == t for p, t in zip(scans, truth))
        rows.append({
            "name": name, "method": method, "budget": budget, "status": "ok", "config": config.to_dict(),
            "flops": report["flops_compressed"], "gflops": report["flops_compressed"] / 1e9,
            "flops_reduction": 1 - report["flops_compressed"] / flops_orig, "params": report["params_compressed"],
            **bench, "scan_agreement": loso["agreement"], "scan_agreement_count": loso["agreement_count"],
            "scan_mean_kl": loso["mean_kl"], "views_agreement": loso["views_agreement"],
            "views_mean_kl": loso["views_mean_kl"], "sample_accuracy": correct / len(scans),
            "sample_correct": correct, "folds": loso["folds"], "loso_seconds": loso["seconds"],
            "compress_seconds": report["seconds"].get("total"), "calibration_images": report["calibration_images"]})
        del deployed
    rows[0]["latency_ms"] = float(np.median(original_latency)) if original_latency else None
    return {
        "rows": rows,
        "scans": [{"file": p.name, "true": t, "original": o} for p, t, o in zip(scans, truth, orig_labels)],
        "views_per_scan": s.vgg_views, "phantoms": s.vgg_phantoms, "test_views": s.vgg_test_views,
        "threads": torch.get_num_threads(),
    }
