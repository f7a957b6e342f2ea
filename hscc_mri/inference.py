"""Single-scan inference with timing: scan file → tensor → probabilities + latency."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from hscc_core import time_forward
from preprocessing import PASS_THROUGH, ScanError, load_scan, scan_to_model_input

__all__ = ["predict_file", "predict_tensor", "probabilities"]


@torch.no_grad()
def probabilities(model: nn.Module, batches: Iterable[torch.Tensor]) -> np.ndarray:
    """Softmax outputs of ``model`` (eval mode) over input ``batches``, as one ``(N, classes)`` array."""
    model.eval()
    return np.concatenate([torch.softmax(model(x).float(), dim=1).numpy() for x in batches])


def predict_tensor(model: nn.Module, x: torch.Tensor, repeats: int = 5) -> dict[str, Any]:
    """Classify one ``(C, H, W)`` input tensor with a PyTorch or compiled model (see
    :mod:`hscc_mri.runtimes`). Returns label, probabilities, latency, runtime, precision."""
    logits, ms = time_forward(model, x.unsqueeze(0), repeats=repeats)
    probs = torch.softmax(logits.float(), dim=1)[0].tolist()
    names = model.spec.class_names
    best = max(range(len(probs)), key=probs.__getitem__)
    return {"label": names[best], "probabilities": dict(zip(names, probs)), "latency_ms": ms,
            "runtime": getattr(model, "runtime", "torch"), "precision": getattr(model, "precision", "fp32")}


def predict_file(model: nn.Module, path: str | Path, slice_index: int | None = None,
                 repeats: int = 5, series: int | str | None = None) -> dict[str, Any]:
    """Classify one scan file, or one DICOM series (a folder or ``.zip``).

    Never raises for a bad input: whatever reading the file raises (a decoder's panic
    included; only Ctrl+C and ``sys.exit`` pass) becomes this file's ``error``, so a run
    over many files goes on.

    Returns one JSON-ready dict: ``file``, ``label``, ``probabilities`` (class → p),
    ``latency_ms`` (median model forward time, batch 1), for volumes ``slice`` and
    ``slices``, for a series ``series`` (its description) and ``notes`` (what was left
    out); or ``file`` and ``error`` (a plain-language message) when it cannot be read.
    """
    try:
        scan = load_scan(path, slice_index=slice_index, series=series)
        x = scan_to_model_input(scan, model.spec)
    except ScanError as e:
        return {"file": str(path), "error": str(e)}
    except PASS_THROUGH:  # Ctrl+C and sys.exit, as the readers' own guard lets them through
        raise
    except BaseException as e:  # noqa: BLE001 - one bad file must not end the run
        return {"file": str(path), "error": f"{Path(str(path)).name!r} could not be read "
                f"({type(e).__name__}); the file is probably damaged."}
    result = {"file": str(path), **predict_tensor(model, x, repeats)}
    if scan.is_volume:
        result["slice"] = scan.slice_index if slice_index is None else slice_index
        result["slices"] = scan.num_slices
    if "series_slices" in scan.tags:
        result["series"] = scan.tags.get("SeriesDescription", "")
    if scan.notes:
        result["notes"] = list(scan.notes)
    return result
