"""Paired comparison of compressed models' agreement with the reference, from one
``hscc-mri evaluate --data ... --json`` run (the same scans for every row).

    python scripts/paired_agreement.py runs/eval/select-3x.json --base vgg16-brain-mri-hscc-3x \\
        --json reports/real/distill-3x-paired-select.json

For each row against the base row: scans the row agrees on and the base does not
(``gained``), the reverse (``lost``), the agreement difference, its paired SE
(``sqrt(gained + lost - (gained - lost)^2 / n) / n``, the SE of a mean of per-scan
differences) and the exact two-sided McNemar p-value on the discordant scans. Two
agreements measured on one set of scans differ far less by chance than their two
binomial SEs suggest, and far more than ``gained - lost`` alone shows.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any


def mcnemar_p(gained: int, lost: int) -> float:
    """Exact two-sided McNemar p-value: the binomial test of ``gained`` among the
    ``gained + lost`` discordant scans at one half."""
    n = gained + lost
    if n == 0:
        return 1.0
    k = min(gained, lost)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def compare(result: dict[str, Any], base: str) -> list[dict[str, Any]]:
    """Each row but the reference and ``base``, against ``base`` (see the module docstring)."""
    rows = {r["name"]: r for r in result["rows"]}
    if base not in rows:
        raise SystemExit(f"no row named {base!r}; rows: {', '.join(rows)}")
    reference = result["rows"][0]["predicted"]
    agree_base = [p == q for p, q in zip(rows[base]["predicted"], reference)]
    n = len(reference)
    out = []
    for name, row in rows.items():
        if name in (base, result["rows"][0]["name"]):
            continue
        agree = [p == q for p, q in zip(row["predicted"], reference)]
        gained = sum(a and not b for a, b in zip(agree, agree_base))
        lost = sum(b and not a for a, b in zip(agree, agree_base))
        diff = (gained - lost) / n
        se = math.sqrt(max(0.0, gained + lost - (gained - lost) ** 2 / n)) / n
        out.append({"row": name, "base": base, "n": n, "agreement": sum(agree) / n,
                    "base_agreement": sum(agree_base) / n,
                    "gained": gained, "lost": lost, "difference": diff, "difference_se": se,
                    "mcnemar_p": mcnemar_p(gained, lost), "mean_kl": row["mean_kl"],
                    "base_mean_kl": rows[base]["mean_kl"]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("evaluation", type=Path, help="the JSON of hscc-mri evaluate --data ... --json")
    ap.add_argument("--base", required=True, help="the row the others are compared with")
    ap.add_argument("--json", type=Path, default=None, help="also write the comparisons here")
    args = ap.parse_args(argv)
    result = json.loads(args.evaluation.read_text())
    comparisons = compare(result, args.base)
    for c in comparisons:
        print(f"{c['row']}: agreement {100 * c['agreement']:.1f}% vs {100 * c['base_agreement']:.1f}% "
              f"({c['gained']} gained, {c['lost']} lost of {c['n']}): {100 * c['difference']:+.1f} "
              f"± {100 * c['difference_se']:.1f} points (paired), McNemar p = {c['mcnemar_p']:.3f}; "
              f"KL {c['mean_kl']:.4f} vs {c['base_mean_kl']:.4f}")
    if args.json:
        args.json.write_text(json.dumps({"evaluation": args.evaluation.name, "test_set": result["test_set"]["folder"],
                                         "comparisons": comparisons}, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
