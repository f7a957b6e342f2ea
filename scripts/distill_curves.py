"""The distillation curves of issue 23 from the runs' records (``hscc-mri distill --json``):
selection agreement with the reference, with its binomial SE, and KL, against epochs and
against the number of training scans, at each budget, with the cost per epoch.

    python scripts/distill_curves.py reports/real/distill-6x-e5.json runs/distill/pool6x-*.json \\
        --json reports/real/distill-curves.json

Every number is read from the records; nothing is measured here. The SE is the binomial
one of one agreement measurement (``sqrt(p (1 - p) / n)`` on the selection scans); two
points of one curve are measured on the same scans, so their difference is known better
than the two SEs suggest, but a best-of-N epoch is optimistic by about that SE.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any


def _budget(student: str) -> str:
    found = re.search(r"-(\d+(?:\.\d+)?)x", student)
    return f"{found.group(1)}x" if found else "?"


def _steps_timed(epoch: dict[str, Any], previous: dict[str, Any], config: dict[str, Any]) -> float:
    """The steps an epoch's ``train_seconds`` cover: those of the last sitting when the run
    was resumed inside the epoch (``images`` counts the views trained in it), else the
    epoch's steps."""
    if epoch.get("images") and config.get("batch_size"):
        return max(1.0, epoch["images"] / config["batch_size"])
    return max(1, epoch["step"] - (previous.get("step") or 0))


def curve_rows(record: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """One row for the start and one per epoch of one run's record."""
    n = record["select_images"]
    pool = record.get("pool", {}).get("n") or record["pool_images"]
    config = record["config"]
    base = {"run": source, "budget": _budget(record.get("student", "")), "pool_scans": pool,
            "steps_per_epoch": record["steps_per_epoch"], "epochs_planned": config["epochs"], "lr": config["lr"],
            "feature_weight": config["feature_weight"], "select_scans": n}

    def row(epoch: int, agreement: float, kl: float, **more: Any) -> dict[str, Any]:
        return {**base, "epoch": epoch, "agreement": agreement,
                "agreement_se": math.sqrt(agreement * (1 - agreement) / n), "kl": kl, **more}

    rows = [row(0, record["before"]["agreement"], record["before"]["kl"])]
    for h in record["history"]:
        # The mean training loss over the epoch's pool views: set beside the selection KL it
        # tells a student that cannot fit the teacher from one that fits it on `Training/`
        # views without carrying that to the shifted `Testing/` scans.
        rows.append(row(h["epoch"], h["agreement"], h["kl"], step=h["step"], train_loss=h.get("loss"),
                        train_seconds=h["train_seconds"],
                        seconds_per_step=h["train_seconds"] / _steps_timed(h, rows[-1], config)))
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of :func:`curve_rows`' rows."""
    out = ["| run | budget | pool scans | epoch | steps | select agreement | select KL | train loss | s/step |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sps = f"{r['seconds_per_step']:.1f}" if r.get("seconds_per_step") else ""
        loss = f"{r['train_loss']:.3f}" if r.get("train_loss") is not None else ""
        out.append(f"| {Path(r['run']).stem} | {r['budget']} | {r['pool_scans']} | {r['epoch']} | {r.get('step', 0)} | "
                   f"{100 * r['agreement']:.1f}% ± {100 * r['agreement_se']:.1f} | {r['kl']:.3f} | {loss} | {sps} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", nargs="+", type=Path, help="run records written by hscc-mri distill --json")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    rows = []
    for path in args.records:
        rows += curve_rows(json.loads(path.read_text()), path.name)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"records": [p.name for p in args.records], "rows": rows}, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
