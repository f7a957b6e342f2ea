"""Safe model artifacts: a JSON structure spec plus tensors, in one safetensors file.

A file holds everything needed to rebuild a model without running code from the file:

* ``metadata["hscc"]``: JSON with the registry name of the base architecture, its
  :class:`models.ModelSpec`, and the list of replaced submodules (path, module type
  from :data:`MODULE_TYPES`, constructor arguments);
* the tensors: the model's ``state_dict``.

Loading builds the base architecture from the registry, swaps in the listed modules
and loads the tensors. Nothing is unpickled. Files that are not safetensors (e.g. a
``torch.save`` pickle) are refused with a clear message.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from models import ModelSpec, build_model

FORMAT_VERSION = 1
_META_KEY = "hscc"

#: Module types that an artifact may name, mapped to ``(config) -> nn.Module`` factories.
#: The compressor registers its compressed layer types here.
MODULE_TYPES: dict[str, Callable[[dict[str, Any]], nn.Module]] = {}


class ArtifactError(ValueError):
    """An artifact file is missing, malformed or unsafe."""


def register_module_type(name: str, factory: Callable[[dict[str, Any]], nn.Module]) -> None:
    """Allow artifacts to contain modules of type ``name`` built by ``factory(config)``."""
    if name in MODULE_TYPES and MODULE_TYPES[name] is not factory:
        raise ValueError(f"module type {name!r} is already registered")
    MODULE_TYPES[name] = factory


def _get_submodule_parent(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    parent_path, _, leaf = path.rpartition(".")
    return (model.get_submodule(parent_path) if parent_path else model), leaf


def replace_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    """Put ``module`` at dotted ``path`` inside ``model`` (works inside ``nn.Sequential``)."""
    parent, leaf = _get_submodule_parent(model, path)
    setattr(parent, leaf, module)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place,
    so a crash never leaves a half-written file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(model: nn.Module, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a safe artifact at ``path`` (atomically).

    The model must carry ``model.spec`` (a :class:`ModelSpec`) and, if compressed,
    ``model.hscc_replacements``: a list of ``{"path", "type", "config"}`` dicts.
    ``extra`` is stored as JSON (e.g. training history) and returned by :func:`load_metadata`.
    """
    spec: ModelSpec = model.spec
    meta = {
        "format_version": FORMAT_VERSION,
        "base": spec.name,
        "model_spec": spec.to_dict(),
        "replacements": list(getattr(model, "hscc_replacements", [])),
        "extra": extra or {},
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(meta)}))
    return path


def report_path(path: str | os.PathLike) -> Path:
    """Where the JSON report of an artifact at ``path`` goes (same name, ``.json``)."""
    path = Path(path)
    return path.with_suffix(".json") if path.suffix != ".json" else path.with_suffix(".report.json")


def save_with_report(model: nn.Module, path: str | os.PathLike, report: dict[str, Any],
                     extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """:func:`save` ``model`` at ``path`` (``extra`` in its metadata, default
    ``{"report": report}``) and write ``report`` as JSON at :func:`report_path`, both
    atomically. Returns ``(artifact path, report path)``."""
    path = save(model, path, extra={"report": report} if extra is None else extra)
    json_path = report_path(path)
    text = json.dumps(report, indent=2)
    atomic_write(json_path, lambda tmp: tmp.write_text(text))
    return path, json_path


def load_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Read only the JSON part of an artifact (fast; no tensors)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(_META_KEY)
    except (SafetensorError, OSError, ValueError) as e:
        raise ArtifactError(
            f"{path.name} is not an HSCC model artifact (expected a safetensors file; "
            "pickled PyTorch files are refused because loading them can run code)"
        ) from e
    if raw is None:
        raise ArtifactError(f"{path.name} is a safetensors file without HSCC metadata")
    meta = json.loads(raw)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path.name}: unsupported artifact version {meta.get('format_version')}")
    return meta


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model saved at ``path`` (eval mode, ``model.spec`` set)."""
    meta = load_metadata(path)
    model = build_model(meta["base"], pretrained=False)
    for rep in meta["replacements"]:
        factory = MODULE_TYPES.get(rep["type"])
        if factory is None:
            raise ArtifactError(f"{Path(path).name}: unknown module type {rep['type']!r}")
        replace_submodule(model, rep["path"], factory(rep["config"]))
    state = load_file(str(path), device=str(device))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ArtifactError(f"{Path(path).name}: tensors do not match the recorded structure: {e}") from e
    model.spec = ModelSpec.from_dict(meta["model_spec"])
    model.hscc_replacements = meta["replacements"]
    return model.to(device).eval()


def resolve_model(name_or_path: str, device: str | torch.device = "cpu") -> nn.Module:
    """A registry name (``vgg16-brain-mri``) or the path of a saved artifact."""
    from models import list_models

    if name_or_path in list_models():
        return build_model(name_or_path).to(device)
    if Path(name_or_path).exists():
        return load(name_or_path, device)
    raise ArtifactError(
        f"{name_or_path!r} is neither a model name ({', '.join(list_models())}) nor an existing file"
    )
