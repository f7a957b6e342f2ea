"""What ``hscc-mri evaluate`` runs: a labelled test set, or leave-one-scan-out.

:func:`evaluate_test_set` turns an :class:`EvaluateRequest` (the options of ``evaluate
--data``) into one evaluation by :func:`hscc_mri.testset.evaluate_models`: the
uncompressed model, the default compression of each method at each budget (built once
into the cache), each saved artifact, and each of these again compiled in every asked
runtime; it shows the table, writes a sidecar beside every artifact file evaluated and,
when asked, the JSON. :func:`evaluate_loso` runs
:func:`hscc_mri.loso.leave_one_scan_out` for every method x budget of a
:class:`LosoRequest` and shows each fold table as it is done.

Both refuse with typed errors (:class:`~hscc_mri.errors.SettingsError`,
:class:`~hscc_mri.errors.DataError`, :class:`hscc_core.ArtifactError`, ...) worded for the
command's options, which the command shows as they are. The heavy modules (torch, the
test set, the runtimes) are imported when a function runs, not with this module.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .errors import DataError, SettingsError, typed_value_errors
from .fidelity_targets import FidelityTargets, check_targets, format_targets
from .recipes import DEFAULT_BUDGET, DEFAULT_MODEL, LEGACY_RECIPE

if TYPE_CHECKING:
    from torch import nn

    from .runtimes import Choice

__all__ = ["EvaluateRequest", "LosoRequest", "evaluate_loso", "evaluate_test_set", "unique_name"]

def _stdout(text: str) -> None:
    print(text, flush=True)  # flushed: a table stays on screen even if a later step fails


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


def unique_name(name: str, taken: set[str]) -> str:
    """``name``, else ``name (2)``, ``name (3)``, ...: the first not in ``taken``, which it
    joins (two rows of one table never share a name)."""
    out, i = name, 2
    while out in taken:
        out, i = f"{name} ({i})", i + 1
    taken.add(out)
    return out


@dataclass(frozen=True)
class EvaluateRequest:
    """What ``evaluate --data`` evaluates (its options of the same names).

    Attributes:
        data: the labelled test set: a split folder of class folders, or a data-set root
            holding ``Testing/``.
        model: the uncompressed model: a registry name or an artifact path.
        methods: compression methods, each at every budget (built once into
            ``cache_dir``); ``None``: hscc, or none when ``artifacts`` are given.
        budgets: FLOPs reduction factors.
        artifacts: saved compressed models, one row each (and a sidecar beside each).
        cache_dir: the cache folder of the models built for ``methods`` x ``budgets`` (and
            of a registry reference's int8 plans).
        batch_size: scans per forward pass (at least 1).
        bootstrap: paired bootstrap resamples (at least 2).
        seed: the bootstrap seed.
        runtimes: ``RUNTIME:PRECISION`` choices (no precision: fp32); the uncompressed and
            every compressed model again in each, one row each.
        json_out: also write every number to this file.
        targets: fidelity targets every compressed row is checked against after the table
            (:mod:`hscc_mri.fidelity_targets`); the verdicts join the result as
            ``fidelity_targets``.
    """

    data: str | os.PathLike[str]
    model: str = DEFAULT_MODEL
    methods: tuple[str, ...] | None = None
    budgets: tuple[float, ...] = (DEFAULT_BUDGET,)
    artifacts: tuple[str, ...] = ()
    cache_dir: str = "artifacts"
    batch_size: int = 16
    bootstrap: int = 1000
    seed: int = 0
    runtimes: tuple[str, ...] = ()
    json_out: str | None = None
    targets: FidelityTargets = FidelityTargets()


@dataclass(frozen=True)
class LosoRequest:
    """What leave-one-scan-out (``evaluate`` without ``--data``) runs (its options of the
    same names).

    Attributes:
        model: the uncompressed model: a registry name or an artifact path.
        methods: compression methods, each at every budget (at least one).
        budgets: FLOPs reduction factors.
        regions, clusters: the HSCC grid and channel clusters (other methods: 1x1, 1).
        views: calibration views per remaining scan.
        phantoms: phantoms in each calibration set.
        test_views: augmented views per held-out scan.
        seed: calibration and augmentation seed (and the compression's).
        scans: the real scans (empty: the JPEG samples in ``samples/``).
        json_out: also write every number to this file.
    """

    model: str = DEFAULT_MODEL
    methods: tuple[str, ...] = ("hscc",)
    budgets: tuple[float, ...] = (DEFAULT_BUDGET,)
    regions: tuple[int, int] = (1, 1)
    clusters: int = 1
    views: int = LEGACY_RECIPE.views
    phantoms: int = LEGACY_RECIPE.phantoms
    test_views: int = 8
    seed: int = 0
    scans: tuple[str, ...] = ()
    json_out: str | None = None


def evaluate_loso(request: LosoRequest, show: Callable[[str], None] = _stdout,
                  note: Callable[[str], None] = _stderr) -> list[dict[str, Any]]:
    """Leave-one-scan-out for every method x budget of ``request``, in that order.

    Args:
        request: what to run.
        show: gets each configuration's fold table (:func:`hscc_mri.loso.format_folds`)
            as soon as it is done (default: stdout).
        note: gets ``wrote FILE`` (default: stderr).

    Returns:
        The result of :func:`hscc_mri.loso.leave_one_scan_out` of each configuration.

    Raises:
        SettingsError: no method, or a configuration that cannot be compressed.
        hscc_core.ArtifactError: the model cannot be resolved.
        DataError: fewer than two scans.
    """
    from hscc_core import CompressionConfig

    from .calibration import sample_scans
    from .loso import format_folds, leave_one_scan_out
    from .resolve import resolve_model

    if not request.methods:
        raise SettingsError("give at least one of --methods for leave-one-scan-out (or --data for a test set)")
    model = resolve_model(request.model)
    scans = list(request.scans) or sample_scans()
    results = []
    for method in request.methods:
        for budget in request.budgets:
            with typed_value_errors():
                # Regions and clusters are HSCC's; the weights-only methods take none.
                config = CompressionConfig(method=method, budget=budget,
                                           regions=request.regions if method == "hscc" else (1, 1),
                                           clusters=request.clusters if method == "hscc" else 1, seed=request.seed)
                res = leave_one_scan_out(model, config, scans, request.views, request.phantoms, request.test_views,
                                         request.seed)
            show(format_folds(res))
            results.append(res)
    if request.json_out:
        Path(request.json_out).write_text(json.dumps({"model": model.spec.name, "results": results}, indent=2))
        note(f"wrote {request.json_out}")
    return results


def _shipped_by(file: Path) -> Path | None:
    """The release manifest beside ``file`` that checks it, or ``None``: an evaluation
    must not rewrite a shipped sidecar, or the release would refuse it as changed."""
    from .release import MANIFEST, ReleaseError, load_release

    try:
        release = load_release(file.parent)
    except ReleaseError:
        return None  # no release manifest there: nothing checks the file
    return release.folder / MANIFEST if release.ships(file.name) else None


def _check(request: EvaluateRequest) -> None:
    if request.bootstrap < 2:
        raise SettingsError(f"--bootstrap must be at least 2, got {request.bootstrap}")
    if request.batch_size < 1:
        raise SettingsError(f"--batch-size must be at least 1, got {request.batch_size}")
    for a in request.artifacts:
        if not Path(a).is_file():
            raise DataError(f"--artifacts: no such file: {a}")


def _runtime_choices(items: Sequence[str]) -> list[Choice]:
    """``["openvino:int8", ...]`` -> checked :class:`hscc_mri.runtimes.Choice` list
    (checked before anything is loaded, so a choice this machine cannot run costs nothing)."""
    from .runtimes import Request, RuntimeUnavailable, decide

    choices = []
    for item in items:
        runtime, _, precision = item.partition(":")
        try:
            choices.append(decide(Request(runtime, precision or "fp32")).choice)
        except RuntimeUnavailable as e:
            raise RuntimeUnavailable(f"--runtimes {item}: {e}") from e
        except ValueError as e:
            raise SettingsError(f"--runtimes {item}: {e}") from e
    return choices


def _add_runtime_rows(reference: nn.Module, candidates: dict[str, nn.Module], sources: dict[str, dict[str, Any]],
                      files: dict[str, tuple[Path, str]], choices: Sequence[Choice], taken: set[str],
                      reference_file: str | None = None, cache_dir: str = "artifacts") -> None:
    """One more row per (model, runtime choice): the reference and each candidate compiled
    (int8: each with its measured plan, kept beside its file, or for a registry
    reference in ``cache_dir``)."""
    from .deploy import Deployable, default_calibration_batches
    from .peers import REFERENCE_ROW
    from .runtimes import RuntimeUnavailable

    # One Deployable a model: its weights are hashed once, whatever the number of int8 choices.
    base = [(REFERENCE_ROW, Deployable(reference, reference_file, cache_dir))] + \
        [(n, Deployable(m, files.get(n, (None,))[0], cache_dir)) for n, m in candidates.items()]
    # Every model here shares the reference's input contract, so one read of the default
    # calibration set serves every int8 compile (and each plan measured anew).
    calibration = default_calibration_batches(reference) if any(c.precision == "int8" for c in choices) else None
    for choice in choices:
        if (choice.runtime, choice.precision) == ("torch", "fp32"):
            continue  # the rows above already are
        for name, target in base:
            asked = f"--runtimes {choice.runtime}:{choice.precision} for {name}"
            try:
                compiled = target.deploy(choice, calibration=calibration)
            except RuntimeUnavailable as e:
                raise RuntimeUnavailable(f"{asked}: {e}") from e
            except ValueError as e:
                raise SettingsError(f"{asked}: {e}") from e
            row = unique_name(f"{name} [{choice.runtime} {choice.precision}]", taken)
            candidates[row] = compiled
            sources[row] = {**sources.get(name, {"kind": "reference"}), "base_row": name, "runtime": choice.runtime,
                            "precision": choice.precision, "details": compiled.details}


def evaluate_test_set(request: EvaluateRequest, show: Callable[[str], None] = _stdout,
                      note: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """Evaluate the uncompressed model and the compressed ones on a labelled test set
    (the module docstring; the numbers: :func:`hscc_mri.testset.evaluate_models`).

    Rows: the uncompressed model (``uncompressed``), then ``<method> <budget>x`` for each
    method x budget, then each artifact by its file name without ``.safetensors``, then
    ``<row> [<runtime> <precision>]`` for each runtime choice; a name taken twice gets
    `` (2)``, ... Each compressed row's ``source`` says where it came from.

    Args:
        request: what to evaluate.
        show: gets the table (:func:`hscc_mri.testset.format_table`; default: stdout).
        note: gets ``wrote FILE`` for each sidecar and the JSON (default: stderr).

    Returns:
        The result of :func:`hscc_mri.testset.evaluate_models`, with ``reference``, each
        row's ``source``, the same-runtime agreement and, when targets were asked,
        ``fidelity_targets`` added (what the JSON holds).

    Raises:
        SettingsError: a setting out of range, or a runtime choice that cannot compile a model.
        DataError: a missing or unreadable artifact, or a test set that cannot be read.
        RuntimeUnavailable: a runtime choice this machine cannot run.
        hscc_core.ArtifactError: the model cannot be resolved.
    """
    import torch

    from . import cache
    from .bundle import ArtifactBundle
    from .identity import file_sha256
    from .peers import REFERENCE_ROW
    from .resolve import load_model, resolve_model
    from .testset import (add_same_runtime_agreement, evaluate_models, evaluation_path, format_table, load_test_set,
                          write_evaluation)

    _check(request)
    methods = request.methods
    if methods is None:
        methods = () if request.artifacts else ("hscc",)  # artifacts alone: just those rows
    choices = _runtime_choices(request.runtimes)
    with typed_value_errors(DataError):
        try:
            reference = resolve_model(request.model)
            test_set = load_test_set(request.data, reference.spec, progress=True)
        except FileNotFoundError as e:
            raise DataError(str(e)) from e
    candidates: dict[str, torch.nn.Module] = {}
    sources: dict[str, dict[str, Any]] = {}  # row name -> where it came from
    files: dict[str, tuple[Path, str]] = {}  # row name -> (artifact path, sha256 of the evaluated bytes)
    taken = {REFERENCE_ROW}
    for method in methods:
        for budget in request.budgets:
            with typed_value_errors():
                path = cache.cache_path(request.model, method, budget, request.cache_dir)
                model, report = cache.compressed_model(request.model, method, budget, cache_dir=request.cache_dir,
                                                       progress=True)
            name = unique_name(f"{method} {budget:g}x", taken)
            candidates[name] = model
            sha = file_sha256(path) if path.is_file() else None
            sources[name] = {"kind": "cache", "method": method, "budget": budget, "artifact": path.name,
                             "artifact_sha256": sha, "report": {k: v for k, v in report.items() if k != "layers"}}
            if sha:
                files[name] = (path, sha)
    for a in request.artifacts:
        path = Path(a)
        try:
            sha = file_sha256(path)
            model, report = load_model(path), cache.load_report(path)
        except (OSError, RuntimeError, KeyError, ValueError) as e:  # ArtifactError is a ValueError
            raise DataError(f"--artifacts {path.name}: {e}") from e
        name = unique_name(ArtifactBundle.of(path).name, taken)
        candidates[name] = model
        sources[name] = {"kind": "artifact", "artifact": path.name, "artifact_sha256": sha,
                         "report": {k: v for k, v in report.items() if k != "layers"}}
        files[name] = (path, sha)
    model_path = Path(request.model)
    _add_runtime_rows(reference, candidates, sources, files, choices, taken,
                      reference_file=request.model if model_path.is_file() else None, cache_dir=request.cache_dir)
    with typed_value_errors():
        result = evaluate_models(reference, candidates, test_set, n_bootstrap=request.bootstrap, seed=request.seed,
                                 progress=True, batch_size=request.batch_size)
    result["reference"] = {"model": model_path.name if model_path.is_file() else request.model}
    for row in result["rows"][1:]:
        row["source"] = sources[row["name"]]
    add_same_runtime_agreement(result)
    show(format_table(result))
    if request.targets.asked():
        result["fidelity_targets"] = check_targets(result, request.targets)
        show(format_targets(result["fidelity_targets"]))
    for name, (path, sha) in files.items():
        sidecar = evaluation_path(path)
        shipped = _shipped_by(sidecar)
        if shipped is not None:
            note(f"kept {sidecar}: it is a shipped file that {shipped} checks (evaluate a copy of "
                 f"the model outside the release folder to keep this measurement beside it)")
            continue
        note(f"wrote {write_evaluation(path, result, name, artifact_sha256=sha)}")
    if request.json_out:
        Path(request.json_out).write_text(json.dumps(result, indent=1))
        note(f"wrote {request.json_out}")
    return result
