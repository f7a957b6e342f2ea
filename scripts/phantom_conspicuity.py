"""How conspicuous the phantoms' tumours are, and how often a faint slice was redrawn.

Per class and for hard/easy cases: how many slices, the share that needed a redraw
(first draw below ``MIN_CONSPICUITY``), the share that exhausted the redraws, and the
median contrast-to-noise ratio. Uses the training set's phantoms (data-set seed of the
``train`` command's ``--seed``).

    python scripts/phantom_conspicuity.py [--n 600] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from hscc_core.progress import progress_bar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hscc_mri.splits import phantom_split_seeds  # noqa: E402
from preprocessing.phantoms import MAX_REDRAWS, PhantomSample, phantom_details  # noqa: E402


def summarise(samples: list[PhantomSample]) -> dict[str, float]:
    """Counts, redraw shares and median conspicuity of ``samples``."""
    draws = np.array([s.draws for s in samples])
    return {
        "n": len(samples),
        "redrawn": float(np.mean(draws > 1)),
        "exhausted": float(np.mean(draws > MAX_REDRAWS)),
        "median_cnr": float(np.median([s.conspicuity for s in samples])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=600, help="phantoms to draw (all classes)")
    parser.add_argument("--seed", type=int, default=0, help="the train command's --seed")
    args = parser.parse_args(argv)

    data_seed = phantom_split_seeds(args.seed)["train"]
    groups: dict[str, list[PhantomSample]] = defaultdict(list)
    for i in progress_bar(range(args.n), desc="drawing phantoms", unit="img"):
        s = phantom_details(i, data_seed)
        if s.class_name == "notumor":
            continue
        groups[s.class_name].append(s)
        groups["hard" if s.hard else "easy"].append(s)
        groups["all tumours"].append(s)

    print(f"{'group':<12} {'n':>5} {'redrawn %':>10} {'exhausted %':>12} {'median CNR':>11}")
    for name in ("glioma", "meningioma", "pituitary", "easy", "hard", "all tumours"):
        if groups[name]:
            r = summarise(groups[name])
            print(f"{name:<12} {r['n']:>5} {100 * r['redrawn']:>10.1f} {100 * r['exhausted']:>12.1f} "
                  f"{r['median_cnr']:>11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
