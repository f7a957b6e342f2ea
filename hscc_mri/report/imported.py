"""Sections the report takes from earlier, committed measurements instead of re-running them.

* The pretrained VGG16 on the real ``Testing/`` scans: the JSON that
  ``hscc-mri evaluate --data <Testing> --methods hscc svd tucker --budgets 3 6 --json FILE``
  writes (about 12 minutes on 2 cores, plus 7 minutes per HSCC build not cached). The
  report cites the file by path and SHA-256, so a reader can rerun the command and compare.
* The AlexNet trained on phantoms (synthetic benchmark): the ``report.json`` of
  ``hscc-mri report --data phantoms --out reports/phantoms`` (about 45 minutes).

Reading them costs nothing, which keeps the real-data report within its 60 minutes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..identity import file_sha256

__all__ = ["EVALUATE_COMMAND", "PHANTOM_COMMAND", "load_phantom_report", "load_vgg_evaluation"]

#: The command that writes the VGG16 real-test evaluation the report imports.
EVALUATE_COMMAND = ("hscc-mri evaluate --data ../shared/data/brain-mri/Testing --methods hscc svd tucker "
                    "--budgets 3 6 --threads 2 --json {path}")
#: The command that writes the phantom report the real-data report summarises.
PHANTOM_COMMAND = "hscc-mri report --data phantoms --out {folder}"

_FOCUS = "meningioma"
_ROOT = Path(__file__).resolve().parents[2]


def _shown(path: Path) -> str:
    """``path`` as the report cites it: relative to the repository when inside it."""
    try:
        return path.resolve().relative_to(_ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def load_vgg_evaluation(path: str | Path) -> dict[str, Any] | None:
    """The VGG16 real-test rows of the ``evaluate --json`` file at ``path`` (``None`` if absent).

    Returns:
        ``{"file", "sha256", "command", "test_set", "bootstrap", "latency", "rows"}``; each
        row has cost (GFLOPs, FLOPs reduction, params, latency, speed-up against the
        uncompressed model of the same file) and quality (accuracy, macro-F1, meningioma F1,
        agreement, mean KL, with bootstrap SEs) and the paired difference to the
        uncompressed model where the file has one.

    Raises:
        DataError: the file is not an ``evaluate`` result.
    """
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if "rows" not in data or "class_names" not in data:
        raise DataError(f"{path} is not an `hscc-mri evaluate --json` result")
    focus = _FOCUS if _FOCUS in data["class_names"] else None
    base = data["rows"][0]
    rows = []
    for r in data["rows"]:
        rows.append({
            "name": r["name"], "gflops": r["gflops"], "flops_reduction": 1 - r["flops"] / base["flops"],
            "params": r["params"], "latency_ms": r.get("latency_ms"),
            "speedup": base["latency_ms"] / r["latency_ms"] if r.get("latency_ms") else None,
            "accuracy": r["accuracy"], "accuracy_se": r["accuracy_se"], "macro_f1": r["macro_f1"],
            "macro_f1_se": r["macro_f1_se"],
            "focus_f1": r["f1"][focus] if focus is not None else None,
            "focus_f1_se": r["f1_se"][focus] if focus is not None else None,
            "agreement": r["agreement"], "agreement_se": r["agreement_se"], "mean_kl": r["mean_kl"],
            "vs_reference": r.get("vs_reference"),
        })
    test = data.get("test_set", {})
    return {"file": _shown(path), "sha256": file_sha256(path), "command": EVALUATE_COMMAND.format(path=_shown(path)),
            "model": data.get("model"), "test_set": {k: test.get(k) for k in ("folder", "split", "n", "class_counts")},
            "bootstrap": data.get("bootstrap"), "latency": data.get("latency"), "rows": rows}


def load_phantom_report(path: str | Path) -> dict[str, Any] | None:
    """The phantom AlexNet main table of an earlier report's ``report.json`` at ``path``
    (``None`` if absent or if that report was not a phantom one)."""
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    alexnet = data.get("alexnet") or {}
    if "main" not in alexnet or (alexnet.get("data") or {}).get("source") != "phantoms":
        return None
    return {"file": _shown(path), "sha256": file_sha256(path), "started_at": data.get("started_at"),
            "command": PHANTOM_COMMAND.format(folder=_shown(path.parent)),
            "seconds_total": data.get("seconds_total"), "data": alexnet["data"], "main": alexnet["main"]}
