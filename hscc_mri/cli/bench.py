"""``hscc-mri bench``: side-by-side latency of two models (see :func:`hscc_core.bench_pair`),
or with ``--peers`` of every model in every runtime x precision (see
:func:`hscc_mri.peers.bench_peers`)."""
from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from ._common import CliError

if TYPE_CHECKING:
    from ..bench_run import BenchRequest, PeerBenchRequest

_DESCRIPTION = """\
Two modes, both timing every model in one process on this machine's CPU.

Two-model mode (default): benchmark model B (--vs) against model A (--model), in PyTorch.

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

Peer mode (--peers): the dense --model and every --vs model, each compiled in every
--choices runtime:precision (default: every pair this machine can run), timed together
round-robin (every variant once per round, the order reversed every other round) on the
same fixed-seed input. int8 is calibrated on the dense model's default calibration set,
each model with its measured int8 plan (the layers it names stay float32, under the
quantiser settings it chose; hscc_mri/deploy.py); a choice this
machine cannot run is listed as skipped with the reason. One row per
model x choice:
  model                the model (registry name, or the artifact's file name without
                       .safetensors, which is also how `evaluate` names its rows)
  runtime/precision    e.g. OpenVINO INT8
  GFLOPs, params M     of the PyTorch model at batch 1 (the same in every runtime)
  ms@bN                median latency of one batch of N (p90 in --json)
  vs dense fp32        median(dense model in PyTorch FP32) / median(row) at batch 1
                       (PyTorch fp32 is always timed: it is the baseline)
  vs fastest dense     median(fastest variant of the dense model) / median(row) at
                       batch 1: the gain over just running the dense model in its best
                       runtime; with --evaluation also over the fastest dense variant that
                       keeps >= 99% top-1 agreement with dense fp32 (below the table)
  efficiency           vs dense fp32 / FLOPs ratio (FLOPs(dense) / FLOPs(row)); 1.0:
                       time fell as much as FLOPs did (a dense int8 row: its speed-up)
  accuracy, agreement  with --evaluation FILE (the JSON of `hscc-mri evaluate --data DIR
                       --json FILE`): the row's test-set accuracy and top-1 agreement with
                       the uncompressed model, +/- paired bootstrap SE. An evaluation row
                       matches when its "name" is the model's (or --evaluation-name's) and
                       its "runtime"/"precision" are the row's (absent: PyTorch fp32); the
                       dense model also matches the row named "uncompressed"
"""

_EPILOG = """\
examples:
  hscc-mri bench --model alexnet --vs checkpoints/alexnet-hscc-6x.safetensors --json
  hscc-mri bench --model vgg16-brain-mri --vs artifacts/vgg16-hscc-6x.safetensors --peers
  hscc-mri bench --model vgg16-brain-mri --vs a.safetensors --vs b.safetensors --peers \\
      --choices torch:fp32 openvino:fp32 openvino:int8 --evaluation eval.json \\
      --evaluation-name a="hscc 6x" --plot pareto.png
"""


def _choice(text: str) -> tuple[str, str]:
    """``"openvino:int8"`` -> ``("openvino", "int8")``."""
    from ..runtimes import PRECISIONS, RUNTIMES

    runtime, _, precision = text.lower().partition(":")
    if runtime not in RUNTIMES or precision not in PRECISIONS:
        raise argparse.ArgumentTypeError(f"a choice is RUNTIME:PRECISION with RUNTIME in {', '.join(RUNTIMES)} and "
                                         f"PRECISION in {', '.join(PRECISIONS)}; got {text!r}")
    return runtime, precision


def _pair(text: str) -> tuple[str, str]:
    """``"MODEL=VALUE"`` -> ``("MODEL", "VALUE")``."""
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"expected MODEL=VALUE, got {text!r}")
    return name, value


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``bench`` subcommand on the CLI's subparsers."""
    p = sub.add_parser("bench", help="benchmark models: FLOPs, params, latency, speed-up (--peers: every runtime)",
                       description=_DESCRIPTION, epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="A",
                   help="reference (dense) model (registry name or artifact path); speed-up is relative to it")
    p.add_argument("--vs", action="extend", nargs="+", default=[], metavar="B",
                   help="model(s) to compare (registry name or artifact path): exactly one in the two-model "
                        "mode; any number (repeat the flag or list them) with --peers")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16], metavar="N",
                   help="batch sizes to time (default: 1 16)")
    p.add_argument("--runs", type=int, default=None,
                   help="timed runs per model (variant) and batch size (default: 30; 20 with --peers)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed runs before timing (default: 5; 3 with --peers)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads during timing, every runtime (default: 2)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--channels-last", dest="channels_last", action="store_true", default=None,
                     help="two-model mode: run both models and inputs in torch.channels_last (default: the "
                          "faster layout on CPU for both the original and the compressed models)")
    fmt.add_argument("--contiguous", dest="channels_last", action="store_false",
                     help="two-model mode: run both models and inputs in the contiguous NCHW layout instead")
    peers = p.add_argument_group("peer mode")
    peers.add_argument("--peers", action="store_true",
                       help="benchmark every model in every --choices runtime:precision (see above)")
    peers.add_argument("--choices", type=_choice, nargs="+", default=None, metavar="RUNTIME:PRECISION",
                       help="e.g. torch:fp32 onnxruntime:fp32 openvino:fp32 openvino:int8 (default: every pair "
                            "this machine can run; torch:fp32 is always added)")
    peers.add_argument("--keep-fp32", type=_pair, action="append", default=[], metavar="MODEL=LAYER[,LAYER]",
                       help="int8: layer groups of MODEL (its bench name) left in float32 (repeatable); "
                            "default for a compressed artifact: its measured int8 plan per runtime")
    peers.add_argument("--evaluation", default=None, metavar="FILE",
                       help="the JSON of `hscc-mri evaluate --data DIR --json FILE`: adds accuracy and agreement")
    peers.add_argument("--evaluation-name", type=_pair, action="append", default=[], metavar="MODEL=ROW",
                       help="match bench model MODEL to the evaluation row named ROW (repeatable; default: "
                            "the same name, and 'uncompressed' for --model)")
    peers.add_argument("--plot", default=None, metavar="FILE.png",
                       help="write latency at batch 1 against accuracy with the Pareto front (needs --evaluation)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    peers.add_argument("--save", default=None, metavar="FILE.json",
                       help="also write the result as JSON to FILE (the table still prints)")
    peers.add_argument("--cache-dir", default="artifacts", metavar="DIR",
                       help="where a registry model's int8 plan and quantised graph are kept (an artifact's: "
                            "beside it)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bench`` in the two-model or the peer mode: the options as a request of that
    mode, given to :mod:`hscc_mri.bench_run`, whose typed errors become one-line user
    errors; the result printed as a table or JSON."""
    from hscc_core import HSCCError

    from ..bench_run import bench_peer_models, bench_two_models
    from ..errors import ProductError

    try:
        result = bench_peer_models(_peer_request(args)) if args.peers else bench_two_models(_request(args))
    except (HSCCError, ProductError) as e:
        raise CliError(str(e)) from e
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table(), flush=True)
    return 0


def _timing(args: argparse.Namespace) -> dict[str, int]:
    """``--runs`` and ``--warmup`` where given (absent: the mode's defaults, in its request)."""
    return {k: v for k, v in (("runs", args.runs), ("warmup", args.warmup)) if v is not None}


def _request(args: argparse.Namespace) -> BenchRequest:
    """The two-model mode's options as a :class:`hscc_mri.bench_run.BenchRequest`; those of
    the peer mode are refused (the request has no field for them)."""
    from ..bench_run import BenchRequest

    for flag in ("choices", "evaluation", "plot"):
        if getattr(args, flag) is not None:
            raise CliError(f"--{flag} needs --peers")
    if args.keep_fp32 or args.evaluation_name or args.save:
        raise CliError("--keep-fp32, --evaluation-name and --save need --peers")
    if len(args.vs) != 1:
        raise CliError(f"the two-model mode compares exactly one --vs model with --model (got {len(args.vs)}); "
                       f"use --peers for more")
    return BenchRequest(model=args.model, vs=args.vs[0], batch_sizes=tuple(args.batch_sizes), threads=args.threads,
                        channels_last=args.channels_last is not False, **_timing(args))


def _peer_request(args: argparse.Namespace) -> PeerBenchRequest:
    """The peer mode's options as a :class:`hscc_mri.bench_run.PeerBenchRequest`; a layout
    option of the two-model mode is refused."""
    from ..bench_run import PeerBenchRequest

    if args.channels_last is not None:
        raise CliError("--channels-last/--contiguous apply to the two-model mode; --peers runs PyTorch as the "
                       "product does (channels-last weights)")
    return PeerBenchRequest(
        model=args.model, vs=tuple(args.vs), choices=None if args.choices is None else tuple(args.choices),
        batch_sizes=tuple(args.batch_sizes), threads=args.threads, keep_fp32=tuple(args.keep_fp32),
        evaluation=args.evaluation, evaluation_names=tuple(args.evaluation_name), plot=args.plot, save=args.save,
        cache_dir=args.cache_dir, **_timing(args))
