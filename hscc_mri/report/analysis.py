"""Numbers about numbers: paired bootstrap differences, the Pareto front, the verdicts.

Every comparison the report states in words is computed here, so that the text can
only say what the measurements say.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from hscc_core import macro_f1

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
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(axis=1)
    return float(np.std(means, ddof=1))


def paired_difference(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, num_classes: int,
                      n_boot: int, seed: int, focus_class: int | None = None) -> dict[str, dict[str, float]]:
    """``a - b`` in accuracy, macro-F1 (and F1 of ``focus_class``), with paired bootstrap SEs.

    Both models are judged on the *same* resampled test items in every replicate, so the
    SE is that of the difference, not of either model alone.
    """
    y, a, b = (np.asarray(v, dtype=np.int64) for v in (y_true, pred_a, pred_b))

    def stats(idx: np.ndarray) -> list[float]:
        ya, pa, pb = y[idx], a[idx], b[idx]
        out = [float(np.mean(pa == ya) - np.mean(pb == ya)),
               macro_f1(ya, pa, num_classes) - macro_f1(ya, pb, num_classes)]
        if focus_class is not None:
            out.append(_class_f1(ya, pa, focus_class) - _class_f1(ya, pb, focus_class))
        return out

    point = stats(np.arange(len(y)))
    rng = np.random.default_rng(seed)
    boots = np.array([stats(rng.integers(0, len(y), len(y))) for _ in range(n_boot)]) if len(y) > 1 else None
    names = ["accuracy", "macro_f1"] + (["focus_f1"] if focus_class is not None else [])
    return {name: {"diff": point[i], "se": float(np.std(boots[:, i], ddof=1)) if boots is not None else float("nan")}
            for i, name in enumerate(names)}


def _class_f1(y: np.ndarray, p: np.ndarray, c: int) -> float:
    tp = float(np.sum((p == c) & (y == c)))
    denom = float(np.sum(p == c) + np.sum(y == c))
    return 2 * tp / denom if denom else 0.0


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
    one of them strictly), ordered by cost."""
    idx = [i for i, p in enumerate(points) if p.get(cost) is not None and p.get(gain) is not None]
    front = []
    for i in idx:
        ci, gi = points[i][cost], points[i][gain]
        dominated = any(points[j][cost] <= ci and points[j][gain] >= gi and
                        (points[j][cost] < ci or points[j][gain] > gi) for j in idx if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][cost], -points[i][gain]))


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
