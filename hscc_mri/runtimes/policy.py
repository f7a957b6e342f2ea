"""The deployment policy: which runtime and precision models run in, why, and what to try
when compiling that fails, decided in one place (:func:`decide`).

Every caller asks it: the app and ``predict`` (with the models' int8 plans at hand), the
release (with its manifest's int8 facts, :func:`hscc_mri.release.release_choice`),
``evaluate --runtimes`` and ``bench`` (explicit choices). The rules:

* an explicit precision is taken as asked (checked to run here), with no fallback; for a
  release, int8 needs the release's graph of every model;
* ``auto`` precision is int8 only where every model has an int8 plan measured on this
  CPU kind at hand (kept or shipped: nothing is measured to decide) and the runtime can
  run int8; else the runtime's float choice (bf16 where native, else fp32), with why int8
  was not taken in the reason;
* fallbacks (only for ``auto`` precision): int8 that fails to compile -> the runtime's
  float choice (any error: a start must not end on a quantiser failure it chose itself);
  an automatic runtime that turns out unavailable -> PyTorch fp32.

The policy reads facts, not files: a model is anything with a ``name`` and an
:meth:`ModelPlans.int8_plan_on` (a release's :class:`KnownPlans`, or a
:class:`hscc_mri.deploy.Deployable` that looks its plans up lazily, so an explicit
precision never hashes weights).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence, TypeVar

from .base import Precision, Runtime, RuntimeUnavailable
from .cpu import CpuKind
from .select import Choice, available, resolve_choice

__all__ = ["Decision", "Fallback", "KnownPlans", "ModelPlans", "Request", "decide"]

T = TypeVar("T")


class ModelPlans(Protocol):
    """What the policy needs to know of one model."""

    @property
    def name(self) -> str:
        """How reasons name the model (its file, release key or registry name)."""

    def int8_plan_on(self, runtime: Runtime) -> CpuKind | None:
        """The CPU kind the model's int8 plan (or shipped int8 graph) for ``runtime`` at hand
        was measured on; ``None`` when there is none."""


@dataclass(frozen=True)
class KnownPlans:
    """A model's int8 plans as known facts (e.g. a release manifest's ``int8`` blocks).

    Attributes:
        name: how reasons name the model.
        plans: runtime -> the CPU kind its int8 plan was measured on.
    """

    name: str
    plans: dict[Runtime, CpuKind] = field(default_factory=dict)

    def int8_plan_on(self, runtime: Runtime) -> CpuKind | None:
        return self.plans.get(runtime)


@dataclass(frozen=True)
class Request:
    """What to decide for.

    Attributes:
        runtime: a :class:`Runtime` or ``"auto"`` (OpenVINO when installed, else PyTorch).
        precision: a :class:`Precision` or ``"auto"``.
        models: the models that run in the one choice (all in the same runtime and
            precision, so comparisons between them are fair). No models: ``auto`` has no
            int8 evidence and gives the float choice.
        shipped: the runtime a release ships int8 graphs for, when the models are a
            release's: int8 then comes only from those graphs (never measured), and an
            explicit int8 needs every model's graph. ``None``: int8 plans kept or shipped
            for the weights (an explicit int8 measures a missing one once).
        cpu: this machine's kind (which plans apply); default: :meth:`CpuKind.here`.
    """

    runtime: str = "auto"
    precision: str = "auto"
    models: Sequence[ModelPlans] = ()
    shipped: Runtime | None = None
    cpu: CpuKind = field(default_factory=CpuKind.here)


@dataclass(frozen=True)
class Fallback:
    """One step of a fallback chain: ``choice``, tried when the step before it failed with
    an error of kind ``on``; ``why`` is its reason (``{kind}``: the error's type name,
    ``{error}``: its message)."""

    choice: Choice
    on: type[Exception]
    why: str


@dataclass(frozen=True)
class Decision:
    """The outcome of :func:`decide`.

    Attributes:
        choice: the runtime and precision to run in, with its reason.
        fallbacks: what to try, in order, when compiling the one before fails (empty for
            an explicit request: what was asked is not second-guessed).
    """

    choice: Choice
    fallbacks: tuple[Fallback, ...] = ()

    @property
    def chain(self) -> list[Choice]:
        """The choice and then each fallback's, in the order to try them."""
        return [self.choice, *(f.choice for f in self.fallbacks)]

    def fallback(self, failed: Choice, error: Exception) -> Choice | None:
        """What to run after ``failed`` (a choice of :attr:`chain`) failed with ``error``:
        the next step, when it accepts that kind of error, with its reason; else ``None``
        (re-raise)."""
        tried = [(c.runtime, c.precision) for c in self.chain]
        at = tried.index((failed.runtime, failed.precision)) if (failed.runtime, failed.precision) in tried else None
        if at is None or at >= len(self.fallbacks) or not isinstance(error, self.fallbacks[at].on):
            return None
        step = self.fallbacks[at]
        why = step.why.format(kind=type(error).__name__, error=error)
        return Choice(step.choice.runtime, step.choice.precision, why)

    def run(self, attempt: Callable[[Choice], T], log: Callable[[str], None] | None = None,
            fatal: tuple[type[Exception], ...] = ()) -> tuple[T, Choice]:
        """``attempt(choice)`` (e.g. compile the models) for :attr:`choice`; when it fails
        with an error the chain accepts, the next fallback, said in ``log``. Errors of the
        ``fatal`` types (e.g. a release file that fails its check) are never a reason to
        fall back.

        Returns:
            ``(what attempt returned, the choice it succeeded with)``.
        """
        choice = self.choice
        while True:
            try:
                return attempt(choice), choice
            except fatal:
                raise
            except Exception as e:  # noqa: BLE001 - the chain says which errors move on
                fallback = self.fallback(choice, e)
                if fallback is None:
                    raise
                if log is not None:
                    log(f"{choice.label} failed here ({type(e).__name__}: {e}); running in {fallback.label}")
                choice = fallback


def decide(request: Request) -> Decision:
    """The runtime and precision to run ``request.models`` in, why, and the fallbacks (see
    the module docstring for the rules).

    Raises:
        RuntimeUnavailable: an explicit runtime or precision this machine cannot run (or,
            for a release, an int8 it does not ship).
        SettingsError: an unknown runtime or precision.
    """
    if request.precision != "auto":
        return Decision(_asked(request))
    choice = _automatic(request)
    return Decision(choice, _fallbacks(request, choice))


def _join(*reasons: str) -> str:
    return "; ".join(r for r in reasons if r)


def _asked(request: Request) -> Choice:
    """An explicit precision, checked to run here (and, for a release, to be shipped)."""
    chosen = resolve_choice(request.runtime, request.precision)
    if request.shipped is not None and chosen.precision == Precision.INT8:
        names = [m.name for m in request.models]
        have = [m.name for m in request.models if m.int8_plan_on(request.shipped) is not None]
        if chosen.runtime != request.shipped or len(have) < len(names):
            raise RuntimeUnavailable(f"the release ships int8 graphs for {request.shipped} only, and for "
                                     f"{', '.join(have) or 'none'} of {', '.join(names)}")
    return chosen


def _automatic(request: Request) -> Choice:
    """``auto`` precision: int8 where every model's plan for this CPU kind is at hand."""
    floating = resolve_choice(request.runtime, "auto")
    runtime = floating.runtime
    if request.shipped is not None:
        return _automatic_shipped(request, floating)
    if not request.models or (runtime, Precision.INT8) not in available():
        return floating
    missing = [m.name for m in request.models if m.int8_plan_on(runtime) != request.cpu]
    if missing:
        return Choice(floating.runtime, floating.precision,
                      f"{floating.reason}; not int8: no measured int8 plan on this CPU kind for "
                      f"{', '.join(missing)} (--precision int8 measures it once)")
    chosen = resolve_choice(request.runtime, Precision.INT8)  # its reason: why this runtime
    return Choice(chosen.runtime, Precision.INT8,
                  _join(chosen.reason, "int8: each model with its measured plan (its worst layers in fp32)"))


def _automatic_shipped(request: Request, floating: Choice) -> Choice:
    """``auto`` for a release: its int8 graphs only where their plans were measured on this
    CPU kind (the int8 kernels and the overflow fix differ), else the float choice."""
    shipped = request.shipped
    kinds = [(m.name, m.int8_plan_on(shipped)) for m in request.models]
    missing = [name for name, kind in kinds if kind is None]
    other = sorted({str(kind) for _, kind in kinds if kind is not None and kind != request.cpu})
    if floating.runtime == shipped and (shipped, Precision.INT8) in available() and not missing and not other:
        return Choice(shipped, Precision.INT8, "int8: the release's graphs, quantised by plans measured on this "
                                               f"CPU kind ({request.cpu})")
    if missing:
        why = f"not int8: the release has no int8 plan for {', '.join(missing)}"
    elif other:
        why = (f"not int8: the shipped int8 plans were measured on {' and '.join(other)}, this CPU is "
               f"{request.cpu} (no start-up measurement; --precision int8 runs them anyway)")
    else:
        why = f"not int8: the release's int8 graphs are for {shipped}"
    return Choice(floating.runtime, floating.precision, _join(floating.reason, why))


def _fallbacks(request: Request, choice: Choice) -> tuple[Fallback, ...]:
    """The chain after an automatic ``choice``: int8 -> the runtime's float choice (on any
    error); then, for an automatic runtime other than PyTorch, PyTorch fp32 when the
    runtime turns out unavailable."""
    steps = []
    last = choice
    if choice.precision == Precision.INT8:
        floating = resolve_choice(choice.runtime, "auto")
        last = Choice(floating.runtime, floating.precision)
        steps.append(Fallback(last, Exception, "fallback: int8 failed ({kind})"))
    if request.runtime == "auto" and last.runtime != Runtime.TORCH:
        steps.append(Fallback(Choice(Runtime.TORCH, Precision.FP32), RuntimeUnavailable, "fallback: {error}"))
    return tuple(steps)
