"""Mutations of the shipped sample scans and the contract a read scan must meet.

Shared by the CI property test (``test_fuzz_scans.py``, hypothesis) and the longer run
(``scripts/fuzz_scans.py``, a seeded ``random.Random``): a case is a sample file and a
short list of :class:`Mutation` s, applied by :func:`mutate`; :func:`run_case` writes the
result to a file, calls ``load_scan`` and classifies the outcome, with a time and a
memory bound.
"""
from __future__ import annotations

import gzip
import math
import random
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from preprocessing import MAX_SIDE, MAX_VOXELS, MIN_SIDE, Scan, ScanError, load_scan
from preprocessing.scan import MAX_ABS_VALUE

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
#: Every shipped sample: the JPEGs, the DICOMs (one plain, one RLE multi-frame), the NIfTIs.
SAMPLE_FILES: tuple[Path, ...] = tuple(
    sorted(SAMPLES.glob("*.jpg")) + sorted((SAMPLES / "dicom").glob("*.dcm")) + sorted((SAMPLES / "nifti").glob("*"))
)
KINDS = ("flip", "set", "truncate", "insert", "delete", "header")
#: Per-case limits.
TIME_LIMIT_S = 2.0
MEMORY_LIMIT_BYTES = 1 << 30


@dataclass(frozen=True)
class Mutation:
    """One change to a file's bytes.

    Attributes:
        kind: ``flip`` (xor one byte), ``set`` (overwrite ``length`` bytes with
            ``value``), ``truncate`` (cut the file at ``where``), ``insert`` (``length``
            bytes of ``value``), ``delete`` (``length`` bytes), ``header`` (``set`` within
            the first 1 KiB, where the header fields are: sizes, offsets, tags).
        where: Position as a fraction of the file size, ``0 <= where < 1``.
        length: Number of bytes (1 to 64).
        value: Byte value 0..255 (for ``flip``: the xor mask, 0 taken as 1).
    """

    kind: str
    where: float
    length: int
    value: int


def _apply(data: bytearray, m: Mutation) -> bytearray:
    n = len(data)
    if n == 0:
        return data
    span = min(n, 1024) if m.kind == "header" else n
    pos = min(int(m.where * span), n - 1)
    if m.kind == "flip":
        data[pos] ^= m.value or 1
    elif m.kind in ("set", "header"):
        data[pos:pos + m.length] = bytes([m.value]) * len(data[pos:pos + m.length])
    elif m.kind == "truncate":
        del data[pos:]
    elif m.kind == "insert":
        data[pos:pos] = bytes([m.value]) * m.length
    elif m.kind == "delete":
        del data[pos:pos + m.length]
    return data


def mutate(raw: bytes, mutations: list[Mutation], *, gzipped: bool) -> bytes:
    """Apply ``mutations`` in turn. For a gzip file, half of the cases mutate the
    decompressed NIfTI (so header fields are reached) and compress it again; the mutation
    list's first ``where`` decides (below 0.5: inside)."""
    if gzipped and mutations and mutations[0].where < 0.5:
        inner = bytearray(gzip.decompress(raw))
        for m in mutations:
            inner = _apply(inner, m)
        return gzip.compress(bytes(inner), compresslevel=1, mtime=0)
    data = bytearray(raw)
    for m in mutations:
        data = _apply(data, m)
    return bytes(data)


def random_mutations(rng: random.Random) -> list[Mutation]:
    """1 to 4 mutations drawn from ``rng`` (the longer run's generator)."""
    return [Mutation(rng.choice(KINDS), rng.random(), rng.randint(1, 64), rng.randrange(256))
            for _ in range(rng.randint(1, 4))]


def contract_problems(scan: Scan) -> list[str]:
    """Everything wrong with a Scan that ``load_scan`` returned (empty: it meets the contract)."""
    problems = []
    d = scan.data
    if not isinstance(d, np.ndarray) or d.dtype != np.float32:
        problems.append(f"data is {type(d).__name__} {getattr(d, 'dtype', '')}, not float32")
    if d.ndim not in (2, 3):
        return problems + [f"data has {d.ndim} dimensions"]
    if any(s > MAX_SIDE for s in d.shape) or d.size > MAX_VOXELS or any(s < MIN_SIDE for s in d.shape[-2:]):
        problems.append(f"size {d.shape} outside the limits")
    if not np.isfinite(d).all():
        problems.append("non-finite values")
    elif d.size and (float(d.min()) == float(d.max()) or float(np.abs(d).max()) > MAX_ABS_VALUE):
        problems.append("constant image or values beyond MAX_ABS_VALUE")
    if len(scan.spacing) != d.ndim or not all(math.isfinite(s) and s > 0 for s in scan.spacing):
        problems.append(f"bad spacing {scan.spacing}")
    if d.ndim == 3:
        if not (isinstance(scan.slice_index, int) and 0 <= scan.slice_index < d.shape[0]):
            problems.append(f"bad slice_index {scan.slice_index}")
    elif scan.slice_index is not None:
        problems.append("2-D scan with a slice index")
    if scan.source_format not in ("dicom", "nifti", "png", "jpeg"):
        problems.append(f"source_format {scan.source_format!r}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in scan.tags.items()):
        problems.append("tags are not all strings")
    try:
        img = scan.image()
        if img.ndim != 2:
            problems.append("image() is not 2-D")
    except ScanError as e:
        problems.append(f"image() raised {e}")
    return problems


@dataclass
class Outcome:
    """What one case gave: ``kind`` is ``"scan_error"``, ``"read_ok"`` or ``"failure"``."""

    kind: str
    detail: str
    seconds: float
    peak_bytes: int


def run_case(source: Path, mutations: list[Mutation], work: Path, *,
             time_limit_s: float = TIME_LIMIT_S, memory_limit_bytes: int = MEMORY_LIMIT_BYTES) -> Outcome:
    """Write the mutated copy of ``source`` into ``work`` (same name) and read it.

    A failure is: any exception but ScanError, a Scan that breaks the contract, a read
    slower than ``time_limit_s`` or a Python-heap peak above ``memory_limit_bytes``
    (measured with :mod:`tracemalloc`, which sees numpy's buffers).
    """
    raw = source.read_bytes()
    data = mutate(raw, mutations, gzipped=raw[:2] == b"\x1f\x8b")
    path = work / source.name
    path.write_bytes(data)
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    try:
        scan = load_scan(path)
    except ScanError as e:
        kind, detail = "scan_error", str(e)
    except BaseException as e:  # noqa: BLE001 - what we are looking for
        if isinstance(e, KeyboardInterrupt):
            raise
        kind, detail = "failure", f"{type(e).__module__}.{type(e).__name__}: {e}"
    else:
        problems = contract_problems(scan)
        kind, detail = ("failure", "; ".join(problems)) if problems else ("read_ok", "")
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    if not tracing:
        tracemalloc.stop()
    if kind != "failure" and seconds > time_limit_s:
        kind, detail = "failure", f"took {seconds:.2f} s (limit {time_limit_s} s)"
    if kind != "failure" and peak > memory_limit_bytes:
        kind, detail = "failure", f"peak memory {peak / 2**20:.0f} MiB (limit {memory_limit_bytes / 2**20:.0f} MiB)"
    return Outcome(kind, detail, seconds, peak)


def describe(source: Path, mutations: list[Mutation]) -> str:
    """A one-line reproduction recipe of a case."""
    return f"{source.relative_to(SAMPLES)} {[(m.kind, round(m.where, 6), m.length, m.value) for m in mutations]}"


__all__ = ["KINDS", "MEMORY_LIMIT_BYTES", "Mutation", "Outcome", "SAMPLE_FILES", "TIME_LIMIT_S", "contract_problems",
           "describe", "mutate", "random_mutations", "run_case"]
