"""Hostile scan inputs of issue 26 (defects 1 and 2), and what reading each one costs.

``python scripts/make_hostile_inputs.py OUT [--measure] [--timeout S]`` writes into the
folder ``OUT`` (sparse files where large, so the folder takes a few MiB on disk):

=======================  ==============================================================
``dicom-pad-64m.dcm``    a real DICOM slice followed by 64 MiB of zero bytes
``dicom-pad-1.9g.dcm``   the same slice followed by a sparse hole up to 1.9 GiB
``zip-pad-64m.zip``      a zip holding ``dicom-pad-64m.dcm`` (deflated: ~70 KiB)
``zip-1g-member.zip``    a ~1 MiB zip whose one member inflates to 1,023 MiB
``zip-lying-size.zip``   a member that declares 64 KiB and inflates to 1,000 MiB
``zip-overlap.zip``      10 directory entries sharing one 100 MiB member (1 GB in total)
``nifti-gzip-bomb.nii.gz``  a ~1 MiB gzip whose NIfTI header announces 1 GiB of voxels
``nifti-gzip-largest...``  the largest accepted NIfTI volume, 512 x 512 x 128 float64 zeros
``dicomdir-10001/``      a DICOMDIR whose 10,001 image records all point at one slice
=======================  ==============================================================

With ``--measure`` every case is read by :func:`preprocessing.load_scan` in a child
process of its own, which reports the wall time of the read and its peak resident memory
above the child's baseline (``ru_maxrss`` after importing :mod:`preprocessing` and
reading a small real scan once); a table is printed, and written as JSON with ``--json``.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

ROOT = Path(__file__).resolve().parents[1]
SLICE = ROOT / "samples" / "dicom" / "Te-me_0016.dcm"
MiB = 1024 * 1024
_ZEROS = bytes(MiB)

#: Case name -> what it is (the order of the table).
CASES: dict[str, str] = {
    "dicom-pad-64m.dcm": "DICOM + 64 MiB zeros",
    "dicom-pad-1.9g.dcm": "DICOM + sparse 1.9 GiB",
    "zip-pad-64m.zip": "zip of DICOM + 64 MiB zeros",
    "zip-1g-member.zip": "zip, member inflates to 1,023 MiB",
    "zip-lying-size.zip": "zip, member lies (64 KiB declared, 1,000 MiB real)",
    "zip-overlap.zip": "zip, 10 overlapping entries of 100 MiB",
    "nifti-gzip-bomb.nii.gz": "gzip NIfTI announcing 1 GiB",
    "nifti-gzip-largest.nii.gz": "gzip NIfTI, largest accepted (32 Mi float64)",
    "dicomdir-10001": "DICOMDIR, 10,001 records -> 1 slice",
}


def _padded_dicom(zeros_mib: int) -> bytes:
    return SLICE.read_bytes() + bytes(zeros_mib * MiB)


def _zip_streamed(path: Path, name: str, head: bytes, zeros: int, *, zip64: bool = False) -> None:
    """A zip with one deflated member: ``head`` then ``zeros`` zero bytes, written in chunks."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=zip64) as f:
            f.write(head)
            left = zeros
            while left > 0:
                n = min(left, len(_ZEROS))
                f.write(_ZEROS[:n])
                left -= n


def _set_declared_size(path: Path, size: int) -> None:
    """Overwrite the uncompressed size a zip's first member declares (local header and
    central directory), so that the archive lies about it."""
    data = bytearray(path.read_bytes())
    local = data.index(b"PK\x03\x04")
    central = data.rindex(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, size)
    struct.pack_into("<I", data, central + 24, size)
    path.write_bytes(bytes(data))


def _overlapping_zip(path: Path, copies: int, member_mib: int) -> None:
    """One member stored once, listed ``copies`` times in the central directory."""
    _zip_streamed(path, "slice.dcm", SLICE.read_bytes(), member_mib * MiB - SLICE.stat().st_size)
    data = path.read_bytes()
    cd = data.rindex(b"PK\x01\x02")
    eocd = data.rindex(b"PK\x05\x06")
    record = data[cd:eocd]
    end = bytearray(data[eocd:])
    struct.pack_into("<HH", end, 8, copies, copies)
    struct.pack_into("<I", end, 12, len(record) * copies)
    path.write_bytes(data[:cd] + record * copies + bytes(end))


def _nifti_bomb(path: Path, shape: tuple[int, ...], mib: int) -> None:
    """A NIfTI-1 header announcing ``shape`` float64 voxels, then ``mib`` MiB of zeros, gzipped."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.float64)
    header.set_data_offset(352)
    with gzip.open(path, "wb", compresslevel=6) as f:
        f.write(header.binaryblock + b"\0" * 4)
        for _ in range(mib):
            f.write(_ZEROS)


def _dicomdir(folder: Path, records: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "IM0").write_bytes(SLICE.read_bytes())
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.FileSetID = "HOSTILE"
    items = []
    for _ in range(records):
        rec = Dataset()
        rec.DirectoryRecordType = "IMAGE"
        rec.ReferencedFileID = ["IM0"]
        items.append(rec)
    ds.DirectoryRecordSequence = Sequence(items)
    ds.save_as(folder / "DICOMDIR", enforce_file_format=True)


def make_all(out: Path) -> dict[str, Path]:
    """Write every case into ``out``; returns case name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in CASES}
    paths["dicom-pad-64m.dcm"].write_bytes(_padded_dicom(64))
    sparse = paths["dicom-pad-1.9g.dcm"]
    sparse.write_bytes(SLICE.read_bytes())
    os.truncate(sparse, int(1.9 * 1024 * MiB))
    with zipfile.ZipFile(paths["zip-pad-64m.zip"], "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(paths["dicom-pad-64m.dcm"], "dicom-pad-64m.dcm")
    head = SLICE.read_bytes()
    _zip_streamed(paths["zip-1g-member.zip"], "slice.dcm", head, 1023 * MiB - len(head))
    _zip_streamed(paths["zip-lying-size.zip"], "slice.dcm", head, 1000 * MiB - len(head))
    _set_declared_size(paths["zip-lying-size.zip"], 64 * 1024)
    _overlapping_zip(paths["zip-overlap.zip"], copies=10, member_mib=100)
    _nifti_bomb(paths["nifti-gzip-bomb.nii.gz"], (4096, 4096, 8), 1024)
    _nifti_bomb(paths["nifti-gzip-largest.nii.gz"], (512, 512, 128), 256)
    _dicomdir(paths["dicomdir-10001"], 10_001)
    return paths


_CHILD = r"""
import json, resource, sys, time
from preprocessing import ScanError, load_scan
load_scan(sys.argv[2])  # warm: imports, decoders
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
try:
    load_scan(sys.argv[1])
    outcome = "read"
except ScanError as e:
    outcome = "refused: " + str(e)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_mib": (peak - base) / 1024, "outcome": outcome}))
"""


def measure(path: Path, timeout: float) -> dict:
    """Read ``path`` in a child process; its time, peak memory above baseline and outcome."""
    cmd = [sys.executable, "-c", _CHILD, str(path), str(ROOT / "samples" / "Te-gl_0010.jpg")]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"seconds": timeout, "peak_mib": float("nan"), "outcome": f"TIMEOUT after {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"seconds": float("nan"), "peak_mib": float("nan"),
                "outcome": f"CRASH rc={done.returncode}: {done.stderr.strip()[-300:]}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="folder to write the cases into")
    p.add_argument("--measure", action="store_true", help="read each case in a child process and print a table")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per case before it counts as hung")
    p.add_argument("--only", nargs="*", default=None, help="measure only these cases")
    p.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    args = p.parse_args(argv)
    paths = make_all(args.out)
    if not args.measure:
        for name, path in paths.items():
            print(path)
        return 0
    rows = {}
    print(f"{'case':<28} {'time s':>7} {'peak MiB':>9}  outcome")
    for name, path in paths.items():
        if args.only and name not in args.only:
            continue
        r = measure(path, args.timeout)
        rows[name] = r
        print(f"{name:<28} {r['seconds']:>7.2f} {r['peak_mib']:>9.0f}  {r['outcome'][:110]}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
