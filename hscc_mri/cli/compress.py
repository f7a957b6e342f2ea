"""``hscc-mri compress``: HSCC, Global SVD or Tucker-2 under a FLOPs budget, or with the
fewest FLOPs that keep a target agreement with the original (``--target-agreement``)."""
from __future__ import annotations

import argparse
import sys

from hscc_core import METHODS

from ..recipes import DEFAULT_BUDGET, DEFAULT_METHOD, DEFAULT_MODEL
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


def run(args: argparse.Namespace) -> int:
    """Compress as ``args`` say (:func:`hscc_mri.compress_run.compress_as_requested`; under
    ``torchrun`` the calibration batches are split over the processes and rank 0 writes the
    artifact), then say what was written. Exit status 1 when ``--target-agreement`` was missed
    (the best model found is saved all the same).

    Raises:
        CliError: bad options, a model, calibration or selection source that cannot be used,
            or a compression that fails.
    """
    from hscc_core import HSCCError

    from ..compress_run import CompressRequest, compress_as_requested
    from ..errors import ProductError

    request = CompressRequest(
        out=args.out, model=args.model, method=args.method, budget=args.budget, energy=args.energy,
        target_agreement=args.target_agreement, select=args.select, time_limit=args.time_limit,
        regions=tuple(args.regions), clusters=args.clusters, sequential=not args.no_sequential, calib=args.calib,
        calib_scans=args.calib_scans, calib_views=args.calib_views, calib_phantoms=args.calib_phantoms,
        include=tuple(args.include), exclude=tuple(args.exclude), rank_multiple=args.rank_multiple,
        finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr, finetune_data=args.finetune_data,
        finetune_scans=args.finetune_scans, figures=not args.no_figures, seed=args.seed, threads=args.threads)
    try:
        outcome = compress_as_requested(request, log=lambda line: print(line, file=sys.stderr, flush=True))
    except (ProductError, HSCCError) as e:  # SettingsError, DataError, the library's kinds
        raise CliError(str(e)) from e
    if outcome is None:  # another process than rank 0 under torchrun: it wrote nothing
        return 0
    if outcome.figures is not None:
        print(f"wrote {len(outcome.figures)} layer figures to {outcome.bundle.layers_dir}/", file=sys.stderr)
    report = outcome.report
    print(report.table(), file=sys.stderr)
    print(f"saved {args.out} and {outcome.bundle.report} ({report.seconds['total']:.0f} s, "
          f"peak memory {report.peak_memory_mb:.0f} MB)", file=sys.stderr)
    if outcome.target is not None:  # the search's curve on stdout
        print(outcome.target.table())
        print(f"saved the curve to {outcome.curve}", file=sys.stderr, flush=True)
    return outcome.status
