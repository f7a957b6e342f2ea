"""``hscc-mri bench``: side-by-side latency of two models (see :func:`hscc_core.bench_pair`),
or with ``--peers`` of every model in every runtime x precision (see
:func:`hscc_mri.peers.bench_peers`)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from ._common import CliError

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
    """Run ``bench`` in the two-model or the peer mode."""
    if args.peers:
        return _run_peers(args)
    for flag in ("choices", "evaluation", "plot"):
        if getattr(args, flag) is not None:
            raise CliError(f"--{flag} needs --peers")
    if args.keep_fp32 or args.evaluation_name or args.save:
        raise CliError("--keep-fp32, --evaluation-name and --save need --peers")
    if len(args.vs) != 1:
        raise CliError(f"the two-model mode compares exactly one --vs model with --model (got {len(args.vs)}); "
                       f"use --peers for more")
    from hscc_core import ArtifactError, bench_pair

    from ..resolve import resolve_model

    models = []
    for flag, name in (("--model", args.model), ("--vs", args.vs[0])):
        try:
            models.append(resolve_model(name))
        except ArtifactError as e:
            raise CliError(f"{flag}: {e}") from e
    try:
        result = bench_pair(models[0], models[1], batch_sizes=args.batch_sizes,
                            runs=30 if args.runs is None else args.runs,
                            warmup=5 if args.warmup is None else args.warmup, threads=args.threads,
                            channels_last=args.channels_last is not False, name_a=args.model, name_b=args.vs[0])
    except ValueError as e:
        raise CliError(str(e)) from e
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table(), flush=True)
    return 0


def _bench_name(arg: str, taken: set[str]) -> str:
    """A registry name as it is; an artifact path as its file name without ``.safetensors``
    (what ``evaluate`` names its row); made unique."""
    from ..resolve import is_registry_name

    name = arg
    if not is_registry_name(arg):
        file = Path(arg).name
        name = file[: -len(".safetensors")] if file.endswith(".safetensors") else file
    out, i = name, 2
    while out in taken:
        out, i = f"{name} ({i})", i + 1
    taken.add(out)
    return out


def _deploy_int8(models: dict, paths: dict, keep: dict, cache_dir: str) -> Callable[[str, str, str], Any]:
    """For ``bench_peers(compile_with=...)``: a model without ``--keep-fp32`` runs int8 as
    the product does, through :func:`hscc_mri.deploy.deploy`: with its measured int8 plan
    per runtime (the float32 layers and the quantiser settings; a compressed artifact's
    kept beside it, a registry model's in the cache folder) and the quantised graph kept
    by an earlier start. The default calibration set is read once, only if something
    must be quantised."""
    import functools

    from ..deploy import Deployable, default_calibration_batches
    from ..runtimes import Precision, Request, decide

    calibration = functools.cache(lambda: default_calibration_batches(next(iter(models.values()))))
    # One Deployable a model: its weights are hashed once across the runtimes benchmarked.
    targets = {name: Deployable(model, paths.get(name), cache_dir) for name, model in models.items()}

    def compile_with(name: str, runtime: str, precision: str):
        model = models[name]
        if precision != "int8" or runtime == "torch" or name in keep or \
                getattr(model, "spec", None) is None and name not in paths:
            return None
        choice = decide(Request(runtime, Precision.INT8)).choice  # asked explicitly: checked, no fallback
        return targets[name].deploy(choice, calibration=calibration)

    return compile_with


def _run_peers(args: argparse.Namespace) -> int:
    from hscc_core import ArtifactError

    from ..peers import bench_peers
    from ..resolve import resolve_model
    from ..runtimes import available, cpu_summary

    if args.channels_last is not None:
        raise CliError("--channels-last/--contiguous apply to the two-model mode; --peers runs PyTorch as the "
                       "product does (channels-last weights)")
    if args.plot and not args.evaluation:
        raise CliError("--plot draws latency against accuracy: give --evaluation FILE (from `hscc-mri evaluate "
                       "--data DIR --json FILE`)")
    evaluation = None
    if args.evaluation:
        try:
            evaluation = json.loads(Path(args.evaluation).read_text())
        except (OSError, ValueError) as e:
            raise CliError(f"--evaluation {args.evaluation}: {e}") from e
    models, taken, paths = {}, set(), {}
    for flag, arg in [("--model", args.model)] + [("--vs", v) for v in args.vs]:
        try:
            name = _bench_name(arg, taken)
            models[name] = resolve_model(arg)
        except ArtifactError as e:
            raise CliError(f"{flag}: {e}") from e
        if flag == "--vs" and Path(arg).is_file():
            paths[name] = arg
    for flag, pairs in (("--keep-fp32", args.keep_fp32), ("--evaluation-name", args.evaluation_name)):
        unknown = sorted({name for name, _ in pairs} - set(models))
        if unknown:
            raise CliError(f"{flag} names no benchmarked model: {', '.join(unknown)} (models: {', '.join(models)})")
    keep: dict = {}
    for name, layers in args.keep_fp32:
        keep.setdefault(name, []).extend(g for g in layers.split(",") if g)
    choices = args.choices or available()
    try:
        result = bench_peers(models, choices, batch_sizes=args.batch_sizes,
                             runs=20 if args.runs is None else args.runs,
                             warmup=3 if args.warmup is None else args.warmup, threads=args.threads,
                             keep_fp32=keep, evaluation=evaluation, evaluation_names=dict(args.evaluation_name),
                             skip_failures=True, evaluation_file=args.evaluation,
                             compile_with=_deploy_int8(models, paths, keep, args.cache_dir))
    except ValueError as e:
        raise CliError(str(e)) from e
    if args.plot:
        from ..figures import pareto_figure

        title = (f"{result.reference}: latency (batch 1, {result.threads} thread(s)) vs test accuracy\n"
                 f"CPU: {cpu_summary()}")
        try:
            path = pareto_figure(result.rows(), args.plot, title)
        except ValueError as e:
            raise CliError(f"--plot: {e}") from e
        print(f"wrote {path}", file=sys.stderr)
    if args.save:
        Path(args.save).write_text(json.dumps(result.to_dict(), indent=1))
        print(f"wrote {args.save}", file=sys.stderr)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table(), flush=True)
    return 0
