"""The model ``hscc-mri predict`` runs: chosen, checked, deployed, with its safety net.

:func:`load_predictor` turns a :class:`PredictRequest` (what the command line asked) into
a :class:`Predictor`: the release's model (the app's: its default compressed one, the one
at a budget, or its uncompressed reference; every file checked against the manifest
first) or a named model (a registry name or an artifact), compiled in the runtime and
precision the deployment policy decides (:func:`hscc_mri.runtimes.decide`), and the
release's safety net for its compressed model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch import nn

from .batch_predict import Fallback
from .deploy import Deployable
from .errors import SettingsError
from .identity import file_sha256
from .release import REFERENCE, RELEASE_DIR, load_release, load_release_models
from .resolve import is_registry_name, resolve_model
from .runtimes import Choice, Request, decide
from .safety_net import safety_net_for

__all__ = ["PredictRequest", "Predictor", "SafetyNetUse", "load_predictor"]


@dataclass(frozen=True)
class PredictRequest:
    """What to predict with (``predict``'s options of the same names).

    Attributes:
        model: a registry name or an artifact path (``None``: the release's model).
        budget: the release's compressed model at this FLOPs budget (``None``: its default).
        uncompressed: the release's uncompressed reference instead.
        safety_net: the release's compressed model hands its unsure scans to the reference.
        release: the release folder.
        runtime, precision: as asked (``auto``: the policy decides).
    """

    model: str | None = None
    budget: float | None = None
    uncompressed: bool = False
    safety_net: bool = True
    release: str | os.PathLike = RELEASE_DIR
    runtime: str = "auto"
    precision: str = "auto"


@dataclass(frozen=True)
class SafetyNetUse:
    """The safety net a prediction runs with: the reference and rule (``None`` when the
    release has no threshold), the reference's release name, and a line for the log."""

    fallback: Fallback | None
    reference_name: str | None
    description: str


@dataclass(frozen=True)
class Predictor:
    """The compiled model, its runtime choice, how each result names it (``info``: its
    name and 12 hex of its SHA-256, a registry name as is; ``runtime``; ``precision``) and
    the safety net (``None`` unless the release's compressed model runs with one)."""

    model: nn.Module
    choice: Choice
    info: dict[str, Any]
    net: SafetyNetUse | None


def _check(request: PredictRequest) -> None:
    if request.model is not None and (request.uncompressed or request.budget is not None):
        raise SettingsError("--model names the model itself: give it without --uncompressed or --budget")
    if request.uncompressed and request.budget is not None:
        raise SettingsError("--uncompressed and --budget exclude each other")
    if not request.safety_net and (request.model is not None or request.uncompressed):
        raise SettingsError("--no-safety-net applies to the release's compressed model only")


def load_predictor(request: PredictRequest, log: Callable[[str], None] | None = None) -> Predictor:
    """The model ``request`` asks for, deployed (see the module docstring); a fallback from
    the policy's first choice (e.g. int8 that fails to compile here) is said in ``log``.

    Raises:
        SettingsError: options that do not go together, or a budget the release lacks.
        ReleaseError: a release file fails its check (named with both hash prefixes).
        hscc_core.ArtifactError, RuntimeUnavailable: the model cannot be loaded or run here.
    """
    _check(request)
    net = None
    if request.model is not None:
        source = resolve_model(request.model)
        artifact = None if is_registry_name(request.model) else request.model
        target = Deployable(source, artifact)  # its weights hashed once: to find its plan, then to deploy
        model, choice = decide(Request(request.runtime, request.precision, [target])).run(target.deploy, log)
        name = request.model if artifact is None else f"{Path(artifact).name}@{file_sha256(artifact)[:12]}"
    else:
        release = load_release(request.release)
        key = REFERENCE if request.uncompressed else release.key_for(request.budget)
        if key is None:
            raise SettingsError(f"--budget {request.budget:g}: the release {request.release} has the budgets "
                                f"{', '.join(f'{b:g}' for b in release.budgets())} (--model builds any other)")
        with_net = key != REFERENCE and request.safety_net
        # With the safety net both models run: one runtime and precision that suits both. A
        # release with no threshold for this model never runs the reference: not loaded.
        both = with_net and bool(release.models[key].get("safety_net"))
        released, *others = load_release_models(release, [key, REFERENCE] if both else [key], request.runtime,
                                                request.precision, log)
        model, name, choice = released.model, released.name, released.choice
        if with_net:
            rule = safety_net_for(release.models[key], choice.precision)
            if rule is None:
                net = SafetyNetUse(None, None, f"no safety net: the release has no threshold for {key} in "
                                               f"{choice.precision} (hscc-mri release --select DIR measures one)")
            else:
                (ref,) = others
                net = SafetyNetUse(Fallback(ref.model, rule), ref.name, rule.describe())
    info = {"model": name, "runtime": getattr(model, "runtime", choice.runtime),
            "precision": getattr(model, "precision", choice.precision)}
    return Predictor(model, choice, info, net)
