"""Longer fuzz run of scan reading: mutated copies of the shipped sample scans.

    python scripts/fuzz_scans.py [--cases 50000] [--seed 0] [--time-limit 2] [--show 10]

Each case takes one sample (cycling through samples/*.jpg, samples/dicom/*.dcm,
samples/nifti/*), applies 1 to 4 seeded mutations (byte flips, overwrites, truncations,
insertions, deletions, header-field changes; see tests/preprocessing/fuzzing.py) and
calls ``load_scan``. Prints the outcome counts: ScanError, read OK (a Scan that meets
the whole contract) and other failures (any other exception, a contract breach, a read
over the time limit or over 1 GiB of memory), with reproduction recipes for the first
failures. Exit status 1 if there was any failure.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.preprocessing.fuzzing import SAMPLE_FILES, describe, random_mutations, run_case  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=50_000, help="number of mutated files to read")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mutations")
    parser.add_argument("--time-limit", type=float, default=2.0, help="seconds allowed per case")
    parser.add_argument("--show", type=int, default=10, help="failures to print in full")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    counts: Counter = Counter()
    failures: list[str] = []
    slowest = 0.0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        for i in range(args.cases):
            source = SAMPLE_FILES[i % len(SAMPLE_FILES)]
            changes = random_mutations(rng)
            outcome = run_case(source, changes, Path(work), time_limit_s=args.time_limit)
            counts[outcome.kind] += 1
            slowest = max(slowest, outcome.seconds)
            if outcome.kind == "failure" and len(failures) < args.show:
                failures.append(f"{describe(source, changes)}: {outcome.detail}")
            if (i + 1) % 5000 == 0:
                print(f"  {i + 1:,} cases ...", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - start
    print(f"samples: {len(SAMPLE_FILES)} files; cases: {args.cases:,} (seed {args.seed}); "
          f"{elapsed:.0f} s, slowest case {slowest:.2f} s")
    print(f"ScanError: {counts['scan_error']:,}")
    print(f"read OK: {counts['read_ok']:,}")
    print(f"other failures: {counts['failure']:,}")
    for line in failures:
        print(f"  FAIL {line}")
    return 1 if counts["failure"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
