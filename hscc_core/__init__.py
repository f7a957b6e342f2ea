"""HSCC: hierarchical spatio-channel clustering compression for CNN classifiers.

Public entry points: :func:`save` / :func:`load` for safe model artifacts and
:func:`resolve_model` for "registry name or artifact path".
"""
from __future__ import annotations

from . import modules as _modules  # noqa: F401  (registers the compressed module types for load())
from .artifacts import ArtifactError, load, resolve_model, save

__all__ = ["ArtifactError", "load", "resolve_model", "save"]
