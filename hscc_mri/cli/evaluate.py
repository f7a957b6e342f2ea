"""``hscc-mri evaluate``: accuracy and fidelity on a labelled test set, or leave-one-scan-out."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from hscc_core import METHODS, HSCCError

from ..recipes import DEFAULT_MODEL, LEGACY_RECIPE
from ._common import CliError, HelpFormatter, parse_grid, set_threads

if TYPE_CHECKING:
    from ..evaluate_run import EvaluateRequest, LosoRequest

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
artifact's SHA-256). With --target-agreement, --target-confident-agreement or
--max-accuracy-drop, every compressed row is then checked against those targets (the
measured value, its SE beside it): one line per row says which are met, and the exit
status is 1 when any is missed. Examples:
  hscc-mri evaluate --data ../shared/data/brain-mri/Testing --methods hscc svd --budgets 6
  hscc-mri evaluate --data runs/halves/report --methods --artifacts artifacts/my-candidate.safetensors \
      --target-agreement 0.97 --max-accuracy-drop 1.0 --target-confident-agreement 0.995

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
    p.add_argument("--target-agreement", type=float, default=None, metavar="A",
                   help="--data only: the least top-1 agreement with the uncompressed model each compressed "
                        "row must reach (a fraction: 0.97 for 97%%)")
    p.add_argument("--target-confident-agreement", type=float, default=None, metavar="A",
                   help="--data only: the least agreement where the uncompressed model is >= 0.9 sure")
    p.add_argument("--max-accuracy-drop", type=float, default=None, metavar="POINTS",
                   help="--data only: the most accuracy (percentage points, paired) a compressed row may lose")
    p.add_argument("--json", default=None, metavar="FILE", help="also write every number to FILE")
    p.add_argument("scans", nargs="*", metavar="SCAN",
                   help="leave-one-scan-out: real scans (default: the JPEG samples in samples/)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``evaluate``: the options as a request of its mode, given to
    :mod:`hscc_mri.evaluate_run`, whose typed errors become one-line user errors."""
    from ..errors import ProductError
    from ..evaluate_run import evaluate_loso, evaluate_test_set

    set_threads(args.threads)
    try:
        if args.data is not None:
            result = evaluate_test_set(_test_set_request(args))
            # Like `compress --target-agreement`: a missed target is a failed check.
            return 0 if result.get("fidelity_targets", {}).get("met", True) else 1
        evaluate_loso(_loso_request(args))
    except (HSCCError, ProductError) as e:
        raise CliError(str(e)) from e
    return 0


def _test_set_request(args: argparse.Namespace) -> EvaluateRequest:
    """``evaluate --data``'s options as an :class:`hscc_mri.evaluate_run.EvaluateRequest`;
    those of leave-one-scan-out are refused (the request has no field for them)."""
    from ..evaluate_run import EvaluateRequest
    from ..fidelity_targets import FidelityTargets

    if args.scans:
        raise CliError(f"SCAN arguments are for leave-one-scan-out; with --data the test set is {args.data} "
                       f"(got {len(args.scans)} SCANs)")
    if tuple(args.regions) != (1, 1) or args.clusters != 1:
        raise CliError("--regions/--clusters apply to leave-one-scan-out only; --data evaluates the default "
                       "compression of each method (compress another with `compress --out` and pass --artifacts)")
    return EvaluateRequest(
        data=args.data, model=args.model, methods=None if args.methods is _DEFAULT_METHODS else tuple(args.methods),
        budgets=tuple(args.budgets), artifacts=tuple(args.artifacts), cache_dir=args.cache_dir,
        batch_size=args.batch_size, bootstrap=args.bootstrap, seed=args.seed, runtimes=tuple(args.runtimes),
        json_out=args.json, targets=FidelityTargets(agreement=args.target_agreement,
                                                    confident_agreement=args.target_confident_agreement,
                                                    accuracy_drop=args.max_accuracy_drop))


def _loso_request(args: argparse.Namespace) -> LosoRequest:
    """Leave-one-scan-out's options as an :class:`hscc_mri.evaluate_run.LosoRequest`;
    ``--artifacts`` is refused (it needs a test set)."""
    from ..evaluate_run import LosoRequest

    if args.artifacts:
        raise CliError("--artifacts needs --data (a labelled test set to evaluate them on)")
    if any(v is not None for v in (args.target_agreement, args.target_confident_agreement, args.max_accuracy_drop)):
        raise CliError("--target-agreement, --target-confident-agreement and --max-accuracy-drop need --data "
                       "(they are checked against a labelled test set's rows)")
    return LosoRequest(
        model=args.model, methods=tuple(args.methods), budgets=tuple(args.budgets), regions=tuple(args.regions),
        clusters=args.clusters, views=args.views, phantoms=args.phantoms, test_views=args.test_views,
        seed=args.seed, scans=tuple(args.scans), json_out=args.json)
