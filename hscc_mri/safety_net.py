"""The release's safety net: its threshold, measured on the selection half, kept in the manifest.

A compressed model's unsure answers are handed to the uncompressed reference
(:mod:`hscc_core.safety_net`). Which confidence measure and which threshold is a
measurement, never a constant in code: :func:`measure_safety_net` runs the reference
(PyTorch float32, the answers the release is measured against) and each compressed model,
in float and in the int8 graph the release ships, over the *selection* scans (the half of
``Testing/`` the reference was not trained on, ``data/splits/README.md``; never the report
half), and chooses per precision the threshold that keeps agreement of the kept answers at
the target. :func:`hscc_mri.release_build.add_safety_net` writes that into the manifest
(``models[key].safety_net``); :func:`safety_net_for` reads the threshold that applies to the
precision a model runs in.

Manifest block (per compressed model)::

    "safety_net": {
      "target": 0.995,
      "select": {"folder": "select", "n": 329, "sha256": ...},
      "reference": "vgg16-brain-mri (PyTorch fp32)",
      "float": {"measure": "margin", "threshold": 0.62, "kept": ..., "handed_over": ..., ...,
                "candidates": {"top": {...}, "margin": {...}}},
      "int8": {...}                       # when the release ships the model's int8 graph
    }
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

import hscc_core
from hscc_core.safety_net import choose_safety_net

from .inference import input_batches, probabilities

__all__ = ["DEFAULT_TARGET", "SafetyNet", "measure_safety_net", "safety_net_for"]

#: The agreement asked of the answers the compressed model keeps (issue: >= 99.5%).
DEFAULT_TARGET = 0.995
_BATCH = 16


class SafetyNet:
    """The rule a running compressed model applies: scans whose ``measure`` is below
    ``threshold`` go to the reference.

    Attributes:
        measure: ``"top"`` or ``"margin"`` (:data:`hscc_core.safety_net.MEASURES`).
        threshold: the threshold (``None``: every scan is handed over).
        precision: which measurement it comes from (``"float"`` or ``"int8"``).
        selection: what it was measured on (the manifest's ``select`` block and the kept
            agreement / share handed over there).
    """

    def __init__(self, measure: str, threshold: float | None, precision: str, selection: dict[str, Any]) -> None:
        self.measure, self.threshold, self.precision, self.selection = measure, threshold, precision, selection

    @classmethod
    def from_record(cls, block: dict[str, Any], precision: str) -> "SafetyNet":
        """The rule stored in a manifest's ``safety_net`` block for ``precision`` (``float``/``int8``)."""
        record = block[precision]
        return cls(record["measure"], record["threshold"], precision,
                   {"n": record["n"], "handed_over": record["handed_over"], "kept_agreement": record["kept_agreement"],
                    "target": block["target"], "folder": block["select"]["folder"]})

    def hand_over(self, probs: torch.Tensor) -> torch.Tensor:
        """Which rows of the compressed model's probabilities ``(N, classes)`` go to the reference."""
        return hscc_core.safety_net.apply_safety_net(probs, self.measure, self.threshold)

    def confidence(self, probs: torch.Tensor) -> torch.Tensor:
        """The measure of each row (what is compared with the threshold)."""
        return hscc_core.safety_net.confidence(probs, self.measure)

    def describe(self) -> str:
        """One line: the rule and what it did on the selection scans."""
        s = self.selection
        threshold = "every scan" if self.threshold is None else f"{self.measure} < {self.threshold:.4f}"
        return (f"safety net: {threshold} goes to the uncompressed model (chosen on {s.get('n')} selection scans: "
                f"{100 * s.get('handed_over', 0):.1f}% handed over, kept answers agree "
                f"{100 * s.get('kept_agreement', 0):.1f}%)")


def _probs(model: nn.Module, inputs: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return probabilities(model, input_batches(inputs, _BATCH))


def measure_safety_net(reference: nn.Module, compressed: dict[str, nn.Module], inputs: torch.Tensor,
                       target: float = DEFAULT_TARGET) -> dict[str, Any]:
    """Choose the threshold of each compressed model on the selection ``inputs``.

    Args:
        reference: the uncompressed model whose answers are the target (PyTorch float32).
        compressed: precision label (``"float"``, ``"int8"``) -> that model compiled so.
        inputs: the selection scans in model units ``(N, C, H, W)``.
        target: agreement asked of the kept answers.

    Returns:
        ``{precision: chosen threshold record with its "candidates"}``.
    """
    ref_labels = torch.from_numpy(_probs(reference, inputs)).argmax(1)
    out: dict[str, Any] = {}
    for label, model in compressed.items():
        p = torch.from_numpy(_probs(model, inputs))
        chosen, candidates = choose_safety_net(p, ref_labels, target)
        out[label] = {**chosen.to_dict(), "candidates": {m: c.to_dict() for m, c in candidates.items()}}
    return out


def safety_net_for(entry: dict[str, Any], precision: str) -> SafetyNet | None:
    """The safety net of a release model's manifest ``entry`` for a model running in
    ``precision`` (``int8`` uses the int8 measurement, ``fp32``/``bf16`` the float one);
    ``None`` when the manifest has none for it."""
    block = entry.get("safety_net")
    if not block:
        return None
    label = "int8" if precision == "int8" else "float"
    return SafetyNet.from_record(block, label) if label in block else None
