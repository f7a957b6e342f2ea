"""DICOM reader (pydicom 3): one file, single- or multi-frame, any decodable syntax.

Pixel pipeline, in the order the DICOM standard defines for grey images:

1. Decode the stored values (compressed syntaxes through the installed pylibjpeg,
   openjpeg, libjpeg and RLE plugins).
2. Modality LUT: *Rescale Slope/Intercept* or a *Modality LUT Sequence*
   (:func:`pydicom.pixels.apply_modality_lut`); for enhanced multi-frame objects the
   *Pixel Value Transformation* functional group (shared or per frame).
3. VOI LUT: the first *VOI LUT Sequence* entry, else the first *Window Center/Width*
   (:func:`pydicom.pixels.apply_voi_lut`), when the file has one. This is a deliberate
   choice: the classifiers were trained on exported display images, i.e. on what the
   scanner's recommended window shows, so the file's own window is applied. Per-frame
   windows of enhanced objects are not applied.
4. *MONOCHROME1* (low values bright) is inverted, ``max + min - value``, so that
   higher always means brighter.

Colour images (*RGB*, *YBR_FULL*, *YBR_FULL_422*, JPEG 2000 *YBR_ICT/RCT*, *PALETTE
COLOR*) are converted to RGB and then to grey luminance
(:func:`~preprocessing.scan.rgb_to_grey`); no rescale or window applies to them.

Layout: a single frame is ``(H, W)``; a file with *Number of Frames* > 1 is a volume
``(Z, H, W)`` with ``Z`` the frame axis and the default slice chosen by
:func:`~preprocessing.scan.default_slice`. Rows and columns are kept as stored, which is
how DICOM viewers display them; the header's *Image Orientation (Patient)* relates them
to the LPS patient frame (``orientation="LPS/patient"``), without resampling.

Before any pixel data is decoded the header is checked: structured reports and other
objects without pixels are rejected with an explanation (an image object whose pixel
data is missing is called incomplete), the claimed size must be within
:data:`~preprocessing.scan.MAX_SIDE` / :data:`~preprocessing.scan.MAX_VOXELS`, the
transfer syntax must have an installed decoder, and compressed frames must be intact
(:mod:`preprocessing.readers.frames`). Decoding runs inside
:func:`preprocessing.guard.reading`, so a decoder's panic is a ScanError too.

:func:`dataset_to_scan` does the same for a dataset already parsed (the series reader
uses it for every slice).
"""
from __future__ import annotations

import contextlib
import io
import math
import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, get_decoder
from pydicom.encaps import generate_frames
from pydicom.filereader import read_partial
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from ..errors import ScanError, quote_name
from ..guard import PASS_THROUGH, reading
from ..scan import MAX_VOXELS, Scan, check_dimensions, rgb_to_grey
from .frames import frame_problem, unchecked_coding

__all__ = ["MAX_ELEMENT_BYTES", "MAX_FILE_BYTES", "DicomReader", "dataset_to_scan", "mapped_file",
           "headerless_dicom_bytes", "looks_like_headerless_dicom", "parse_dicom", "read_dicom",
           "transfer_syntax_name"]

#: Largest DICOM file opened: 2 GiB. The file is mapped, not read: only the elements
#: before the end of its data set are touched (see :func:`parse_dicom`).
MAX_FILE_BYTES: int = 2 * 1024**3
#: Largest value of one element: the largest accepted image stored with 4 bytes a sample.
MAX_ELEMENT_BYTES: int = 4 * MAX_VOXELS
_PIXEL_DATA_TAG = 0x7FE00010
#: Bytes of a file without preamble parsed to decide whether it is DICOM: the header
#: of any real image fits, and a big file of zeros is not parsed to its end.
SNIFF_BYTES: int = 64 * 1024

_DICM_OFFSET = 128
_HEADERLESS_SUFFIXES = (".dcm", ".dicom")
_SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
_DICOMDIR_UID = "1.2.840.10008.1.3.10"
#: Transfer syntaxes newer than this pydicom's dictionary, so they are named in messages.
_EXTRA_SYNTAX_NAMES = {
    "1.2.840.10008.1.2.4.110": "JPEG XL Lossless",
    "1.2.840.10008.1.2.4.111": "JPEG XL JPEG Recompression",
    "1.2.840.10008.1.2.4.112": "JPEG XL",
}
#: Header keywords copied into ``Scan.tags`` (nothing that identifies a patient).
_TAG_KEYWORDS = (
    "Modality",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "PhotometricInterpretation",
    "MRAcquisitionType",
    "NumberOfFrames",
    "SamplesPerPixel",
)


def transfer_syntax_name(uid: str) -> str:
    """Human-readable name of a transfer syntax UID (the UID itself if unknown)."""
    uid = str(uid)
    if uid in _EXTRA_SYNTAX_NAMES:
        return _EXTRA_SYNTAX_NAMES[uid]
    return UID(uid).name


def looks_like_headerless_dicom(path: Path, head: bytes | None = None) -> bool:
    """Whether a ``.dcm`` file without the 128-byte preamble still parses as DICOM.

    Only files whose name ends in ``.dcm`` or ``.dicom`` are tried (old exports and
    some PACS omit the Part 10 preamble). The first :data:`SNIFF_BYTES` bytes are parsed
    with ``force=True`` (never the whole file: parsing megabytes of zeros as DICOM takes
    seconds) and must contain at least one of SOP Class UID, Modality, Rows or Columns.

    Args:
        path: File to test.
        head: Its first bytes, if already read; the file is read again only when fewer
            than :data:`SNIFF_BYTES` were given.

    Returns:
        True if pydicom can read a plausible DICOM header from the first bytes.
    """
    if path.suffix.lower() not in _HEADERLESS_SUFFIXES:
        return False
    if head is None or len(head) < SNIFF_BYTES:
        try:
            with open(path, "rb") as f:
                head = f.read(SNIFF_BYTES)
        except OSError:
            return False
    return headerless_dicom_bytes(head[:SNIFF_BYTES])


def headerless_dicom_bytes(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file without preamble) parses as DICOM."""
    try:
        with reading("head"):
            ds = pydicom.dcmread(io.BytesIO(head[:SNIFF_BYTES]), force=True, stop_before_pixels=True)
            return any(k in ds for k in ("SOPClassUID", "Modality", "Rows", "Columns"))
    except ScanError:  # anything pydicom chokes on is "not DICOM"
        return False


class DicomReader:
    """Reads DICOM Part 10 files (and ``.dcm`` files without preamble)."""

    name = "dicom"

    def sniff(self, head: bytes, path: Path) -> bool:
        """True if ``b"DICM"`` sits at offset 128."""
        return head[_DICM_OFFSET : _DICM_OFFSET + 4] == b"DICM"

    def read(self, path: Path) -> Scan:
        """Read a DICOM file into a :class:`Scan`.

        Args:
            path: The file.

        Returns:
            ``(H, W)`` or ``(Z, H, W)`` float32 scan, ``source_format="dicom"``.

        Raises:
            ScanError: Corrupt or truncated file, no pixel data, structured report,
                absurd size, or a compression this installation cannot decode.
        """
        return read_dicom(path, path.name)


def read_dicom(source: str | os.PathLike[str] | BinaryIO, name: str) -> Scan:
    """Read one DICOM file (a path or an open binary file) into a :class:`Scan`.

    Args:
        source: The file, or its bytes as a binary file object (e.g. a zip member).
        name: Base name for messages and ``Scan.name``.

    Raises:
        ScanError: As :meth:`DicomReader.read`.
    """
    with reading(name):
        if isinstance(source, (str, os.PathLike)):
            with mapped_file(Path(os.fspath(source)), name) as fp:
                ds = parse_dicom(fp, name)
        else:
            ds = parse_dicom(source, name)
        return dataset_to_scan(ds, name)


class _MappedReader(io.RawIOBase):
    """A read-only, seekable file over a memory map: ``read(n)`` copies at most what the
    file holds from the current position (never the *declared* length of a damaged
    element), and pages nobody reads are never loaded."""

    def __init__(self, view: mmap.mmap | bytes) -> None:
        super().__init__()
        self._view = view
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        out = bytes(self._view[self._pos:end]) if end > self._pos else b""
        self._pos = max(self._pos, end)
        return out

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


@contextlib.contextmanager
def mapped_file(path: Path, name: str) -> Iterator[BinaryIO]:
    """The file as a memory-mapped binary file object (closed at the end of the block).

    pydicom reads each element with ``read(length)``; on an ordinary file that allocates
    the *declared* length first, so one damaged length field (e.g. 0xFFFFFFF0) would
    reserve gigabytes, and reading the whole file into memory first would hold all of it
    (a sparse 1.9 GiB file: 1.9 GiB). A map costs nothing for the parts not read.

    Raises:
        ScanError: The file is larger than :data:`MAX_FILE_BYTES` or cannot be mapped.
    """
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ScanError(f"{quote_name(name)} is larger than any MRI file "
                        f"({size / 2**30:.1f} GiB); it was not opened.")
    with open(path, "rb") as f:
        view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    try:
        yield _MappedReader(view)  # type: ignore[misc]
    finally:
        if isinstance(view, mmap.mmap):
            view.close()


def parse_dicom(fp: BinaryIO, name: str, *, stop_before_pixels: bool = False) -> Dataset:
    """Parse a DICOM data set up to its real end, keeping nothing of the file.

    Top-level elements must come in ascending tag order (DICOM PS3.5 7.1); parsing stops
    at the first one that does not. Zero padding after the data set reads as a stream of
    empty ``(0000,0000)`` elements, which pydicom would otherwise parse one by one (0.9 s
    a MiB); stopping there makes the time proportional to the real content. A zero run
    before the pixel data therefore leaves the pixels out, and the file is refused as
    incomplete. An element that declares more than :data:`MAX_ELEMENT_BYTES` is refused
    before it is read. The data set does not keep the file object (pydicom's
    ``FileDataset.buffer`` would hold the whole file's bytes for as long as the header).

    Args:
        fp: The file, seekable, positioned at its start.
        name: Base name for messages.
        stop_before_pixels: Stop at the pixel data (headers only).

    Raises:
        ScanError: Not parseable as DICOM, or an element too large.
    """
    last = [-1]

    def stop(tag: int, vr: str | None, length: int) -> bool:  # noqa: ARG001
        if tag <= last[0] or (stop_before_pixels and tag == _PIXEL_DATA_TAG):
            return True
        if length != 0xFFFFFFFF and length > MAX_ELEMENT_BYTES:
            raise ScanError(f"{quote_name(name)} is damaged: one of its elements claims "
                            f"{length / 2**20:,.0f} MiB, more than any scan holds. Please copy or "
                            "export it again.")
        last[0] = tag
        return False

    try:
        ds = read_partial(fp, stop, force=True)
    except (ScanError, *PASS_THROUGH, MemoryError):
        raise
    except BaseException as e:  # noqa: BLE001 - pydicom raises many kinds on bad files
        raise ScanError(_unreadable(name)) from e
    ds.buffer = None
    if not isinstance(ds.filename, str):
        ds.filename = None
    return ds


def _unreadable(name: str) -> str:
    return (f"{quote_name(name)} could not be read as DICOM: the file is damaged or "
            "incomplete (for example cut short during copying). Please copy or "
            "export it again.")


def dataset_to_scan(ds: Dataset, name: str) -> Scan:
    """Check a parsed dataset's header, decode its pixels and build the :class:`Scan`.

    Args:
        ds: The dataset, read with its pixel data.
        name: Base name for messages and ``Scan.name``.

    Returns:
        ``(H, W)`` or ``(Z, H, W)`` float32 scan (pixel values are not yet checked:
        :func:`~preprocessing.scan.check_pixels` does that for the whole scan).

    Raises:
        ScanError: As :meth:`DicomReader.read`.
    """
    with reading(name):
        try:
            return _read(ds, name)
        except (ScanError, *PASS_THROUGH, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001 - header values of any type
            raise ScanError(_unreadable(name)) from e


def _read(ds: Dataset, name: str) -> Scan:
    q = quote_name(name)
    _reject_non_images(ds, q)

    rows, cols = ds.get("Rows"), ds.get("Columns")
    if rows is None or cols is None:
        raise ScanError(
            f"{q} does not state its image size (Rows/Columns are missing); "
            "the file is damaged or not a standard DICOM image."
        )
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    shape = (frames, int(rows), int(cols)) if frames > 1 else (int(rows), int(cols))
    check_dimensions(shape, name, samples=samples)  # before any pixel is decoded

    tsyntax = _transfer_syntax(ds)
    _require_decoder(tsyntax, q)
    _check_frames(ds, tsyntax, frames, samples, q)
    try:
        stored = ds.pixel_array
    except (ScanError, *PASS_THROUGH, MemoryError):
        raise
    except BaseException as e:  # noqa: BLE001 - decoder plug-ins can panic (BaseException)
        raise ScanError(
            f"{q} is damaged or incomplete: its image data could not be decoded "
            f"(stored as '{transfer_syntax_name(tsyntax)}'). Please copy or export "
            "it again."
        ) from e

    expected = shape + ((samples,) if samples > 1 else ())
    if stored.shape != expected:
        raise ScanError(
            f"{q} is damaged: its image data does not match the size stated in its "
            "header."
        )

    tags = _safe_tags(ds)
    tags["TransferSyntax"] = transfer_syntax_name(tsyntax)
    tags["original_dtype"] = str(stored.dtype.newbyteorder("="))

    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric == "PALETTE COLOR":
        data = rgb_to_grey(apply_color_lut(stored, ds))
        tags["converted_from"] = "palette"
    elif samples >= 3:
        # pydicom has already converted YBR_FULL(_422) to RGB (raw=False).
        data = rgb_to_grey(stored)
        tags["converted_from"] = "rgb"
    else:
        data, voi = _grey_pipeline(stored, ds, frames)
        tags["voi"] = voi
        if photometric == "MONOCHROME1":
            data = (data.max() + data.min()) - data
            tags["inverted"] = "MONOCHROME1"

    coding = unchecked_coding(str(tsyntax))
    # Said, not refused: an intact JPEG 2000 / JPEG-LS frame is indistinguishable from one
    # with changed bytes inside its coded data (docs/reliability.md), so the reader can only
    # tell the user what was and was not verified.
    notes = (f"Its pixels are stored as {coding}, which carries no checksum: the file's structure was "
             "checked, but changed bytes inside the coded image cannot be detected. If the image looks "
             "wrong, export it again uncompressed.",) if coding else ()
    return Scan(
        data=np.asarray(data, dtype=np.float32),
        spacing=_spacing(ds, frames),
        orientation=_orientation(ds),
        source_format="dicom",
        tags=tags,
        name=name,
        notes=notes,
    )


def _check_frames(ds: Dataset, tsyntax: UID, frames: int, samples: int, q: str) -> None:
    """Refuse compressed frames that are cut short or structurally damaged."""
    if not tsyntax.is_encapsulated or "PixelData" not in ds:
        return
    try:
        chunks = list(generate_frames(ds.PixelData, number_of_frames=frames))
    except (ScanError, *PASS_THROUGH, MemoryError):
        raise
    except BaseException as e:  # noqa: BLE001
        raise ScanError(
            f"{q} is damaged: its compressed image data cannot be split into frames. "
            "Please copy or export it again."
        ) from e
    if len(chunks) != frames:
        problem = f"it holds {len(chunks)} of the {frames} frames its header announces"
    else:
        problem = frame_problem(chunks, str(tsyntax), rows=int(ds.Rows), cols=int(ds.Columns),
                                samples=samples, bits_allocated=int(ds.get("BitsAllocated") or 8))
    if problem:
        raise ScanError(
            f"{q} is damaged or incomplete: {problem}, so part of the image would be "
            "missing or wrong. Please copy or export it again."
        )


def _reject_non_images(ds: Dataset, q: str) -> None:
    """Explain objects that are not images: reports, DICOMDIRs, anything without pixels."""
    meta = getattr(ds, "file_meta", None) or Dataset()
    sop = str(ds.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID") or "")
    if sop.startswith(_SR_PREFIX) or str(ds.get("Modality", "")).upper() in ("SR", "KO"):
        raise ScanError(
            f"{q} is a DICOM structured report (a document such as measurements or a "
            "key-image note), not an image. Please choose an image file from the MRI "
            "series instead."
        )
    if sop == _DICOMDIR_UID:
        raise ScanError(
            f"{q} is a DICOMDIR (the index of a CD/DVD or folder), not an image. "
            "Please open one of the image files it lists."
        )
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        kind = UID(sop).name if sop and UID(sop).is_valid else ""
        if "Image Storage" in kind or any(k in ds for k in ("Rows", "Columns", "BitsAllocated")):
            raise ScanError(
                f"{q} is incomplete: it describes an image but its image data is missing "
                "(the file was probably cut short during copying or download). Please "
                "copy or export it again."
            )
        what = f" It is a '{kind}' object." if kind and kind != sop else ""
        raise ScanError(
            f"{q} contains no image (no pixel data) — it may be a report, a "
            f"presentation state or a treatment plan.{what} Please choose an image "
            "file from the MRI series instead."
        )


def _transfer_syntax(ds: Dataset) -> UID:
    """The file's transfer syntax, inferred from how it was parsed when not stated."""
    meta = ds.file_meta
    tsyntax = meta.get("TransferSyntaxUID")
    if tsyntax:
        return UID(str(tsyntax))
    implicit, little = ds.original_encoding
    if implicit:
        uid = ImplicitVRLittleEndian
    else:
        uid = ExplicitVRLittleEndian if little in (True, None) else ExplicitVRBigEndian
    meta.TransferSyntaxUID = uid  # pydicom needs it to locate and decode the pixels
    return uid


def _require_decoder(tsyntax: UID, q: str) -> None:
    """Raise ScanError if no installed plugin can decode ``tsyntax``."""
    try:
        available = get_decoder(tsyntax).is_available
    except (NotImplementedError, ValueError):
        available = False
    if not available:
        raise ScanError(
            f"{q} uses the compression '{transfer_syntax_name(tsyntax)}' which this "
            "installation cannot decode. Please export the scan uncompressed "
            "(Explicit VR Little Endian) or with JPEG 2000, JPEG-LS or RLE compression."
        )


def _functional_rescale(ds: Dataset, frames: int) -> list[tuple[float, float]] | None:
    """Slope/intercept per frame from enhanced functional groups, if present."""
    shared = _group_item(
        ds.get("SharedFunctionalGroupsSequence"), 0, "PixelValueTransformationSequence"
    )
    if shared is not None and "RescaleSlope" in shared:
        pair = (float(shared.RescaleSlope), float(shared.get("RescaleIntercept", 0.0)))
        return [pair] * frames
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None or len(per_frame) != frames:
        return None
    pairs = []
    for i in range(frames):
        item = _group_item(per_frame, i, "PixelValueTransformationSequence")
        if item is None or "RescaleSlope" not in item:
            return None
        pairs.append((float(item.RescaleSlope), float(item.get("RescaleIntercept", 0.0))))
    return pairs


def _grey_pipeline(stored: np.ndarray, ds: Dataset, frames: int) -> tuple[np.ndarray, str]:
    """Modality LUT then VOI LUT/window. Returns the values and which VOI was used."""
    if ds.get("ModalityLUTSequence") or ("RescaleSlope" in ds and "RescaleIntercept" in ds):
        data = apply_modality_lut(stored, ds)
    else:
        pairs = _functional_rescale(ds, frames)
        data = stored.astype(np.float64)
        if pairs is not None:
            slopes = np.array([p[0] for p in pairs]).reshape((-1,) + (1,) * (data.ndim - 1))
            intercepts = np.array([p[1] for p in pairs]).reshape(slopes.shape)
            data = data * (slopes if frames > 1 else slopes[0]) + (
                intercepts if frames > 1 else intercepts[0]
            )
    voi = "none"
    if ds.get("VOILUTSequence") or ("WindowCenter" in ds and "WindowWidth" in ds):
        try:
            data = apply_voi_lut(data, ds, index=0, prefer_lut=True)
            voi = "lut" if ds.get("VOILUTSequence") else "window"
        except (ValueError, TypeError, IndexError, AttributeError):
            voi = "invalid window ignored"
    return np.asarray(data, dtype=np.float64), voi


def _group_item(seq: Any, index: int, keyword: str) -> Dataset | None:
    """``seq[index].<keyword>[0]`` of a functional-groups sequence, or None."""
    try:
        return seq[index][keyword][0]
    except (TypeError, IndexError, KeyError, AttributeError):
        return None


def _positive(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _spacing(ds: Dataset, frames: int) -> tuple[float, ...]:
    """``(dz, dy, dx)`` or ``(dy, dx)`` in mm from the header, 1.0 where unknown."""
    measures = _group_item(
        ds.get("SharedFunctionalGroupsSequence"), 0, "PixelMeasuresSequence"
    )
    sources = [ds] + ([measures] if measures is not None else [])
    dy = dx = dz = None
    for src in sources:
        ps = src.get("PixelSpacing") or src.get("ImagerPixelSpacing")
        if dy is None and ps is not None and len(ps) == 2:
            dy, dx = _positive(ps[0]), _positive(ps[1])
        if dz is None:
            dz = _positive(src.get("SpacingBetweenSlices")) or _positive(
                src.get("SliceThickness")
            )
    in_plane = (dy or 1.0, dx or 1.0)
    return ((dz or 1.0),) + in_plane if frames > 1 else in_plane


def _orientation(ds: Dataset) -> str:
    if "ImageOrientationPatient" in ds:
        return "LPS/patient"
    for seq in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        if _group_item(ds.get(seq), 0, "PlaneOrientationSequence") is not None:
            return "LPS/patient"
    return "unknown"


def _safe_tags(ds: Dataset) -> dict[str, str]:
    """Whitelisted, non-identifying header values as strings."""
    tags: dict[str, str] = {}
    for keyword in _TAG_KEYWORDS:
        value = ds.get(keyword)
        if value is not None and str(value).strip():
            tags[keyword] = str(value).strip()
    sop = str(ds.get("SOPClassUID") or "")
    if sop and UID(sop).name != sop:
        tags["SOPClass"] = UID(sop).name
    return tags
