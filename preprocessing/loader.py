"""``load_scan``: the one entry point from a scan file to a :class:`Scan`.

Checks run in a fixed order, each with its own plain-language
:class:`~preprocessing.errors.ScanError`:

1. the path exists and is a file (not a folder);
2. the file is not empty;
3. the format is recognised from the first bytes (magic numbers), not from the
   extension: a DICOM named ``.png`` loads as DICOM (see :mod:`preprocessing.readers`);
4. the format's reader decodes it (with its own header checks: size limits before
   decoding, no pixel data, structured reports, unsupported compression, 4-D series…);
5. checks common to all formats (:func:`~preprocessing.scan.check_pixels`): sane size,
   finite values, not constant;
6. the requested slice, if any, exists.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ScanError, quote_name
from .readers import HEAD_BYTES, find_reader
from .scan import Scan, check_pixels

__all__ = ["load_scan"]

_EXPECTED_BY_SUFFIX = {
    ".dcm": "a DICOM file",
    ".dicom": "a DICOM file",
    ".nii": "a NIfTI file",
    ".gz": "a compressed NIfTI file",
    ".png": "a PNG image",
    ".jpg": "a JPEG image",
    ".jpeg": "a JPEG image",
}


def load_scan(path: str | os.PathLike[str], *, slice_index: int | None = None) -> Scan:
    """Read a DICOM, NIfTI, PNG or JPEG scan.

    Args:
        path: The scan file. Its extension is only a hint; the content decides.
        slice_index: For volumes, the slice to make the default (``0 <= slice_index <
            Z``); ``None`` keeps the automatic choice (the slice with the most signal).
            For 2-D images only ``None`` or 0 are valid.

    Returns:
        A :class:`Scan` with float32 ``data`` of shape ``(H, W)`` or ``(Z, H, W)``.

    Raises:
        ScanError: For every file that cannot be used, with a message naming the file
            (base name only) and saying what is wrong.
    """
    p = Path(os.fspath(path))
    q = quote_name(p)
    try:
        if not p.exists():
            raise ScanError(f"{q} was not found. Please check the file name and folder.")
        if p.is_dir():
            raise ScanError(
                f"{q} is a folder, not a file. Please choose a single scan file "
                "(one DICOM file, a .nii/.nii.gz volume, or a PNG/JPEG image)."
            )
        if not p.is_file():
            raise ScanError(f"{q} is not a regular file. Please choose a scan file.")
        if p.stat().st_size == 0:
            raise ScanError(
                f"{q} is empty (0 bytes); the copy or download probably failed. "
                "Please copy it again."
            )
        with open(p, "rb") as f:
            head = f.read(HEAD_BYTES)
    except PermissionError as e:
        raise ScanError(f"{q} could not be opened: permission denied.") from e
    except OSError as e:
        raise ScanError(f"{q} could not be opened ({e.strerror or 'read error'}).") from e

    reader = find_reader(head, p)
    if reader is None:
        raise ScanError(_unknown_format_message(p, head))
    scan = reader.read(p)
    check_pixels(scan.data, p.name)

    if slice_index is not None:
        scan.image(slice_index)  # raises a ScanError naming the valid range
        if scan.is_volume:
            scan.slice_index = int(slice_index)
    return scan


def _unknown_format_message(p: Path, head: bytes) -> str:
    q = quote_name(p)
    message = f"{q} is not a recognised scan format (DICOM, NIfTI, PNG or JPEG)."
    if head[:2] == b"\x1f\x8b":
        return message + (
            " It is a compressed (gzip) file that is damaged or does not contain a "
            "NIfTI image."
        )
    expected = _EXPECTED_BY_SUFFIX.get(p.suffix.lower())
    if expected:
        message += f" Its name suggests {expected}, but its content is not."
    return message + " Please export the scan again in one of these formats."
