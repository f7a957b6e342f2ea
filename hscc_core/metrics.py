"""Classification and fidelity metrics, with bootstrap standard errors (HSCC.md §9), and the
Pareto front of a cost/quality trade-off.

Every bootstrap SE here (and in the product) resamples the test items with
:func:`bootstrap_indices`: for one ``seed`` all of them use the very same replicates, so
SEs of one evaluation are paired.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np


def bootstrap_indices(n: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """``(n_bootstrap, n)`` resampled item indices, one row per replicate: one
    ``rng.integers(0, n, n)`` per replicate from ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, n, n) for _ in range(n_bootstrap)]) if n_bootstrap else np.zeros((0, n), int)


def replicate_se(replicates: Sequence[Any] | np.ndarray) -> Any:
    """Bootstrap standard error from the replicates of a statistic (one per row): their
    standard deviation (``ddof=1``) down the rows; NaN (per column) with fewer than two."""
    r = np.asarray(replicates, dtype=np.float64)
    if len(r) < 2:
        return float("nan") if r.ndim < 2 else np.full(r.shape[1:], np.nan)
    sd = np.std(r, axis=0, ddof=1)
    return float(sd) if sd.ndim == 0 else sd


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` counts; rows are true classes, columns predictions."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def _per_class(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(cm).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(cm.sum(0) > 0, tp / cm.sum(0), 0.0)
        recall = np.where(cm.sum(1) > 0, tp / cm.sum(1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if len(y_true) else float("nan")


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    return float(_per_class(confusion_matrix(y_true, y_pred, num_classes))[2].mean())


@dataclass
class ClassificationReport:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix,
    each scalar with its bootstrap standard error (``*_se``)."""

    n: int
    accuracy: float
    accuracy_se: float
    macro_f1: float
    macro_f1_se: float
    class_names: list[str]
    precision: list[float]
    recall: list[float]
    f1: list[float]
    f1_se: list[float]
    confusion: list[list[int]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        per = ", ".join(f"{c} F1 {f:.3f}" for c, f in zip(self.class_names, self.f1))
        return (f"accuracy {self.accuracy:.4f} ± {self.accuracy_se:.4f}, "
                f"macro-F1 {self.macro_f1:.4f} ± {self.macro_f1_se:.4f} (n={self.n}; {per})")


def classification_report(
    y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str],
    n_bootstrap: int = 1000, seed: int = 0,
) -> ClassificationReport:
    """All classification metrics of HSCC.md §9 with bootstrap SEs (resampling test items)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    k = len(class_names)
    cm = confusion_matrix(y_true, y_pred, k)
    precision, recall, f1 = _per_class(cm)
    n = len(y_true)
    accs, mf1s, f1s = [], [], []
    for idx in bootstrap_indices(n, n_bootstrap if n else 0, seed):
        bcm = confusion_matrix(y_true[idx], y_pred[idx], k)
        bf1 = _per_class(bcm)[2]
        accs.append(np.trace(bcm) / n)
        mf1s.append(bf1.mean())
        f1s.append(bf1)
    return ClassificationReport(
        n=n,
        accuracy=accuracy(y_true, y_pred),
        accuracy_se=replicate_se(accs),
        macro_f1=float(f1.mean()),
        macro_f1_se=replicate_se(mf1s),
        class_names=list(class_names),
        precision=precision.tolist(),
        recall=recall.tolist(),
        f1=f1.tolist(),
        f1_se=replicate_se(np.reshape(f1s, (-1, k))).tolist(),
        confusion=cm.tolist(),
    )


def paired_difference(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, num_classes: int,
                      n_boot: int, seed: int, focus_class: int | None = None) -> dict[str, dict[str, float]]:
    """``a - b`` in accuracy, macro-F1 (and F1 of ``focus_class``), with paired bootstrap SEs.

    Both models are judged on the *same* resampled test items in every replicate
    (:func:`bootstrap_indices`), so the SE is that of the difference, not of either model alone.
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
    boots = np.array([stats(idx) for idx in bootstrap_indices(len(y), n_boot, seed)]) if len(y) > 1 else None
    names = ["accuracy", "macro_f1"] + (["focus_f1"] if focus_class is not None else [])
    return {name: {"diff": point[i], "se": replicate_se(boots[:, i]) if boots is not None else float("nan")}
            for i, name in enumerate(names)}


def _class_f1(y: np.ndarray, p: np.ndarray, c: int) -> float:
    tp = float(np.sum((p == c) & (y == c)))
    denom = float(np.sum(p == c) + np.sum(y == c))
    return 2 * tp / denom if denom else 0.0


def fidelity(p_ref: np.ndarray, p_test: np.ndarray, eps: float = 1e-12) -> dict[str, float]:
    """Top-1 agreement and mean KL(ref ‖ test) between two ``(N, C)`` probability arrays."""
    p_ref, p_test = np.asarray(p_ref, np.float64), np.asarray(p_test, np.float64)
    agree = float(np.mean(p_ref.argmax(1) == p_test.argmax(1)))
    kl = np.sum(p_ref * (np.log(p_ref + eps) - np.log(p_test + eps)), axis=1)
    return {"agreement": agree, "mean_kl": float(np.mean(kl))}


def pareto_front(points: Sequence[tuple[float | None, float | None]]) -> list[int]:
    """Indices of the Pareto-optimal ``(cost, gain)`` points, by ascending cost (then
    descending gain, then index).

    A point is on the front when no other point costs no more *and* gains no less while
    strictly better in one of the two (minimise cost, e.g. latency or FLOPs; maximise gain,
    e.g. accuracy). Points with a missing or non-finite coordinate are ignored; identical
    points are all kept.
    """
    valid = [(i, float(c), float(g)) for i, (c, g) in enumerate(points)
             if c is not None and g is not None and math.isfinite(c) and math.isfinite(g)]
    front = [(i, c, g) for i, c, g in valid
             if not any(c2 <= c and g2 >= g and (c2 < c or g2 > g) for _, c2, g2 in valid)]
    return [i for i, _, _ in sorted(front, key=lambda t: (t[1], -t[2], t[0]))]
