"""Classification and fidelity metrics, with bootstrap standard errors (HSCC.md §9)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np


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
    rng = np.random.default_rng(seed)
    n = len(y_true)
    accs, mf1s, f1s = [], [], []
    for _ in range(n_bootstrap if n else 0):
        idx = rng.integers(0, n, n)
        bcm = confusion_matrix(y_true[idx], y_pred[idx], k)
        bf1 = _per_class(bcm)[2]
        accs.append(np.trace(bcm) / n)
        mf1s.append(bf1.mean())
        f1s.append(bf1)
    se = (lambda a: float(np.std(a, ddof=1)) if len(a) > 1 else float("nan"))
    return ClassificationReport(
        n=n,
        accuracy=accuracy(y_true, y_pred),
        accuracy_se=se(accs),
        macro_f1=float(f1.mean()),
        macro_f1_se=se(mf1s),
        class_names=list(class_names),
        precision=precision.tolist(),
        recall=recall.tolist(),
        f1=f1.tolist(),
        f1_se=(np.std(np.array(f1s), axis=0, ddof=1).tolist() if len(f1s) > 1 else [float("nan")] * k),
        confusion=cm.tolist(),
    )


def fidelity(p_ref: np.ndarray, p_test: np.ndarray, eps: float = 1e-12) -> dict[str, float]:
    """Top-1 agreement and mean KL(ref ‖ test) between two ``(N, C)`` probability arrays."""
    p_ref, p_test = np.asarray(p_ref, np.float64), np.asarray(p_test, np.float64)
    agree = float(np.mean(p_ref.argmax(1) == p_test.argmax(1)))
    kl = np.sum(p_ref * (np.log(p_ref + eps) - np.log(p_test + eps)), axis=1)
    return {"agreement": agree, "mean_kl": float(np.mean(kl))}
