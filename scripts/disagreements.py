"""Where a compressed model parts from its reference: agreement by the reference's
confidence, by the reference's class and by image source, from an ``evaluate --json`` file.

    python scripts/disagreements.py runs/eval-select.json --data runs/halves/select [--json out.json]

The public data set names no source per image; the image size is the proxy used here: the
figshare collection (Cheng et al.) is 512 x 512, the other collections come in other sizes.
Every row gives the scans in the group and the agreement with its SE (binomial).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

BINS = ((0.0, 0.6), (0.6, 0.9), (0.9, 0.99), (0.99, 1.01))


def _group_rows(keys: list[str], agree: np.ndarray) -> list[dict[str, Any]]:
    rows = []
    for key in sorted(set(keys)):
        mask = np.array([k == key for k in keys])
        n, a = int(mask.sum()), float(agree[mask].mean())
        rows.append({"group": key, "n": n, "disagreements": int((~agree[mask]).sum()), "agreement": a,
                     "agreement_se": math.sqrt(max(a * (1 - a), 1e-12) / n)})
    return rows


def analyse(result: dict[str, Any], data: Path | None, row_name: str | None = None) -> dict[str, Any]:
    """Agreement of one candidate row with the reference row, grouped three ways."""
    rows = result["rows"]
    ref = rows[0]
    candidates = [r for r in rows[1:] if row_name in (None, r["name"])]
    files = result["test_set"]["files"]
    classes = result["class_names"]
    out: dict[str, Any] = {"test_set": result["test_set"]["folder"], "n": len(files), "candidates": []}
    for row in candidates:
        agree = np.array(row["predicted"]) == np.array(ref["predicted"])
        p_ref = np.array(ref["p_top"])
        conf = [next(f"{lo:.2f}-{min(hi, 1.0):.2f}" for lo, hi in BINS if lo <= p < hi) for p in p_ref]
        by_class = [classes[i] for i in ref["predicted"]]
        groups = {"reference_confidence": _group_rows(conf, agree), "reference_class": _group_rows(by_class, agree)}
        if data is not None:
            sizes = []
            for f in files:
                with Image.open(data / f) as im:
                    sizes.append("512x512 (figshare)" if im.size == (512, 512) else "other sizes")
            groups["image_source"] = _group_rows(sizes, agree)
        out["candidates"].append({"name": row["name"], "agreement": float(agree.mean()), "groups": groups})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evaluation", help="an `hscc-mri evaluate --data ... --json` file")
    parser.add_argument("--data", default=None, help="the folder evaluated (for the image-source proxy)")
    parser.add_argument("--row", default=None, help="only this candidate row")
    parser.add_argument("--json", default=None, help="also write the tables here")
    args = parser.parse_args()
    result = json.loads(Path(args.evaluation).read_text())
    out = analyse(result, Path(args.data) if args.data else None, args.row)
    for cand in out["candidates"]:
        print(f"{cand['name']}: agreement {cand['agreement']:.3f} on {out['n']} scans of {out['test_set']}")
        for title, rows in cand["groups"].items():
            print(f"  by {title.replace('_', ' ')}:")
            for r in rows:
                print(f"    {r['group']:<22} n={r['n']:>4}  disagree={r['disagreements']:>3}  "
                      f"agreement {r['agreement']:.3f} ± {r['agreement_se']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
