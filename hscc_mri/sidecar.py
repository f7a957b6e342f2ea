"""An artifact's evaluation sidecar, read back for serving.

``hscc-mri evaluate --data`` and ``hscc-mri release`` measure a compressed artifact on a
labelled test set and write the result beside it as ``<artifact>.evaluation.json``
(:func:`hscc_mri.testset.write_evaluation`, the lab side). The app shows it; this module
is all the app needs of it: :func:`evaluation_path` (where it lives) and
:func:`load_evaluation`, which returns it only while its recorded SHA-256 matches the
artifact's bytes, so a measurement is never shown for a file it was not made on.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .bundle import EVALUATION_SUFFIX, ArtifactBundle
from .identity import file_sha256

__all__ = ["EVALUATION_SUFFIX", "evaluation_path", "load_evaluation"]


def evaluation_path(artifact_path: str | os.PathLike[str]) -> Path:
    """Where the evaluation sidecar of an artifact goes:
    ``x.safetensors`` -> ``x.evaluation.json`` (other names get the suffix appended)."""
    return ArtifactBundle.of(artifact_path).evaluation


def load_evaluation(artifact_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The evaluation sidecar of an artifact, or ``None`` unless it exists, parses, and its
    ``artifact_sha256`` equals the SHA-256 of the artifact file as it is now."""
    side = evaluation_path(artifact_path)
    if not side.is_file() or not Path(artifact_path).is_file():
        return None
    try:
        doc = json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("artifact_sha256") != file_sha256(artifact_path):
        return None
    return doc
