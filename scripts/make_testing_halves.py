"""Split the real test folder into a ``select`` half and a ``report`` half.

Every tuning choice (recipes, epochs, thresholds) is made on ``select``; ``report`` is
evaluated once per final candidate and gives the numbers the README states. Stratified
by class, near-duplicate scans (correlation >= 0.97 at 32x32 px) kept on one side; see
:mod:`hscc_mri.halves` and ``data/splits/README.md``.

Make the manifest (and lay the halves out as class folders):

    .venv/bin/python scripts/make_testing_halves.py --data /work/shared/data/brain-mri/Testing \\
        --out data/splits/testing-halves.json --materialize runs/halves

Only lay out the halves of the committed manifest (every file's SHA-256 is checked):

    .venv/bin/python scripts/make_testing_halves.py --data /work/shared/data/brain-mri/Testing \\
        --materialize runs/halves --materialize-only

then e.g. ``hscc-mri evaluate --data runs/halves/select ...``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Mapping

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hscc_mri.halves import HALVES, load_manifest, make_halves, materialize, write_manifest  # noqa: E402

DEFAULT_MANIFEST = ROOT / "data" / "splits" / "testing-halves.json"


def summary(manifest: Mapping[str, Any]) -> str:
    """Counts per half and class, and the near-duplicate group statistics, as text."""
    counts = manifest["counts"]
    classes = sorted({c for h in counts.values() for c in h})
    width = max(len(c) for c in classes + ["total"])
    lines = [f"{'':{width}}  " + "  ".join(f"{h:>6}" for h in HALVES) + "   total"]
    for c in classes:
        lines.append(f"{c:{width}}  " + "  ".join(f"{counts[h][c]:6d}" for h in HALVES)
                     + f"  {sum(counts[h][c] for h in HALVES):6d}")
    totals = [sum(counts[h].values()) for h in HALVES]
    lines.append(f"{'total':{width}}  " + "  ".join(f"{n:6d}" for n in totals) + f"  {sum(totals):6d}")
    g = manifest["groups"]
    sizes = ", ".join(f"{n}x{s}" for s, n in g["sizes"].items()) or "none"
    lines.append(f"near-duplicate groups (correlation >= {manifest['near_duplicate_correlation']}): "
                 f"{g['n_multi']} with more than one scan ({g['n_files_in_multi']} scans; sizes {sizes}), "
                 f"{g['n_cross_class']} spanning classes; {g['n_groups']} groups in all")
    for cross in g["cross_class"]:
        lines.append(f"  group {cross['group']} spans " + ", ".join(f"{c} {n}" for c, n in cross["classes"].items())
                     + f" -> {cross['half']}")
    if g.get("max_correlation_between_halves") is not None:
        lines.append(f"highest correlation between a select and a report scan: "
                     f"{g['max_correlation_between_halves']:.4f}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the test folder holding one folder per class (.../Testing)")
    ap.add_argument("--out", type=Path, default=DEFAULT_MANIFEST,
                    help="the manifest to write (or, with --materialize-only, to read); default %(default)s")
    ap.add_argument("--seed", type=int, default=0, help="seed of the group shuffle (default %(default)s)")
    ap.add_argument("--materialize", type=Path, metavar="DIR",
                    help="also lay the halves out as DIR/select/<class>/ and DIR/report/<class>/ (hard links)")
    ap.add_argument("--materialize-only", action="store_true",
                    help="do not split: read the manifest at --out and only lay out its halves (hashes checked)")
    args = ap.parse_args()
    if args.materialize_only:
        if args.materialize is None:
            ap.error("--materialize-only needs --materialize DIR")
        manifest = load_manifest(args.out)
    else:
        manifest = make_halves(args.data, seed=args.seed)
        write_manifest(manifest, args.out)
        print(f"wrote {args.out} ({len(manifest['files'])} files, seed {manifest['seed']})")
    print(summary(manifest))
    if args.materialize is not None:
        for half, folder in materialize(manifest, args.data, args.materialize).items():
            print(f"{half}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
