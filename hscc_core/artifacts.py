"""Safe model artifacts: a JSON structure description plus tensors, in one safetensors file.

A file holds everything needed to rebuild a model without running code from the file:

* ``metadata["hscc"]``: JSON with the name of the base architecture (``base``), an
  opaque description of it for the caller (``model_spec``), the list of replaced
  submodules (path, module type from :data:`hscc_core.modules.MODULE_TYPES`, constructor
  arguments) and ``extra`` JSON (e.g. the compression report);
* the tensors: the model's ``state_dict``.

Loading asks the caller to build the base architecture (``build_base(base, model_spec)``:
the library knows no model zoo), swaps in the listed modules and loads the tensors.
Nothing is unpickled. Files that are not safetensors (e.g. a ``torch.save`` pickle) are
refused with a clear message.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import ArtifactError
from .graph import replace_submodule
from .modules import module_factory

__all__ = ["ArtifactError", "FORMAT_VERSION", "atomic_write", "file_sha256", "load", "load_metadata", "report_path", "save",
           "save_with_report"]

FORMAT_VERSION = 1
_META_KEY = "hscc"

#: ``build_base(base_name, model_spec) -> nn.Module``: the uncompressed architecture (its
#: weights are overwritten by the artifact's tensors).
BaseBuilder = Callable[[str, dict[str, Any]], nn.Module]


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place,
    so a crash never leaves a half-written file under the final name. The file gets the
    permissions a plain ``open(path, "w")`` gives a new file (``0o666`` less the umask), not
    the temporary file's private ``0o600``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe for that instant)
    os.umask(mask)
    return mask


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(model: nn.Module, path: str | os.PathLike, base: str, model_spec: dict[str, Any] | None = None,
         extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a safe artifact at ``path`` (atomically).

    Args:
        model: the model; if compressed, it carries ``model.hscc_replacements`` (a list of
            ``{"path", "type", "config"}`` dicts, set by :func:`hscc_core.compress`).
        path: the ``.safetensors`` file to write.
        base: name of the base architecture, handed back to ``build_base`` by :func:`load`.
        model_spec: JSON-able description of the model for the caller (handed back too).
        extra: more JSON (e.g. a training history), returned by :func:`load_metadata`.
    """
    meta = {
        "format_version": FORMAT_VERSION,
        "base": base,
        "model_spec": model_spec or {},
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


def save_with_report(model: nn.Module, path: str | os.PathLike, report: dict[str, Any], base: str,
                     model_spec: dict[str, Any] | None = None,
                     extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """:func:`save` ``model`` at ``path`` (``extra`` in its metadata, default
    ``{"report": report}``) and write ``report`` as JSON at :func:`report_path`, both
    atomically. Returns ``(artifact path, report path)``."""
    path = save(model, path, base, model_spec, extra={"report": report} if extra is None else extra)
    json_path = report_path(path)
    text = json.dumps(report, indent=2)
    atomic_write(json_path, lambda tmp: tmp.write_text(text))
    return path, json_path


def load_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Read only the JSON part of an artifact (fast; no tensors)."""
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


def load(path: str | os.PathLike, build_base: BaseBuilder, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model saved at ``path`` in eval mode.

    ``build_base(base, model_spec)`` makes the uncompressed architecture named in the
    file; the recorded compressed modules replace its layers and the file's tensors are
    loaded strictly. The result carries ``hscc_replacements``.
    """
    meta = load_metadata(path)
    try:
        model = build_base(meta["base"], meta.get("model_spec") or {})
    except (KeyError, ValueError) as e:
        raise ArtifactError(f"{Path(path).name}: cannot build its base model {meta.get('base')!r}: {e}") from e
    for rep in meta["replacements"]:
        factory = module_factory(rep["type"])
        if factory is None:
            raise ArtifactError(f"{Path(path).name}: unknown module type {rep['type']!r}")
        replace_submodule(model, rep["path"], factory(rep["config"]))
    state = load_file(str(path), device=str(device))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ArtifactError(f"{Path(path).name}: tensors do not match the recorded structure: {e}") from e
    model.hscc_replacements = meta["replacements"]
    return model.to(device).eval()
