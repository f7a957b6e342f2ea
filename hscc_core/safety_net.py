"""A safety net for a compressed classifier: hand its unsure answers to the original.

A compressed model disagrees with its original mostly where it is unsure. If the
compressed model's confidence on a scan is below a threshold, the original classifies
that scan instead: one more inference on a minority of inputs buys back fidelity. This
module chooses the threshold from measurements on a *selection* set (inputs the original
was not trained on), model-agnostic and without any file format:

* :func:`confidence`: a confidence measure of a probability batch — the top probability
  (``"top"``) or the margin between the two most probable classes (``"margin"``);
* :func:`choose_threshold`: the lowest threshold whose kept answers (confidence at or
  above it) agree with the original on at least ``target`` of the selection inputs — the
  largest share answered by the compressed model that meets the bar;
* :func:`choose_safety_net`: that for each measure, keeping the measure that hands the
  fewest inputs over;
* :func:`apply_safety_net`: which inputs of a batch go to the original.

The rule is measured, not guaranteed: a threshold chosen on a few hundred inputs can miss
the target on others by about one standard error of the kept agreement, which the
result states (:attr:`SafetyNetChoice.kept_agreement_se`); check it on data not used to
choose it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .errors import HSCCError

__all__ = ["MEASURES", "SafetyNetChoice", "apply_safety_net", "choose_safety_net", "choose_threshold", "confidence"]

#: The confidence measures: the top probability, and the top probability minus the second.
MEASURES = ("top", "margin")


def confidence(probabilities: torch.Tensor, measure: str) -> torch.Tensor:
    """The confidence of each row of ``probabilities`` ``(N, classes)`` under ``measure``
    (one of :data:`MEASURES`), shape ``(N,)``.

    Raises:
        HSCCError: an unknown measure or a batch that is not ``(N, classes >= 2)``.
    """
    if measure not in MEASURES:
        raise HSCCError(f"measure must be one of {MEASURES}, got {measure!r}")
    p = torch.as_tensor(probabilities, dtype=torch.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise HSCCError(f"probabilities must be an (N, classes >= 2) batch, got shape {tuple(p.shape)}")
    top2 = p.topk(2, dim=1).values
    return top2[:, 0] if measure == "top" else top2[:, 0] - top2[:, 1]


@dataclass(frozen=True)
class SafetyNetChoice:
    """A chosen threshold and what it did on the selection set.

    Attributes:
        measure: the confidence measure (:data:`MEASURES`).
        threshold: answers with confidence ``>= threshold`` are kept; below it the original
            answers. Halfway between the lowest kept and the highest handed-over
            confidence; ``inf`` when no kept set meets the target (everything handed over).
        target: the agreement asked of the kept answers.
        n: selection inputs.
        kept: inputs the compressed model answers.
        kept_agreement: their agreement with the original (1.0 when none is kept).
        kept_agreement_se: its binomial standard error.
        handed_over: share of inputs the original answers.
        effective_agreement: agreement of the combined answers with the original.
        agreement_alone: the compressed model's agreement with no net.
    """

    measure: str
    threshold: float
    target: float
    n: int
    kept: int
    kept_agreement: float
    kept_agreement_se: float
    handed_over: float
    effective_agreement: float
    agreement_alone: float

    @property
    def met(self) -> bool:
        """Whether some inputs are kept with the target agreement (not all handed over)."""
        return self.kept > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (an infinite threshold becomes ``None``)."""
        out = asdict(self)
        if math.isinf(out["threshold"]):
            out["threshold"] = None
        return out


def choose_threshold(scores: torch.Tensor, agree: torch.Tensor, target: float,
                     measure: str = "margin") -> SafetyNetChoice:
    """The threshold on ``scores`` that keeps the most inputs whose answers agree with the
    original on at least ``target`` of them.

    Args:
        scores: the compressed model's confidence per selection input ``(N,)``
            (:func:`confidence`).
        agree: whether its answer equals the original's, per input ``(N,)``.
        target: agreement asked of the kept answers, in ``(0, 1]``.
        measure: the name of the measure behind ``scores`` (recorded).

    Returns:
        The :class:`SafetyNetChoice`. Inputs with equal scores are kept or handed over
        together, so a threshold never splits a tie.

    Raises:
        HSCCError: mismatched or empty inputs, or a target outside ``(0, 1]``.
    """
    s = torch.as_tensor(scores, dtype=torch.float64).flatten()
    a = torch.as_tensor(agree).flatten().to(torch.float64)
    if len(s) == 0 or len(s) != len(a):
        raise HSCCError(f"scores and agree must be non-empty and of one length, got {len(s)} and {len(a)}")
    if not 0.0 < target <= 1.0:
        raise HSCCError(f"target must be in (0, 1], got {target}")
    n = len(s)
    order = torch.argsort(s, descending=True, stable=True)
    s, a = s[order], a[order]
    kept_agree = torch.cumsum(a, 0)
    best = 0  # number kept; 0 = hand everything over
    for k in range(1, n + 1):
        if k < n and s[k] == s[k - 1]:
            continue  # a tie continues: the threshold cannot fall between equal scores
        if kept_agree[k - 1] / k >= target - 1e-12:
            best = k
    if best == 0:
        threshold = math.inf
    elif best == n:
        threshold = float(s[-1])
    else:
        threshold = float((s[best - 1] + s[best]) / 2)
    kept_agreement = float(kept_agree[best - 1] / best) if best else 1.0
    se = math.sqrt(kept_agreement * (1 - kept_agreement) / best) if best else 0.0
    effective = (float(kept_agree[best - 1]) if best else 0.0) + (n - best)  # the original agrees with itself
    return SafetyNetChoice(measure=measure, threshold=threshold, target=target, n=n, kept=best,
                           kept_agreement=kept_agreement, kept_agreement_se=se, handed_over=(n - best) / n,
                           effective_agreement=effective / n, agreement_alone=float(a.mean()))


def choose_safety_net(probabilities: torch.Tensor, reference_labels: torch.Tensor, target: float,
                      measures: Sequence[str] = MEASURES) -> tuple[SafetyNetChoice, dict[str, SafetyNetChoice]]:
    """The threshold of each measure on the compressed model's ``probabilities``
    ``(N, classes)`` against the original's answers ``reference_labels`` ``(N,)``, and the
    chosen one: the fewest inputs handed over (ties: the first measure listed).

    Returns:
        ``(chosen, {measure: its choice})``.
    """
    p = torch.as_tensor(probabilities, dtype=torch.float64)
    labels = torch.as_tensor(reference_labels).flatten()
    if len(p) != len(labels):
        raise HSCCError(f"{len(p)} probability rows for {len(labels)} reference labels")
    agree = p.argmax(1) == labels
    choices = {m: choose_threshold(confidence(p, m), agree, target, m) for m in measures}
    chosen = min(choices.values(), key=lambda c: (c.handed_over, list(choices).index(c.measure)))
    return chosen, choices


def apply_safety_net(probabilities: torch.Tensor, measure: str, threshold: float | None) -> torch.Tensor:
    """Which rows of ``probabilities`` go to the original: confidence below ``threshold``
    (``None`` or ``inf``: every row), as a boolean ``(N,)`` tensor."""
    if threshold is None or math.isinf(threshold):
        return torch.ones(len(probabilities), dtype=torch.bool)
    return confidence(probabilities, measure) < threshold
