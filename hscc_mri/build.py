"""Compress a registry model and save it: the one way ``compress``, the cache and the app do it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from torch import nn

import hscc_core
from hscc_core import CompressionConfig, CompressionReport, Method

from .recipes import CalibrationRecipe
from .resolve import save_model_with_report

__all__ = ["compress_model", "report_dict", "save_compressed"]


def compress_model(model: nn.Module, config: CompressionConfig, calibration: Iterable | None = None,
                   progress: bool = True) -> tuple[nn.Module, CompressionReport]:
    """:func:`hscc_core.compress` for a registry model (it carries ``model.spec``): the
    report is named after the model, and the weights-only methods get no calibration."""
    data = calibration if config.method == Method.HSCC else None
    return hscc_core.compress(model, data, config, progress=progress, name=model.spec.name)


def report_dict(report: CompressionReport, recipe: CalibrationRecipe | None = None) -> dict[str, Any]:
    """The JSON report of a build: the compressor's report plus the calibration recipe used."""
    out = report.to_dict()
    if recipe is not None:
        out["calibration"] = recipe.to_dict()
    return out


def save_compressed(compressed: nn.Module, path: str | os.PathLike, report: CompressionReport,
                    recipe: CalibrationRecipe | None = None) -> tuple[Path, dict[str, Any]]:
    """Save ``compressed`` at ``path`` with its report (in the metadata and as JSON beside it).

    Returns:
        ``(artifact path, the report dict written)``.
    """
    written = report_dict(report, recipe)
    artifact, _ = save_model_with_report(compressed, path, written)
    return artifact, written
