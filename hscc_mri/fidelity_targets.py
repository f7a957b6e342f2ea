"""Fidelity targets checked against an evaluation: does each compressed model give the
uncompressed model's answer often enough, and lose little enough accuracy?

``hscc-mri evaluate --data DIR --target-agreement 0.97 --max-accuracy-drop 1.0`` prints,
after its table, one line per compressed row with each target met or missed, and exits 1
when any is missed. A target is compared with the measured value, not with a confidence
bound (as ``compress --target-agreement`` does); the SE is printed beside it so a reader
sees how near the boundary a row sits. The agreement where the reference is sure is the
one ``evaluate`` measures (top probability >= its ``confident_threshold``, 0.9).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .errors import SettingsError

__all__ = ["FidelityTargets", "check_targets", "format_targets"]


@dataclass(frozen=True)
class FidelityTargets:
    """What every compressed row must reach (``None``: not asked).

    Attributes:
        agreement: the least top-1 agreement with the reference, a fraction in (0, 1].
        confident_agreement: the least agreement on the scans where the reference's top
            probability is at least the evaluation's confident threshold, a fraction.
        accuracy_drop: the most accuracy the row may lose against the reference, in
            percentage points (paired difference; 1.0 means "reference - 1.0 point").
    """

    agreement: float | None = None
    confident_agreement: float | None = None
    accuracy_drop: float | None = None

    def __post_init__(self) -> None:
        for name in ("agreement", "confident_agreement"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value <= 1.0:
                raise SettingsError(f"the {name.replace('_', ' ')} target must be a fraction in (0, 1] "
                                    f"(0.97 for 97%), got {value}")
        if self.accuracy_drop is not None and not 0.0 <= self.accuracy_drop <= 100.0:
            raise SettingsError(f"the largest accuracy drop must be 0 to 100 points, got {self.accuracy_drop}")

    def asked(self) -> bool:
        """Whether any target is set."""
        return any(v is not None for v in (self.agreement, self.confident_agreement, self.accuracy_drop))


def _check(measured: float | None, se: float | None, target: float, at_least: bool) -> dict[str, Any]:
    """One target's verdict; a value that could not be measured (no confident scans) misses."""
    met = measured is not None and (measured >= target if at_least else measured <= target)
    return {"measured": measured, "se": se, "target": target, "met": bool(met)}


def check_targets(result: Mapping[str, Any], targets: FidelityTargets) -> dict[str, Any]:
    """Each compressed row of an evaluation (every row but the first, the reference)
    against ``targets``.

    Args:
        result: what :func:`hscc_mri.testset.evaluate_models` returns (its
            ``confident_threshold`` and rows with ``agreement``, ``agreement_se``,
            ``agreement_confident(_se)`` and ``vs_reference.accuracy.diff/se``).
        targets: the targets; at least one set.

    Returns:
        ``{"targets": {...}, "confident_threshold": float, "rows": {name: {"agreement":
        verdict, ..., "met": bool}}, "met": bool}``, a verdict being ``{"measured", "se", "target", "met"}`` (the accuracy
        drop in points, positive for a loss).
    """
    rows: dict[str, Any] = {}
    for row in result["rows"][1:]:
        verdicts: dict[str, Any] = {}
        if targets.agreement is not None:
            verdicts["agreement"] = _check(row["agreement"], row["agreement_se"], targets.agreement, True)
        if targets.confident_agreement is not None:
            verdicts["confident_agreement"] = _check(row.get("agreement_confident"), row.get("agreement_confident_se"),
                                                     targets.confident_agreement, True)
        if targets.accuracy_drop is not None:
            diff = row["vs_reference"]["accuracy"]
            verdicts["accuracy_drop"] = _check(-100.0 * diff["diff"], 100.0 * diff["se"], targets.accuracy_drop, False)
        verdicts["met"] = all(v["met"] for v in verdicts.values())
        rows[row["name"]] = verdicts
    return {"targets": {"agreement": targets.agreement, "confident_agreement": targets.confident_agreement,
                        "accuracy_drop_points": targets.accuracy_drop},
            "confident_threshold": result["confident_threshold"], "rows": rows,
            "met": all(r["met"] for r in rows.values())}


def format_targets(check: Mapping[str, Any]) -> str:
    """:func:`check_targets`' verdicts as printable lines, one per row."""
    lines = ["fidelity targets (measured value against the target; ± is the SE):"]
    for name, verdicts in check["rows"].items():
        parts = []
        for key, verdict in verdicts.items():
            if key == "met":
                continue
            word = "met" if verdict["met"] else "MISSED"
            m, se, t = verdict["measured"], verdict["se"], verdict["target"]
            if key == "accuracy_drop":
                parts.append(f"accuracy drop {m:.1f} ± {se:.1f} points (at most {t:g}): {word}")
            else:
                label = ("agreement" if key == "agreement"
                         else f"agreement where p>={check['confident_threshold']:g}")
                shown = "n/a" if m is None else f"{100 * m:.1f}% ± {100 * (se or 0.0):.1f}"
                parts.append(f"{label} {shown} (at least {100 * t:g}%): {word}")
        lines.append(f"  {name}: " + "; ".join(parts))
    lines.append("all targets met" if check["met"] else "targets missed")
    return "\n".join(lines)
