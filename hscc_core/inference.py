"""Single-scan inference with timing: scan file → tensor → probabilities + latency."""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from preprocessing import ScanError, load_scan
from preprocessing.transforms import to_model_input


def time_forward(model: nn.Module, x: torch.Tensor, repeats: int = 5, warmup: int = 1) -> tuple[torch.Tensor, float]:
    """Run ``model(x)`` ``warmup + repeats`` times; return the output and the median
    latency in milliseconds of the timed runs."""
    with torch.inference_mode():
        for _ in range(warmup):
            out = model(x)
        times = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            out = model(x)
            times.append((time.perf_counter() - t0) * 1e3)
    return out, statistics.median(times)


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
        image = scan.image()
    except ScanError as e:
        return {"file": str(path), "error": str(e)}
    result = {"file": str(path), **predict_tensor(model, to_model_input(image, model.spec), repeats)}
    if scan.is_volume:
        result["slice"] = scan.slice_index if slice_index is None else slice_index
    return result
