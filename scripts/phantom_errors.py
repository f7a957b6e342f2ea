"""Where a phantom-trained classifier goes wrong: accuracy by class, hard/easy case,
contrast and view, the confusion matrix, and the conspicuity of the misread tumours.

    python scripts/phantom_errors.py [--checkpoint checkpoints/alexnet-phantoms.safetensors]
                                     [--n 2000] [--seed 0]

Uses the ``train`` command's test split (phantom data-set seed ``3 * seed + 3``), so the
numbers match the test metrics in the checkpoint's report.
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from hscc_core.progress import progress_bar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hscc_mri.resolve import load_model  # noqa: E402
from hscc_mri.splits import phantom_split_seeds  # noqa: E402
from preprocessing.datasets import PhantomDataset  # noqa: E402
from preprocessing.phantoms import PHANTOM_CLASSES, phantom_details  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/alexnet-phantoms.safetensors"))
    parser.add_argument("--n", type=int, default=2000, help="test phantoms")
    parser.add_argument("--seed", type=int, default=0, help="the train command's --seed")
    args = parser.parse_args(argv)

    model = load_model(args.checkpoint).eval()
    data_seed = phantom_split_seeds(args.seed)["test"]
    data = PhantomDataset(args.n, data_seed, model.spec)
    names = list(model.spec.class_names)
    preds, labels, details = [], [], []
    with torch.no_grad():
        for start in progress_bar(range(0, args.n, 64), desc="predicting", unit="batch"):
            idx = range(start, min(start + 64, args.n))
            x = torch.stack([data[i][0] for i in idx]).float()
            preds += model(x).argmax(1).tolist()
            labels += [data[i][1] for i in idx]
            details += [phantom_details(i, data_seed) for i in idx]
    preds, labels = np.asarray(preds), np.asarray(labels)
    print(f"accuracy {np.mean(preds == labels):.4f} on {args.n} test phantoms")
    print("\nconfusion (rows: truth, columns: prediction)")
    print(" " * 12 + "".join(f"{n[:10]:>11}" for n in names))
    for t, name in enumerate(names):
        print(f"{name[:11]:<12}" + "".join(f"{np.sum((labels == t) & (preds == p)):>11}" for p in range(len(names))))
    groups: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for d, p, y in zip(details, preds, labels):
        ok = bool(p == y)
        name = PHANTOM_CLASSES[d.label]
        groups["class x case"][f"{name} {'hard' if d.hard else 'easy'}"].append(ok)
        groups["class x contrast"][f"{name} {d.contrast}"].append(ok)
        groups["class x view"][f"{name} {d.view}"].append(ok)
    for title, table in groups.items():
        print(f"\naccuracy by {title}")
        for key in sorted(table):
            hits = table[key]
            print(f"  {key:<28} {np.mean(hits):.3f}  (n={len(hits)})")
    wrong = [d.conspicuity for d, p, y in zip(details, preds, labels) if p != y and d.label != PHANTOM_CLASSES.index("notumor")]
    right = [d.conspicuity for d, p, y in zip(details, preds, labels) if p == y and d.label != PHANTOM_CLASSES.index("notumor")]
    if wrong and right:
        print(f"\ntumour conspicuity (CNR) median: misread {np.median(wrong):.2f}, read correctly {np.median(right):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
