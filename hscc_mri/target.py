"""``compress --target-agreement``: the selection scans, what "agreement" means, the files.

A clinic chooses how often the fast model may answer differently from the model it
validated; :func:`hscc_core.compress_to_target` finds the fewest-FLOPs compression that
meets that, given an ``evaluate(compressed)``. This module supplies it for a registry model:
:class:`SelectionEvaluator` runs the uncompressed reference (PyTorch float32, the answers a
release is measured against) once over the *selection* scans — the half of ``Testing/`` the
reference was not trained on (``runs/halves/select``, ``data/splits/README.md``), never the
report half, which stays untouched for the reported numbers — and measures each trial's
top-1 agreement with it and its accuracy on the folder labels, both with binomial standard
errors. :func:`save_target_result` writes the chosen model with its report (which carries
the curve and whether the target was met) and the curve alone as ``<out stem>.target.json``.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

import hscc_core
from hscc_core import TargetResult

from .bundle import TARGET_SUFFIX, ArtifactBundle
from .errors import SettingsError

if TYPE_CHECKING:  # the CLI imports this module to build its parser: scan reading loads on use
    from .recipes import CalibrationRecipe
    from .testset import TestSet

__all__ = ["DEFAULT_TIME_LIMIT_S", "TARGET_SUFFIX", "SelectionEvaluator", "check_select_folder",
           "save_target_result", "target_path"]

#: ``--time-limit``'s default: an hour, i.e. the VGG16's statistics and two to three
#: trials of 15-20 min each (sequential refit on 256 scans, 2 shared cores).
DEFAULT_TIME_LIMIT_S = 3600.0
#: The held-back half of ``Testing/`` (:data:`hscc_mri.halves.HALVES`): never tuned on.
REPORT_HALF = "report"
_BATCH = 16


def target_path(artifact: str | os.PathLike) -> Path:
    """Where the curve of the search that chose ``artifact`` goes: ``<stem>.target.json``."""
    return ArtifactBundle.of(artifact).target_curve


def check_select_folder(folder: str | os.PathLike) -> None:
    """Refuse a selection folder named like the report half.

    Raises:
        SettingsError: ``folder`` (or its ``Testing/`` parent's half) is ``report``.
    """
    path = Path(folder).resolve()
    if REPORT_HALF in (path.name, path.parent.name):
        raise SettingsError(f"{path.name!r} is the report half: a target is chosen on the select half "
                            "(runs/halves/select), never on the scans the reported numbers come from")


def _binomial_se(share: float, n: int) -> float:
    return math.sqrt(share * (1 - share) / n)


class SelectionEvaluator:
    """``evaluate(compressed)`` for :func:`hscc_core.compress_to_target` on labelled scans.

    Args:
        reference: the uncompressed model (its answers are what agreement is measured
            against; run once, here).
        select: the selection scans in the models' input layout
            (:func:`hscc_mri.testset.load_test_set`).
    """

    def __init__(self, reference: nn.Module, select: "TestSet") -> None:
        self.select = select
        self.reference_answers = self._answers(reference)
        self.reference_accuracy = self._share(self.reference_answers == select.labels)

    def _answers(self, model: nn.Module) -> torch.Tensor:
        from .inference import input_batches, probabilities

        with torch.inference_mode():
            return torch.from_numpy(probabilities(model, input_batches(self.select.inputs, _BATCH))).argmax(1)

    def _share(self, hits: torch.Tensor) -> float:
        return float(hits.double().mean())

    def __call__(self, model: nn.Module) -> dict[str, float]:
        """Top-1 agreement with the reference and accuracy, each with its binomial SE."""
        answers, n = self._answers(model), len(self.select)
        agreement = self._share(answers == self.reference_answers)
        accuracy = self._share(answers == self.select.labels)
        return {"agreement": agreement, "agreement_se": _binomial_se(agreement, n),
                "accuracy": accuracy, "accuracy_se": _binomial_se(accuracy, n)}

    def record(self) -> dict[str, Any]:
        """What the measurements were made on, for the report (base names, no paths)."""
        return {"select": {"folder": self.select.folder, "n": len(self.select), "sha256": self.select.sha256,
                           "class_counts": self.select.class_counts()},
                "reference": "uncompressed model, PyTorch fp32",
                "reference_accuracy": self.reference_accuracy,
                "reference_accuracy_se": _binomial_se(self.reference_accuracy, len(self.select))}


def save_target_result(result: TargetResult, evaluator: SelectionEvaluator, path: str | os.PathLike,
                       recipe: "CalibrationRecipe | None" = None) -> tuple[Path, dict[str, Any]]:
    """Save the chosen model at ``path`` with its report (the compression report, the
    calibration recipe and a ``target`` block: the curve, whether the target was met, the
    selection scans), and the ``target`` block alone at :func:`target_path`.

    Returns:
        ``(the curve file, the report dict written)``.
    """
    from .build import report_dict
    from .resolve import save_model_with_report

    block = {**result.to_dict(), **evaluator.record()}
    written = {**report_dict(result.report, recipe), "target": block}
    artifact, _ = save_model_with_report(result.model, path, written)
    curve = target_path(artifact)
    text = json.dumps(block, indent=2) + "\n"
    hscc_core.atomic_write(curve, lambda tmp: tmp.write_text(text))
    return curve, written
