"""Benchmark peers: every model in every runtime x precision, timed together.

:func:`hscc_core.bench_pair` answers "how much faster is B than A"; a deployment question
is wider: the compressed model in OpenVINO INT8 against the *dense* model in every
runtime it could also run in. :func:`bench_peers` compiles every model (the first is the
dense reference) in every ``(runtime, precision)`` choice and times all of them with
:func:`hscc_core.bench_pair`'s protocol, extended to many:

* all variants run in **one process**, under the same thread count, on the same
  fixed-seed ``torch.rand`` input per batch size (``torch.Generator().manual_seed(batch)``);
* each is warmed up, then timed **round-robin** with ``time.perf_counter`` under
  ``torch.inference_mode()``: one run of every variant per round, the order reversed every
  other round, so drift in machine load hits all alike and none always runs first;
* per batch size: the median and the 90th percentile of the runs.

Per variant (a row) it reports:

* **speed-up vs dense PyTorch fp32** = median(dense model, PyTorch fp32) / median(row);
* **speed-up vs fastest dense peer** = median(fastest variant of the dense model at that
  batch size) / median(row): what the row gains over simply running the dense model in
  the best runtime; and, when agreement numbers are known (``evaluation``), the same
  against the fastest dense variant whose top-1 agreement with dense fp32 is >= 99%
  (:data:`AGREEMENT_BAR`): the fastest *faithful* dense peer;
* **efficiency** = speed-up vs dense PyTorch fp32 / FLOPs ratio (FLOPs(dense) /
  FLOPs(row's model), at batch 1, counted on the PyTorch model): 1.0 means wall time fell
  exactly as much as FLOPs did; a dense int8 row's FLOPs ratio is 1, so its efficiency is
  its speed-up;
* with ``evaluation``: the row's test-set accuracy and agreement (see
  :func:`join_evaluation` for how rows are matched).
"""
from __future__ import annotations

import math
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from hscc_core import LatencyStats, count_flops, count_params, input_shape_of, pareto_front
from hscc_core.progress import progress_bar

from .errors import DataError, SettingsError
from .runtimes import PRECISIONS, RUNTIMES, RuntimeUnavailable, compile_model, cpu_summary, runtime_label, source_model

__all__ = ["AGREEMENT_BAR", "REFERENCE_ROW", "PeerBench", "PeerVariant", "SkippedChoice", "bench_peers",
           "evaluation_rows", "join_evaluation", "pareto_front"]

#: Top-1 agreement with dense fp32 a dense peer needs to count as "faithful".
AGREEMENT_BAR = 0.99
#: The name ``hscc-mri evaluate`` gives the reference (uncompressed) model's row.
REFERENCE_ROW = "uncompressed"
#: The choice every speed-up is relative to (for the first, dense model).
BASELINE: tuple[str, str] = ("torch", "fp32")

_EVAL_FIELDS = ("accuracy", "accuracy_se", "agreement", "agreement_se")


@dataclass(frozen=True)
class PeerVariant:
    """One model compiled for one runtime and precision, and what was measured.

    Attributes:
        model: the caller's name of the model (a key of ``models``).
        runtime, precision: the choice (see :data:`hscc_mri.runtimes.RUNTIMES`, ``PRECISIONS``).
        label: e.g. ``"OpenVINO INT8"``.
        dense: whether this is the first (dense reference) model.
        flops: FLOPs of one forward pass at batch 1 (of the PyTorch source model).
        params: ``numel`` of parameters and buffers of the PyTorch source model.
        latency: batch size -> :class:`hscc_core.bench.LatencyStats`.
        details: the compiled model's ``details`` (quantisation settings, threads).
        evaluation: the matched evaluation fields (``accuracy``, ``accuracy_se``,
            ``agreement``, ``agreement_se``, ``row``: the evaluation row's name), or ``None``.
    """

    model: str
    runtime: str
    precision: str
    label: str
    dense: bool
    flops: int
    params: int
    latency: dict[int, LatencyStats] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.model, self.runtime, self.precision

    @property
    def accuracy(self) -> float | None:
        return None if self.evaluation is None else self.evaluation.get("accuracy")

    @property
    def agreement(self) -> float | None:
        return None if self.evaluation is None else self.evaluation.get("agreement")


@dataclass(frozen=True)
class SkippedChoice:
    """A model x choice that could not be compiled here, and why."""

    model: str
    runtime: str
    precision: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"model": self.model, "runtime": self.runtime, "precision": self.precision,
                "label": runtime_label(self.runtime, self.precision), "reason": self.reason}


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.inf


@dataclass(frozen=True)
class PeerBench:
    """The outcome of :func:`bench_peers`.

    Attributes:
        reference: name of the dense reference model (the first of ``models``).
        variants: every compiled variant, in model order then choice order.
        skipped: the choices that could not be compiled (with the reason).
        batch_sizes: the timed batch sizes, ascending.
        threads, runs, warmup: the timing settings.
        torch_version, cpu: ``torch.__version__`` and :func:`hscc_mri.runtimes.cpu_summary`.
        evaluation_file: where the evaluation came from, when known (for the output only).
    """

    reference: str
    variants: list[PeerVariant]
    skipped: list[SkippedChoice]
    batch_sizes: list[int]
    threads: int
    runs: int
    warmup: int
    torch_version: str
    cpu: str
    evaluation_file: str | None = None

    # ------------------------------------------------------------------ derived numbers
    @property
    def baseline(self) -> PeerVariant:
        """The dense model in PyTorch fp32: what "speed-up" is relative to."""
        return next(v for v in self.variants if v.dense and (v.runtime, v.precision) == BASELINE)

    @property
    def has_evaluation(self) -> bool:
        return any(v.evaluation is not None for v in self.variants)

    def dense_agreement(self, v: PeerVariant) -> float | None:
        """Top-1 agreement of a dense variant with dense fp32: the evaluation's number, and
        1.0 for dense PyTorch fp32 itself (it is the reference) when the evaluation has none."""
        if v.agreement is not None:
            return v.agreement
        return 1.0 if v is self.baseline and self.has_evaluation else None

    def fastest_dense(self, batch: int, faithful: bool = False) -> PeerVariant | None:
        """The dense model's fastest variant at ``batch``; with ``faithful`` only among those
        whose agreement with dense fp32 is known and >= :data:`AGREEMENT_BAR` (``None``
        when no agreement is known)."""
        dense = [v for v in self.variants if v.dense and batch in v.latency]
        if faithful:
            dense = [v for v in dense if (a := self.dense_agreement(v)) is not None and a >= AGREEMENT_BAR]
        return min(dense, key=lambda v: v.latency[batch].median_ms, default=None)

    def speedup(self, v: PeerVariant, batch: int, over: PeerVariant | None = None) -> float:
        """median(``over``, default dense PyTorch fp32) / median(``v``) at ``batch``; > 1: ``v`` is faster."""
        over = over or self.baseline
        if over is None or batch not in v.latency or batch not in over.latency:
            return math.nan
        return _ratio(over.latency[batch].median_ms, v.latency[batch].median_ms)

    def flops_ratio(self, v: PeerVariant) -> float:
        """FLOPs(dense) / FLOPs(``v``'s model) at batch 1."""
        return _ratio(self.baseline.flops, v.flops)

    def efficiency(self, v: PeerVariant, batch: int) -> float:
        """Speed-up over dense PyTorch fp32 / FLOPs ratio (1.0: time fell as much as FLOPs)."""
        ratio = self.flops_ratio(v)
        return self.speedup(v, batch) / ratio if math.isfinite(ratio) and ratio else math.nan

    # ------------------------------------------------------------------ output
    def rows(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per variant (per-batch maps keyed by the batch as a string;
        non-finite numbers are ``None``)."""
        out = []
        fastest = {n: self.fastest_dense(n) for n in self.batch_sizes}
        faithful = {n: self.fastest_dense(n, faithful=True) for n in self.batch_sizes}
        for v in self.variants:
            ev = v.evaluation or {}
            out.append({
                "model": v.model, "runtime": v.runtime, "precision": v.precision, "label": v.label,
                "dense": v.dense, "flops": v.flops, "gflops": v.flops / 1e9, "params": v.params,
                "flops_ratio": _finite(self.flops_ratio(v)),
                "latency": {str(n): s.to_dict() for n, s in sorted(v.latency.items())},
                "speedup_vs_dense_fp32": {str(n): _finite(self.speedup(v, n)) for n in self.batch_sizes},
                "speedup_vs_fastest_dense": {str(n): _finite(self.speedup(v, n, fastest[n]))
                                             if fastest[n] else None for n in self.batch_sizes},
                "speedup_vs_fastest_faithful_dense": {str(n): _finite(self.speedup(v, n, faithful[n]))
                                                      if faithful[n] else None for n in self.batch_sizes},
                "efficiency": {str(n): _finite(self.efficiency(v, n)) for n in self.batch_sizes},
                **{k: _finite(ev.get(k)) for k in _EVAL_FIELDS},
                "evaluation_row": ev.get("row"),
                "details": v.details,
            })
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-serialisable (non-finite numbers become ``None``)."""
        def peer(v: PeerVariant | None) -> dict[str, Any] | None:
            return None if v is None else {"model": v.model, "runtime": v.runtime, "precision": v.precision,
                                           "label": v.label}

        return {
            "reference": self.reference,
            "baseline": peer(self.baseline),
            "batch_sizes": self.batch_sizes,
            "fastest_dense": {str(n): peer(self.fastest_dense(n)) for n in self.batch_sizes},
            "fastest_faithful_dense": {str(n): peer(self.fastest_dense(n, faithful=True))
                                       for n in self.batch_sizes},
            "agreement_bar": AGREEMENT_BAR,
            "rows": self.rows(),
            "skipped": [s.to_dict() for s in self.skipped],
            "threads": self.threads, "runs": self.runs, "warmup": self.warmup,
            "torch_version": self.torch_version, "cpu": self.cpu, "platform": platform.platform(),
            "evaluation_file": self.evaluation_file,
        }

    def table(self) -> str:
        """A plain-text table, one row per variant (see the ``bench --peers`` help for the
        columns), with the skipped choices and the measurement settings below."""
        b1 = 1 if 1 in self.batch_sizes else self.batch_sizes[0]
        b2 = 16 if 16 in self.batch_sizes else self.batch_sizes[-1]
        sizes = [b1] if b1 == b2 else [b1, b2]
        fastest = self.fastest_dense(b1)

        def num(x: float | None, fmt: str) -> str:
            return "-" if x is None or not math.isfinite(x) else format(x, fmt)

        def pct(x: float | None, se: float | None) -> str:
            if x is None:
                return "-"
            return f"{x:.1%}" + (f" +/- {se:.1%}" if se is not None and math.isfinite(se) else "")

        header = (["model", "runtime/precision", "GFLOPs", "params M"] + [f"ms@b{n}" for n in sizes]
                  + [f"vs dense fp32 @b{b1}", f"vs fastest dense @b{b1}", "efficiency", "accuracy", "agreement"])
        rows = [header]
        for v in self.variants:
            ev = v.evaluation or {}
            rows.append([v.model, v.label, f"{v.flops / 1e9:.3f}", f"{v.params / 1e6:.3f}"]
                        + [num(v.latency[n].median_ms if n in v.latency else None, ".2f") for n in sizes]
                        + [num(self.speedup(v, b1), ".2f") + "x",
                           (num(self.speedup(v, b1, fastest), ".2f") + "x") if fastest else "-",
                           num(self.efficiency(v, b1), ".2f"),
                           pct(ev.get("accuracy"), ev.get("accuracy_se")),
                           pct(ev.get("agreement"), ev.get("agreement_se"))])
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = ["  ".join([r[0].ljust(widths[0]), r[1].ljust(widths[1])]
                           + [c.rjust(w) for c, w in zip(r[2:], widths[2:])]).rstrip() for r in rows]
        base = self.baseline
        lines.append(f"speed-up = median({base.model}, {base.label}) / median(row); fastest dense peer @b{b1}: "
                     + (f"{fastest.label}" if fastest else "-")
                     + "; efficiency = speed-up vs dense fp32 / FLOPs ratio")
        faithful = self.fastest_dense(b1, faithful=True)
        if faithful is not None:
            parts = [f"{v.model} {v.label} {self.speedup(v, b1, faithful):.2f}x" for v in self.variants
                     if not v.dense]
            lines.append(f"fastest dense peer with >= {AGREEMENT_BAR:.0%} agreement @b{b1}: {faithful.label}"
                         + (f"; speed-up over it: {', '.join(parts)}" if parts else ""))
        for s in self.skipped:
            lines.append(f"skipped {s.model} {runtime_label(s.runtime, s.precision)}: {s.reason}")
        lines.append(f"torch {self.torch_version}, {self.threads} thread(s), {self.runs} round-robin runs after "
                     f"{self.warmup} warm-up per variant and batch size; CPU: {self.cpu}")
        if self.has_evaluation:
            lines.append("accuracy/agreement: from " + (self.evaluation_file or "the evaluation")
                         + " (+/- paired bootstrap SE)")
        return "\n".join(lines)


# ---------------------------------------------------------------------- evaluation join
def evaluation_rows(evaluation: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows of an evaluation: the ``"rows"`` of the JSON ``hscc-mri evaluate --data
    DIR --json FILE`` writes, or a list of such rows."""
    if isinstance(evaluation, Mapping):
        rows = evaluation.get("rows")
        if not isinstance(rows, list):
            raise DataError("the evaluation has no 'rows' list (expected the JSON of `hscc-mri evaluate --data "
                            "DIR --json FILE`)")
        return rows
    return list(evaluation)


def join_evaluation(model: str, runtime: str, precision: str, rows: Iterable[Mapping[str, Any]],
                    row_name: str | None = None, reference: bool = False) -> dict[str, Any] | None:
    """The evaluation fields of one variant, or ``None`` when no row matches.

    Matching: a row matches when its model's row name (``row["source"]["base_row"]``,
    which ``evaluate --runtimes`` sets on the rows it adds, else ``row["name"]``) equals
    ``row_name`` (default: ``model``) and its ``runtime`` and ``precision`` equal the variant's; a row without ``runtime``
    or ``precision`` is PyTorch fp32 (what ``evaluate`` measured before it had runtimes).
    For the reference model (``reference``) a row named :data:`REFERENCE_ROW`
    (``"uncompressed"``, what ``evaluate`` calls it) is used when none has its own name.
    The first matching row wins.

    Returns:
        ``{"accuracy", "accuracy_se", "agreement", "agreement_se", "row"}`` (``row``: the
        matched row's name; a missing field is ``None``).
    """
    rows = list(rows)
    wanted = row_name or model
    names = [wanted] + ([REFERENCE_ROW] if reference and wanted != REFERENCE_ROW else [])
    for name in names:
        for r in rows:
            base = (r.get("source") or {}).get("base_row") or r.get("name")
            if (base == name and (r.get("runtime") or "torch") == runtime
                    and (r.get("precision") or "fp32") == precision):
                return {**{k: r.get(k) for k in _EVAL_FIELDS}, "row": name}
    return None


# ---------------------------------------------------------------------- the benchmark
def _choices(choices: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for runtime, precision in choices:
        if runtime not in RUNTIMES or precision not in PRECISIONS:
            raise SettingsError(f"a choice is (runtime, precision) with runtime in {', '.join(RUNTIMES)} and "
                                f"precision in {', '.join(PRECISIONS)}; got {(runtime, precision)!r}")
        if (runtime, precision) not in out:
            out.append((runtime, precision))
    # Every speed-up is relative to the dense model in PyTorch fp32, so it is always timed.
    return out if BASELINE in out else [BASELINE, *out]


def bench_peers(
    models: Mapping[str, nn.Module],
    choices: Sequence[tuple[str, str]],
    batch_sizes: Sequence[int] = (1, 16),
    runs: int = 20,
    warmup: int = 3,
    threads: int = 2,
    calibration: Sequence[torch.Tensor] | None = None,
    keep_fp32: Mapping[str, Sequence[str]] | None = None,
    int8_options: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    progress: bool = True,
    evaluation_names: Mapping[str, str] | None = None,
    skip_failures: bool = False,
    evaluation_file: str | None = None,
    compile_with: Callable[[str, str, str], nn.Module | None] | None = None,
) -> PeerBench:
    """Compile every model in every choice and time all variants together (module docstring).

    The models are put in eval mode (training flags restored after); PyTorch variants use
    :func:`hscc_mri.runtimes.compile_model`, which makes the model's weights channels-last
    in place. The process's thread count is restored on return.

    Args:
        models: name -> PyTorch model (dense or compressed), all taking the same input
            (``model.spec``); the **first is the dense reference**.
        choices: ``(runtime, precision)`` pairs, e.g. :func:`hscc_mri.runtimes.available`;
            ``("torch", "fp32")`` is added when missing (the speed-up baseline). A choice
            this machine cannot run (:class:`~hscc_mri.runtimes.RuntimeUnavailable`) is
            recorded in ``skipped`` with the reason.
        batch_sizes: batch sizes to time.
        runs: timed runs per variant and batch size (>= 1).
        warmup: untimed runs per variant and batch size before timing.
        threads: ``torch.set_num_threads`` and every runtime's thread count.
        calibration: input batches for int8; default: the reference's default calibration
            set (:func:`hscc_mri.calibration.calibration_set` of its default recipe),
            drawn once and only when an int8 choice is asked for.
        keep_fp32: model name -> layer groups left in float32 in int8, or -> ``{runtime:
            layer groups}`` (the int8 plans of :func:`hscc_mri.deploy.int8_plan` differ by runtime).
        int8_options: model name -> ``{runtime: quantiser settings}`` for int8 (an int8
            plan's ``options``; absent: the runtime's defaults).
        evaluation: the JSON of ``hscc-mri evaluate --data DIR --json FILE`` (a mapping
            with ``"rows"``), joined by :func:`join_evaluation`.
        progress: tqdm bars on stderr.
        evaluation_names: model name -> the evaluation row name for it (default: the
            model name; the reference also matches ``"uncompressed"``).
        skip_failures: also record a choice whose compilation fails for another reason
            (e.g. an ONNX export error) as skipped instead of raising.
        evaluation_file: where ``evaluation`` was read from (shown in the output).
        compile_with: ``(model name, runtime, precision) ->`` the compiled variant, or
            ``None`` to compile it with :func:`~hscc_mri.runtimes.compile_model` and the
            arguments above (e.g. :func:`hscc_mri.deploy.deploy`, which reuses a kept
            quantised graph).

    Returns:
        A :class:`PeerBench`.

    Raises:
        SettingsError: no models, models taking different inputs, a bad argument, or the
            dense model cannot run in PyTorch fp32.
    """
    if not models:
        raise SettingsError("bench_peers needs at least one model (the first is the dense reference)")
    batch_sizes = sorted({int(n) for n in batch_sizes})
    if not batch_sizes or batch_sizes[0] < 1:
        raise SettingsError(f"batch_sizes must be positive integers, got {batch_sizes}")
    if runs < 1 or warmup < 0 or threads < 1:
        raise SettingsError(f"need runs >= 1, warmup >= 0, threads >= 1; got {runs}, {warmup}, {threads}")
    choices = _choices(choices)
    names = list(models)
    shapes = {name: tuple(input_shape_of(m)[1:]) for name, m in models.items()}
    if len(set(shapes.values())) > 1:
        raise SettingsError(f"the models take different inputs (C, H, W): {shapes}")
    shape = shapes[names[0]]
    keep_fp32 = dict(keep_fp32 or {})
    int8_options = dict(int8_options or {})
    unknown = set(keep_fp32) - set(names)
    if unknown:
        raise SettingsError(f"keep_fp32 names models not benchmarked: {sorted(unknown)}")
    rows = evaluation_rows(evaluation) if evaluation is not None else None
    evaluation_names = dict(evaluation_names or {})

    was_training = {name: m.training for name, m in models.items()}
    previous_threads = torch.get_num_threads()
    compiled: list[tuple[str, str, str, nn.Module]] = []
    skipped: list[SkippedChoice] = []
    stats: dict[str, tuple[int, int]] = {}
    times: dict[int, list[list[float]]] = {}
    try:
        torch.set_num_threads(threads)
        for m in models.values():
            m.eval()
        bar = progress_bar(total=len(names) * len(choices), desc="compile peers", unit="variant", file=sys.stderr,
                           disable=not progress, leave=False)
        try:
            for name in names:
                for runtime, precision in choices:
                    bar.set_postfix_str(f"{name} {runtime_label(runtime, precision)}")
                    try:
                        keep = keep_fp32.get(name, ())
                        if isinstance(keep, Mapping):  # per runtime (int8 plans differ by runtime)
                            keep = keep.get(runtime, ())
                        c = compile_with(name, runtime, precision) if compile_with is not None else None
                        if c is None:
                            if precision == "int8" and calibration is None:  # read once, only when needed
                                from .deploy import default_calibration_batches

                                calibration = default_calibration_batches(models[names[0]])
                            c = compile_model(models[name], runtime, precision,
                                              calibration=calibration if precision == "int8" else None,
                                              keep_fp32=keep if precision == "int8" else (),
                                              threads=threads,
                                              int8_options=int8_options.get(name, {}).get(runtime))
                    except RuntimeUnavailable as e:
                        skipped.append(SkippedChoice(name, runtime, precision, str(e)))
                    except Exception as e:  # noqa: BLE001 - when asked: one export failure must not end the run
                        if not skip_failures:
                            raise
                        skipped.append(SkippedChoice(name, runtime, precision,
                                                     f"failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}"))
                    else:
                        compiled.append((name, runtime, precision, c))
                    bar.update()
        finally:
            bar.close()
        if not any(n == names[0] and (r, p) == BASELINE for n, r, p, _ in compiled):
            reason = next((s.reason for s in skipped if s.model == names[0] and (s.runtime, s.precision) == BASELINE),
                          "")
            raise SettingsError(f"the dense model {names[0]!r} must run in PyTorch fp32 (the speed-up baseline): "
                                f"{reason}")
        for name, _, _, c in compiled:
            if name not in stats:  # FLOPs and params are the PyTorch model's, the same in every runtime
                src = source_model(c)
                stats[name] = (count_flops(src, (1, *shape)), count_params(src))

        runners = [c for _, _, _, c in compiled]
        times = {n: [[] for _ in runners] for n in batch_sizes}
        bar = progress_bar(total=len(batch_sizes) * len(runners) * (warmup + runs), desc="bench peers", unit="run",
                           file=sys.stderr, disable=not progress, leave=False)
        try:
            with torch.inference_mode():
                for n in batch_sizes:
                    # The same input for every variant (bench_pair's seed): contiguous NCHW, which
                    # the other runtimes take as it is and PyTorch's channels-last convolutions convert.
                    x = torch.rand((n, *shape), generator=torch.Generator().manual_seed(n))
                    bar.set_postfix_str(f"batch {n}")
                    for run in runners:
                        for _ in range(warmup):
                            run(x)
                            bar.update()
                    order = list(range(len(runners)))
                    for r in range(runs):
                        # Round-robin, reversed every other round: none always runs first or last.
                        for i in (order if r % 2 == 0 else order[::-1]):
                            t0 = time.perf_counter()
                            runners[i](x)
                            times[n][i].append(time.perf_counter() - t0)
                            bar.update()
        finally:
            bar.close()
    finally:
        torch.set_num_threads(previous_threads)
        for name, m in models.items():
            m.train(was_training[name])

    variants = []
    for i, (name, runtime, precision, c) in enumerate(compiled):
        dense = name == names[0]
        ev = None
        if rows is not None:
            ev = join_evaluation(name, runtime, precision, rows, evaluation_names.get(name), reference=dense)
        variants.append(PeerVariant(
            name, runtime, precision, runtime_label(runtime, precision), dense, *stats[name],
            latency={n: LatencyStats.from_seconds(times[n][i], n) for n in batch_sizes},
            details=dict(getattr(c, "details", {}) or {}), evaluation=ev))
    return PeerBench(names[0], variants, skipped, batch_sizes, threads, runs, warmup, torch.__version__,
                     cpu_summary(), evaluation_file)
