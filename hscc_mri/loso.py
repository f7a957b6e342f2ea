"""Fidelity of a compressed model on real scans, judged honestly.

In-sample agreement flatters a data-aware method: its factors were fitted to the very
scans it is then tested on. :func:`leave_one_scan_out` calibrates without scan ``i``
and tests on scan ``i`` (and on augmented views of it), for every scan in turn — the
generalisation check of the compressor's default calibration (issue 3, HSCC.md §11).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from hscc_core import CompressionConfig, compress, fidelity
from hscc_core.progress import progress_bar

from .calibration import augmented_views, calibration_batches, default_calibration, load_slices
from .errors import DataError
from .inference import probabilities
from .recipes import LEGACY_RECIPE

__all__ = ["compare_on", "format_folds", "leave_one_scan_out", "probabilities"]


def compare_on(reference: nn.Module, compressed: nn.Module, batches: Sequence[torch.Tensor]) -> dict[str, Any]:
    """Agreement and KL of ``compressed`` against ``reference`` on ``batches``."""
    p_ref, p_cmp = probabilities(reference, batches), probabilities(compressed, batches)
    return {**fidelity(p_ref, p_cmp), "n": int(len(p_ref)),
            "labels_reference": p_ref.argmax(1).tolist(), "labels_compressed": p_cmp.argmax(1).tolist()}


def leave_one_scan_out(model: nn.Module, config: CompressionConfig, scans: Sequence[str | os.PathLike[str]],
                       views: int = LEGACY_RECIPE.views, phantoms: int = LEGACY_RECIPE.phantoms, test_views: int = 8, seed: int = 0,
                       progress: bool = True) -> dict[str, Any]:
    """Compress once per scan with that scan left out of the calibration set; test on it.

    Args:
        model: the uncompressed registry model.
        config: the compression to evaluate (``hscc`` uses the calibration set; the
            weights-only baselines ignore it, so one compression serves every fold).
        scans: the real scans (the default calibration set is built from them).
        views, phantoms: calibration views per remaining scan and phantoms, as in
            :func:`hscc_mri.calibration.default_calibration`.
        test_views: augmented views of the held-out scan tested besides the scan itself
            (seeded differently from the calibration views).
        seed: calibration and augmentation seed.

    Returns:
        ``folds`` (per held-out scan: file name, reference and compressed label and
        probabilities, KL, agreement on its views), ``agreement`` (held-out scans whose
        label the compressed model keeps, as a count and a share), ``mean_kl``,
        ``views_agreement`` / ``views_mean_kl`` over all held-out views, and seconds.
    """
    scans = [Path(s) for s in scans]
    if len(scans) < 2:
        raise DataError("leave-one-scan-out needs at least two scans")
    spec = model.spec
    slices = load_slices(scans, spec)
    t0 = time.perf_counter()
    folds = []
    shared = None
    for i in progress_bar(range(len(scans)), desc=f"leave-one-scan-out {config.method}", unit="fold", disable=not progress):
        if config.method == "hscc":
            calib = default_calibration(spec, sample_views=views, n_phantoms=phantoms, seed=seed,
                                        scans=[s for j, s in enumerate(scans) if j != i])
            compressed, _ = compress(model, calib, config, progress=False, name=spec.name)
        else:
            if shared is None:
                shared, _ = compress(model, None, config, progress=False, name=spec.name)
            compressed = shared
        held = calibration_batches([slices[i]], spec)
        held_views = calibration_batches(augmented_views([slices[i]], test_views, seed + 7919, keep_original=False),
                                         spec)
        scan_result = compare_on(model, compressed, held)
        view_result = compare_on(model, compressed, held_views)
        folds.append({"file": scans[i].name, "label_reference": spec.class_names[scan_result["labels_reference"][0]],
                      "label_compressed": spec.class_names[scan_result["labels_compressed"][0]],
                      "kl": scan_result["mean_kl"], "agree": bool(scan_result["agreement"] == 1.0),
                      "views_agreement": view_result["agreement"], "views_mean_kl": view_result["mean_kl"]})
    n_agree = sum(f["agree"] for f in folds)
    return {
        "config": config.to_dict(), "scans": len(scans), "agreement_count": n_agree,
        "agreement": n_agree / len(folds), "mean_kl": float(np.mean([f["kl"] for f in folds])),
        "views_agreement": float(np.mean([f["views_agreement"] for f in folds])),
        "views_mean_kl": float(np.mean([f["views_mean_kl"] for f in folds])),
        "folds": folds, "seconds": time.perf_counter() - t0,
    }


def format_folds(result: dict[str, Any]) -> str:
    """The result of :func:`leave_one_scan_out` as printable lines: the configuration and
    its totals, then one line per held-out scan (``DIFF`` where the label changed)."""
    cfg = result["config"]
    name = cfg["method"] + (f" {cfg['budget']:g}x" if cfg.get("budget") else f" energy {cfg['energy']}")
    if cfg["method"] == "hscc":
        name += f" {cfg['regions'][0]}x{cfg['regions'][1]} K{cfg['clusters']}"
    lines = [f"{name}: held-out scans agree {result['agreement_count']}/{result['scans']}, "
             f"mean KL {result['mean_kl']:.4f}; held-out views agree {result['views_agreement']:.1%}, "
             f"mean KL {result['views_mean_kl']:.4f} ({result['seconds']:.0f} s)"]
    for f in result["folds"]:
        mark = "ok " if f["agree"] else "DIFF"
        lines.append(f"  {mark} {f['file']:<28} {f['label_reference']:>11} -> {f['label_compressed']:<11} "
                     f"KL {f['kl']:.4f}  views {f['views_agreement']:.0%}")
    return "\n".join(lines)
