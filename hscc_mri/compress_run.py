"""``hscc-mri compress``'s work: one compression of a registry model or artifact, as asked.

:func:`compress_as_requested` turns a :class:`CompressRequest` (what the command line
asked) into the compressed artifact and its files: the calibration set of the model's
recipe with the ``calib*`` options applied (split over the processes under ``torchrun``),
then either one compression under a FLOPs budget (or an energy share), optionally
distilled against the original, or the search for the fewest-FLOPs compression that keeps
a target agreement with the original on the selection scans (:mod:`hscc_mri.target`).
It saves the artifact with its report, writes the per-layer figures and returns a
:class:`CompressOutcome` for the caller to show.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import DataError, ProductError, SettingsError
from .recipes import DEFAULT_BUDGET, DEFAULT_METHOD, DEFAULT_MODEL, CalibrationRecipe

if TYPE_CHECKING:  # annotations only: these modules load when the work runs
    from hscc_core import CompressionConfig, CompressionReport, TargetResult

    from .bundle import ArtifactBundle
    from .testset import TestSet

__all__ = ["CompressOutcome", "CompressRequest", "calibration_batches_for", "calibration_recipe_for",
           "compress_as_requested", "describe_recipe"]


@dataclass(frozen=True)
class CompressRequest:
    """What to compress and how (``compress``'s options of the same names).

    Attributes:
        out: the artifact to write (``.safetensors``); its report goes beside it.
        model: a registry name or an artifact path.
        method: ``hscc``, ``svd`` or ``tucker``.
        budget, energy: the FLOPs reduction factor, or (HSCC) the share of response energy
            kept instead; neither: the default budget.
        target_agreement, select, time_limit: instead of a budget, the fewest-FLOPs model
            whose top-1 agreement with the original on the scans in ``select`` is at least
            ``target_agreement``, searched within ``time_limit`` seconds (``None``: the default).
        regions, clusters, sequential: HSCC's output grid per conv, channel clusters per
            region, and sequential refit.
        calib, calib_scans, calib_views, calib_phantoms: the calibration source (``default``:
            the model's recipe; ``real``, ``samples``, ``phantoms`` or a folder) and what of
            the recipe to change (``None``: the recipe's).
        include, exclude: layer name patterns.
        rank_multiple: HSCC ranks in multiples of this.
        finetune_epochs, finetune_lr: distillation against the original after compressing.
        finetune_data, finetune_scans: distil on the scans of this folder (at most this many)
            instead of the calibration images.
        figures: write the per-layer region figures.
        seed: of the calibration set, the compression and the distillation.
        threads: torch CPU threads (per process under ``torchrun``).
    """

    out: str
    model: str = DEFAULT_MODEL
    method: str = DEFAULT_METHOD.value
    budget: float | None = None
    energy: float | None = None
    target_agreement: float | None = None
    select: str | None = None
    time_limit: float | None = None
    regions: tuple[int, int] = (1, 1)
    clusters: int = 1
    sequential: bool = True
    calib: str = "default"
    calib_scans: int | None = None
    calib_views: int | None = None
    calib_phantoms: int | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    rank_multiple: int = 16
    finetune_epochs: int = 0
    finetune_lr: float = 1e-4
    finetune_data: str | None = None
    finetune_scans: int | None = None
    figures: bool = True
    seed: int = 0
    threads: int | None = None


@dataclass(frozen=True)
class CompressOutcome:
    """What a compression wrote: its report, its files, the layer figures (``None`` when
    not asked for) and, for a target search, the search's result and the curve file."""

    report: CompressionReport
    bundle: ArtifactBundle
    figures: list[Path] | None = None
    target: TargetResult | None = None
    curve: Path | None = None

    @property
    def status(self) -> int:
        """The exit status: 1 when a target search missed its target (the best model found
        is saved all the same), else 0."""
        return 0 if self.target is None or self.target.met else 1


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _about(option: str, e: Exception) -> ProductError:
    """``e`` said of ``option`` in one line: a :class:`DataError` when the data was at fault
    (missing, unreadable), else a :class:`SettingsError`."""
    kind = DataError if isinstance(e, (DataError, OSError)) else SettingsError
    return kind(f"{option}: {e}")


def calibration_recipe_for(request: CompressRequest) -> CalibrationRecipe:
    """The :class:`~hscc_mri.recipes.CalibrationRecipe` that ``request``'s ``calib*`` ask
    for: the model's default recipe with the options given applied.

    Raises:
        SettingsError, DataError: the recipe cannot be made (named ``--calib``).
    """
    from .cache import calibration_recipe

    overrides: dict[str, Any] = {"seed": request.seed}
    if request.calib != "default":
        overrides["source"] = request.calib
        if request.calib != "real":  # another source: all of its scans, as they are, unless told otherwise
            overrides.update(scans=None, views=1, phantoms=0)
    for key, value in (("scans", request.calib_scans), ("views", request.calib_views),
                       ("phantoms", request.calib_phantoms)):
        if value is not None:
            overrides[key] = value
    if request.calib == "phantoms" and request.calib_phantoms is None:
        overrides["phantoms"] = 32
    try:
        return calibration_recipe(request.model, overrides)
    except ValueError as e:  # the library's ArtifactError of an unreadable model among them
        raise _about("--calib", e) from e


def calibration_batches_for(spec, recipe: CalibrationRecipe) -> list:
    """Calibration batches of ``recipe`` for a model of ``spec``.

    Raises:
        SettingsError, DataError: the recipe reads nothing usable (named ``--calib``).
    """
    from .calibration import calibration_set

    try:
        return calibration_set(spec, recipe)
    except ValueError as e:
        raise _about("--calib", e) from e


def describe_recipe(recipe: CalibrationRecipe) -> str:
    """One line saying what a calibration recipe reads."""
    what = {"real": "real training scans (data/calibration/brain-mri)", "samples": "sample scans",
            "phantoms": "phantoms only"}.get(recipe.source, recipe.source)
    parts = [what] + ([f"at most {recipe.scans} scans"] if recipe.scans and recipe.source != "phantoms" else [])
    if recipe.views > 1:
        parts.append(f"{recipe.views} views each")
    if recipe.phantoms:
        parts.append(f"+ {recipe.phantoms} phantoms")
    return ", ".join(parts)


def _check(request: CompressRequest) -> None:
    """One-line errors for ``target_agreement``, ``select`` and ``time_limit``, before
    anything is read or built."""
    from .target import check_select_folder

    if request.target_agreement is None:
        if request.select or request.time_limit is not None:
            raise SettingsError("--select and --time-limit belong to --target-agreement")
        return
    if not 0.0 < request.target_agreement <= 1.0:
        raise SettingsError(f"--target-agreement must be a share in (0, 1], e.g. 0.97; got "
                            f"{request.target_agreement:g}")
    if not request.select:
        raise SettingsError("--target-agreement needs --select DIR: the selection scans the agreement is measured "
                            "on (the select half, runs/halves/select)")
    if request.time_limit is not None and not request.time_limit > 0:
        raise SettingsError(f"--time-limit must be a positive number of seconds, got {request.time_limit:g}")
    if request.finetune_epochs > 0:
        raise SettingsError("--target-agreement measures compressions as they are: leave out --finetune-epochs "
                            "and distil the chosen model afterwards (hscc-mri distill)")
    try:
        check_select_folder(request.select)
    except ValueError as e:
        raise _about("--select", e) from e


def _load_select(folder: str, spec) -> TestSet:
    """The selection scans in the model's input layout."""
    from .testset import load_test_set

    try:
        return load_test_set(folder, spec)
    except (OSError, ValueError) as e:
        raise _about("--select", e) from e


def compress_as_requested(request: CompressRequest,
                          log: Callable[[str], None] = _stderr) -> CompressOutcome | None:
    """Compress as ``request`` says; under ``torchrun`` the calibration batches are split over
    the processes (their statistics are all-reduced) and rank 0 writes the files.

    Args:
        request: what to compress and how.
        log: where the progress lines go (default: stderr).

    Returns:
        What was written, on the process that wrote it; ``None`` on the other ranks.

    Raises:
        SettingsError: options that do not go together or out of range, a calibration or
            selection source that cannot be used, a process count that does not fit.
        DataError: scans that are missing or cannot be read.
        hscc_core.HSCCError: the model cannot be loaded or compressed as configured.
    """
    from .distributed import process_group_from_env

    with process_group_from_env(threads=request.threads):
        return _compress(request, log)


def _compress(request: CompressRequest, log: Callable[[str], None]) -> CompressOutcome | None:
    import hscc_core

    from .build import compress_model, save_compressed
    from .distributed import rank, shard, world_size
    from .recipes import compression_config, finetune_config
    from .resolve import resolve_model

    _check(request)

    budget = request.budget if request.budget is not None or request.energy is not None else DEFAULT_BUDGET
    try:
        config = compression_config(request.method, budget if request.energy is None else None, request.seed,
                                    energy=request.energy, regions=tuple(request.regions),
                                    clusters=request.clusters, sequential=request.sequential,
                                    include=tuple(request.include), exclude=tuple(request.exclude),
                                    rank_multiple=request.rank_multiple)
        finetune = finetune_config(request.finetune_epochs, request.finetune_lr, request.seed)
        model = resolve_model(request.model)
    except ValueError as e:
        if isinstance(e, (ProductError, hscc_core.HSCCError)):  # typed already: as it is
            raise
        raise SettingsError(str(e)) from e
    if world_size() > 1 and finetune.epochs > 0:
        raise SettingsError("--finetune-epochs runs in one process: compress under torchrun without it, then distil")
    if world_size() > 1 and request.target_agreement is not None:
        raise SettingsError("--target-agreement runs in one process: start it without torchrun")
    select = _load_select(request.select, model.spec) if request.target_agreement is not None else None
    calibration = recipe = None
    if request.method == "hscc" or (finetune.epochs > 0 and not request.finetune_data):
        recipe = calibration_recipe_for(request)
        log(f"building calibration set ({describe_recipe(recipe)})")
        calibration = calibration_batches_for(model.spec, recipe)
        if world_size() > 1:
            if len(calibration) < world_size():
                raise SettingsError(f"{len(calibration)} calibration batches cannot be split over {world_size()} "
                                    "processes")
            calibration = shard(calibration)
            if rank() == 0:
                log(f"calibration split over {world_size()} processes (statistics all-reduced)")
    if select is not None:
        return _search_target(request, model, config, calibration, recipe, select, log)
    compressed, report = compress_model(model, config, calibration, progress=rank() == 0)
    if rank() != 0:  # rank 0 holds the same model and writes it
        return None
    if finetune.epochs > 0:
        report.finetune = _finetune(request, compressed, model, calibration, finetune, log)
    _, written = save_compressed(compressed, request.out, report, recipe)
    return _finish(request, report, written)


def _finetune(request: CompressRequest, compressed, model, calibration, finetune, log: Callable[[str], None]) -> dict:
    """Distil ``compressed`` against ``model`` on the calibration images or on the scans of
    ``finetune_data``; returns the distillation's record for the report."""
    import hscc_core

    data = calibration
    if request.finetune_data:
        kd_recipe = CalibrationRecipe(source=request.finetune_data, scans=request.finetune_scans, seed=request.seed)
        log(f"reading distillation scans ({describe_recipe(kd_recipe)})")
        data = calibration_batches_for(model.spec, kd_recipe)
    record = hscc_core.distill(compressed, model, data, finetune)
    if request.finetune_data:
        record["data"] = {"folder": Path(request.finetune_data).name, "images": sum(len(b) for b in data)}
    log(f"fine-tuned {record['epochs_run']} epoch(s): held-out agreement with the original "
        f"{record['val_agreement_before']:.1%} -> {record['val_agreement_after']:.1%}")
    return record


def _search_target(request: CompressRequest, model, config: CompressionConfig, calibration, recipe,
                   select: TestSet, log: Callable[[str], None]) -> CompressOutcome:
    """The fewest-FLOPs model that keeps ``target_agreement`` on the selection scans, saved
    with its curve (the best model found is saved even when the target was missed)."""
    import hscc_core

    from .target import DEFAULT_TIME_LIMIT_S, SelectionEvaluator, save_target_result

    limit = request.time_limit if request.time_limit is not None else DEFAULT_TIME_LIMIT_S
    evaluator = SelectionEvaluator(model, select)
    log(f"selection: {len(select)} scans of {select.folder!r}; the uncompressed model's accuracy on them "
        f"{evaluator.reference_accuracy:.1%}")
    log(f"searching the budget for agreement >= {request.target_agreement:.1%} from {config.budget:g}x "
        f"(time limit {limit:.0f} s)")
    result = hscc_core.compress_to_target(model, calibration if config.method == "hscc" else None, config,
                                          evaluator, request.target_agreement, time_limit_s=limit, log=log,
                                          name=model.spec.name)
    curve, written = save_target_result(result, evaluator, request.out, recipe)
    return _finish(request, result.report, written, target=result, curve=curve)


def _finish(request: CompressRequest, report: CompressionReport, written: dict[str, Any],
            target: TargetResult | None = None, curve: Path | None = None) -> CompressOutcome:
    """After saving: the layer figures (unless ``figures`` is off) from the report written."""
    from .bundle import ArtifactBundle
    from .figures import layer_figures

    bundle = ArtifactBundle.of(request.out)
    figures = layer_figures(written, bundle.layers_dir) if request.figures else None
    return CompressOutcome(report, bundle, figures, target, curve)
