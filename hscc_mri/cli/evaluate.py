"""``hscc-mri evaluate``: accuracy and fidelity on a labelled test set, or leave-one-scan-out."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hscc_core import METHODS

from ..recipes import DEFAULT_MODEL, LEGACY_RECIPE
from ._common import CliError, HelpFormatter, parse_grid, set_threads

def _fold_table(result: dict[str, Any]) -> str:
    cfg = result["config"]
    name = cfg["method"] + (f" {cfg['budget']:g}x" if cfg.get("budget") else f" energy {cfg['energy']}")
    if cfg["method"] == "hscc":
        name += f" {cfg['regions'][0]}x{cfg['regions'][1]} K{cfg['clusters']}"
    lines = [f"{name}: held-out scans agree {result['agreement_count']}/{result['scans']}, "
             f"mean KL {result['mean_kl']:.4f}; held-out views agree {result['views_agreement']:.1%}, "
             f"mean KL {result['views_mean_kl']:.4f} ({result['seconds']:.0f} s)"]
    for f in result["folds"]:
        mark = "ok " if f["agree"] else "DIFF"
        lines.append(f"  {mark} {f['file']:<28} {f['label_reference']:>11} -> {f['label_compressed']:<11} "
                     f"KL {f['kl']:.4f}  views {f['views_agreement']:.0%}")
    return "\n".join(lines)


#: ``--methods`` default; identity tells "not given" from "given as hscc".
_DEFAULT_METHODS = ["hscc"]

_EVALUATE_DESCRIPTION = """\
Two modes.

Test-set mode (--data DIR): evaluate the uncompressed --model and compressed models on a
labelled class-folder test set (DIR is a split folder of class folders, e.g.
brain-mri/Testing, or a data-set root holding Testing/; class folders may be spelt
glioma_tumor, no_tumor, ...). Rows: the uncompressed --model, then one per --methods x
--budgets (the default compressed model, built once and cached in --cache-dir), then one
per --artifacts file. Without --methods and --artifacts: hscc at 6x. Columns: accuracy,
macro-F1 and F1 per class, top-1 agreement with the uncompressed model (overall and
where its top probability >= 0.9), mean KL(uncompressed || compressed), batch-1 latency
and GFLOPs; every classification number with a paired bootstrap SE (--bootstrap
resamples, the same scans for every model), and each model's paired difference in
accuracy and macro-F1 to the uncompressed one. Unreadable files are skipped and listed.
Every compressed row loaded from a file also gets a sidecar <artifact>.evaluation.json
beside that file (its row, the reference row, the test set's identity and the
artifact's SHA-256). Example:
  hscc-mri evaluate --data ../shared/data/brain-mri/Testing --methods hscc svd --budgets 6

Leave-one-scan-out mode (no --data): for each SCAN, build the default calibration set
without it, compress, and compare the compressed model with the original on that scan
and on augmented views of it (top-1 agreement, mean KL(original || compressed)).
Weights-only methods (svd, tucker) need no calibration, so they are compressed once.
Several --methods and --budgets give one row each.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``evaluate``."""
    p = sub.add_parser(
        "evaluate", help="accuracy and fidelity on a labelled test set (--data), or leave-one-scan-out",
        description=_EVALUATE_DESCRIPTION, formatter_class=HelpFormatter)
    p.add_argument("--data", default=None, metavar="DIR",
                   help="test-set mode: labelled test set (split folder of class folders, or a root with Testing/)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="uncompressed model: registry name or artifact path")
    p.add_argument("--methods", nargs="*", default=_DEFAULT_METHODS, choices=METHODS,
                   help="compression methods (with --data: give none to evaluate only --artifacts)")
    p.add_argument("--budgets", nargs="+", type=float, default=[6.0], help="FLOPs reduction factors")
    p.add_argument("--artifacts", nargs="+", default=[], metavar="A.safetensors",
                   help="--data only: saved compressed models, one row each")
    p.add_argument("--cache-dir", default="artifacts",
                   help="--data only: cache folder of the compressed models built for --methods x --budgets")
    p.add_argument("--batch-size", type=int, default=16, help="--data only: scans per forward pass")
    p.add_argument("--bootstrap", type=int, default=1000, help="--data only: paired bootstrap resamples")
    p.add_argument("--regions", type=parse_grid, default=(1, 1), help="leave-one-scan-out: HSCC grid GHxGW")
    p.add_argument("--clusters", type=int, default=1, help="leave-one-scan-out: HSCC channel clusters")
    p.add_argument("--views", type=int, default=LEGACY_RECIPE.views, help="leave-one-scan-out: calibration views per remaining scan")
    p.add_argument("--phantoms", type=int, default=LEGACY_RECIPE.phantoms, help="leave-one-scan-out: phantoms in each calibration set")
    p.add_argument("--test-views", type=int, default=8, help="leave-one-scan-out: augmented views per held-out scan")
    p.add_argument("--seed", type=int, default=0, help="calibration/augmentation seed; with --data the bootstrap seed")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--runtimes", nargs="+", default=[], metavar="RUNTIME:PRECISION",
                   help="--data only: also run the uncompressed and every compressed model in each of these "
                        "(e.g. openvino:fp32 openvino:int8 onnxruntime:int8), one row each, named "
                        "'<row> [<runtime> <precision>]'; agreement stays against the uncompressed model in "
                        "PyTorch fp32. int8 is calibrated on the default calibration set; a compressed "
                        "artifact keeps the layers its int8 plan measured as bad in fp32")
    p.add_argument("--json", default=None, metavar="FILE", help="also write every number to FILE")
    p.add_argument("scans", nargs="*", metavar="SCAN",
                   help="leave-one-scan-out: real scans (default: the JPEG samples in samples/)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hscc_core import ArtifactError, CompressionConfig

    from ..calibration import sample_scans
    from ..loso import leave_one_scan_out
    from ..resolve import resolve_model

    set_threads(args.threads)
    if args.data is not None:
        return _cmd_evaluate_data(args)
    if args.artifacts:
        raise CliError("--artifacts needs --data (a labelled test set to evaluate them on)")
    if not args.methods:
        raise CliError("give at least one of --methods for leave-one-scan-out (or --data for a test set)")
    try:
        model = resolve_model(args.model)
    except ArtifactError as e:
        raise CliError(str(e)) from e
    regions = tuple(args.regions)
    scans = args.scans or sample_scans()
    results = []
    for method in args.methods:
        for budget in args.budgets:
            try:
                config = CompressionConfig(method=method, budget=budget,
                                           regions=regions if method == "hscc" else (1, 1),
                                           clusters=args.clusters if method == "hscc" else 1, seed=args.seed)
                res = leave_one_scan_out(model, config, scans, args.views, args.phantoms, args.test_views, args.seed)
            except ValueError as e:
                raise CliError(str(e)) from e
            print(_fold_table(res), flush=True)
            results.append(res)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": model.spec.name, "results": results}, indent=2))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _unique(name: str, taken: set[str]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name} ({i})", i + 1
    taken.add(out)
    return out


def _parse_runtimes(items: list[str]):
    """``["openvino:int8", ...]`` -> checked :class:`hscc_mri.runtimes.Choice` list."""
    from ..runtimes import Request, RuntimeUnavailable, decide

    choices = []
    for item in items:
        runtime, _, precision = item.partition(":")
        try:
            choices.append(decide(Request(runtime, precision or "fp32")).choice)
        except (RuntimeUnavailable, ValueError) as e:
            raise CliError(f"--runtimes {item}: {e}") from e
    return choices


def _add_runtime_rows(reference, candidates: dict, sources: dict, files: dict, choices, taken: set[str],
                      reference_file: str | None = None, cache_dir: str = "artifacts") -> None:
    """One more row per (model, runtime choice): the reference and each candidate compiled
    (int8: each with its measured plan, kept beside its file, or for a registry
    reference in ``cache_dir``)."""
    from ..deploy import Deployable, default_calibration_batches
    from ..runtimes import RuntimeUnavailable

    # One Deployable a model: its weights are hashed once, whatever the number of int8 choices.
    base = [("uncompressed", Deployable(reference, reference_file, cache_dir))] + \
        [(n, Deployable(m, files.get(n, (None,))[0], cache_dir)) for n, m in candidates.items()]
    # Every model here shares the reference's input contract, so one read of the default
    # calibration set serves every int8 compile (and each plan measured anew).
    calibration = default_calibration_batches(reference) if any(c.precision == "int8" for c in choices) else None
    for choice in choices:
        if (choice.runtime, choice.precision) == ("torch", "fp32"):
            continue  # the rows above already are
        for name, target in base:
            try:
                compiled = target.deploy(choice, calibration=calibration)
            except (RuntimeUnavailable, ValueError) as e:
                raise CliError(f"--runtimes {choice.runtime}:{choice.precision} for {name}: {e}") from e
            row = _unique(f"{name} [{choice.runtime} {choice.precision}]", taken)
            candidates[row] = compiled
            sources[row] = {**sources.get(name, {"kind": "reference"}), "base_row": name, "runtime": choice.runtime,
                            "precision": choice.precision, "details": compiled.details}


def _cmd_evaluate_data(args: argparse.Namespace) -> int:
    """``evaluate --data DIR``: see :mod:`hscc_mri.testset`."""
    import torch

    from hscc_core import ArtifactError, file_sha256

    from .. import cache
    from ..resolve import load_model, resolve_model
    from ..testset import add_same_runtime_agreement, evaluate_models, format_table, load_test_set, write_evaluation

    if args.scans:
        raise CliError(f"SCAN arguments are for leave-one-scan-out; with --data the test set is {args.data} "
                       f"(got {len(args.scans)} SCANs)")
    if tuple(args.regions) != (1, 1) or args.clusters != 1:
        raise CliError("--regions/--clusters apply to leave-one-scan-out only; --data evaluates the default "
                       "compression of each method (compress another with `compress --out` and pass --artifacts)")
    if args.bootstrap < 2:
        raise CliError(f"--bootstrap must be at least 2, got {args.bootstrap}")
    if args.batch_size < 1:
        raise CliError(f"--batch-size must be at least 1, got {args.batch_size}")
    methods = args.methods
    if methods is _DEFAULT_METHODS and args.artifacts:
        methods = []  # --artifacts alone: just those rows
    for a in args.artifacts:
        if not Path(a).is_file():
            raise CliError(f"--artifacts: no such file: {a}")
    choices = _parse_runtimes(args.runtimes)
    try:
        reference = resolve_model(args.model)
        test_set = load_test_set(args.data, reference.spec, progress=True)
    except (ArtifactError, FileNotFoundError, ValueError) as e:
        raise CliError(str(e)) from e
    candidates: dict[str, torch.nn.Module] = {}
    sources: dict[str, dict[str, Any]] = {}  # row name -> where it came from
    files: dict[str, tuple[Path, str]] = {}  # row name -> (artifact path, sha256 of the evaluated bytes)
    taken = {"uncompressed"}
    for method in methods:
        for budget in args.budgets:
            try:
                path = cache.cache_path(args.model, method, budget, args.cache_dir)
                model, report = cache.compressed_model(args.model, method, budget, cache_dir=args.cache_dir,
                                                       progress=True)
            except (ArtifactError, ValueError) as e:
                raise CliError(str(e)) from e
            name = _unique(f"{method} {budget:g}x", taken)
            candidates[name] = model
            sha = file_sha256(path) if path.is_file() else None
            sources[name] = {"kind": "cache", "method": method, "budget": budget, "artifact": path.name,
                             "artifact_sha256": sha, "report": {k: v for k, v in report.items() if k != "layers"}}
            if sha:
                files[name] = (path, sha)
    for a in args.artifacts:
        path = Path(a)
        try:
            sha = file_sha256(path)
            model, report = load_model(path), cache.load_report(path)
        except (ArtifactError, OSError, RuntimeError, KeyError, ValueError) as e:
            raise CliError(f"--artifacts {path.name}: {e}") from e
        name = _unique(path.name[: -len(".safetensors")] if path.name.endswith(".safetensors") else path.name, taken)
        candidates[name] = model
        sources[name] = {"kind": "artifact", "artifact": path.name, "artifact_sha256": sha,
                         "report": {k: v for k, v in report.items() if k != "layers"}}
        files[name] = (path, sha)
    _add_runtime_rows(reference, candidates, sources, files, choices, taken,
                      reference_file=args.model if Path(args.model).is_file() else None, cache_dir=args.cache_dir)
    try:
        result = evaluate_models(reference, candidates, test_set, n_bootstrap=args.bootstrap, seed=args.seed,
                                 progress=True, batch_size=args.batch_size)
    except ValueError as e:
        raise CliError(str(e)) from e
    model_path = Path(args.model)
    result["reference"] = {"model": model_path.name if model_path.is_file() else args.model}
    for row in result["rows"][1:]:
        row["source"] = sources[row["name"]]
    add_same_runtime_agreement(result)
    print(format_table(result), flush=True)
    for name, (path, sha) in files.items():
        side = write_evaluation(path, result, name, artifact_sha256=sha)
        print(f"wrote {side}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
