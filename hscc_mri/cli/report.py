"""``hscc-mri report``: regenerate the evidence report."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..report.run import DESCRIPTION
from ..report.settings import PARTS
from ._common import CliError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``report``."""
    p = sub.add_parser("report", help="regenerate the evidence report (tables, figures, JSON)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="reports", help="output folder (default: reports)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, same code path (for CI; numbers meaningless)")
    p.add_argument("--data", default="phantoms",
                   help="'phantoms' (default) or a four-class data-set folder (Training/<class>/, Testing/<class>/) "
                        "for the AlexNet parts")
    p.add_argument("--checkpoint", default=None,
                   help="AlexNet checkpoint to use as it is (trained there if missing). Default: "
                        "checkpoints/alexnet-phantoms.safetensors (or checkpoints/alexnet-real.safetensors with --data), "
                        "used when it matches the train command's current defaults and retrained otherwise; "
                        "OUT/checkpoints/ with --quick")
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS, help="which parts to run (default: all)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads for everything, benchmarks included")
    p.add_argument("--seed", type=int, default=0, help="master seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--render-only", action="store_true",
                   help="measure nothing: rewrite OUT/REPORT.md from OUT/report.json (after a change of wording)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import full_settings, quick_settings, run_report

    if args.render_only:
        from ..report.run import render_again

        if not (Path(args.out) / "report.json").is_file():
            raise CliError(f"--render-only: no report.json in {args.out}")
        render_again(args.out)
        return 0
    make = quick_settings if args.quick else full_settings
    try:
        settings = make(seed=args.seed, threads=args.threads, parts=tuple(args.parts))
    except ValueError as e:
        raise CliError(str(e)) from e
    if args.data != "phantoms" and not Path(args.data).is_dir():
        raise CliError(f"--data: {args.data} is neither 'phantoms' nor a folder")
    run_report(settings, args.out, data=args.data, checkpoint=args.checkpoint, progress=not args.no_progress)
    return 0
