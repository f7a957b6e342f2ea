"""``hscc-mri compress``: HSCC, Global SVD or Tucker-2 under a FLOPs budget, or with the
fewest FLOPs that keep a target agreement with the original (``--target-agreement``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hscc_core import METHODS

from ..recipes import DEFAULT_BUDGET, DEFAULT_METHOD, DEFAULT_MODEL, CalibrationRecipe
from ..target import DEFAULT_TIME_LIMIT_S
from ._common import CliError, parse_grid


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``compress``."""
    p = sub.add_parser(
        "compress", help="compress a model under a FLOPs budget (HSCC, Global SVD, Tucker-2)",
        description="Compress a registry model or artifact. HSCC cuts each layer's output map into "
        "--regions, fits data-aware low-rank factors per region from calibration images (with "
        "sequential refit: each layer also corrects the error reaching it) and allocates ranks "
        "globally so the whole model's FLOPs drop by --budget. svd and tucker are the weights-only "
        "baselines under the same budget. Writes the artifact to --out and its report JSON beside it. "
        "--target-agreement A --select DIR instead searches the budget: the fewest-FLOPs model whose top-1 "
        "agreement with the original on the selection scans is at least A, within --time-limit (the curve is "
        "printed and saved as OUT's name + '.target.json').",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help="registry name or artifact path")
    p.add_argument("--method", default=DEFAULT_METHOD.value, choices=METHODS)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--budget", type=float, default=None, help=f"FLOPs reduction factor (default {DEFAULT_BUDGET:g})")
    g.add_argument("--energy", type=float, default=None, help="HSCC: keep this share of response energy instead")
    g.add_argument("--target-agreement", type=float, default=None, metavar="A",
                   help="instead of a budget: the fewest-FLOPs model whose top-1 agreement with the original on "
                        "the --select scans is at least A (e.g. 0.97); the search starts at the default budget")
    p.add_argument("--select", default=None, metavar="DIR",
                   help="--target-agreement: selection scans (class folders) the agreement is measured on: the "
                        "select half of Testing/ (runs/halves/select), never the report half")
    p.add_argument("--time-limit", type=float, default=None, metavar="S",
                   help="--target-agreement: seconds for the whole search; no trial starts that the longest one "
                        f"so far says would not fit, and the best model found is kept (default {DEFAULT_TIME_LIMIT_S:g})")
    p.add_argument("--regions", type=parse_grid, default=(1, 1), help="HSCC output grid per conv, GHxGW")
    p.add_argument("--clusters", type=int, default=1, help="HSCC channel clusters per region")
    p.add_argument("--no-sequential", action="store_true", help="HSCC: fit layers independently (no refit)")
    p.add_argument("--calib", default="default",
                   help="calibration images: 'default' (the model's own recipe: for vgg16-brain-mri 256 real "
                        "training scans shipped in data/calibration/brain-mri; for models trained here the "
                        "sample scans in 16 augmented views + 32 phantoms), 'real' (the shipped real scans), "
                        "'samples', 'phantoms', or any folder of scans (recursive; class folders are balanced)")
    p.add_argument("--calib-scans", type=int, default=None,
                   help="at most this many calibration scans, balanced over classes (default: the recipe's)")
    p.add_argument("--calib-views", type=int, default=None,
                   help="versions of each calibration scan: 1 = the scan only, V > 1 adds V-1 augmented views "
                        "(default: the recipe's)")
    p.add_argument("--calib-phantoms", type=int, default=None, help="synthetic phantoms added (default: the recipe's)")
    p.add_argument("--include", nargs="*", default=(), help="layer name patterns to compress (default: all but "
                   "the first conv and the last linear)")
    p.add_argument("--exclude", nargs="*", default=(), help="layer name patterns to leave alone")
    p.add_argument("--rank-multiple", type=int, default=16,
                   help="HSCC ranks in multiples of this (faster CPU kernels; charged to the budget); 1 = any rank")
    p.add_argument("--finetune-epochs", type=int, default=0,
                   help="knowledge-distillation epochs against the original on the calibration images "
                        "(20%% held out for early stopping); 0 = none")
    p.add_argument("--finetune-lr", type=float, default=1e-4, help="peak learning rate of the fine-tuning")
    p.add_argument("--finetune-data", default=None, metavar="DIR",
                   help="distil on the scans under DIR (recursive, unlabelled: the original's outputs are the "
                        "targets) instead of the calibration images, e.g. a data set's Training/ folder")
    p.add_argument("--finetune-scans", type=int, default=None,
                   help="at most this many --finetune-data scans, balanced over class folders")
    p.add_argument("--no-figures", action="store_true",
                   help="skip the per-layer region PNGs (written to OUT's name + '_layers/')")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", required=True, help="artifact path (.safetensors); report beside it as .json")
    p.set_defaults(func=run)


def calibration_recipe_from_args(model_name: str, args: argparse.Namespace) -> CalibrationRecipe:
    """The :class:`~hscc_mri.recipes.CalibrationRecipe` that ``--calib*`` ask for: the
    model's default recipe with the options given on the command line applied."""
    from ..cache import calibration_recipe

    overrides: dict = {"seed": args.seed}
    if args.calib != "default":
        overrides["source"] = args.calib
        if args.calib != "real":  # another source: all of its scans, as they are, unless told otherwise
            overrides.update(scans=None, views=1, phantoms=0)
    for key, value in (("scans", args.calib_scans), ("views", args.calib_views), ("phantoms", args.calib_phantoms)):
        if value is not None:
            overrides[key] = value
    if args.calib == "phantoms" and args.calib_phantoms is None:
        overrides["phantoms"] = 32
    try:
        return calibration_recipe(model_name, overrides)
    except ValueError as e:
        raise CliError(f"--calib: {e}") from e


def calibration_batches_for(spec, recipe: CalibrationRecipe):
    """Calibration batches of ``recipe`` (errors become one-line CLI errors)."""
    from ..calibration import calibration_set

    try:
        return calibration_set(spec, recipe)
    except ValueError as e:
        raise CliError(f"--calib: {e}") from e


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


def run(args: argparse.Namespace) -> int:
    """Compress as ``args`` say; under ``torchrun`` the calibration batches are split over the
    processes (their statistics are all-reduced) and rank 0 writes the artifact."""
    from ..distributed import process_group_from_env

    with process_group_from_env(threads=args.threads):
        return _run(args)


def _check_target_options(args: argparse.Namespace) -> None:
    """One-line errors for ``--target-agreement``, ``--select`` and ``--time-limit``, before
    anything is read or built."""
    from ..target import check_select_folder

    if args.target_agreement is None:
        if args.select or args.time_limit is not None:
            raise CliError("--select and --time-limit belong to --target-agreement")
        return
    if not 0.0 < args.target_agreement <= 1.0:
        raise CliError(f"--target-agreement must be a share in (0, 1], e.g. 0.97; got {args.target_agreement:g}")
    if not args.select:
        raise CliError("--target-agreement needs --select DIR: the selection scans the agreement is measured on "
                       "(the select half, runs/halves/select)")
    if args.time_limit is not None and not args.time_limit > 0:
        raise CliError(f"--time-limit must be a positive number of seconds, got {args.time_limit:g}")
    if args.finetune_epochs > 0:
        raise CliError("--target-agreement measures compressions as they are: leave out --finetune-epochs and "
                       "distil the chosen model afterwards (hscc-mri distill)")
    try:
        check_select_folder(args.select)
    except ValueError as e:
        raise CliError(f"--select: {e}") from e


def _load_select(folder: str, spec):
    """The selection scans in the model's input layout (errors become one-line CLI errors)."""
    from ..testset import load_test_set

    try:
        return load_test_set(folder, spec)
    except (OSError, ValueError) as e:
        raise CliError(f"--select: {e}") from e


def _run(args: argparse.Namespace) -> int:
    import hscc_core
    from hscc_core import ArtifactError, HSCCError

    from ..build import compress_model, save_compressed
    from ..distributed import rank, shard, world_size
    from ..recipes import compression_config, finetune_config
    from ..resolve import resolve_model

    _check_target_options(args)

    budget = args.budget if args.budget is not None or args.energy is not None else DEFAULT_BUDGET
    try:
        config = compression_config(args.method, budget if args.energy is None else None, args.seed,
                                    energy=args.energy, regions=tuple(args.regions), clusters=args.clusters,
                                    sequential=not args.no_sequential, include=tuple(args.include),
                                    exclude=tuple(args.exclude), rank_multiple=args.rank_multiple)
        finetune = finetune_config(args.finetune_epochs, args.finetune_lr, args.seed)
        model = resolve_model(args.model)
    except (ValueError, ArtifactError) as e:
        raise CliError(str(e)) from e
    if world_size() > 1 and finetune.epochs > 0:
        raise CliError("--finetune-epochs runs in one process: compress under torchrun without it, then distil")
    if world_size() > 1 and args.target_agreement is not None:
        raise CliError("--target-agreement runs in one process: start it without torchrun")
    select = _load_select(args.select, model.spec) if args.target_agreement is not None else None
    calibration = recipe = None
    if args.method == "hscc" or (finetune.epochs > 0 and not args.finetune_data):
        recipe = calibration_recipe_from_args(args.model, args)
        print(f"building calibration set ({describe_recipe(recipe)})", file=sys.stderr)
        calibration = calibration_batches_for(model.spec, recipe)
        if world_size() > 1:
            if len(calibration) < world_size():
                raise CliError(f"{len(calibration)} calibration batches cannot be split over {world_size()} processes")
            calibration = shard(calibration)
            if rank() == 0:
                print(f"calibration split over {world_size()} processes (statistics all-reduced)", file=sys.stderr)
    if select is not None:
        return _run_target(args, model, config, calibration, recipe, select)
    try:
        compressed, report = compress_model(model, config, calibration, progress=rank() == 0)
    except HSCCError as e:
        raise CliError(str(e)) from e
    if rank() != 0:  # rank 0 holds the same model and writes it
        return 0
    if finetune.epochs > 0:
        data = calibration
        if args.finetune_data:
            kd_recipe = CalibrationRecipe(source=args.finetune_data, scans=args.finetune_scans, seed=args.seed)
            print(f"reading distillation scans ({describe_recipe(kd_recipe)})", file=sys.stderr)
            data = calibration_batches_for(model.spec, kd_recipe)
        report.finetune = hscc_core.distill(compressed, model, data, finetune)
        if args.finetune_data:
            report.finetune["data"] = {"folder": Path(args.finetune_data).name,
                                       "images": sum(len(b) for b in data)}
        print(f"fine-tuned {report.finetune['epochs_run']} epoch(s): held-out agreement with the original "
              f"{report.finetune['val_agreement_before']:.1%} -> {report.finetune['val_agreement_after']:.1%}",
              file=sys.stderr)
    _, report_dict = save_compressed(compressed, args.out, report, recipe)
    _finish(args, report, report_dict)
    return 0


def _run_target(args: argparse.Namespace, model, config, calibration, recipe, select) -> int:
    """The fewest-FLOPs model that keeps ``--target-agreement`` on the selection scans: trial
    lines on stderr, the curve on stdout; exit status 1 when the target was missed (the best
    model found is saved all the same)."""
    import hscc_core
    from hscc_core import HSCCError

    from ..target import SelectionEvaluator, save_target_result

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    limit = args.time_limit if args.time_limit is not None else DEFAULT_TIME_LIMIT_S
    evaluator = SelectionEvaluator(model, select)
    log(f"selection: {len(select)} scans of {select.folder!r}; the uncompressed model's accuracy on them "
        f"{evaluator.reference_accuracy:.1%}")
    log(f"searching the budget for agreement >= {args.target_agreement:.1%} from {config.budget:g}x "
        f"(time limit {limit:.0f} s)")
    try:
        result = hscc_core.compress_to_target(model, calibration if config.method == "hscc" else None, config,
                                              evaluator, args.target_agreement, time_limit_s=limit, log=log,
                                              name=model.spec.name)
    except HSCCError as e:
        raise CliError(str(e)) from e
    curve, report_dict = save_target_result(result, evaluator, args.out, recipe)
    _finish(args, result.report, report_dict)
    print(result.table())
    log(f"saved the curve to {curve}")
    return 0 if result.met else 1


def _finish(args: argparse.Namespace, report, report_dict: dict) -> None:
    """After saving: the layer figures (unless ``--no-figures``), the per-layer table and where
    the files went."""
    from ..bundle import ArtifactBundle
    from ..figures import layer_figures

    bundle = ArtifactBundle.of(args.out)
    if not args.no_figures:
        folder = bundle.layers_dir
        paths = layer_figures(report_dict, folder)
        print(f"wrote {len(paths)} layer figures to {folder}/", file=sys.stderr)
    print(report.table(), file=sys.stderr)
    print(f"saved {args.out} and {bundle.report} ({report.seconds['total']:.0f} s, "
          f"peak memory {report.peak_memory_mb:.0f} MB)", file=sys.stderr)
