"""Build-once cache of compressed models.

The first call for a (model, method, budget) compresses the model exactly as
``hscc-mri compress`` does and saves a safe artifact plus its report JSON in
the cache folder; later calls load that artifact in seconds. The file name carries a
short hash of everything that decides the result (the model, the full
:class:`~hscc_core.config.CompressionConfig` with its defaults, the calibration
settings), so changing any of them builds a new file instead of reusing a stale one::

    artifacts/vgg16-brain-mri-hscc-6x-3f2a9c01d4.safetensors   (+ .json report)

A cached file that cannot be loaded (e.g. written by an older version of the
compressor) is rebuilt with a warning. The hash also covers
:data:`BUILD_ALGORITHM_VERSION`, which a change of the code that alters the bytes of a
build must bump (the source bytes are not hashed: a comment edit builds nothing new).
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

from torch import nn

import hscc_core
from hscc_core import ArtifactError

from .errors import SettingsError
from .identity import file_sha256, files_identity, key_digest
from .recipes import DEFAULT_BUDGET, DEFAULT_METHOD, DEFAULT_MODEL, compression_config, default_recipe
from .build import compress_model, save_compressed
from .resolve import is_registry_name, load_model, resolve_model

__all__ = ["BUILD_ALGORITHM_VERSION", "build_key", "cache_path", "calibration_recipe", "compressed_model",
           "load_report"]

#: Version of the algorithm that turns a build key into artifact bytes. **Bump it in any
#: change that alters the bytes of a build** (the compressor's arithmetic or defaults, the
#: calibration set's reading, resizing, augmentation or phantoms, a registry model's
#: architecture or weights): it is part of every build key (:func:`build_key`), so the
#: cache builds afresh and a release records which version made it. Changes that leave
#: the bytes as they are (comments, refactors, speed-ups with identical arithmetic) keep
#: it, and with it every cached artifact.
BUILD_ALGORITHM_VERSION = 1


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _source_id(model_name: str) -> tuple[str, str]:
    """``(short name for the file name, identity for the hash)`` of a registry name or
    an artifact path (a file is identified by its content, so retraining invalidates)."""
    if is_registry_name(model_name):
        return model_name, model_name
    path = Path(model_name)
    if not path.is_file():
        from models import list_models

        raise ArtifactError(f"{model_name!r} is neither a model name ({', '.join(list_models())}) "
                            "nor an existing file")
    return path.stem, f"file:{file_sha256(path)}"


def calibration_recipe(model_name: str, overrides: dict[str, Any] | None = None):
    """The :class:`~hscc_mri.recipes.CalibrationRecipe` a build of ``model_name``
    uses: the registry model's default (an artifact's base model decides; see
    :func:`hscc_mri.recipes.default_recipe`) with ``overrides`` applied."""
    from dataclasses import replace

    base = model_name
    if not is_registry_name(model_name) and Path(model_name).is_file():
        base = hscc_core.load_metadata(model_name).get("base", model_name)
    return replace(default_recipe(base), **(overrides or {}))


def _config(method: str, budget: float, seed: int):
    return compression_config(method, budget, seed)


def build_key(model_name: str, method: str = DEFAULT_METHOD.value, budget: float = DEFAULT_BUDGET,
              calibration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything that decides the bytes of a build, as a JSON-ready dict: the model's
    identity (registry name, or an artifact's SHA-256), the full compression config (defaults
    included), for HSCC the calibration recipe and the SHA-256 of the scans it reads, and
    :data:`BUILD_ALGORITHM_VERSION`. Arguments as for :func:`cache_path`."""
    from .calibration import recipe_files

    recipe = calibration_recipe(model_name, calibration)
    config = _config(method, budget, recipe.seed)
    calib_key = ({**recipe.to_dict(), "files": files_identity(recipe_files(recipe))} if method == "hscc" else None)
    return {"model": _source_id(model_name)[1], "config": config.to_dict(), "calibration": calib_key,
            "algorithm_version": BUILD_ALGORITHM_VERSION}


def cache_path(model_name: str = DEFAULT_MODEL, method: str = DEFAULT_METHOD.value, budget: float = DEFAULT_BUDGET,
               cache_dir: str | os.PathLike = "artifacts",
               calibration: dict[str, Any] | None = None) -> Path:
    """Where :func:`compressed_model` keeps the artifact for these settings.

    Args:
        model_name: registry name or path of an (uncompressed) artifact.
        method: ``hscc``, ``svd`` or ``tucker``.
        budget: FLOPs reduction factor.
        cache_dir: the cache folder.
        calibration: overrides of the model's default calibration recipe (HSCC only; see
            :func:`calibration_recipe`), e.g. ``{"scans": 128}``.

    Returns:
        ``cache_dir/<model>-<method>-<budget>x-<hash>.safetensors`` where ``hash`` is the
        first 10 hex digits of a SHA-256 over the model identity, the full compression
        config (defaults included), for HSCC the calibration recipe and the bytes of the
        scans it reads, and :data:`BUILD_ALGORITHM_VERSION` (see :func:`build_key`).
    """
    key = build_key(model_name, method, budget, calibration)
    digest = key_digest(key, 10)
    short = re.sub(r"[^A-Za-z0-9._-]+", "_", _source_id(model_name)[0])
    return Path(cache_dir) / f"{short}-{method}-{budget:g}x-{digest}.safetensors"


def load_report(path: str | os.PathLike) -> dict[str, Any]:
    """The compression report of an artifact: from its metadata (``save(...,
    extra={"report": ...})``), else from the JSON beside it; ``{}`` if it has none."""
    report = hscc_core.load_metadata(path).get("extra", {}).get("report")
    if report is None and hscc_core.report_path(path).is_file():
        report = json.loads(hscc_core.report_path(path).read_text())
    return report or {}


def _build(model_name: str, method: str, budget: float, calibration: dict[str, Any] | None, path: Path,
           progress: bool) -> tuple[nn.Module, dict[str, Any]]:
    from .calibration import calibration_set

    model = resolve_model(model_name)
    if getattr(model, "hscc_replacements", None):
        raise SettingsError(f"{Path(model_name).name} is already compressed; give the uncompressed model")
    recipe = calibration_recipe(model_name, calibration)
    config = _config(method, budget, recipe.seed)
    batches = calibration_set(model.spec, recipe) if method == "hscc" else None  # svd/tucker: weights only
    compressed, report = compress_model(model, config, batches, progress=progress)
    _, report_dict = save_compressed(compressed, path, report, recipe if method == "hscc" else None)
    return compressed, report_dict


def compressed_model(model_name: str = DEFAULT_MODEL, method: str = DEFAULT_METHOD.value, budget: float = DEFAULT_BUDGET,
                     cache_dir: str | os.PathLike = "artifacts", rebuild: bool = False, progress: bool = True,
                     calibration: dict[str, Any] | None = None,
                     log: Callable[[str], None] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The compressed model for these settings, built once and then loaded from the cache.

    Args:
        model_name: registry name (``vgg16-brain-mri``) or path of an uncompressed artifact.
        method: ``hscc`` (data-aware; uses the default calibration set), ``svd`` or
            ``tucker`` (weights only).
        budget: whole-model FLOPs reduction factor, e.g. 6.
        cache_dir: folder of the cached artifacts (created if missing).
        rebuild: compress again even if a cached artifact exists (and replace it).
        progress: progress bars and one-line messages on stderr while building/loading.
        calibration: overrides of the model's default calibration recipe (HSCC only; see
            :func:`calibration_recipe`).
        log: where the one-line messages go (default: stderr when ``progress``).

    Returns:
        ``(compressed model in eval mode, compression report as a dict)``; the report has
        ``flops_original``, ``flops_compressed``, ``params_original``,
        ``params_compressed``, ``config``, ``layers``, ``seconds`` (see
        :class:`hscc_core.CompressionReport`).

    Raises:
        ArtifactError: ``model_name`` is neither a registry name nor a readable artifact.
        CompressionError: bad method/budget.
        SettingsError: ``model_name`` is already compressed.
    """
    log = log or (_stderr if progress else (lambda _msg: None))
    path = cache_path(model_name, method, budget, cache_dir, calibration)
    if path.is_file() and not rebuild:
        t0 = time.perf_counter()
        try:
            model, report = load_model(path), load_report(path)
        except (ArtifactError, RuntimeError, KeyError, ValueError) as e:
            log(f"cached model {path} cannot be loaded ({e}); building it again")
        else:
            log(f"loaded cached compressed model {path} in {time.perf_counter() - t0:.1f} s")
            return model, report
    log(f"building compressed model once ({method}, {budget:g}x FLOPs reduction; cached at {path})")
    t0 = time.perf_counter()
    model, report = _build(model_name, method, budget, calibration, path, progress)
    log(f"built and cached {path.name} in {time.perf_counter() - t0:.0f} s")
    return model, report
