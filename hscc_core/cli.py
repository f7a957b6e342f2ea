"""Command line: ``python -m hscc_core <command> --help``.

Commands: ``train`` (train a classifier on phantoms or a folder data set), ``compress``
(HSCC / Global SVD / Tucker-2 under a FLOPs budget), ``predict`` (classify scan files
with a registry model or a saved artifact) and ``bench`` (side-by-side latency).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from .artifacts import report_path  # noqa: F401  (re-exported: the CLI's report location)
from .bench import add_bench_parser
from .evaluate import add_evaluate_parser
from .report import add_report_parser
from .training import PRECISIONS, TrainConfig

EXAMPLES = """examples:
  python -m hscc_core train --model alexnet --data phantoms --out checkpoints/alexnet-phantoms.safetensors
  python -m hscc_core predict --model vgg16-brain-mri --json samples/*.jpg
"""


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def _set_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- train
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a classifier (phantoms or a folder data set)",
        description="Train a registry model from scratch. --data phantoms draws seeded synthetic "
        "brain MRI slices (train/val/test from distinct seeds); --data DIR reads the public "
        "four-class data set layout DIR/Training/<class>/ and DIR/Testing/<class>/ and holds out "
        "a stratified validation split of Training. The best-on-validation model is saved "
        "atomically to --out after each improving epoch; test metrics go to the report JSON.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="alexnet", help="registry model name")
    p.add_argument("--data", default="phantoms", help="'phantoms' or a data set folder")
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--out", required=True, help="artifact path (.safetensors); report beside it as .json")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (one-cycle AdamW)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=8000, help="phantom training images")
    p.add_argument("--n-val", type=int, default=800, help="phantom validation images")
    p.add_argument("--n-test", type=int, default=2000, help="phantom test images")
    p.add_argument("--val-fraction", type=float, default=0.1, help="validation share of a folder's Training split")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    p.add_argument("--num-workers", type=int, default=None,
                   help="data loader processes (default 0 for phantoms, 2 for folders)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--precision", default=TrainConfig.precision, choices=PRECISIONS,
                   help="training arithmetic: auto = bfloat16 autocast where the CPU/GPU supports it "
                   "natively (about 30%% faster on 2 cores), else float32; weights stay float32")
    p.set_defaults(func=_cmd_train)


def _splits(spec, args: argparse.Namespace):
    """The train command's (train, validation, test) data sets for ``args``."""
    from .splits import folder_splits, phantom_splits

    if args.data == "phantoms":
        return phantom_splits(spec, args.n_train, args.n_val, args.n_test, args.seed)
    try:
        return folder_splits(spec, args.data, args.val_fraction, args.seed)
    except NotADirectoryError as e:
        raise CliError(f"--data: {args.data} is neither 'phantoms' nor a folder") from e


def _cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    import torch

    from models import build_trainable
    from . import artifacts
    from .metrics import classification_report
    from .training import predict_proba, train_classifier

    _set_threads(args.threads)
    try:
        model, export = build_trainable(args.model)
    except ValueError as e:
        raise CliError(str(e)) from e
    spec = model.spec
    phantoms = args.data == "phantoms"
    workers = args.num_workers if args.num_workers is not None else (0 if phantoms else 2)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         num_workers=workers, device=args.device, precision=args.precision)
    t0 = time.perf_counter()
    train_set, val_set, test_set = _splits(spec, args)
    data_seconds = time.perf_counter() - t0
    print(f"data: {len(train_set)} train / {len(val_set)} val / {len(test_set)} test "
          f"({'phantoms' if phantoms else args.data}; prepared in {data_seconds:.0f} s)", file=sys.stderr)
    result = train_classifier(model, train_set, val_set, config, checkpoint=args.out,
                              log=lambda m: print(m, file=sys.stderr), export=export)
    model = export(model.eval())  # the deployable layout is what gets tested and saved
    probs, labels = predict_proba(model, test_set, args.batch_size, args.device, desc="testing")
    test = classification_report(labels, probs.argmax(1), spec.class_names)
    total = time.perf_counter() - t0
    report = {
        "model": args.model, "data": args.data, "config": asdict(config),
        "sizes": {"train": len(train_set), "val": len(val_set), "test": len(test_set)},
        "training": result.to_dict(), "test": test.to_dict(),
        "seconds": {"data": data_seconds, "training": result.seconds, "total": total},
        "threads": torch.get_num_threads(),
    }
    artifacts.save_with_report(model, args.out, report,
                               extra={"training": result.to_dict(), "test": test.to_dict()})
    print(f"test: {test.summary()}", file=sys.stderr)
    print(f"saved {args.out} and {report_path(args.out)} in {total / 60:.1f} min", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- predict
def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="classify scan files (DICOM, NIfTI, PNG/JPEG)",
        description="Classify each FILE and print one result per file. With --json, one JSON object "
        "per line: file, label, probabilities (class -> p), latency_ms (median model time, batch 1), "
        "and slice for volumes; a file that cannot be read gives {file, error} and the run goes on. "
        "Exit status 1 if any file could not be read.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="vgg16-brain-mri", help="registry name or artifact path")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.add_argument("--slice", type=int, default=None, help="slice of volumes (default: most brain signal)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per file for latency_ms")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from models import DISPLAY_NAMES
    from .artifacts import ArtifactError, resolve_model
    from .inference import optimize_for_inference, predict_file

    _set_threads(args.threads)
    try:
        model = optimize_for_inference(resolve_model(args.model))
    except ArtifactError as e:
        raise CliError(str(e)) from e
    failures = 0
    for f in args.files:
        res = predict_file(model, f, slice_index=args.slice, repeats=args.repeats)
        failures += "error" in res
        if args.json:
            print(json.dumps(res), flush=True)
        elif "error" in res:
            print(f"{f}: ERROR {res['error']}", flush=True)
        else:
            p = res["probabilities"][res["label"]]
            print(f"{f}: {DISPLAY_NAMES.get(res['label'], res['label'])} (p={p:.3f}, "
                  f"{res['latency_ms']:.1f} ms)", flush=True)
    return 1 if failures else 0



# ----------------------------------------------------------------------------- compress
def _parse_grid(text: str) -> tuple[int, int]:
    try:
        gh, gw = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"regions must look like 2x2, got {text!r}") from None
    if gh < 1 or gw < 1:
        raise argparse.ArgumentTypeError(f"regions must be at least 1x1, got {text!r}")
    return gh, gw


def _add_compress(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compress", help="compress a model under a FLOPs budget (HSCC, Global SVD, Tucker-2)",
        description="Compress a registry model or artifact. HSCC cuts each layer's output map into "
        "--regions, fits data-aware low-rank factors per region from calibration images (with "
        "sequential refit: each layer also corrects the error reaching it) and allocates ranks "
        "globally so the whole model's FLOPs drop by --budget. svd and tucker are the weights-only "
        "baselines under the same budget. Writes the artifact to --out and its report JSON beside it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="vgg16-brain-mri", help="registry name or artifact path")
    p.add_argument("--method", default="hscc", choices=["hscc", "svd", "tucker"])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--budget", type=float, default=None, help="FLOPs reduction factor (default 6)")
    g.add_argument("--energy", type=float, default=None, help="HSCC: keep this share of response energy instead")
    p.add_argument("--regions", type=_parse_grid, default=(1, 1), help="HSCC output grid per conv, GHxGW")
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
    p.set_defaults(func=_cmd_compress)


def calibration_recipe_from_args(model_name: str, args: argparse.Namespace):
    """The :class:`~preprocessing.calibration.CalibrationRecipe` that ``--calib*`` ask for:
    the model's default recipe with the options given on the command line applied."""
    from .cache import calibration_recipe

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


def calibration_batches_for(spec, recipe):
    """Calibration batches of ``recipe`` (errors become one-line CLI errors)."""
    from preprocessing.calibration import calibration_set

    try:
        return calibration_set(spec, recipe)
    except ValueError as e:
        raise CliError(f"--calib: {e}") from e


def _cmd_compress(args: argparse.Namespace) -> int:
    from . import artifacts
    from .artifacts import ArtifactError, resolve_model
    from .compress import compress
    from .config import CompressionConfig
    from .figures import layer_figures
    from .finetune import FinetuneConfig, distill

    _set_threads(args.threads)
    budget = args.budget if args.budget is not None or args.energy is not None else 6.0
    try:
        config = CompressionConfig(method=args.method, budget=budget, energy=args.energy,
                                   regions=tuple(args.regions), clusters=args.clusters,
                                   sequential=not args.no_sequential, include=tuple(args.include),
                                   exclude=tuple(args.exclude), rank_multiple=args.rank_multiple,
                                   seed=args.seed)
        finetune = FinetuneConfig(epochs=args.finetune_epochs, lr=args.finetune_lr, seed=args.seed)
        model = resolve_model(args.model)
    except (ValueError, ArtifactError) as e:
        raise CliError(str(e)) from e
    calibration = recipe = None
    if args.method == "hscc" or (finetune.epochs > 0 and not args.finetune_data):
        recipe = calibration_recipe_from_args(args.model, args)
        print(f"building calibration set ({_describe_recipe(recipe)})", file=sys.stderr)
        calibration = calibration_batches_for(model.spec, recipe)
    compressed, report = compress(model, calibration if args.method == "hscc" else None, config)
    if finetune.epochs > 0:
        data = calibration
        if args.finetune_data:
            from preprocessing.calibration import CalibrationRecipe

            kd_recipe = CalibrationRecipe(source=args.finetune_data, scans=args.finetune_scans, seed=args.seed)
            print(f"reading distillation scans ({_describe_recipe(kd_recipe)})", file=sys.stderr)
            data = calibration_batches_for(model.spec, kd_recipe)
        report.finetune = distill(compressed, model, data, finetune)
        if args.finetune_data:
            report.finetune["data"] = {"folder": Path(args.finetune_data).name,
                                       "images": sum(len(b) for b in data)}
        print(f"fine-tuned {report.finetune['epochs_run']} epoch(s): held-out agreement with the original "
              f"{report.finetune['val_agreement_before']:.1%} -> {report.finetune['val_agreement_after']:.1%}",
              file=sys.stderr)
    report_dict = report.to_dict()
    if recipe is not None:
        report_dict["calibration"] = recipe.to_dict()
    artifacts.save_with_report(compressed, args.out, report_dict)
    if not args.no_figures:
        folder = Path(args.out).with_name(Path(args.out).stem + "_layers")
        paths = layer_figures(report_dict, folder)
        print(f"wrote {len(paths)} layer figures to {folder}/", file=sys.stderr)
    print(report.table(), file=sys.stderr)
    print(f"saved {args.out} and {report_path(args.out)} ({report.seconds['total']:.0f} s, "
          f"peak memory {report.peak_memory_mb:.0f} MB)", file=sys.stderr)
    return 0


def _describe_recipe(recipe) -> str:
    what = {"real": "real training scans (data/calibration/brain-mri)", "samples": "sample scans",
            "phantoms": "phantoms only"}.get(recipe.source, recipe.source)
    parts = [what] + ([f"at most {recipe.scans} scans"] if recipe.scans and recipe.source != "phantoms" else [])
    if recipe.views > 1:
        parts.append(f"{recipe.views} views each")
    if recipe.phantoms:
        parts.append(f"+ {recipe.phantoms} phantoms")
    return ", ".join(parts)


# ----------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hscc_core",
        description="HSCC-MRI: train, compress, benchmark and run brain-tumour MRI classifiers.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_compress(sub)
    _add_predict(sub)
    add_bench_parser(sub)
    add_evaluate_parser(sub)
    add_report_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
