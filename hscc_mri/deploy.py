"""A model made ready for deployment in a runtime and precision, with the product's
defaults: int8 calibrated on the model's default calibration set, and for a saved
(compressed) artifact the layers that quantise badly kept in float32 by a measured plan
(:func:`hscc_mri.runtimes.quantize.plan_int8`) that is computed once and kept beside the
artifact as ``<artifact>.int8-<runtime>.json``. Plans measured for the default builds
ship in :data:`SHIPPED_PLANS` (keyed by :func:`weights_identity`, which a fresh clone's
deterministic build reproduces), so a fresh clone need not measure them again.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .recipes import default_recipe
from .runtimes import Choice, compile_model
from .runtimes.quantize import Int8Plan, plan_int8

__all__ = ["DEFAULT_PRECISION", "INT8_TARGET", "SHIPPED_PLANS", "default_calibration_batches", "deploy", "int8_plan", "plan_path", "weights_identity"]

# Deployment defaults live here, not in hscc_mri/recipes.py: that module's bytes are part
# of the compressed-model cache key, and how a model is run must not rebuild it.

#: What ``--precision auto`` and the app run both models in, where the runtime can:
#: fp32, because int8 of the dense reference agrees with its fp32 self on only 0.88 of
#: the validation scans (README, "Deployable speed"); the page would show a wrong
#: "uncompressed" answer on one scan in eight. bf16 is taken where native instead.
DEFAULT_PRECISION = "fp32"
#: Top-1 agreement of an int8 model with its float32 self that the int8 plan must reach
#: on the calibration images (layers that quantise badly stay float32 until it does).
INT8_TARGET = 0.99

_PLAN_FORMAT = 1
#: Int8 plans of the default builds, measured here and committed (see its README).
SHIPPED_PLANS = Path(__file__).resolve().parent / "plans"


def plan_path(artifact: str | os.PathLike, runtime: str) -> Path:
    """Where the int8 plan of ``artifact`` for ``runtime`` is kept."""
    artifact = Path(artifact)
    stem = artifact.name[: -len(".safetensors")] if artifact.name.endswith(".safetensors") else artifact.name
    return artifact.with_name(f"{stem}.int8-{runtime}.json")


def weights_identity(artifact: str | os.PathLike) -> str:
    """SHA-256 over what decides an artifact's arithmetic: its structure (base model, spec,
    replacements) and every tensor (name, dtype, shape, bytes), not the report it carries
    (whose timings differ between two builds of bit-identical weights)."""
    import hscc_core
    from safetensors import safe_open

    meta = hscc_core.load_metadata(artifact)
    digest = hashlib.sha256(json.dumps({k: meta.get(k) for k in ("base", "model_spec", "replacements")},
                                       sort_keys=True).encode())
    with safe_open(str(artifact), framework="pt") as f:
        for name in sorted(f.keys()):
            t = f.get_tensor(name).contiguous()
            digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
            digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _plan_key(artifact: Path, runtime: str, target: float) -> dict[str, Any]:
    # The plan is a list of layer names for exactly these weights: keyed on them,
    # the runtime, the target and the calibration recipe (bump _PLAN_FORMAT when the
    # procedure changes).
    recipe = default_recipe(_base_name(artifact))
    return {"format": _PLAN_FORMAT, "weights_sha256": weights_identity(artifact), "runtime": runtime, "target": target,
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


def default_calibration_batches(model: nn.Module) -> list:
    """The default calibration set of ``model``'s registry spec (what int8 plans and
    quantisation read unless given another).

    Raises:
        ValueError: the model has no spec to draw its default set from.
    """
    from .calibration import calibration_set

    spec = getattr(model, "spec", None)
    if spec is None:
        raise ValueError("int8 needs calibration batches: pass calibration= (the model has no spec to draw "
                         "its default calibration set from)")
    return calibration_set(spec, default_recipe(spec.name))


def int8_plan(model: nn.Module, runtime: str, artifact: str | os.PathLike, target: float = INT8_TARGET,
              calibration: list | None = None, progress: bool = True,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The int8 plan of the model saved at ``artifact`` (loaded from its sidecar or a
    shipped copy when the artifact's weights, the runtime, the target, the calibration recipe and the runtimes'
    code are unchanged; else measured and saved). Check images = the calibration set.

    Returns:
        :meth:`Int8Plan.to_dict` plus ``key`` (what the cache was keyed on).
    """
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    artifact = Path(artifact)
    key = _plan_key(artifact, runtime, target)
    side = plan_path(artifact, runtime)
    shipped = SHIPPED_PLANS / f"{key['weights_sha256'][:16]}-{runtime}.json"
    for candidate in (side, shipped):
        if candidate.is_file():
            try:
                saved = json.loads(candidate.read_text())
            except (OSError, ValueError):
                continue
            if saved.get("key") == key:
                return saved
    calibration = calibration if calibration is not None else default_calibration_batches(model)
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
    calibration = default_calibration_batches(model)
    keep: list[str] = []
    plan = None
    if artifact is not None:
        plan = int8_plan(model, choice.runtime, artifact, calibration=calibration, progress=progress, log=log)
        keep = list(plan["keep_fp32"])
    out = compile_model(model, choice.runtime, "int8", calibration=calibration, keep_fp32=keep)
    out.details["plan"] = None if plan is None else {k: plan[k] for k in ("agreement", "mean_kl", "target", "met",
                                                                         "keep_fp32", "check_images")}
    return out
