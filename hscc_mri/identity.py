"""Every identity the product computes, in one place.

Four questions, four identities, each a SHA-256:

* **Is this the file I expect?** :func:`file_sha256` of its bytes (release manifests,
  evaluation sidecars, test-set records). Any byte changes it, the report a safetensors
  file carries included.
* **Does this artifact compute what the plan was measured on?** :func:`weights_identity`:
  its structure (base model, spec, replacements) and every tensor, not the report it
  carries (two builds with bit-identical weights have different timings in it). Int8
  plans and quantised graphs are keyed on it.
* **Is this installed registry model the one I expect?** :func:`module_identity`: its
  spec name, class and every tensor of its state. The pretrained weights come from a pip
  package, so every install of it has the same identity.
* **Which build is this?** :func:`key_digest` of a JSON-able key (the build key of
  :func:`hscc_mri.cache.build_key`: model, configuration, calibration data, algorithm
  version; the key of a kept quantised graph). :func:`files_identity` identifies a set
  of input files (the calibration scans, a test set) by names and bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

import hscc_core
from hscc_core import file_sha256

from .errors import SettingsError

__all__ = ["file_sha256", "files_identity", "key_digest", "module_identity", "weights_identity"]


def key_digest(key: Mapping[str, Any], length: int | None = None) -> str:
    """SHA-256 (hex) of a JSON-able key, with sorted keys so the order of its entries does
    not matter; the first ``length`` hex digits when given (for file names)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return digest if length is None else digest[:length]


def files_identity(paths: Iterable[str | os.PathLike[str]], names: Iterable[str] | None = None) -> str:
    """SHA-256 over a sequence of files: each one's name (``names`` when given, e.g. paths
    relative to a data folder; else the base name) and bytes, in the order given."""
    paths = [Path(p) for p in paths]
    labels = [p.name for p in paths] if names is None else list(names)
    if len(labels) != len(paths):
        raise SettingsError(f"{len(labels)} names for {len(paths)} files")
    digest = hashlib.sha256()
    for label, path in zip(labels, paths):
        digest.update(label.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _add_tensor(digest: Any, name: str, tensor: torch.Tensor) -> None:
    """Feed one named tensor (name, dtype, shape, bytes) into ``digest``."""
    t = tensor.detach().cpu().contiguous()
    digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
    digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def weights_identity(artifact: str | os.PathLike[str]) -> str:
    """SHA-256 over what decides an artifact's arithmetic: its structure (base model, spec,
    replacements) and every tensor (name, dtype, shape, bytes), not the report it carries
    (whose timings differ between two builds of bit-identical weights)."""
    from safetensors import safe_open

    meta = hscc_core.load_metadata(artifact)
    digest = hashlib.sha256(json.dumps({k: meta.get(k) for k in ("base", "model_spec", "replacements")},
                                       sort_keys=True).encode())
    with safe_open(str(artifact), framework="pt") as f:
        for name in sorted(f.keys()):
            _add_tensor(digest, name, f.get_tensor(name))
    return digest.hexdigest()


def module_identity(model: nn.Module) -> str:
    """SHA-256 over what decides a registry model's arithmetic: its spec's name, its class
    and every tensor of its state (name, dtype, shape, bytes)."""
    spec = getattr(model, "spec", None)
    digest = hashlib.sha256(json.dumps({"model": getattr(spec, "name", None), "class": type(model).__qualname__},
                                       sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        _add_tensor(digest, name, t)
    return digest.hexdigest()
