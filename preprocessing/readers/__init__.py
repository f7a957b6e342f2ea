"""One reader per scan format, chosen by content (magic bytes), not by extension.

Every reader follows the small :class:`ScanReader` protocol (in the spirit of MONAI's
``ImageReader``): ``sniff`` looks at the first bytes of a file and says whether the
reader recognises it; ``read`` returns a :class:`~preprocessing.scan.Scan` or raises
:class:`~preprocessing.errors.ScanError`. :func:`find_reader` asks each in turn.

Recognised signatures:

========  =====================================================================
DICOM     ``b"DICM"`` at offset 128 (Part 10 file); or, only for names ending in
          ``.dcm``/``.dicom``, a file without preamble that pydicom can parse
NIfTI     ``sizeof_hdr`` 348 (NIfTI-1) or 540 (NIfTI-2) at offset 0, either byte
          order, plain or inside gzip (``1f 8b``)
PNG       ``89 50 4E 47 0D 0A 1A 0A``
JPEG      ``FF D8 FF``
========  =====================================================================
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ..scan import Scan
from .dicom import DicomReader, looks_like_headerless_dicom
from .nifti import NiftiReader, write_nifti_slice, write_nifti_volume
from .raster import RasterReader

__all__ = [
    "READERS",
    "DicomReader",
    "NiftiReader",
    "RasterReader",
    "ScanReader",
    "find_reader",
    "write_nifti_slice",
    "write_nifti_volume",
]

#: Bytes at the start of a file that :func:`find_reader` needs to see.
HEAD_BYTES: int = 1024


class ScanReader(Protocol):
    """What a format reader provides."""

    #: Short format family name, e.g. ``"dicom"``.
    name: str

    def sniff(self, head: bytes, path: Path) -> bool:
        """Whether the file's first bytes (``head``, up to 1 KiB) belong to this format."""
        ...

    def read(self, path: Path) -> Scan:
        """Read the file; raise ScanError with a plain message if it cannot be used."""
        ...


#: Readers in the order they are asked.
READERS: tuple[ScanReader, ...] = (DicomReader(), NiftiReader(), RasterReader())


def find_reader(head: bytes, path: Path) -> ScanReader | None:
    """Return the reader that recognises a file, or ``None``.

    Args:
        head: The first :data:`HEAD_BYTES` bytes of the file (fewer if it is shorter).
        path: The file, for readers that need to look further (gzip, DICOM without
            preamble).

    Returns:
        The first reader whose signature matches; failing that, the DICOM reader for a
        ``.dcm`` file without preamble that pydicom can parse; else ``None``.
    """
    for reader in READERS:
        if reader.sniff(head, path):
            return reader
    if looks_like_headerless_dicom(path):
        return READERS[0]
    return None
