"""How much a safety-net threshold chosen on selection scans promises too much, measured
inside the selection set alone: split it in random halves many times, choose the threshold
on one half (:func:`hscc_core.choose_threshold`, the release's rule, top-probability
measure), and measure the kept answers' agreement with the reference on the other half.

Reads an ``hscc-mri evaluate --data <select half> --json`` result (its rows carry each
model's answer and top probability per scan; the row named ``uncompressed`` is the
reference). Uses the selection half only, so it may steer the choice of a rule; the report
half then checks that rule once.

    python scripts/safety_net_split_half.py runs/eval/select-3.json --models release-3x release-6x \\
        --json reports/real/safety-net-split-half-select.json
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hscc_core import choose_threshold  # noqa: E402


def split_half(top: np.ndarray, agree: np.ndarray, target: float, splits: int, seed: int) -> dict:
    """The threshold chosen on all scans, and over ``splits`` random halvings: the held-out
    kept agreement (mean, 10th percentile) and the share handed over."""
    n = len(top)
    whole = choose_threshold(torch.tensor(top), torch.tensor(agree), target, "top")
    rng = np.random.default_rng(seed)
    held, handed = [], []
    for _ in range(splits):
        order = rng.permutation(n)
        a, b = order[: n // 2], order[n // 2:]
        threshold = choose_threshold(torch.tensor(top[a]), torch.tensor(agree[a]), target, "top").threshold
        keep = top[b] >= threshold
        handed.append(1 - keep.mean())
        if keep.any():
            held.append(agree[b][keep].mean())
    return {"target": target, "threshold": None if math.isinf(whole.threshold) else whole.threshold,
            "handed_over": whole.handed_over, "kept_agreement": whole.kept_agreement,
            "held_out_kept_agreement": float(np.mean(held)), "held_out_kept_agreement_p10": float(np.percentile(held, 10)),
            "held_out_handed_over": float(np.mean(handed)), "splits": splits}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("evaluation", type=Path, help="evaluate --json result on the selection half")
    ap.add_argument("--models", nargs="+", required=True, help="row names of the compressed models")
    ap.add_argument("--target", type=float, default=0.995)
    ap.add_argument("--splits", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    doc = json.loads(args.evaluation.read_text())
    rows = {r["name"]: r for r in doc["rows"]}
    reference = np.array(rows["uncompressed"]["predicted"])
    out = {"evaluation": args.evaluation.name, "test_set": {k: doc["test_set"].get(k) for k in ("folder", "n", "sha256")},
           "measure": "top", "models": {}}
    for name in args.models:
        row = rows[name]
        agree = (np.array(row["predicted"]) == reference).astype(np.float64)
        result = split_half(np.array(row["p_top"], dtype=np.float64), agree, args.target, args.splits, args.seed)
        out["models"][name] = {"agreement_alone": float(agree.mean()), **result}
        print(f"{name}: top < {result['threshold']:.4f} hands {100 * result['handed_over']:.1f}% over, kept agree "
              f"{100 * result['kept_agreement']:.1f}% on all {len(agree)} scans; chosen on one half, the other half's "
              f"kept answers agree {100 * result['held_out_kept_agreement']:.1f}% (10th percentile "
              f"{100 * result['held_out_kept_agreement_p10']:.1f}%), {100 * result['held_out_handed_over']:.1f}% "
              f"handed over")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
