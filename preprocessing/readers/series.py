"""DICOM series as clinicians export them: a folder, a zip, or several files together.

One slice per file is the usual export. :func:`read_series` builds one volume from them:

1. **Collect** the files: a folder is walked (sub-folders included, links not followed,
   at most :data:`MAX_FILES` files); when it holds a ``DICOMDIR``, the image files that
   index lists are used, each file once however often it is listed. A zip is read in
   memory, one member at a time (:func:`preprocessing.archive.read_zip`); only the parsed
   headers are kept, never the files' bytes (each slice is read again to be decoded).
   Files that are not DICOM (by content: ``DICM`` at byte 128, or a ``.dcm`` name that
   parses as DICOM), DICOM objects that are not images (reports, the DICOMDIR itself)
   and unreadable files are left out, and the scan's ``notes`` say so.
2. **Group** the images by *Series Instance UID*. Localisers (*Image Type* containing
   ``LOCALIZER``, or an orientation different from the rest of their series when they
   are a small minority) are left out with a note. Several series: a
   :class:`ScanError` lists them by number, *Series Description* and slice count (never
   patient data) and says how to choose one (``series=`` number or description).
3. **Sort** the slices along the slice normal (the cross product of the *Image
   Orientation (Patient)* row and column directions) by the projection of *Image
   Position (Patient)*; *Instance Number* only when positions are missing. The slice
   spacing comes from the positions.
4. **Refuse** with a plain reason: mixed image sizes, mixed orientations, two slices at
   the same position, a gap (a step more than half again the usual one; with instance
   numbers, a missing number), multi-frame files mixed into a series.
5. **Decode** every slice as a single file would be (:func:`~.dicom.dataset_to_scan`:
   rescale, window, MONOCHROME1 inversion) and stack them ``(Z, H, W)`` with ``Z``
   along the slice normal, ``orientation="LPS/patient"``.

A series of one image gives that image (2-D, or the volume of a multi-frame file).
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydicom.dataset import Dataset

from ..archive import DamagedArchive, ZipMember, read_zip
from ..errors import ScanError, quote_name
from ..guard import reading
from ..scan import MAX_SIDE, Scan, check_dimensions
from .dicom import SNIFF_BYTES, dataset_to_scan, headerless_dicom_bytes, mapped_file, parse_dicom

__all__ = ["MAX_FILES", "SeriesInfo", "read_series"]

#: Most files looked at in a folder.
MAX_FILES: int = 10_000
_MAX_DEPTH = 8
_DICOMDIR_UID = "1.2.840.10008.1.3.10"
_SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
#: A step this much larger than the usual one means a missing slice.
_GAP_FACTOR = 1.5


@dataclass
class _Slice:
    """One image file of a series: where its bytes are and its parsed header (no pixels)."""

    name: str
    source: Path | ZipMember
    ds: Dataset

    def parse(self, *, stop_before_pixels: bool = False) -> Dataset:
        """Parse the file again from its source (memory-mapped file or inflated member)."""
        return _parse(self.source, self.name, stop_before_pixels=stop_before_pixels)


def _parse(source: Path | ZipMember, name: str, *, stop_before_pixels: bool) -> Dataset:
    if isinstance(source, ZipMember):
        return parse_dicom(io.BytesIO(source.read()), name, stop_before_pixels=stop_before_pixels)
    with mapped_file(source, name) as fp:
        return parse_dicom(fp, name, stop_before_pixels=stop_before_pixels)


@dataclass
class SeriesInfo:
    """One series found among the files, as listed to the user.

    Attributes:
        number: 1-based position in the listing (what ``series=`` takes).
        description: *Series Description* ("" when absent).
        uid: *Series Instance UID* (never shown in messages).
        slices: The image files of the series, localisers excluded.
        localisers: The localiser images left out.
    """

    number: int
    description: str
    uid: str
    slices: list[_Slice] = field(default_factory=list)
    localisers: list[_Slice] = field(default_factory=list)

    def label(self) -> str:
        """``1. "T1 AX" (20 slices)``: the listing line."""
        what = f'"{self.description}"' if self.description else "(no description)"
        n = len(self.slices)
        return f"{self.number}. {what} ({n} slice{'s' if n != 1 else ''})"


def _clean(text: Any, limit: int = 64) -> str:
    """A header string made safe to show: printable, one line, at most ``limit`` chars."""
    value = re.sub(r"[\x00-\x1f\x7f]+", " ", str(text or "")).strip()
    return value[:limit]


# ------------------------------------------------------------------ collecting files
def _is_dicom_head(head: bytes, name: str) -> bool:
    if head[128:132] == b"DICM":
        return True
    return name.lower().endswith((".dcm", ".dicom")) and headerless_dicom_bytes(head)


def _folder_files(folder: Path) -> list[Path]:
    """Files under ``folder`` (DICOMDIR's list when there is one), links not followed."""
    dicomdir = next((folder / n for n in ("DICOMDIR", "dicomdir") if (folder / n).is_file()), None)
    if dicomdir is not None:
        listed = _dicomdir_files(dicomdir)
        if listed:
            return listed
    files: list[Path] = []
    root_depth = len(folder.parts)
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        if len(Path(dirpath).parts) - root_depth >= _MAX_DEPTH:
            dirnames[:] = []
        dirnames.sort()
        for fname in sorted(filenames):
            p = Path(dirpath) / fname
            if p.is_symlink() or not p.is_file():
                continue
            files.append(p)
            if len(files) > MAX_FILES:
                raise ScanError(f"{quote_name(folder)} holds more than {MAX_FILES:,} files; please "
                                "choose the folder of one series.")
    return files


def _dicomdir_files(dicomdir: Path) -> list[Path]:
    """Image files a DICOMDIR lists, resolved inside its folder (others ignored)."""
    root = dicomdir.parent.resolve()
    try:
        with reading(dicomdir.name):
            with mapped_file(dicomdir, dicomdir.name) as fp:
                ds = parse_dicom(fp, dicomdir.name)
            records = list(ds.get("DirectoryRecordSequence") or [])
    except ScanError:
        return []
    files: list[Path] = []
    seen: set[Path] = set()
    for rec in records:
        if str(rec.get("DirectoryRecordType", "")).upper() != "IMAGE":
            continue
        ref = rec.get("ReferencedFileID")
        if ref is None:
            continue
        parts = [str(ref)] if isinstance(ref, str) else [str(x) for x in ref]
        if any(x in ("", ".", "..") or "/" in x or "\\" in x for x in parts):
            continue
        p = root.joinpath(*parts)
        if p in seen:  # one file listed many times is read once
            continue
        seen.add(p)
        if p.resolve().is_relative_to(root) and p.is_file() and not p.is_symlink():
            files.append(p)
            if len(files) >= MAX_FILES:
                break
    return files


def _parse_header(source: Path | ZipMember, name: str) -> Dataset | None:
    """The header of a DICOM file (no pixels), or ``None`` when it is not DICOM."""
    with reading(name):
        if isinstance(source, ZipMember):
            head = source.read(SNIFF_BYTES)
        else:
            try:
                with open(source, "rb") as f:
                    head = f.read(SNIFF_BYTES)
            except OSError:
                return None
        if not _is_dicom_head(head, name):
            return None
        return _parse(source, name, stop_before_pixels=True)


def _is_image(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None) or Dataset()
    sop = str(ds.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID") or "")
    if sop == _DICOMDIR_UID or sop.startswith(_SR_PREFIX) or "DirectoryRecordSequence" in ds:
        return False
    return "Rows" in ds and "Columns" in ds


# ------------------------------------------------------------------------ geometry
def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(math.isfinite(v) for v in out) else None


def _orientation_key(ds: Dataset) -> tuple[float, ...] | None:
    iop = _floats(ds.get("ImageOrientationPatient"), 6)
    return tuple(round(v, 3) for v in iop) if iop else None


#: Words scanners put in a localiser's Series Description.
_LOCALISER_WORDS = ("LOCALIZER", "LOCALISER", "SCOUT", "SURVEY", "3-PLANE", "3PLANE", "3 PLANE", "TRI-PILOT")


def _is_localiser(ds: Dataset) -> bool:
    """A localiser by its header: *Image Type* or *Series Description* says so."""
    value = ds.get("ImageType") or []
    values = [value] if isinstance(value, str) else list(value)
    if any("LOCALIZER" in str(v).upper() for v in values):
        return True
    description = str(ds.get("SeriesDescription") or "").upper()
    return any(word in description for word in _LOCALISER_WORDS)


def _split_localisers(slices: list[_Slice]) -> tuple[list[_Slice], list[_Slice]]:
    """``(images, localisers)`` of one series, by Image Type and Series Description. A slice
    in another orientation is not dropped here: the series is refused, naming it."""
    return [s for s in slices if not _is_localiser(s.ds)], [s for s in slices if _is_localiser(s.ds)]


def _geometric_localisers(groups: list[list[_Slice]]) -> set[int]:
    """Indices of series that are localisers by geometry: at most three slices, in other
    orientations than the largest series, when such a larger series exists."""
    if len(groups) < 2:
        return set()
    main = max(range(len(groups)), key=lambda i: len(groups[i]))
    main_key = _orientation_key(groups[main][0].ds)
    return {i for i, g in enumerate(groups)
            if i != main and len(g) <= 3 < len(groups[main]) and main_key is not None
            and all(_orientation_key(s.ds) not in (main_key, None) for s in g)}


# ------------------------------------------------------------------------ the reader
def _collect(source: Path | Sequence[Path], stack: contextlib.ExitStack
             ) -> tuple[list[_Slice], dict[str, int], str, str]:
    """Image headers of all DICOM files in the source; counts of what was left out; the
    name for ``Scan.name`` and how messages quote the source. A zip archive stays open
    in ``stack`` until the slices are decoded."""
    skipped = Counter()
    entries: list[tuple[str, Path | ZipMember]]
    if isinstance(source, Path) and source.is_dir():
        entries = [(p.name, p) for p in _folder_files(source)]
        name = source.name
    elif isinstance(source, Path):
        contents = stack.enter_context(read_zip(source))
        skipped["unsafe"] += contents.skipped
        entries = [(_base(m.name), m) for m in contents.members]
        name = source.name
    else:
        entries = [(p.name, p) for p in source]
        name = entries[0][0]
    q = quote_name(name)
    if not isinstance(source, Path) and len(entries) > 1:
        q += f" (and the {len(entries) - 1} other file{'s' if len(entries) > 2 else ''} given with it)"
    slices: list[_Slice] = []
    for fname, src in entries:
        try:
            ds = _parse_header(src, fname)
        except DamagedArchive:
            raise
        except ScanError:
            skipped["unreadable"] += 1
            continue
        if ds is None:
            skipped["not DICOM"] += 1
        elif not _is_image(ds):
            skipped["not an image"] += 1
        else:
            slices.append(_Slice(fname, src, ds))
    return slices, dict(skipped), name, q


def _base(member: str) -> str:
    """The base name of an archive member."""
    return member.rstrip("/").rsplit("/", 1)[-1]


def _group(slices: list[_Slice]) -> tuple[list[SeriesInfo], int]:
    """Series in listing order, and the number of series made only of localisers."""
    groups: dict[str, list[_Slice]] = {}
    for s in slices:
        groups.setdefault(str(s.ds.get("SeriesInstanceUID") or ""), []).append(s)
    found = []
    only_localisers = 0
    by_geometry = _geometric_localisers(list(groups.values()))
    for k, (uid, members) in enumerate(groups.items()):
        images, localisers = _split_localisers(members)
        if k in by_geometry:
            images, localisers = [], members
        if not images:
            only_localisers += len(localisers)
            continue
        desc = _clean(members[0].ds.get("SeriesDescription"))
        try:
            number = int(members[0].ds.get("SeriesNumber"))
        except (TypeError, ValueError):
            number = 1 << 30
        found.append((number, desc, len(images), uid, images, localisers))
    found.sort(key=lambda t: (t[0], t[1], -t[2], t[3]))
    return ([SeriesInfo(i + 1, desc, uid, images, locs)
             for i, (_n, desc, _c, uid, images, locs) in enumerate(found)], only_localisers)


def _choose(found: list[SeriesInfo], series: int | str | None, q: str) -> SeriesInfo:
    listing = "; ".join(s.label() for s in found)
    how = ("Please choose one: give its number or its description (in the app: upload only that "
           "series' files; on the command line: --series 2 or --series \"T2 AX\").")
    if series is None:
        if len(found) == 1:
            return found[0]
        raise ScanError(f"{q} holds {len(found)} image series: {listing}. {how}")
    if isinstance(series, (int, np.integer)) and not isinstance(series, bool) or str(series).strip().isdigit():
        number = int(series)
        for s in found:
            if s.number == number:
                return s
        raise ScanError(f"{q} has no series number {number}; it holds: {listing}.")
    wanted = str(series).strip().casefold()
    matches = [s for s in found if s.description.casefold() == wanted or s.uid == str(series).strip()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ScanError(f"{q} holds several series described \"{_clean(series)}\": {listing}. "
                        "Please choose one by its number.")
    raise ScanError(f"{q} has no series described \"{_clean(series)}\"; it holds: {listing}.")


def _order(slices: list[_Slice], q: str) -> tuple[list[_Slice], float | None]:
    """Slices sorted along the normal, and the spacing between them (``None``: unknown)."""
    key = _orientation_key(slices[0].ds)
    positions = [_floats(s.ds.get("ImagePositionPatient"), 3) for s in slices]
    if key is not None and all(p is not None for p in positions):
        iop = np.array(_floats(slices[0].ds.ImageOrientationPatient, 6))
        normal = np.cross(iop[:3], iop[3:])
        if np.linalg.norm(normal) < 1e-6:
            raise ScanError(f"{q} has an invalid slice orientation (Image Orientation), so the "
                            "slices cannot be put in order.")
        normal = normal / np.linalg.norm(normal)
        depth = np.array([float(np.dot(p, normal)) for p in positions])
        order = np.argsort(depth, kind="stable")
        steps = np.diff(depth[order])
        return _checked([slices[i] for i in order], steps, q, unit="mm")
    numbers = []
    for s in slices:
        try:
            numbers.append(int(s.ds.get("InstanceNumber")))
        except (TypeError, ValueError):
            raise ScanError(f"{q}: the slices state neither their positions nor their instance "
                            "numbers, so they cannot be put in order.") from None
    order = np.argsort(numbers, kind="stable")
    steps = np.diff(np.array(numbers, dtype=np.float64)[order])
    ordered, _ = _checked([slices[i] for i in order], steps, q, unit="")
    return ordered, None


def _checked(ordered: list[_Slice], steps: np.ndarray, q: str, unit: str
             ) -> tuple[list[_Slice], float | None]:
    if steps.size == 0:
        return ordered, None
    if np.any(np.abs(steps) < 1e-3):
        raise ScanError(f"{q} has two or more slices at the same position (several echoes, time "
                        "points or a copied file?); please export one 3-D series.")
    usual = float(np.median(steps)) if unit else 1.0
    small = np.flatnonzero(steps < usual / _GAP_FACTOR) if unit else np.array([], int)
    if small.size:
        i = int(small[0])
        raise ScanError(f"{q} has uneven slice spacing: slices {i} and {i + 1} are {steps[i]:.2f} mm apart "
                        f"instead of {usual:.2f} mm (a slice from another acquisition?). Please export the "
                        "series again.")
    big = np.flatnonzero(steps > _GAP_FACTOR * usual)
    if big.size:
        i = int(big[0])
        if unit:
            detail = f"the step is {steps[i]:.2f} mm instead of {usual:.2f} mm"
        else:
            detail = f"instance numbers jump from {ordered[i].ds.InstanceNumber} to {ordered[i + 1].ds.InstanceNumber}"
        raise ScanError(f"{q} has a gap: a slice is missing between slices {i} and {i + 1} "
                        f"({detail}). Please export the complete series.")
    return ordered, usual


def read_series(source: Path | Sequence[Path], *, series: int | str | None = None) -> Scan:
    """Read a DICOM series from a folder, a zip archive or several files.

    Args:
        source: A folder, a ``.zip`` file, or a sequence of DICOM files.
        series: Which series, when there are several: its number in the listing
            (1-based) or its *Series Description*; ``None`` when there is only one.

    Returns:
        A ``(Z, H, W)`` scan (``Z`` along the slice normal), or a 2-D one for a single
        image; ``tags`` hold ``SeriesDescription`` and ``series_slices``; ``notes`` say
        what was left out.

    Raises:
        ScanError: No DICOM image, several series without a choice, mixed sizes or
            orientations, gaps, duplicate positions, damaged slices.
    """
    with contextlib.ExitStack() as stack:
        return _read_series(source, series, stack)


def _read_series(source: Path | Sequence[Path], series: int | str | None, stack: contextlib.ExitStack
                 ) -> Scan:
    slices, skipped, name, q = _collect(source, stack)
    notes: list[str] = []
    if not slices:
        what = "folder" if isinstance(source, Path) and source.is_dir() else "files"
        what = "archive" if isinstance(source, Path) and source.is_file() else what
        raise ScanError(f"{q} holds no DICOM image files. Please choose the {what} of a DICOM series "
                        "(or a single DICOM, NIfTI, PNG or JPEG file).")
    found, only_localisers = _group(slices)
    if not found:
        raise ScanError(f"{q} holds only localiser (scout) images, no series to classify.")
    chosen = _choose(found, series, q)
    left = [s for s in found if s is not chosen]
    if left:
        notes.append(f"Series {chosen.label()} was used; {len(left)} other series left out: "
                     + "; ".join(s.label() for s in left) + ".")
    n_loc = len(chosen.localisers) + only_localisers
    if n_loc:
        notes.append(f"{n_loc} localiser (scout) image{'s were' if n_loc != 1 else ' was'} left out.")
    for reason, count in sorted(skipped.items()):
        notes.append(f"{count} file{'s' if count != 1 else ''} left out ({reason}).")

    images = chosen.slices
    first = images[0].ds
    if len(images) == 1:
        return _with_series(_decode(images[0]), chosen, notes, name)
    if any(int(s.ds.get("NumberOfFrames") or 1) > 1 for s in images):
        raise ScanError(f"{q}: series {chosen.label()} mixes multi-frame files; please choose one "
                        "multi-frame file instead.")
    sizes = {(int(s.ds.Rows), int(s.ds.Columns)) for s in images}
    if len(sizes) > 1:
        listed = ", ".join(f"{c}×{r}" for r, c in sorted(sizes))
        raise ScanError(f"{q}: the slices of series {chosen.label()} have different sizes ({listed}) "
                        "and cannot form one volume. Please export the series again.")
    orientations = Counter(_orientation_key(s.ds) for s in images)
    if len(orientations) > 1:
        usual = orientations.most_common(1)[0][0]
        odd = [s for s in images if _orientation_key(s.ds) != usual]
        if len(odd) == 1:
            raise ScanError(f"{q}: in series {chosen.label()} one slice (instance "
                            f"{_clean(odd[0].ds.get('InstanceNumber')) or '?'}) is tilted: its orientation "
                            "differs from the others (an oblique slice), so they cannot form one volume. "
                            "Please export the series without it.")
        raise ScanError(f"{q}: the slices of series {chosen.label()} lie in different orientations "
                        "(e.g. axial and sagittal mixed), so they cannot form one volume. Please "
                        "export one series per orientation.")
    _check_consistent(images, chosen, q)
    if len(images) > MAX_SIDE:
        raise ScanError(f"{q} has {len(images):,} slices, more than the {MAX_SIDE} accepted.")
    check_dimensions((len(images), int(first.Rows), int(first.Columns)), name,
                     samples=int(first.get("SamplesPerPixel") or 1))
    ordered, step = _order(images, q)
    scans = [_decode(s) for s in ordered]
    if len({sc.data.shape for sc in scans}) > 1 or scans[0].data.ndim != 2:
        raise ScanError(f"{q}: the slices' images do not all have the same size; please export the "
                        "series again.")
    volume = np.stack([sc.data for sc in scans])
    dy, dx = scans[0].spacing
    dz = step if step and step > 0 else _fallback_dz(first)
    tags = dict(scans[0].tags)
    slice_notes = tuple(dict.fromkeys(n for sc in scans for n in sc.notes))  # e.g. the coding caveat, once
    scan = Scan(data=volume, spacing=(dz, dy, dx), orientation="LPS/patient", source_format="dicom",
                tags=tags, name=name, notes=slice_notes)
    return _with_series(scan, chosen, notes, name)


def _check_consistent(images: list[_Slice], chosen: SeriesInfo, q: str) -> None:
    """Refuse slices that do not belong to one volume: other pixel spacings or bit depths."""
    spacings = {tuple(round(v, 4) for v in (_floats(s.ds.get("PixelSpacing"), 2) or ())) for s in images}
    if len(spacings) > 1:
        listed = ", ".join(" × ".join(f"{v:g}" for v in sp) + " mm" if sp else "none stated"
                           for sp in sorted(spacings))
        raise ScanError(f"{q}: the slices of series {chosen.label()} have different pixel spacings "
                        f"({listed}), so they do not form one volume. Please export the series again.")
    depths = {(s.ds.get("BitsAllocated"), s.ds.get("BitsStored"), s.ds.get("PixelRepresentation")) for s in images}
    if len(depths) > 1:
        listed = ", ".join(sorted({f"{b} bits" for _a, b, _r in depths}))
        raise ScanError(f"{q}: the slices of series {chosen.label()} are stored with different bit depths "
                        f"or signs ({listed}), so they do not belong to one export. Please export the "
                        "series again.")


def _fallback_dz(ds: Dataset) -> float:
    for key in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            v = float(ds.get(key))
        except (TypeError, ValueError):
            continue
        if math.isfinite(v) and v > 0:
            return v
    return 1.0


def _decode(s: _Slice) -> Scan:
    with reading(s.name):
        return dataset_to_scan(s.parse(), s.name)


def _with_series(scan: Scan, chosen: SeriesInfo, notes: list[str], name: str) -> Scan:
    scan.tags["SeriesDescription"] = chosen.description
    scan.tags["series_slices"] = str(len(chosen.slices))
    scan.notes = (*notes, *scan.notes)  # what the series left out, then what its slices say
    scan.name = name
    return scan
