"""A model made ready for deployment in a runtime and precision, with the product's
defaults: int8 calibrated on the model's default calibration set, with the layers that
quantise badly kept in float32 and the quantiser settings chosen by a measured plan
(:func:`hscc_mri.runtimes.quantize.plan_int8`). The plan is computed once per weights
and kept: beside a saved (compressed) artifact as ``<artifact>.int8-<runtime>.json``, and
for a registry model (the dense reference) in the cache folder as
``<model>-<identity>.int8-<runtime>.json``. Plans measured for the default models ship in
:data:`SHIPPED_PLANS` (keyed by the weights' identity, which a fresh clone's deterministic
build and the pip package's weights reproduce), so a fresh clone need not measure them.
The quantised graph itself is kept too (in the runtime backend's format, OpenVINO IR or
ONNX, keyed by the plan and the quantiser's versions), so only the first int8 start pays
for the quantisation.

A :class:`Deployable` is one model with where its plans live and its weights' identity,
computed once: it is what the deployment policy (:func:`hscc_mri.runtimes.decide`) asks
for the plans at hand, and what :meth:`Deployable.deploy` compiles.
"""
from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import dataclass
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from hscc_core import atomic_write

from .bundle import ArtifactBundle
from .errors import SettingsError
from .identity import key_digest, module_identity, weights_identity
from .recipes import default_recipe
from .runtimes import Choice, CpuKind, backend, compile_model, has_vnni
from .runtimes.quantize import Int8Plan, plan_int8

__all__ = ["DEFAULT_PRECISION", "INT8_TARGET", "SHIPPED_PLANS", "Deployable", "default_calibration_batches",
           "deploy", "find_int8_plan", "int8_plan"]

#: What ``--precision auto`` and the app run the models in: int8 where every model has a
#: measured int8 plan for this CPU kind at hand (kept or shipped; nothing is measured at
#: start), so each keeps the layers that quantise badly in float32. With their plans the
#: dense reference agrees with its fp32 self on 0.995 of the validation scans and the
#: compressed model keeps its fp32 agreement with the dense one (docs/runtimes.md). Where a plan is missing (e.g. a CPU with VNNI, whose plans are not shipped):
#: bf16 where native, else fp32 (:func:`hscc_mri.runtimes.decide`).
DEFAULT_PRECISION = "int8"
#: Top-1 agreement of an int8 model with its float32 self that the int8 plan must reach
#: on the calibration images (layers that quantise badly stay float32 until it does).
INT8_TARGET = 0.99
#: Where plans and quantised graphs of registry models are kept (the build cache's folder).
DEFAULT_CACHE_DIR = "artifacts"

_PLAN_FORMAT = 2
#: Int8 plans of the default builds, measured here and committed (see its README).
SHIPPED_PLANS = Path(__file__).resolve().parent / "plans"


def _plan_key(identity: str, model_name: str, runtime: str, target: float) -> dict[str, Any]:
    # The plan is a list of layer names and settings for exactly these weights: keyed on
    # them, the runtime, the target, the calibration recipe, the candidate settings and
    # VNNI (bump _PLAN_FORMAT when the procedure changes).
    recipe = default_recipe(model_name)
    return {"format": _PLAN_FORMAT, "weights_sha256": identity, "runtime": runtime, "target": target,
            "calibration": recipe.to_dict(),
            "int8": {"vnni": has_vnni(), "candidates": backend(runtime).int8_candidates()}}


def _base_name(artifact: Path) -> str:
    import hscc_core

    return str(hscc_core.load_metadata(artifact).get("base", ""))


@dataclass(eq=False)
class Deployable:
    """One model to deploy, with where its int8 plans and quantised graphs are kept; its
    weights' identity is computed once, on first need (it hashes every tensor: a start
    hashes each model once, to look up its plans, and :meth:`deploy` reuses it; an
    explicit float precision never needs it). Looking plans up never measures one.

    It is what :func:`hscc_mri.runtimes.decide` asks for the int8 plans at hand (it has the
    ``name`` and ``int8_plan_on`` of :class:`hscc_mri.runtimes.policy.ModelPlans`).

    Attributes:
        model: the PyTorch model (its weights must not change while this object is used).
        artifact: the file ``model`` was loaded from (plans kept beside it); ``None`` for a
            registry model (the dense reference), whose plans are kept in ``cache_dir``
            under its weights' identity.
        cache_dir: where a registry model's plans and quantised graphs are kept.
    """

    model: nn.Module
    artifact: str | os.PathLike | None = None
    cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR

    @property
    def name(self) -> str:
        """How reasons name it: its file name, else its registry name."""
        if self.artifact is not None:
            return Path(self.artifact).name
        spec = getattr(self.model, "spec", None)
        return getattr(spec, "name", type(self.model).__name__)

    def _registry_name(self) -> str:
        spec = getattr(self.model, "spec", None)
        if spec is None:
            raise SettingsError("an int8 plan needs the model's artifact or a registry model (with a spec)")
        return spec.name

    @functools.cached_property
    def identity(self) -> str:
        """SHA-256 of the weights (:func:`weights_identity` of the artifact, else
        :func:`module_identity`)."""
        if self.artifact is not None:
            return weights_identity(self.artifact)
        self._registry_name()  # a model without a spec has no plan to key
        return module_identity(self.model)

    @functools.cached_property
    def recipe_name(self) -> str:
        """The registry model whose default calibration recipe its plans are keyed on."""
        return _base_name(Path(self.artifact)) if self.artifact is not None else self._registry_name()

    @functools.cached_property
    def bundle(self) -> ArtifactBundle:
        """Its family of files: beside its artifact, or for a registry model in
        ``cache_dir`` under its name and weights' identity."""
        if self.artifact is not None:
            return ArtifactBundle.of(self.artifact)
        return ArtifactBundle.for_registry_model(self.cache_dir, self._registry_name(), self.identity)

    def plan_path(self, runtime: str) -> Path:
        """Where its int8 plan for ``runtime`` is kept."""
        return self.bundle.int8_plan(runtime)

    def find_plan(self, runtime: str) -> dict[str, Any] | None:
        """Its int8 plan for ``runtime`` on this CPU kind if one is at hand, else ``None``."""
        key = _plan_key(self.identity, self.recipe_name, runtime, INT8_TARGET)
        return _saved_plan(key, self.identity, runtime, self.plan_path(runtime))

    def int8_plan_on(self, runtime: str) -> CpuKind | None:
        """The CPU kind its int8 plan for ``runtime`` at hand was measured on (only plans
        for this CPU kind are found), else ``None``."""
        plan = self.find_plan(runtime)
        return None if plan is None else CpuKind(bool(plan["key"]["int8"]["vnni"]))

    def plan(self, runtime: str, target: float = INT8_TARGET, calibration: list | Callable[[], list] | None = None,
             progress: bool = True, log: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Its int8 plan for ``runtime``, measured once if none is at hand (see :func:`int8_plan`)."""
        return _plan_at(self.model, runtime, self.identity, self.recipe_name, self.bundle, target,
                        calibration, progress, log)

    def deploy(self, choice: Choice, progress: bool = True, log: Callable[[str], None] | None = None,
               calibration: list | Callable[[], list] | None = None, plan: bool = True) -> nn.Module:
        """The model compiled for ``choice`` (see :func:`deploy`)."""
        log = log or (lambda m: print(m, file=sys.stderr, flush=True))
        model, runtime = self.model, choice.runtime
        if choice.precision != "int8":
            return compile_model(model, runtime, choice.precision)
        if not plan:
            return compile_model(model, runtime, "int8", calibration=_calibration(calibration, model))
        found = self.plan(runtime, INT8_TARGET, calibration, progress, log)
        kept = _quantized_path(found, runtime, self.bundle)
        quantized = _load_quantized(kept, runtime)
        options = dict(found.get("options", {}))
        if quantized is not None:
            out = compile_model(model, runtime, "int8", keep_fp32=found["keep_fp32"], int8_options=options,
                                quantized=quantized)
        else:
            out = compile_model(model, runtime, "int8", calibration=_calibration(calibration, model),
                                keep_fp32=found["keep_fp32"], int8_options=options)
            _save_quantized(out, kept, runtime, log)
        out.details["plan"] = {k: found.get(k) for k in ("agreement", "mean_kl", "target", "met", "keep_fp32",
                                                        "options", "check_images")}
        out.details["quantized_graph"] = {"file": kept.name, "reused": quantized is not None}
        return out


def default_calibration_batches(model: nn.Module) -> list:
    """The default calibration set of ``model``'s registry spec (what int8 plans and
    quantisation read unless given another).

    Raises:
        SettingsError: the model has no spec to draw its default set from.
    """
    from .calibration import calibration_set

    spec = getattr(model, "spec", None)
    if spec is None:
        raise SettingsError("int8 needs calibration batches: pass calibration= (the model has no spec to draw "
                            "its default calibration set from)")
    return calibration_set(spec, default_recipe(spec.name))


def int8_plan(model: nn.Module, runtime: str, artifact: str | os.PathLike | None = None,
              target: float = INT8_TARGET, calibration: list | None = None, progress: bool = True,
              log: Callable[[str], None] | None = None,
              cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR) -> dict[str, Any]:
    """The int8 plan of ``model``: loaded from its sidecar or a shipped copy when its
    weights, the runtime, the target, the calibration recipe and the candidate settings
    are unchanged; else measured once and saved. Check images = the calibration set.

    Args:
        model: the PyTorch model.
        runtime: ``openvino`` or ``onnxruntime``.
        artifact: the file ``model`` was loaded from (plan kept beside it); ``None`` for a
            registry model, whose plan is kept in ``cache_dir`` under its weights' identity.
        target, calibration, progress, log: see :func:`hscc_mri.runtimes.quantize.plan_int8`
            (``calibration``: default, the model's default calibration set).

    Returns:
        :meth:`Int8Plan.to_dict` plus ``key`` (what the cache was keyed on).
    """
    return Deployable(model, artifact, cache_dir).plan(runtime, target, calibration, progress, log)


def _saved_plan(key: dict[str, Any], identity: str, runtime: str, side: Path) -> dict[str, Any] | None:
    """The plan kept at ``side`` or shipped for ``identity`` whose key is ``key``, else ``None``."""
    shipped = SHIPPED_PLANS / f"{identity[:16]}-{runtime}.json"
    for candidate in (side, shipped):
        if candidate.is_file():
            try:
                saved = json.loads(candidate.read_text())
            except (OSError, ValueError):
                continue
            if saved.get("key") == key:
                return saved
    return None


def find_int8_plan(model: nn.Module, runtime: str, artifact: str | os.PathLike | None = None,
                   cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR) -> dict[str, Any] | None:
    """The int8 plan of ``model`` for ``runtime`` on this CPU kind if one is at hand (kept
    beside its artifact or in ``cache_dir``, or shipped), else ``None``; never measures one.
    Arguments as for :func:`int8_plan`."""
    return Deployable(model, artifact, cache_dir).find_plan(runtime)


def _plan_at(model: nn.Module, runtime: str, identity: str, model_name: str, bundle: ArtifactBundle, target: float,
             calibration: list | Callable[[], list] | None, progress: bool,
             log: Callable[[str], None] | None) -> dict[str, Any]:
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    key = _plan_key(identity, model_name, runtime, target)
    side = bundle.int8_plan(runtime)
    saved = _saved_plan(key, identity, runtime, side)
    if saved is not None:
        return saved
    calibration = _calibration(calibration, model)
    log(f"measuring which layers of {bundle.name} keep float32 in int8 ({runtime}); once, "
        f"saved to {side}")
    plan: Int8Plan = plan_int8(model, runtime, calibration, calibration, target=target, progress=progress, log=log,
                               options=key["int8"]["candidates"])
    out = {**plan.to_dict(), "key": key}
    text = json.dumps(out, indent=1)
    atomic_write(side, lambda tmp: tmp.write_text(text))
    return out


def _version(package: str) -> str | None:
    try:
        return _metadata.version(package)
    except _metadata.PackageNotFoundError:
        return None


def _quantized_path(plan: dict[str, Any], runtime: str, bundle: ArtifactBundle) -> Path:
    """Where the graph quantised by ``plan`` is kept: in the model's bundle, tagged by a hash
    of the plan's key, its choices and the quantiser's versions (any change: a new file),
    in the runtime backend's format."""
    what = {"key": plan["key"], "keep_fp32": plan["keep_fp32"], "options": plan.get("options", {}),
            "versions": {p: _version(p) for p in ("openvino", "nncf", "onnxruntime", "onnx", "torch")}}
    return bundle.int8_graph(runtime, backend(runtime).graph_suffix, tag=key_digest(what, 12))


def _load_quantized(path: Path, runtime: str):
    """The kept quantised graph at ``path`` (``None`` when absent or unreadable)."""
    if not path.is_file():
        return None
    try:
        return backend(runtime).read_graph(path)
    except Exception:  # noqa: BLE001 - a damaged cache file is re-made, never fatal
        return None


def _save_quantized(compiled: nn.Module, path: Path, runtime: str, log: Callable[[str], None]) -> None:
    try:
        backend(runtime).write_graph(compiled, path)
    except OSError as e:  # a read-only cache only costs the next start the quantisation
        log(f"could not keep the quantised graph at {path}: {e}")


def _calibration(calibration: list | Callable[[], list] | None, model: nn.Module) -> list:
    """The calibration batches: as given, by calling the given function, or the default set."""
    if calibration is None:
        return default_calibration_batches(model)
    return calibration() if callable(calibration) else calibration


def deploy(model: nn.Module, choice: Choice, artifact: str | os.PathLike | None = None, progress: bool = True,
           log: Callable[[str], None] | None = None, calibration: list | Callable[[], list] | None = None,
           cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, plan: bool = True) -> nn.Module:
    """``model`` compiled for ``choice``. For int8: calibrated on ``calibration`` (default:
    the model's default calibration set, read only when something must be quantised), with
    the float32 layers and quantiser settings of its measured :func:`int8_plan` (``plan``
    false: every layer quantised with the runtime's defaults, plain post-training
    quantisation), and the quantised graph kept for the next start. The returned model's
    ``details`` say which plan it ran and whether the quantised graph was reused.

    Args:
        model: the PyTorch model (dense or compressed).
        choice: a concrete runtime and precision (:func:`hscc_mri.runtimes.decide`).
        artifact: the file ``model`` was loaded from (``None``: a registry model).
        calibration: the model's default calibration set when the caller has it already, or
            a function returning it (called only if something must be quantised, so one
            read can serve several models); the kept plan and quantised graph are keyed on
            that set's recipe.
        cache_dir: where a registry model's plan and quantised graph are kept.
    """
    return Deployable(model, artifact, cache_dir).deploy(choice, progress, log, calibration, plan)
