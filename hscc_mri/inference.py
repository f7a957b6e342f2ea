"""Single-scan inference with timing: scan file → tensor → probabilities + latency."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from hscc_core import time_forward
from preprocessing import ScanError, load_scan, scan_to_model_input

__all__ = ["predict_file", "predict_tensor", "probabilities"]


@torch.no_grad()
def probabilities(model: nn.Module, batches: Iterable[torch.Tensor]) -> np.ndarray:
    """Softmax outputs of ``model`` (eval mode) over input ``batches``, as one ``(N, classes)`` array."""
    model.eval()
    return np.concatenate([torch.softmax(model(x).float(), dim=1).numpy() for x in batches])


def predict_tensor(model: nn.Module, x: torch.Tensor, repeats: int = 5) -> dict[str, Any]:
    """Classify one ``(C, H, W)`` input tensor. Returns label, probabilities, latency."""
    logits, ms = time_forward(model, x.unsqueeze(0), repeats=repeats)
    probs = torch.softmax(logits.float(), dim=1)[0].tolist()
    names = model.spec.class_names
    best = max(range(len(probs)), key=probs.__getitem__)
    return {"label": names[best], "probabilities": dict(zip(names, probs)), "latency_ms": ms}


def predict_file(model: nn.Module, path: str | Path, slice_index: int | None = None,
                 repeats: int = 5) -> dict[str, Any]:
    """Classify one scan file.

    Returns one JSON-ready dict: ``file``, ``label``, ``probabilities`` (class → p),
    ``latency_ms`` (median model forward time, batch 1) and, for volumes, ``slice``; or
    ``file`` and ``error`` (a plain-language message) when the file cannot be read.
    """
    try:
        scan = load_scan(path, slice_index=slice_index)
        x = scan_to_model_input(scan, model.spec)
    except ScanError as e:
        return {"file": str(path), "error": str(e)}
    result = {"file": str(path), **predict_tensor(model, x, repeats)}
    if scan.is_volume:
        result["slice"] = scan.slice_index if slice_index is None else slice_index
    return result
