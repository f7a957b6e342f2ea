"""What ``hscc-mri bench`` runs: two models side by side, or every model in every runtime.

:func:`bench_two_models` resolves the two models of a :class:`BenchRequest` and times them
with :func:`hscc_core.bench_pair`. :func:`bench_peer_models` resolves every model of a
:class:`PeerBenchRequest` (each named as ``evaluate`` names its row), reads the evaluation
to join, times every model in every runtime x precision with
:func:`hscc_mri.peers.bench_peers` (int8 deployed as the product deploys it), and draws
and saves the result when asked.

Both refuse with typed errors (:class:`~hscc_mri.errors.SettingsError`,
:class:`~hscc_mri.errors.DataError`, :class:`hscc_core.ArtifactError`) worded for the
command's options, which the command shows as they are. The heavy modules (torch, the
runtimes, the figures) are imported when a function runs, not with this module.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .errors import DataError, SettingsError, typed_value_errors

if TYPE_CHECKING:
    from torch import nn

    from hscc_core import BenchResult

    from .peers import PeerBench

__all__ = ["BenchRequest", "PeerBenchRequest", "bench_peer_models", "bench_two_models"]


@dataclass(frozen=True)
class BenchRequest:
    """What the two-model ``bench`` times (its options of the same names).

    Attributes:
        model: model A, the reference: a registry name or an artifact path.
        vs: model B, timed against it.
        batch_sizes: batch sizes to time.
        runs: timed runs per model and batch size.
        warmup: untimed runs before timing.
        threads: CPU threads during timing.
        channels_last: both models and inputs in ``torch.channels_last`` (the faster
            layout on CPU); ``False``: contiguous NCHW.
    """

    model: str
    vs: str
    batch_sizes: tuple[int, ...] = (1, 16)
    runs: int = 30
    warmup: int = 5
    threads: int = 2
    channels_last: bool = True


@dataclass(frozen=True)
class PeerBenchRequest:
    """What ``bench --peers`` times (its options of the same names).

    Attributes:
        model: the dense reference: a registry name or an artifact path.
        vs: the models timed against it (registry names or artifact paths).
        choices: ``(runtime, precision)`` pairs; ``None``: every pair this machine can run.
        batch_sizes, runs, warmup, threads: as in :class:`BenchRequest`, per variant.
        keep_fp32: ``(model, "LAYER[,LAYER]")`` pairs: layer groups of a model (by its bench
            name) left in float32 in int8, instead of its measured int8 plan (repeatable).
        evaluation: the JSON file of ``hscc-mri evaluate --data DIR --json FILE``, joined
            for accuracy and agreement.
        evaluation_names: ``(model, row)`` pairs: the evaluation row of a model (default:
            its own name; the dense one also matches ``uncompressed``).
        plot: write latency at batch 1 against accuracy, with the Pareto front, to this
            PNG file (needs ``evaluation``).
        save: also write the result as JSON to this file.
        cache_dir: where a registry model's int8 plan and quantised graph are kept (an
            artifact's: beside it).
    """

    model: str
    vs: tuple[str, ...] = ()
    choices: tuple[tuple[str, str], ...] | None = None
    batch_sizes: tuple[int, ...] = (1, 16)
    runs: int = 20
    warmup: int = 3
    threads: int = 2
    keep_fp32: tuple[tuple[str, str], ...] = ()
    evaluation: str | None = None
    evaluation_names: tuple[tuple[str, str], ...] = ()
    plot: str | None = None
    save: str | None = None
    cache_dir: str = "artifacts"


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


def _resolve(flag: str, arg: str) -> nn.Module:
    """The model ``arg``; an error names the option it was given by."""
    from hscc_core import ArtifactError

    from .resolve import resolve_model

    try:
        return resolve_model(arg)
    except ArtifactError as e:
        raise ArtifactError(f"{flag}: {e}") from e


def bench_two_models(request: BenchRequest) -> BenchResult:
    """Time model B (``vs``) against model A (``model``) with :func:`hscc_core.bench_pair`.

    Raises:
        hscc_core.ArtifactError: a model cannot be resolved (the message names the option).
        SettingsError or hscc_core.ConfigError: a setting :func:`hscc_core.bench_pair` refuses.
    """
    from hscc_core import bench_pair

    model_a, model_b = _resolve("--model", request.model), _resolve("--vs", request.vs)
    with typed_value_errors():
        return bench_pair(model_a, model_b, batch_sizes=request.batch_sizes, runs=request.runs,
                          warmup=request.warmup, threads=request.threads, channels_last=request.channels_last,
                          name_a=request.model, name_b=request.vs)


def _bench_name(arg: str, taken: set[str]) -> str:
    """A registry name as it is; an artifact path as its file name without ``.safetensors``
    (what ``evaluate`` names its row, so an evaluation joins by name); made unique."""
    from .bundle import ArtifactBundle
    from .evaluate_run import unique_name
    from .resolve import is_registry_name

    return unique_name(arg if is_registry_name(arg) else ArtifactBundle.of(arg).name, taken)


def _deploy_int8(models: Mapping[str, nn.Module], paths: Mapping[str, str], keep: Mapping[str, list[str]],
                 cache_dir: str) -> Callable[[str, str, str], Any]:
    """For ``bench_peers(compile_with=...)``: a model without ``--keep-fp32`` runs int8 as
    the product does, through :func:`hscc_mri.deploy.deploy`: with its measured int8 plan
    per runtime (the float32 layers and the quantiser settings; a compressed artifact's
    kept beside it, a registry model's in the cache folder) and the quantised graph kept
    by an earlier start. The default calibration set is read once, only if something
    must be quantised."""
    import functools

    from .deploy import Deployable, default_calibration_batches
    from .runtimes import Precision, Request, decide

    calibration = functools.cache(lambda: default_calibration_batches(next(iter(models.values()))))
    # One Deployable a model: its weights are hashed once across the runtimes benchmarked.
    targets = {name: Deployable(model, paths.get(name), cache_dir) for name, model in models.items()}

    def compile_with(name: str, runtime: str, precision: str):
        model = models[name]
        # None: bench_peers compiles it itself (float, PyTorch, --keep-fp32, or a model
        # neither from a file nor of the registry, which has no plan to deploy with).
        if precision != "int8" or runtime == "torch" or name in keep or \
                getattr(model, "spec", None) is None and name not in paths:
            return None
        choice = decide(Request(runtime, Precision.INT8)).choice  # asked explicitly: checked, no fallback
        return targets[name].deploy(choice, calibration=calibration)

    return compile_with


def _read_evaluation(file: str) -> Any:
    try:
        return json.loads(Path(file).read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"--evaluation {file}: {e}") from e


def bench_peer_models(request: PeerBenchRequest, note: Callable[[str], None] = _stderr) -> PeerBench:
    """Time every model of ``request`` in every runtime x precision with
    :func:`hscc_mri.peers.bench_peers`, joined with the evaluation when given; write the
    plot and the JSON when asked.

    The dense model comes first and keeps its name; each model is named as ``evaluate``
    names its row (:func:`_bench_name`). An int8 variant without ``keep_fp32`` is deployed
    as the product deploys it (its measured int8 plan, a kept quantised graph); a choice
    this machine cannot run, or that fails to compile, is listed as skipped.

    Args:
        request: what to time.
        note: gets ``wrote FILE`` for the plot and the JSON (default: stderr).

    Returns:
        The :class:`hscc_mri.peers.PeerBench` (its ``table()`` and ``to_dict()`` print it).

    Raises:
        SettingsError: ``plot`` without ``evaluation``, names in ``keep_fp32`` or
            ``evaluation_names`` of no benchmarked model, or a setting ``bench_peers`` refuses.
        DataError: an evaluation that cannot be read or has no rows, or a plot without
            a row to draw.
        hscc_core.ArtifactError: a model cannot be resolved (the message names the option).
    """
    from .peers import bench_peers
    from .runtimes import available, cpu_summary

    if request.plot and not request.evaluation:
        raise SettingsError("--plot draws latency against accuracy: give --evaluation FILE (from `hscc-mri evaluate "
                            "--data DIR --json FILE`)")
    evaluation = _read_evaluation(request.evaluation) if request.evaluation else None
    models: dict[str, nn.Module] = {}
    paths: dict[str, str] = {}  # bench name -> artifact file, whose int8 plans are kept beside it
    taken: set[str] = set()
    for flag, arg in [("--model", request.model)] + [("--vs", v) for v in request.vs]:
        name = _bench_name(arg, taken)
        models[name] = _resolve(flag, arg)
        if flag == "--vs" and Path(arg).is_file():
            paths[name] = arg
    for flag, pairs in (("--keep-fp32", request.keep_fp32), ("--evaluation-name", request.evaluation_names)):
        unknown = sorted({name for name, _ in pairs} - set(models))
        if unknown:
            raise SettingsError(f"{flag} names no benchmarked model: {', '.join(unknown)} "
                                f"(models: {', '.join(models)})")
    keep: dict[str, list[str]] = {}
    for name, layers in request.keep_fp32:
        keep.setdefault(name, []).extend(g for g in layers.split(",") if g)
    with typed_value_errors():
        result = bench_peers(models, request.choices or available(), batch_sizes=request.batch_sizes,
                             runs=request.runs, warmup=request.warmup, threads=request.threads, keep_fp32=keep,
                             evaluation=evaluation, evaluation_names=dict(request.evaluation_names),
                             skip_failures=True, evaluation_file=request.evaluation,
                             compile_with=_deploy_int8(models, paths, keep, request.cache_dir))
    if request.plot:
        from .figures import pareto_figure

        title = (f"{result.reference}: latency (batch 1, {result.threads} thread(s)) vs test accuracy\n"
                 f"CPU: {cpu_summary()}")
        try:
            path = pareto_figure(result.rows(), request.plot, title)
        except ValueError as e:
            raise DataError(f"--plot: {e}") from e
        note(f"wrote {path}")
    if request.save:
        Path(request.save).write_text(json.dumps(result.to_dict(), indent=1))
        note(f"wrote {request.save}")
    return result
