"""Integrity checks of compressed DICOM frames, before they are decoded.

Some decoders fill whatever is missing from a damaged frame with grey and report
nothing (libjpeg pads a truncated JPEG; OpenJPEG decodes a JPEG 2000 stream whose
tile-parts are cut or misplaced). A scan with a missing part would then be classified
as if it were whole. These checks read only the frame's structure, which every intact
frame has:

=============  ===========================================================================
JPEG, JPEG-LS  starts with SOI (``FF D8``) and ends with EOI (``FF D9``), after the
               zero byte DICOM may add to make a fragment even
JPEG 2000      starts with SOC (``FF 4F``) and ``SIZ`` (or is a JP2 file); ``SIZ`` states
               the DICOM image's size and samples; the tile-parts' lengths (``Psot``)
               chain from the first ``SOT`` to EOC (``FF D9``) at the end
RLE            a 64-byte header whose segment count matches the samples and bytes per
               pixel, with increasing segment offsets inside the frame
=============  ===========================================================================

They cannot see every error: bytes changed inside the entropy-coded data of a JPEG 2000
frame leave its structure intact (the format carries no checksum) and decode to wrong
pixels without any sign.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable

__all__ = ["frame_problem", "JPEG_SYNTAXES", "J2K_SYNTAXES", "RLE_SYNTAX"]

JPEG_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
})
J2K_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
})
RLE_SYNTAX = "1.2.840.10008.1.2.5"
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


def _trim(frame: bytes) -> bytes:
    """The frame without the trailing zero padding of an odd-length fragment."""
    end = len(frame)
    while end > 0 and frame[end - 1] == 0 and len(frame) - end < 16:
        end -= 1
    return frame[:end]


def _jpeg_problem(frame: bytes) -> str | None:
    data = _trim(frame)
    if not data.startswith(b"\xff\xd8"):
        return "a JPEG frame does not start with a JPEG header"
    if not data.endswith(b"\xff\xd9"):
        return "a JPEG frame is cut short (its end marker is missing)"
    return None


def _j2k_problem(frame: bytes, rows: int, cols: int, samples: int) -> str | None:
    data = _trim(frame)
    if data.startswith(_JP2_SIGNATURE):  # JP2 wrapper: check the end of the codestream only
        return None if data.endswith(b"\xff\xd9") else "a JPEG 2000 frame is cut short"
    if not data.startswith(b"\xff\x4f\xff\x51") or len(data) < 42:
        return "a JPEG 2000 frame does not start with a JPEG 2000 header"
    xsiz, ysiz, xosiz, yosiz = struct.unpack(">IIII", data[8:24])
    csiz = struct.unpack(">H", data[40:42])[0]
    if (xsiz - xosiz, ysiz - yosiz) != (cols, rows) or csiz != samples:
        return "a JPEG 2000 frame does not hold the image size its header states"
    pos = 2  # walk the main header's marker segments to the first tile-part
    while pos + 4 <= len(data) and data[pos:pos + 2] != b"\xff\x90":
        if data[pos] != 0xFF:
            return "a JPEG 2000 frame has a damaged header"
        pos += 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
    while True:
        if data[pos:pos + 2] == b"\xff\xd9" and pos + 2 == len(data):
            return None
        if data[pos:pos + 2] != b"\xff\x90" or pos + 12 > len(data):
            return "a JPEG 2000 frame is cut short or its tile data is out of place"
        psot = struct.unpack(">I", data[pos + 6:pos + 10])[0]
        if psot == 0:  # the last tile-part runs to the end marker
            return None if data.endswith(b"\xff\xd9") else "a JPEG 2000 frame is cut short"
        if psot < 14:
            return "a JPEG 2000 frame has a damaged tile header"
        pos += psot


def _rle_problem(frame: bytes, samples: int, bits_allocated: int) -> str | None:
    if len(frame) < 64:
        return "an RLE frame is shorter than its header"
    header = struct.unpack("<16I", frame[:64])
    count, offsets = header[0], header[1:1 + header[0]] if header[0] <= 15 else ()
    if count != samples * max(bits_allocated // 8, 1) or not offsets:
        return "an RLE frame has a damaged header"
    if offsets[0] != 64 or any(b <= a for a, b in zip(offsets, offsets[1:])) or offsets[-1] >= len(frame):
        return "an RLE frame has a damaged header"
    return None


def frame_problem(frames: Iterable[bytes], tsyntax: str, *, rows: int, cols: int, samples: int,
                  bits_allocated: int) -> str | None:
    """Describe the first structural problem of the compressed frames, or return ``None``.

    Args:
        frames: The encapsulated frames (bytes of each).
        tsyntax: Transfer syntax UID; other syntaxes than JPEG, JPEG-LS, JPEG 2000 and
            RLE are not checked.
        rows, cols, samples, bits_allocated: The DICOM header's image description.

    Returns:
        A short plain-language phrase (e.g. "a JPEG frame is cut short (its end marker
        is missing)"), or ``None`` when every frame looks intact.
    """
    tsyntax = str(tsyntax)
    for frame in frames:
        frame = bytes(frame)
        if tsyntax in JPEG_SYNTAXES:
            problem = _jpeg_problem(frame)
        elif tsyntax in J2K_SYNTAXES:
            problem = _j2k_problem(frame, rows, cols, samples)
        elif tsyntax == RLE_SYNTAX:
            problem = _rle_problem(frame, samples, bits_allocated)
        else:
            return None
        if problem:
            return problem
    return None
