"""Numbers about numbers: bootstrap SEs, paired differences, the Pareto front, the verdicts.

Every comparison the report states in words is computed here, so that the text can
only say what the measurements say.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from hscc_core import bootstrap_indices, paired_difference, replicate_se
from hscc_core import pareto_front as core_pareto_front

__all__ = ["ORIGINAL_KD", "PAPER_FLOPS_REDUCTION", "bootstrap_se", "pareto_front", "paired_difference", "recommend", "verdict"]

#: The main table's row of the original model given the same fine-tuning as the compressed
#: ones: the control the paper lacks (a gain from extra training is not a gain of compression).
ORIGINAL_KD = "original + same fine-tuning"

#: The paper's operating point: 8.21 G -> 1.55 G FLOPs (HSCC.md §10).
PAPER_FLOPS_REDUCTION = 1 - 1.55 / 8.21


def bootstrap_se(values: Sequence[float], n_boot: int, seed: int) -> float:
    """Bootstrap standard error of the mean of ``values`` (resampling items)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float("nan")
    return replicate_se(v[bootstrap_indices(len(v), n_boot, seed)].mean(axis=1))


def verdict(diff: float, se: float) -> str:
    """``"ahead"`` (diff > SE), ``"behind"`` (diff < -SE) or ``"tied"`` (within one SE)."""
    if not np.isfinite(se):
        return "ahead" if diff > 0 else "behind" if diff < 0 else "tied"
    if diff > se:
        return "ahead"
    if diff < -se:
        return "behind"
    return "tied"


def pareto_front(points: Sequence[dict[str, Any]], cost: str = "gflops", gain: str = "accuracy") -> list[int]:
    """Indices of the points no other point dominates (cost no higher, gain no lower,
    one of them strictly), ordered by cost (:func:`hscc_core.pareto_front` on the
    ``(cost, gain)`` values of each point)."""
    return core_pareto_front([(p.get(cost), p.get(gain)) for p in points])


def _complexity(p: dict[str, Any]) -> tuple[int, float]:
    gh, gw = p["regions"]
    return gh * gw * p["clusters"], p["gflops"]


def recommend(points: Sequence[dict[str, Any]], min_reduction: float = PAPER_FLOPS_REDUCTION) -> dict[str, Any]:
    """The recommended setting, by a rule stated in the result.

    Rule: among the Pareto-optimal points that remove at least ``min_reduction`` of the
    FLOPs (all front points if none does), take the best accuracy; every candidate
    within one bootstrap SE of it counts as equally good, and of those the simplest
    (fewest regions x clusters, then fewest FLOPs) is recommended — simpler settings
    run faster per FLOP on a CPU.

    Returns:
        ``index`` of the recommended point, the ``front`` indices, ``candidates``,
        ``tied`` (the candidates within one SE), ``best`` (highest-accuracy candidate),
        ``min_reduction`` and whether it had to fall back to the whole front.
    """
    front = pareto_front(points)
    if not front:
        return {"index": None, "front": [], "candidates": [], "tied": [], "best": None,
                "min_reduction": min_reduction, "fallback": False}
    candidates = [i for i in front if points[i]["flops_reduction"] >= min_reduction - 1e-9]
    fallback = not candidates
    if fallback:
        candidates = list(front)
    best = max(candidates, key=lambda i: (points[i]["accuracy"], -points[i]["gflops"]))
    floor = points[best]["accuracy"] - (points[best].get("accuracy_se") or 0.0)
    tied = [i for i in candidates if points[i]["accuracy"] >= floor]
    choice = min(tied, key=lambda i: _complexity(points[i]))
    return {"index": choice, "front": front, "candidates": candidates, "tied": tied, "best": best,
            "min_reduction": min_reduction, "fallback": fallback}
