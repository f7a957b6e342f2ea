"""``hscc-mri bench``: side-by-side latency of two models (see :func:`hscc_core.bench_pair`)."""
from __future__ import annotations

import argparse
import json

from ._common import CliError

_DESCRIPTION = """\
Benchmark model B against model A on this machine's CPU, in one process.

Measured, for each model:
  FLOPs      one forward pass of one image at the model's input size, counted by
             torch.utils.flop_counter (2 per multiply-add; bias and element-wise ops free)
  params     numel of all parameters and buffers
  latency    wall time of one forward pass per batch size: median and 90th percentile
             of --runs timed runs after --warmup untimed ones; A and B are timed
             interleaved (A B, B A, ...) on the same fixed-seed random input, with
             the same thread count and memory format

Derived:
  FLOPs ratio  FLOPs(A) / FLOPs(B)
  speed-up     median(A) / median(B) per batch size; > 1 means B is faster
  efficiency   speed-up / FLOPs ratio: 1.0 means time fell as much as FLOPs did,
               0.5 means only half the FLOPs saving shows up as speed (target >= 0.7)
"""

_EPILOG = """\
example:
  hscc-mri bench --model alexnet --vs checkpoints/alexnet-hscc-6x.safetensors --json
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``bench`` subcommand on the CLI's subparsers."""
    p = sub.add_parser("bench", help="benchmark two models: FLOPs, params, latency, speed-up",
                       description=_DESCRIPTION, epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="A",
                   help="reference model (registry name or artifact path); speed-up is relative to it")
    p.add_argument("--vs", required=True, metavar="B", help="model to compare (registry name or artifact path)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16], metavar="N",
                   help="batch sizes to time (default: 1 16)")
    p.add_argument("--runs", type=int, default=30, help="timed runs per model and batch size (default: 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs before timing (default: 5)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads during timing (default: 2)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--channels-last", dest="channels_last", action="store_true", default=True,
                     help="run both models and inputs in torch.channels_last (default: the faster "
                          "layout on CPU for both the original and the compressed models)")
    fmt.add_argument("--contiguous", dest="channels_last", action="store_false",
                     help="run both models and inputs in the contiguous NCHW layout instead")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hscc_core import ArtifactError, bench_pair

    from ..resolve import resolve_model

    models = []
    for flag, name in (("--model", args.model), ("--vs", args.vs)):
        try:
            models.append(resolve_model(name))
        except ArtifactError as e:
            raise CliError(f"{flag}: {e}") from e
    try:
        result = bench_pair(models[0], models[1], batch_sizes=args.batch_sizes, runs=args.runs,
                            warmup=args.warmup, threads=args.threads, channels_last=args.channels_last,
                            name_a=args.model, name_b=args.vs)
    except ValueError as e:
        raise CliError(str(e)) from e
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table(), flush=True)
    return 0
