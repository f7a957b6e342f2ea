"""Write a corpus of damaged compressed DICOM frames and report what load_scan makes of it.

    python scripts/make_damaged_frames.py [--out DIR] [--size 128] [--seeds 5] [--bytes 200]

Every codec (JPEG baseline, JPEG lossless, JPEG-LS, JPEG 2000, RLE) is written intact and
damaged (cut short, a length that lies, the DICOM fragment ending early, 64 bytes garbled
inside the compressed data; see tests/preprocessing/damaged_frames.py), then each file is
read. Garbled data, and single bytes replaced inside the compressed data (``--bytes``
cases per codec), are measured, not promised: no format here has a checksum, so what is
refused is a rate. Exit status 1 if an intact file is refused or a cut, a lying length or
an early fragment end is read.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preprocessing import ScanError, load_scan  # noqa: E402
from tests.preprocessing.damaged_frames import (  # noqa: E402
    DAMAGE, corrupt_byte, intact_frames, make_corpus, write_frame)


def _refused(path: Path) -> bool:
    try:
        load_scan(path)
    except ScanError:
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="folder for the corpus (default: a temporary one)")
    parser.add_argument("--size", type=int, default=128, help="side of the image in pixels (JPEG-LS: 64, fixed)")
    parser.add_argument("--seeds", type=int, default=5, help="variants of each damage")
    parser.add_argument("--bytes", type=int, default=200, help="single-byte corruptions per codec (measured)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="damaged-frames-"))
    cases = make_corpus(out, size=args.size, seeds=args.seeds)
    failures = 0
    table: dict[tuple[str, str], Counter] = {}
    for case in cases:
        refused = _refused(case.path)
        table.setdefault((case.codec, case.damage), Counter())["refused" if refused else "read"] += 1
        if (case.damage == "intact" and refused) or (case.damage in DAMAGE and not refused):
            failures += 1
            print(f"FAIL {case.path}", file=sys.stderr)
    print(f"corpus: {len(cases)} files in {out}")
    for (codec, damage), counts in table.items():
        print(f"  {codec:14s} {damage:16s} refused {counts['refused']:3d}  read {counts['read']:3d}")
    print(f"single bytes changed inside the compressed data ({args.bytes} per codec, measured):")
    probe = out / "byte.dcm"
    for frame in intact_frames(args.size):
        refused = sum(_refused(write_frame(probe, frame, corrupt_byte(frame, seed))) for seed in range(args.bytes))
        print(f"  {frame.codec:14s} refused {refused:4d} of {args.bytes} ({100 * refused / args.bytes:.0f}%)")
    print(f"failures: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
