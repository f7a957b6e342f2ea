"""``load_scan``: the one entry point from a scan file (or a DICOM series) to a :class:`Scan`.

A folder, a ``.zip`` archive, a ``DICOMDIR`` or several files given together are read
as a DICOM series (:mod:`preprocessing.readers.series`). For one file, checks run in a
fixed order, each with its own plain-language :class:`~preprocessing.errors.ScanError`:

1. the path exists and is a regular file;
2. the file is not empty;
3. the format is recognised from the first bytes (magic numbers), not from the
   extension: a DICOM named ``.png`` loads as DICOM (see :mod:`preprocessing.readers`);
4. the format's reader decodes it (with its own header checks: size limits before
   decoding, no pixel data, structured reports, unsupported compression, 4-D series…);
5. checks common to all formats (:func:`~preprocessing.scan.check_pixels`): sane size,
   finite values, not constant;
6. the requested slice, if any, exists.

Steps 4 and 5 run inside :func:`preprocessing.guard.reading`: whatever a decoder
raises, a Rust panic included, reaches the caller as a ScanError, and library warnings
and messages stay off the terminal.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence, Union

from .archive import is_zip
from .errors import ScanError, quote_name
from .guard import reading
from .readers import HEAD_BYTES, find_reader
from .readers.series import read_series
from .scan import Scan, check_pixels

__all__ = ["ScanSource", "group_uploads", "load_scan", "load_series"]

#: What :func:`load_scan` accepts: one path (file, folder, zip) or several files.
ScanSource = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]

_EXPECTED_BY_SUFFIX = {
    ".dcm": "a DICOM file",
    ".dicom": "a DICOM file",
    ".nii": "a NIfTI file",
    ".gz": "a compressed NIfTI file",
    ".png": "a PNG image",
    ".jpg": "a JPEG image",
    ".jpeg": "a JPEG image",
}


def load_scan(path: ScanSource, *, slice_index: int | None = None,
              series: int | str | None = None) -> Scan:
    """Read a DICOM, NIfTI, PNG or JPEG scan, or a DICOM series.

    Args:
        path: The scan file (its extension is only a hint; the content decides); or a
            folder, ``.zip`` archive or ``DICOMDIR`` of a DICOM series; or several DICOM
            files of one series (a list or tuple of paths).
        slice_index: For volumes, the slice to make the default (``0 <= slice_index <
            Z``); ``None`` keeps the automatic choice (the slice with the most signal).
            For 2-D images only ``None`` or 0 are valid.
        series: For a folder/zip/files holding several series: the series' number in
            the listing the ScanError gives (1-based) or its description. Not used for
            a single NIfTI, PNG or JPEG file.

    Returns:
        A :class:`Scan` with float32 ``data`` of shape ``(H, W)`` or ``(Z, H, W)``.

    Raises:
        ScanError: For every input that cannot be used, with a message naming the file
            (base name only) and saying what is wrong.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        paths = list(path)
        if len(paths) != 1:
            return load_series(paths, slice_index=slice_index, series=series)
        path = paths[0]
    p = _given_path(path)
    kind = _kind(p)
    if kind == "folder" or p.name.upper() == "DICOMDIR":
        return load_series(p.parent if p.name.upper() == "DICOMDIR" and kind == "file" else p,
                           slice_index=slice_index, series=series)
    head = _head(p)
    if is_zip(head):
        return load_series(p, slice_index=slice_index, series=series)
    reader = find_reader(head, p)
    if reader is None:
        raise ScanError(_unknown_format_message(p, head))
    with reading(p.name):
        scan = reader.read(p)
        check_pixels(scan.data, p.name)
    return _select(scan, slice_index)


def load_series(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
                slice_index: int | None = None, series: int | str | None = None) -> Scan:
    """Read one DICOM series into a volume: a folder, a zip archive or several files.

    See :mod:`preprocessing.readers.series` for how slices are grouped, sorted and
    checked (localisers and other series are left out and listed in ``Scan.notes``).

    Args:
        paths: A folder (with or without a ``DICOMDIR``), a ``.zip`` archive, or the
            DICOM files of the series.
        slice_index: As for :func:`load_scan`.
        series: Which series when there are several: its number in the listing (1-based)
            or its *Series Description*.

    Returns:
        ``(Z, H, W)`` scan sorted along the slice normal (2-D for a one-image series).

    Raises:
        ScanError: Nothing usable, several series without a choice, gaps, mixed sizes or
            orientations, damaged slices (message naming the folder/archive/first file).
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        p = _given_path(paths)
        if _kind(p) == "missing":
            raise ScanError(f"{quote_name(p)} was not found. Please check the name and folder.")
        source: Path | list[Path] = p
        name = p.name
        if _kind(p) != "folder":
            _head(p)  # the usual checks on a file (exists, readable, not empty)
    else:
        source = [_given_path(x) for x in paths]
        if not source:
            raise ScanError("No files were given. Please choose a scan file or a DICOM series.")
        for f in source:
            _head(f)
        name = source[0].name
    with reading(name):
        scan = read_series(source, series=series)
        check_pixels(scan.data, scan.name or name)
    return _select(scan, slice_index)


def group_uploads(paths: Sequence[str | os.PathLike[str]]) -> list[str | list[str]]:
    """Split files given together (several uploads) into what is read together.

    Only DICOM files form a series: they stay together as one list (at the place of the
    first of them). Every other file — a JPEG, a PNG, a NIfTI volume, a zip, something
    unreadable — is a source of its own, so that several single images given together are
    each read on their own instead of being refused as "no DICOM series".

    Args:
        paths: The files, in the order given.

    Returns:
        Sources for :func:`load_scan`, in the order given: a path, or a list of DICOM paths.
    """
    groups: list[str | list[str]] = []
    dicom: list[str] = []
    for raw in paths:
        path = os.fspath(raw)
        if _is_dicom_file(Path(path)):
            if not dicom:
                groups.append(dicom)
            dicom.append(path)
        else:
            groups.append(path)
    return [g[0] if isinstance(g, list) and len(g) == 1 else g for g in groups]


def _is_dicom_file(p: Path) -> bool:
    try:
        if not p.is_file():
            return False
        with open(p, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        return False
    reader = find_reader(head, p) if not is_zip(head) else None
    return reader is not None and reader.name == "dicom"


def _select(scan: Scan, slice_index: int | None) -> Scan:
    if slice_index is not None:
        scan.image(slice_index)  # raises a ScanError naming the valid range
        if scan.is_volume:
            scan.slice_index = int(slice_index)
    return scan


def _given_path(path: str | bytes | os.PathLike) -> Path:
    """The path as a :class:`Path`; an empty one is refused (``Path("")`` would be the
    current folder, read as a series without anyone asking for it)."""
    try:
        text = os.fsdecode(path)
    except (TypeError, ValueError) as e:
        raise ScanError("The file name could not be understood. Please choose the file again.") from e
    if not text.strip():
        raise ScanError("No file was given (the file name is empty). Please choose a scan file.")
    if "\0" in text:
        raise ScanError(f"{quote_name(text)} is not a valid file name. Please choose the file again.")
    return Path(text)


def _kind(p: Path) -> str:
    """``"folder"``, ``"file"`` (anything else that exists) or ``"missing"``.

    Raises:
        ScanError: The path cannot be examined: a name too long for the file system, a
            folder on the way that this user may not open, an I/O error.
    """
    try:
        if p.is_dir():
            return "folder"
        return "file" if p.exists() else "missing"
    except PermissionError as e:
        raise ScanError(f"{quote_name(p)} could not be opened: permission denied (the file or a "
                        "folder above it may not be read by this user).") from e
    except OSError as e:
        raise ScanError(f"{quote_name(p)} could not be opened ({e.strerror or 'file system error'}). "
                        "Please check the name and folder.") from e


def _head(p: Path) -> bytes:
    """The first bytes of a regular, non-empty file (ScanError otherwise)."""
    q = quote_name(p)
    if _kind(p) == "missing":
        raise ScanError(f"{q} was not found. Please check the file name and folder.")
    try:
        if not p.exists():
            raise ScanError(f"{q} was not found. Please check the file name and folder.")
        if p.is_dir():
            raise ScanError(f"{q} is a folder; give it on its own to read it as a DICOM series.")
        if not p.is_file():
            raise ScanError(f"{q} is not a regular file. Please choose a scan file.")
        if p.stat().st_size == 0:
            raise ScanError(
                f"{q} is empty (0 bytes); the copy or download probably failed. "
                "Please copy it again."
            )
        with open(p, "rb") as f:
            return f.read(HEAD_BYTES)
    except PermissionError as e:
        raise ScanError(f"{q} could not be opened: permission denied.") from e
    except OSError as e:
        raise ScanError(f"{q} could not be opened ({e.strerror or 'read error'}).") from e


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
