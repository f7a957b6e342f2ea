"""Model resolution for the product: registry names and saved artifacts, with their spec.

The library (:mod:`hscc_core`) saves and loads artifacts without knowing any model; this
module connects it to the model registry (:mod:`models`): the base architecture of an
artifact is built from the registry and the model's :class:`models.ModelSpec` travels
in the file's ``model_spec`` field.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

import hscc_core
from hscc_core import ArtifactError
from models import ModelSpec, build_model, list_models

__all__ = ["ArtifactError", "is_registry_name", "load_model", "resolve_model", "save_model", "save_model_with_report"]


def _build_base(base: str, model_spec: dict[str, Any]) -> nn.Module:
    model = build_model(base, pretrained=False)
    if model_spec:
        model.spec = ModelSpec.from_dict(model_spec)
    return model


def is_registry_name(name: str) -> bool:
    """Whether ``name`` is a model of the registry (``alexnet``, ``vgg16-brain-mri``, ...)."""
    return name in list_models()


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model saved at ``path`` (eval mode, ``model.spec`` set)."""
    return hscc_core.load(path, _build_base, device)


def save_model(model: nn.Module, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Save a registry model (it carries ``model.spec``) as a safe artifact at ``path``."""
    spec: ModelSpec = model.spec
    return hscc_core.save(model, path, base=spec.name, model_spec=spec.to_dict(), extra=extra)


def save_model_with_report(model: nn.Module, path: str | os.PathLike, report: dict[str, Any],
                           extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """:func:`save_model` plus the report JSON beside it (see :func:`hscc_core.save_with_report`)."""
    spec: ModelSpec = model.spec
    return hscc_core.save_with_report(model, path, report, base=spec.name, model_spec=spec.to_dict(), extra=extra)


def resolve_model(name_or_path: str, device: str | torch.device = "cpu") -> nn.Module:
    """A registry name (``vgg16-brain-mri``) or the path of a saved artifact."""
    if is_registry_name(name_or_path):
        return build_model(name_or_path).to(device)
    if Path(name_or_path).exists():
        return load_model(name_or_path, device)
    raise ArtifactError(
        f"{name_or_path!r} is neither a model name ({', '.join(list_models())}) nor an existing file"
    )
