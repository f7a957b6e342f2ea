"""Scan inference: scan file → model input → probabilities (+ latency when timed).

The parts are separate so that one scan (:func:`predict_file`) and many
(:func:`hscc_mri.batch_predict.predict_files`, which reads ahead and batches) give the
same result lines: :func:`read_scan_input` reads and preprocesses a file (or turns why it
cannot into the line's ``error``), :func:`result_line` makes the line from the model's
probabilities for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from hscc_core import time_forward
from preprocessing import PASS_THROUGH, ScanError, load_scan, scan_to_model_input

__all__ = ["ScanInput", "input_batches", "predict_file", "predict_tensor", "probabilities", "read_scan_input",
           "result_line"]


@torch.no_grad()
def probabilities(model: nn.Module, batches: Iterable[torch.Tensor]) -> np.ndarray:
    """Softmax outputs of ``model`` (eval mode) over input ``batches``, as one ``(N, classes)``
    float32 array: the one place the product turns a model's logits over many inputs into
    probabilities."""
    model.eval()
    return np.concatenate([torch.softmax(model(x).float(), dim=1).numpy() for x in batches])


def input_batches(inputs: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """Model inputs ``(N, C, H, W)`` (e.g. a test set's, kept in float16) as float32
    channels-last batches of ``batch_size``, for :func:`probabilities`."""
    for start in range(0, len(inputs), batch_size):
        yield inputs[start:start + batch_size].float().contiguous(memory_format=torch.channels_last)


def _labelled(model: nn.Module, probs: list[float]) -> dict[str, Any]:
    """Label, probabilities, runtime and precision of one scan's class probabilities."""
    names = model.spec.class_names
    best = max(range(len(probs)), key=probs.__getitem__)
    return {"label": names[best], "probabilities": dict(zip(names, probs)),
            "runtime": getattr(model, "runtime", "torch"), "precision": getattr(model, "precision", "fp32")}


def predict_tensor(model: nn.Module, x: torch.Tensor, repeats: int = 5) -> dict[str, Any]:
    """Classify one ``(C, H, W)`` input tensor with a PyTorch or compiled model (see
    :mod:`hscc_mri.runtimes`), timed: one warm-up and ``repeats`` (at least 1) timed
    batch-1 passes. Returns label, probabilities, ``latency_ms`` (their median), runtime,
    precision."""
    logits, ms = time_forward(model, x.unsqueeze(0), repeats=repeats)
    probs = torch.softmax(logits.float(), dim=1)[0].tolist()
    return {**_labelled(model, probs), "latency_ms": ms}


@dataclass
class ScanInput:
    """One file read for a model: its input tensor and what the result line says about
    the scan, or why it could not be read.

    Attributes:
        file: the path as given.
        x: the ``(C, H, W)`` model input, ``None`` when the file could not be read.
        about: ``slice``/``slices`` for a volume, ``series``, ``notes`` (see :func:`predict_file`).
        error: a plain-language message when the file could not be read.
    """

    file: str
    x: torch.Tensor | None = None
    about: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def read_scan_input(path: str | Path, spec: Any, slice_index: int | None = None,
                    series: int | str | None = None) -> ScanInput:
    """Read one scan file, or one DICOM series (a folder or ``.zip``), as the model input
    of ``spec`` (a :class:`models.ModelSpec`).

    Never raises for a bad input: whatever reading the file raises (a decoder's panic
    included; only Ctrl+C and ``sys.exit`` pass) becomes the input's ``error``, so a run
    over many files goes on. Safe to call from a reader thread (no model involved).
    """
    try:
        scan = load_scan(path, slice_index=slice_index, series=series)
        x = scan_to_model_input(scan, spec)
    except ScanError as e:
        return ScanInput(str(path), error=str(e))
    except PASS_THROUGH:  # Ctrl+C and sys.exit, as the readers' own guard lets them through
        raise
    except BaseException as e:  # noqa: BLE001 - one bad file must not end the run
        return ScanInput(str(path), error=f"{Path(str(path)).name!r} could not be read "
                         f"({type(e).__name__}); the file is probably damaged.")
    about: dict[str, Any] = {}
    if scan.is_volume:
        about["slice"] = scan.slice_index if slice_index is None else slice_index
        about["slices"] = scan.num_slices
    if "series_slices" in scan.tags:
        about["series"] = scan.tags.get("SeriesDescription", "")
    if scan.notes:
        about["notes"] = list(scan.notes)
    return ScanInput(str(path), x, about)


def result_line(model: nn.Module, item: ScanInput, probs: list[float] | None = None,
                latency_ms: float | None = None) -> dict[str, Any]:
    """The JSON-ready result of one read file: ``{file, error}`` when it could not be read,
    else ``file``, label, probabilities (``probs``, class order of ``model.spec``), runtime,
    precision, ``latency_ms`` when measured, and what :class:`ScanInput` says about the scan."""
    if item.error is not None or probs is None:
        return {"file": item.file, "error": item.error or "not classified"}
    timed = {"latency_ms": latency_ms} if latency_ms is not None else {}
    return {"file": item.file, **_labelled(model, probs), **timed, **item.about}


def predict_file(model: nn.Module, path: str | Path, slice_index: int | None = None,
                 repeats: int = 5, series: int | str | None = None) -> dict[str, Any]:
    """Classify one scan file, or one DICOM series (a folder or ``.zip``), timed.

    Never raises for a bad input (see :func:`read_scan_input`).

    Returns one JSON-ready dict: ``file``, ``label``, ``probabilities`` (class → p),
    ``latency_ms`` (median model forward time, batch 1, of ``repeats`` timed passes),
    runtime, precision, for volumes ``slice`` and ``slices``, for a series ``series`` (its
    description) and ``notes`` (what was left out); or ``file`` and ``error`` (a
    plain-language message) when it cannot be read.
    """
    item = read_scan_input(path, model.spec, slice_index, series)
    if item.x is None:
        return result_line(model, item)
    timed = predict_tensor(model, item.x, repeats)
    return result_line(model, item, list(timed["probabilities"].values()), timed["latency_ms"])
