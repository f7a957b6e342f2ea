"""Compress to a target agreement: the fewest-FLOPs model that still agrees with its original.

A user of a compressed classifier rarely has a FLOPs budget in mind; they have a bound on
how often the fast model may answer differently from the one they validated.
:func:`compress_to_target` turns that bound into a budget by measurement: it compresses at
several FLOPs budgets, asks a caller-given ``evaluate(compressed)`` how often each result
agrees with the original on the caller's *selection* inputs (the library knows no data
set), and returns the model with the fewest FLOPs whose agreement meets the target, with
the whole curve (budget, FLOPs ratio, agreement ± SE, accuracy when the caller has labels,
seconds) in a :class:`TargetResult`.

HSCC's calibration statistics depend on the model, its layers, regions and calibration
images but not on the budget, so they are collected once
(:func:`hscc_core.compression.calibration_statistics`) and every trial reuses them; each
trial still runs its own allocation and sequential refit, which is most of its time.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from torch import nn

from .compression import CalibrationStatistics, _plan_layers, calibration_statistics, compress
from .config import CompressionConfig, CompressionReport, Method
from .errors import CompressionError
from .flops import count_flops

__all__ = ["STOP_REASONS", "TargetResult", "TargetTrial", "compress_to_target"]

#: Why a search ended, and what that means (:attr:`TargetResult.stopped`).
STOP_REASONS: dict[str, str] = {
    "converged": "the budgets that meet and miss the target are within the tolerance of each other",
    "time limit": "the time limit left no room for another trial",
    "max trials": "the allowed number of trials ran",
    "min budget": "no budget down to the lowest allowed meets the target",
    "max budget": "the highest allowed budget still meets the target",
    "budgets": "every budget given was tried",
}

#: The fraction of a bracket (in log budget) the next trial may fall in: the interpolated
#: guess is clamped to ``[0.2, 0.8]`` so that every trial shrinks the bracket by a fifth.
_CLAMP = (0.2, 0.8)


@dataclass
class TargetTrial:
    """One compression of the search and what the caller measured on it.

    Attributes:
        budget: the FLOPs budget asked (``original / compressed``).
        flops_ratio: the whole-model FLOPs ratio reached (from the compression report).
        flops_compressed, params_compressed: the compressed model's FLOPs and parameters.
        agreement: top-1 agreement with the original on the caller's selection inputs.
        agreement_se: its standard error (``None`` when the caller gave none).
        accuracy, accuracy_se: accuracy on the selection inputs, when the caller has labels.
        met: ``agreement >= target``.
        seconds: compression plus evaluation.
    """

    budget: float
    flops_ratio: float
    flops_compressed: int
    params_compressed: int
    agreement: float
    agreement_se: float | None = None
    accuracy: float | None = None
    accuracy_se: float | None = None
    met: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def line(self, target: float) -> str:
        """One plain line for a log."""
        acc = "" if self.accuracy is None else f", accuracy {_pm(self.accuracy, self.accuracy_se)}"
        verdict = "meets" if self.met else "misses"
        return (f"budget {self.budget:.2f}x: FLOPs {self.flops_ratio:.2f}x, agreement "
                f"{_pm(self.agreement, self.agreement_se)}{acc}; {verdict} {target:.1%} ({self.seconds:.0f} s)")


def _pm(value: float, se: float | None) -> str:
    return f"{value:.1%}" + ("" if se is None else f" ± {se:.1%}")


@dataclass
class TargetResult:
    """What :func:`compress_to_target` found.

    Attributes:
        model: the chosen compressed model (ready for :func:`hscc_core.save`).
        report: its :class:`~hscc_core.CompressionReport`.
        target: the agreement asked.
        met: whether the chosen model meets it; if not, it is the trial with the highest
            agreement (the best found), and the caller must say the target was missed.
        stopped: why the search ended (a key of :data:`STOP_REASONS`).
        trials: every trial, in the order run.
        chosen: index of the chosen model's trial in ``trials``.
        statistics_seconds: collecting the calibration statistics (once, for all trials).
        seconds: the whole search.
        search: the search settings (for the record).
    """

    model: nn.Module
    report: CompressionReport
    target: float
    met: bool
    stopped: str
    trials: list[TargetTrial]
    chosen: int
    statistics_seconds: float
    seconds: float
    search: dict[str, Any] = field(default_factory=dict)

    @property
    def trial(self) -> TargetTrial:
        """The chosen model's trial."""
        return self.trials[self.chosen]

    def curve(self) -> list[TargetTrial]:
        """The trials by increasing budget: agreement against FLOPs."""
        return sorted(self.trials, key=lambda t: t.budget)

    def summary(self) -> str:
        """One line: met or missed, the chosen model, and why the search stopped."""
        t = self.trial
        head = (f"target agreement {self.target:.1%} met" if self.met else
                f"target agreement {self.target:.1%} MISSED: keeping the best model found")
        return (f"{head}: budget {t.budget:.2f}x (FLOPs {t.flops_ratio:.2f}x), agreement "
                f"{_pm(t.agreement, t.agreement_se)} after {len(self.trials)} trial(s) in {self.seconds:.0f} s "
                f"(stopped: {self.stopped}, {STOP_REASONS[self.stopped]})")

    def table(self) -> str:
        """The curve for a terminal, one row per trial by budget, the chosen one marked."""
        rows = [f"  {'budget':>7} {'FLOPs':>7} {'agreement':>16} {'accuracy':>16} {'target':>7} {'seconds':>8}"]
        chosen = self.trial
        for t in self.curve():
            acc = "-" if t.accuracy is None else _pm(t.accuracy, t.accuracy_se)
            rows.append(f"{'*' if t is chosen else ' '} {t.budget:>6.2f}x {t.flops_ratio:>6.2f}x "
                        f"{_pm(t.agreement, t.agreement_se):>16} {acc:>16} {'met' if t.met else 'missed':>7} "
                        f"{t.seconds:>8.0f}")
        return "\n".join(rows + [self.summary()])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without the model: the target, the verdict, the chosen trial and the curve."""
        return {"target": self.target, "met": self.met, "stopped": self.stopped,
                "stopped_because": STOP_REASONS[self.stopped], "chosen": self.trial.to_dict(),
                "curve": [t.to_dict() for t in self.curve()], "trials_in_order": [t.budget for t in self.trials],
                "statistics_seconds": self.statistics_seconds, "seconds": self.seconds, "search": dict(self.search)}


Evaluate = Callable[[nn.Module], Mapping[str, Any]]


def _number(result: Mapping[str, Any], key: str, required: bool = False) -> float | None:
    value = result.get(key)
    if value is None:
        if required:
            raise CompressionError(f"evaluate() must return {key!r}, got keys {sorted(result)}")
        return None
    value = float(value)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):  # shares and their standard errors alike
        raise CompressionError(f"evaluate() returned {key} = {value}; expected a number in [0, 1]")
    return value


def _preference(t: TargetTrial) -> tuple:
    """Sort key of the model to keep: meeting trials first, fewest FLOPs among them; else the
    highest agreement (then the fewest FLOPs)."""
    return (0, t.flops_compressed, -t.agreement) if t.met else (1, -t.agreement, t.flops_compressed)


def _check(target: float, config: CompressionConfig, budgets: Sequence[float] | None, min_budget: float,
           max_budget: float, step: float, tolerance: float, max_trials: int, time_limit_s: float | None) -> None:
    error = CompressionError
    if not 0.0 < target <= 1.0:
        raise error(f"the target agreement must be in (0, 1], got {target}")
    if config.budget is None:
        raise error("a target search varies the FLOPs budget: give a budget config (the start), not energy")
    if not 1.0 < min_budget <= max_budget:
        raise error(f"need 1 < min_budget <= max_budget, got {min_budget} and {max_budget}")
    if budgets is not None and (not budgets or min(budgets) <= 1.0):
        raise error(f"budgets must be a non-empty list of factors > 1, got {list(budgets)}")
    if not step > 1.0 or not tolerance > 0.0 or max_trials < 1:
        raise error(f"need step > 1, tolerance > 0 and max_trials >= 1, got {step}, {tolerance}, {max_trials}")
    if time_limit_s is not None and not time_limit_s >= 0:
        raise error(f"the time limit must be >= 0 seconds, got {time_limit_s}")


def _budget_ceiling(model: nn.Module, calibration: Iterable | None, config: CompressionConfig,
                    input_shape: Sequence[int] | None) -> float:
    """The budget at which the layers left uncompressed alone would use every allowed FLOP
    (:func:`compress` refuses it and anything above)."""
    shape, plans = _plan_layers(model.eval(), calibration, config, input_shape)
    total = count_flops(model, shape)
    untouched = total - sum(p.flops_original for p in plans)
    return math.inf if untouched <= 0 else total / untouched


def _next_budget(trials: list[TargetTrial], lo: TargetTrial | None, hi: TargetTrial | None, start: float,
                 min_budget: float, max_budget: float, step: float, tolerance: float,
                 target: float) -> tuple[float | None, str]:
    """The next budget to try, or ``(None, reason)`` when the search is over."""
    if not trials:
        return min(max(start, min_budget), max_budget), ""
    if lo is None:  # everything missed so far: step down
        if hi.budget <= min_budget * (1 + 1e-9):
            return None, "min budget"
        return max(hi.budget / step, min_budget), ""
    if hi is None:  # everything met so far: step up
        if lo.budget >= max_budget * (1 - 1e-9):
            return None, "max budget"
        return min(lo.budget * step, max_budget), ""
    if hi.budget / lo.budget <= 1 + tolerance:
        return None, "converged"
    # Regula falsi on agreement against log budget, kept inside the bracket's middle. Agreement
    # usually falls faster as the budget grows, so the straight line lands a little below the
    # crossing: the next trial tends to meet the target and become the new best.
    drop = lo.agreement - hi.agreement
    frac = (lo.agreement - target) / drop if drop > 0 else 0.5
    frac = min(max(frac, _CLAMP[0]), _CLAMP[1])
    budget = round(math.exp(math.log(lo.budget) + frac * (math.log(hi.budget) - math.log(lo.budget))), 3)
    if not lo.budget < budget < hi.budget:
        return None, "converged"
    return budget, ""


def compress_to_target(model: nn.Module, calibration: Iterable | None, config: CompressionConfig,
                       evaluate: Evaluate, target: float, *, budgets: Sequence[float] | None = None,
                       min_budget: float = 1.25, max_budget: float = 32.0, step: float = 2.0,
                       tolerance: float = 0.1, max_trials: int = 12, time_limit_s: float | None = None,
                       progress: bool = True, log: Callable[[str], None] | None = None,
                       input_shape: Sequence[int] | None = None, name: str | None = None) -> TargetResult:
    """The compression of ``model`` with the fewest FLOPs whose agreement with ``model``
    (as ``evaluate`` measures it) is at least ``target``.

    The search runs in log budget (FLOPs ratios multiply: 3x to 6x is as far as 6x to 12x):

    1. the first trial runs at ``config.budget`` (clamped to ``[min_budget, max_budget]``);
    2. a ladder by factors of ``step`` (2: 6x → 3x → 1.5x, or 6x → 12x → 24x) goes down
       while trials miss, or up while they meet, until a budget that meets and a higher one
       that misses bracket the target (or a bound is reached: ``min_budget`` misses, or
       ``max_budget`` meets, and the search ends there);
    3. inside the bracket, regula falsi: the next budget is where the straight line
       between the two ends' agreements (against log budget) crosses the target, clamped
       to the middle 60% of the bracket so that every trial shrinks it; the result
       replaces the end on its side. It ends when the meeting and missing budgets are
       within ``tolerance`` of each other (10%: 4.0x meets, 4.4x misses).

    Why this shape: every trial is a full compression (for VGG16 a sequential refit of
    15-20 min), so trials should land near the crossing. A fixed fine grid would spend most
    of them where the answer is clearly yes or no; the ladder finds the bracket in one or
    two; regula falsi uses the measured agreements to aim inside it, and the clamp keeps
    bisection's guarantee that the bracket shrinks (by at least a fifth per trial). With
    ``budgets`` given, exactly those are tried, in order.

    Agreement need not be monotone in the budget (ranks move in blocks); the model kept is
    in any case the one with the fewest FLOPs among *all* trials that met the target. The
    target is compared with the measured agreement itself; its standard error (about 0.9
    points at 97% on 329 inputs) is recorded, not subtracted.

    Per-layer FLOPs ratios are left to the compressor's own allocation (``config``: HSCC's
    greedy allocation already spends the budget where the calibration responses carry the
    most energy per FLOP); no separate sensitivity search over layers is done.

    Args:
        model: the original (not modified); ``evaluate`` compares against it.
        calibration, config, input_shape, name: as for :func:`hscc_core.compress`;
            ``config.budget`` is where the search starts (``energy`` configs are refused).
        evaluate: ``evaluate(compressed) -> {"agreement", "agreement_se"?, "accuracy"?,
            "accuracy_se"?}``, shares in ``[0, 1]``, measured by the caller on inputs that
            were not used to make or tune ``model`` (the library knows no data set).
        target: the agreement asked, in ``(0, 1]``.
        budgets: try exactly these budgets instead of searching.
        min_budget, max_budget: the budgets the search may try (``max_budget`` is also
            kept below the budget the layers left uncompressed make unreachable).
        step: the ladder's factor.
        tolerance: the search ends when the lowest missing budget is within ``1 +
            tolerance`` of the highest meeting one.
        max_trials: at most this many compressions.
        time_limit_s: seconds for the whole search, statistics included. It is checked
            between trials: another trial starts only if the time used plus the longest
            trial so far fits. The first trial always runs (there is no model without it),
            so a limit shorter than statistics plus one trial is overrun by that much.
        progress: progress bars of the compressions.
        log: called with one line per trial (and one for the statistics).

    Returns:
        The :class:`TargetResult`: the chosen model, its report, whether it meets the
        target (if no trial did, the trial with the highest agreement is kept and ``met``
        is ``False``), why the search stopped, and the curve.

    Raises:
        CompressionError: bad settings, an ``evaluate`` that returns no share, or what
            :func:`hscc_core.compress` raises.
    """
    _check(target, config, budgets, min_budget, max_budget, step, tolerance, max_trials, time_limit_s)
    log = log or (lambda line: None)
    t_start = time.perf_counter()
    if config.method == Method.HSCC and calibration is None:
        raise CompressionError("HSCC is data-aware: give calibration images")
    # Keep every budget strictly below the one compress refuses (there the compressed layers get no FLOPs).
    ceiling = _budget_ceiling(model, calibration, config, input_shape)
    max_budget = min(max_budget, ceiling / (1 + 1e-3))
    if budgets is None and min_budget > max_budget:
        raise CompressionError(f"no budget >= {min_budget}x is reachable: the layers left uncompressed allow "
                               f"at most {ceiling:.2f}x")
    statistics: CalibrationStatistics | None = None
    if config.method == Method.HSCC:
        statistics = calibration_statistics(model, calibration, config, progress, input_shape)
        log(f"calibration statistics of {len(statistics.layers)} layers on {statistics.images} images: "
            f"{statistics.seconds:.0f} s, collected once for every trial")
    trials: list[TargetTrial] = []
    kept: tuple[nn.Module, CompressionReport] | None = None
    chosen = 0
    lo = hi = None  # the bracket: highest budget that met, lowest that missed
    queue = list(budgets) if budgets is not None else None
    stopped = ""
    while True:
        if queue is not None:
            budget, stopped = (queue.pop(0), "") if queue else (None, "budgets")
        else:
            budget, stopped = _next_budget(trials, lo, hi, float(config.budget), min_budget, max_budget, step,
                                           tolerance, target)
        if budget is None:
            break
        if trials and len(trials) >= max_trials:
            stopped = "max trials"
            break
        if trials and time_limit_s is not None and \
                time.perf_counter() - t_start + max(t.seconds for t in trials) > time_limit_s:
            stopped = "time limit"
            break
        t0 = time.perf_counter()
        compressed, report = compress(model, calibration, dataclasses.replace(config, budget=float(budget)),
                                      progress=progress, input_shape=input_shape, name=name, statistics=statistics)
        measured = evaluate(compressed)
        agreement = _number(measured, "agreement", required=True)
        trial = TargetTrial(budget=float(budget), flops_ratio=report.flops_ratio,
                            flops_compressed=report.flops_compressed, params_compressed=report.params_compressed,
                            agreement=agreement, agreement_se=_number(measured, "agreement_se"),
                            accuracy=_number(measured, "accuracy"), accuracy_se=_number(measured, "accuracy_se"),
                            met=agreement >= target - 1e-12, seconds=time.perf_counter() - t0)
        trials.append(trial)
        log(f"trial {len(trials)}: " + trial.line(target))
        if kept is None or _preference(trial) < _preference(trials[chosen]):
            kept, chosen = (compressed, report), len(trials) - 1
        del compressed  # drop this name's hold: at most the kept model and the next trial's are in memory
        if trial.met:
            lo = trial
        else:
            hi = trial
    search = {"start": float(config.budget), "budgets": None if budgets is None else [float(b) for b in budgets],
              "min_budget": min_budget, "max_budget": max_budget, "step": step, "tolerance": tolerance,
              "max_trials": max_trials, "time_limit_s": time_limit_s, "statistics_reused": statistics is not None}
    return TargetResult(model=kept[0], report=kept[1], target=target, met=trials[chosen].met, stopped=stopped,
                        trials=trials, chosen=chosen,
                        statistics_seconds=statistics.seconds if statistics is not None else 0.0,
                        seconds=time.perf_counter() - t_start, search=search)
