"""A model made ready for deployment in a runtime and precision, with the product's
defaults: int8 calibrated on the model's default calibration set, and for a saved
(compressed) artifact the layers that quantise badly kept in float32 by a measured plan
(:func:`hscc_mri.runtimes.quantize.plan_int8`) that is computed once and kept beside the
artifact as ``<artifact>.int8-<runtime>.json``. Plans measured for the default builds
ship in :data:`SHIPPED_PLANS` (keyed by the artifact's SHA-256, which a fresh clone's
deterministic build reproduces), so a fresh clone need not measure them again.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from torch import nn

from .recipes import INT8_TARGET, default_recipe
from .runtimes import Choice, compile_model
from .runtimes.quantize import Int8Plan, plan_int8

__all__ = ["SHIPPED_PLANS", "deploy", "int8_plan", "plan_path"]

_PLAN_FORMAT = 1
#: Int8 plans of the default builds, measured here and committed (see its README).
SHIPPED_PLANS = Path(__file__).resolve().parent / "plans"


def plan_path(artifact: str | os.PathLike, runtime: str) -> Path:
    """Where the int8 plan of ``artifact`` for ``runtime`` is kept."""
    artifact = Path(artifact)
    stem = artifact.name[: -len(".safetensors")] if artifact.name.endswith(".safetensors") else artifact.name
    return artifact.with_name(f"{stem}.int8-{runtime}.json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _plan_key(artifact: Path, runtime: str, target: float) -> dict[str, Any]:
    # The plan is a list of layer names for exactly these weights: keyed on their bytes,
    # the runtime, the target and the calibration recipe (bump _PLAN_FORMAT when the
    # procedure changes).
    recipe = default_recipe(_base_name(artifact))
    return {"format": _PLAN_FORMAT, "artifact_sha256": _sha256(artifact), "runtime": runtime, "target": target,
            "calibration": recipe.to_dict(), "int8": _int8_settings(runtime)}


def _int8_settings(runtime: str) -> dict[str, Any]:
    """What else decides the int8 arithmetic: the quantiser's settings and whether the CPU
    has VNNI (without it the overflow fix applies and the kernels differ)."""
    from .runtimes import has_vnni

    settings: dict[str, Any] = {"vnni": has_vnni()}
    if runtime == "openvino":
        from .runtimes import openvino_backend

        settings["overflow_fix"] = openvino_backend.OVERFLOW_FIX
    elif runtime == "onnxruntime":
        from .runtimes import onnxruntime_backend

        settings["reduce_range"] = onnxruntime_backend.REDUCE_RANGE
    return settings


def _base_name(artifact: Path) -> str:
    import hscc_core

    return str(hscc_core.load_metadata(artifact).get("base", ""))


def _calibration(model: nn.Module) -> list:
    from .calibration import calibration_set

    return calibration_set(model.spec, default_recipe(model.spec.name))


def int8_plan(model: nn.Module, runtime: str, artifact: str | os.PathLike, target: float = INT8_TARGET,
              calibration: list | None = None, progress: bool = True,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The int8 plan of the model saved at ``artifact`` (loaded from its sidecar when the
    artifact's bytes, the runtime, the target, the calibration recipe and the runtimes'
    code are unchanged; else measured and saved). Check images = the calibration set.

    Returns:
        :meth:`Int8Plan.to_dict` plus ``key`` (what the cache was keyed on).
    """
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    artifact = Path(artifact)
    key = _plan_key(artifact, runtime, target)
    side = plan_path(artifact, runtime)
    shipped = SHIPPED_PLANS / f"{key['artifact_sha256'][:16]}-{runtime}.json"
    for candidate in (side, shipped):
        if candidate.is_file():
            try:
                saved = json.loads(candidate.read_text())
            except (OSError, ValueError):
                continue
            if saved.get("key") == key:
                return saved
    calibration = calibration if calibration is not None else _calibration(model)
    log(f"measuring which layers of {artifact.name} keep float32 in int8 ({runtime}); once, saved to {side.name}")
    plan: Int8Plan = plan_int8(model, runtime, calibration, calibration, target=target, progress=progress, log=log)
    out = {**plan.to_dict(), "key": key}
    tmp = side.with_name(side.name + ".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, side)
    return out


def deploy(model: nn.Module, choice: Choice, artifact: str | os.PathLike | None = None, progress: bool = True,
           log: Callable[[str], None] | None = None) -> nn.Module:
    """``model`` compiled for ``choice``; for int8, calibrated on the default calibration
    set, with the measured float32 layers of :func:`int8_plan` when ``artifact`` (the file
    ``model`` was loaded from) is given, else every layer quantised (plain post-training
    quantisation). The returned model's ``details`` say which."""
    if choice.precision != "int8":
        return compile_model(model, choice.runtime, choice.precision)
    calibration = _calibration(model)
    keep: list[str] = []
    plan = None
    if artifact is not None:
        plan = int8_plan(model, choice.runtime, artifact, calibration=calibration, progress=progress, log=log)
        keep = list(plan["keep_fp32"])
    out = compile_model(model, choice.runtime, "int8", calibration=calibration, keep_fp32=keep)
    out.details["plan"] = None if plan is None else {k: plan[k] for k in ("agreement", "mean_kl", "target", "met",
                                                                         "keep_fp32", "check_images")}
    return out
