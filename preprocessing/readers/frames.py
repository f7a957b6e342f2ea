"""Integrity checks of compressed DICOM frames, before they are decoded.

Some decoders fill whatever is missing from a damaged frame with grey and report
nothing (libjpeg pads a truncated JPEG; OpenJPEG decodes a JPEG 2000 stream whose
tile-parts are cut or misplaced). A scan with a missing part would then be classified
as if it were whole. These checks read only the frame's structure, which every intact
frame has:

=============  ===========================================================================
JPEG, JPEG-LS  starts with SOI (``FF D8``) and ends with EOI (``FF D9``), after the
               zero byte DICOM may add to make a fragment even
JPEG (Huffman  the entropy-coded data is decoded without making pixels: every Huffman code
baseline,      valid, no block beyond its 64 coefficients, restart markers in order, each
extended,      restart interval holding exactly its MCUs and ending in padding bits (ones)
lossless)
JPEG 2000      starts with SOC (``FF 4F``) and ``SIZ`` (or is a JP2 file); ``SIZ`` states
               the DICOM image's size and samples; the tile-parts' lengths (``Psot``)
               chain from the first ``SOT`` to EOC (``FF D9``) at the end
RLE            a 64-byte header whose segment count matches the samples and bytes per
               pixel, with increasing segment offsets inside the frame; each segment's
               runs make up exactly one byte plane of the image
=============  ===========================================================================

They cannot see every error. JPEG 2000 and JPEG-LS carry no checksum and their coded data
has no structure to check short of decoding it: bytes changed inside it decode to other,
valid-looking pixels. In Huffman-coded JPEG a changed byte that keeps every code valid
and the bit count exact (the code resynchronises within a block) changes that block only;
measured rates for each codec are in ``docs/reliability.md``
(``scripts/make_damaged_frames.py``).
"""
from __future__ import annotations

import struct
from collections.abc import Iterable

__all__ = ["frame_problem", "unchecked_coding", "JPEG_LS_SYNTAXES", "JPEG_SYNTAXES", "J2K_SYNTAXES", "RLE_SYNTAX"]

JPEG_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
})
JPEG_LS_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"})
J2K_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
})
RLE_SYNTAX = "1.2.840.10008.1.2.5"
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


def unchecked_coding(tsyntax: str) -> str | None:
    """The name of the coding when a transfer syntax's coded data cannot be checked for
    damage (JPEG 2000, JPEG-LS: no checksum, no structure to verify short of decoding;
    only their framing is checked here), else ``None``."""
    if tsyntax in J2K_SYNTAXES:
        return "JPEG 2000"
    if tsyntax in JPEG_LS_SYNTAXES:
        return "JPEG-LS"
    return None


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


def _rle_problem(frame: bytes, rows: int, cols: int, samples: int, bits_allocated: int) -> str | None:
    if len(frame) < 64:
        return "an RLE frame is shorter than its header"
    header = struct.unpack("<16I", frame[:64])
    count, offsets = header[0], header[1:1 + header[0]] if header[0] <= 15 else ()
    if count != samples * max(bits_allocated // 8, 1) or not offsets:
        return "an RLE frame has a damaged header"
    if offsets[0] != 64 or any(b <= a for a, b in zip(offsets, offsets[1:])) or offsets[-1] >= len(frame):
        return "an RLE frame has a damaged header"
    ends = (*offsets[1:], len(frame))
    for start, end in zip(offsets, ends):
        if not _rle_segment_ok(frame, start, end, rows * cols):
            return "an RLE frame's compressed data is corrupt (its runs do not make up the image)"
    return None


def _rle_segment_ok(frame: bytes, start: int, end: int, expected: int) -> bool:
    """Whether the PackBits runs of one segment give exactly ``expected`` bytes and end with
    the segment (one padding byte allowed: segments are made even)."""
    i, out = start, 0
    while out < expected and i < end:
        header = frame[i]
        if header < 128:
            i += header + 2
            out += header + 1
        elif header > 128:
            i += 2
            out += 257 - header
        else:
            i += 1
    return out == expected and i <= end and end - i <= 1


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
            problem = _jpeg_problem(frame) or (None if tsyntax in JPEG_LS_SYNTAXES else _jpeg_entropy_problem(frame))
        elif tsyntax in J2K_SYNTAXES:
            problem = _j2k_problem(frame, rows, cols, samples)
        elif tsyntax == RLE_SYNTAX:
            problem = _rle_problem(frame, rows, cols, samples, bits_allocated)
        else:
            return None
        if problem:
            return problem
    return None


# ------------------------------------------------------- JPEG Huffman entropy data
#: Start-of-frame markers whose scans are Huffman coded and checked bit by bit:
#: baseline and extended DCT (C0, C1) and lossless (C3).
_HUFFMAN_SOF = {0xC0: "dct", 0xC1: "dct", 0xC3: "lossless"}


def _huffman_lookup(counts: bytes, symbols: bytes) -> list[int] | None:
    """A 16-bit lookup table: ``(code length << 8) | symbol`` for every 16-bit prefix,
    ``-1`` where no code starts; ``None`` when the table is not a valid prefix code."""
    table = [-1] * 65536
    code, k = 0, 0
    for length in range(1, 17):
        span = 1 << (16 - length)
        for _ in range(counts[length - 1]):
            if k >= len(symbols) or code >= (1 << length):
                return None
            start = code << (16 - length)
            table[start:start + span] = [(length << 8) | symbols[k]] * span
            code, k = code + 1, k + 1
        code <<= 1
    return table


class _Bits:
    """MSB-first reader over one entropy-coded segment (stuffed zero bytes removed)."""

    __slots__ = ("data", "pos", "acc", "nbits", "overrun")

    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.acc, self.nbits, self.overrun = data, 0, 0, 0, 0

    def _fill(self) -> None:
        data, n = self.data, len(self.data)
        while self.nbits <= 24:
            if self.pos < n:
                self.acc = (self.acc << 8) | data[self.pos]
            else:
                self.acc <<= 8
                self.overrun += 8
            self.pos += 1
            self.nbits += 8

    def peek16(self) -> int:
        if self.nbits < 16:
            self._fill()
        return (self.acc >> (self.nbits - 16)) & 0xFFFF

    def skip(self, count: int) -> None:
        if self.nbits < count:
            self._fill()
        self.nbits -= count
        self.acc &= (1 << self.nbits) - 1

    def take(self, count: int) -> int:
        if self.nbits < count:
            self._fill()
        self.nbits -= count
        value = self.acc >> self.nbits
        self.acc &= (1 << self.nbits) - 1
        return value

    def rest_ok(self) -> bool:
        """Whether the segment ends here: fewer than 8 bits left, all ones (the padding)."""
        left = 8 * len(self.data) - (8 * self.pos - self.nbits)
        if not 0 <= left < 8:
            return False
        return left == 0 or self.data[-1] & ((1 << left) - 1) == (1 << left) - 1


def _segments(data: bytes, start: int) -> tuple[list[bytes], int] | None:
    """The entropy-coded data of a scan from ``start``: its restart intervals (stuffing
    removed) and the position of the marker that ends it; ``None`` if restart markers are
    out of order."""
    pieces: list[bytes] = []
    segments: list[bytes] = []
    i, expected = start, 0
    while True:
        j = data.find(b"\xff", i)
        if j < 0 or j + 1 >= len(data):
            return None
        pieces.append(data[i:j])
        nxt = data[j + 1]
        if nxt == 0x00:
            pieces.append(b"\xff")
            i = j + 2
        elif 0xD0 <= nxt <= 0xD7:
            if nxt - 0xD0 != expected:
                return None
            expected = (expected + 1) % 8
            segments.append(b"".join(pieces))
            pieces, i = [], j + 2
        elif nxt == 0xFF:
            i = j + 1
        else:
            segments.append(b"".join(pieces))
            return segments, j


def _scan_units(comps: list[tuple[int, int, int]], scan: list[int], width: int, height: int,
                block: int) -> tuple[int, list[int]]:
    """Number of MCUs in a scan and the component index of each unit of one MCU (a unit is
    an 8×8 block for DCT, a sample for lossless)."""
    hmax = max(c[1] for c in comps)
    vmax = max(c[2] for c in comps)
    if len(scan) == 1:
        _cid, h, v = comps[scan[0]]
        cols = -(-(-(-width * h // hmax)) // block)
        rows = -(-(-(-height * v // vmax)) // block)
        return cols * rows, [scan[0]]
    units = [k for k in scan for _ in range(comps[k][1] * comps[k][2])]
    return -(-width // (block * hmax)) * -(-height // (block * vmax)), units


def _decode_dct_block(bits: _Bits, dc: list[int], ac: list[int], dc_max: int, ac_max: int) -> int | None:
    """Decode one block's codes; return its DC difference (``None``: invalid codes)."""
    entry = dc[bits.peek16()]
    if entry < 0 or (entry & 0xFF) > dc_max:
        return None
    bits.skip(entry >> 8)
    size = entry & 0xFF
    diff = 0
    if size:
        diff = bits.take(size)
        if diff < 1 << (size - 1):
            diff -= (1 << size) - 1
    k = 1
    while k < 64:
        entry = ac[bits.peek16()]
        if entry < 0:
            return None
        bits.skip(entry >> 8)
        run, size = (entry >> 4) & 0xF, entry & 0xF
        if size == 0:
            if run != 15:
                return diff  # end of block
            k += 16
            if k > 64:
                return None
            continue
        k += run
        if k > 63 or size > ac_max:
            return None
        bits.skip(size)
        k += 1
    return diff


def _decode_lossless_sample(bits: _Bits, dc: list[int], _ac: list[int], *_limits: int) -> int | None:
    entry = dc[bits.peek16()]
    if entry < 0 or (entry & 0xFF) > 16:
        return None
    bits.skip(entry >> 8)
    if (entry & 0xFF) not in (0, 16):
        bits.skip(entry & 0xFF)
    return 0


def _jpeg_entropy_problem(frame: bytes) -> str | None:
    """Decode the Huffman-coded data of a JPEG (baseline, extended or lossless) without
    reconstructing pixels: every code must be valid, each restart interval must hold
    exactly its MCUs, and after the last one only the padding bits may remain. The format
    has no checksum; this catches bytes changed inside the entropy-coded data that
    decoders pass without a word (they stop, or resynchronise, and fill in)."""
    damaged = "the compressed data of a JPEG frame is corrupt (its coded values do not add up)"
    data = _trim(frame)
    tables: dict[tuple[int, int], list[int]] = {}
    comps: list[tuple[int, int, int]] = []
    quant: dict[int, int] = {}
    comp_quant: list[int] = []
    kind, precision, width, height, interval = None, 8, 0, 0, 0
    pos = 2
    try:
        while pos + 4 <= len(data):
            if data[pos] != 0xFF:
                return damaged
            marker = data[pos + 1]
            if marker == 0xFF:
                pos += 1
                continue
            if marker == 0xD9:
                return None
            length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
            body = data[pos + 4:pos + 2 + length]
            if length < 2 or len(body) != length - 2:
                return damaged
            if marker == 0xF7 or (0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)):
                if marker not in _HUFFMAN_SOF:
                    return None  # progressive, arithmetic or JPEG-LS: not checked here
                kind = _HUFFMAN_SOF[marker]
                precision, height, width, n = body[0], *struct.unpack(">HH", body[1:5]), body[5]
                comps = [(body[6 + 3 * i], body[7 + 3 * i] >> 4, body[7 + 3 * i] & 15) for i in range(n)]
                comp_quant = [body[8 + 3 * i] for i in range(n)]
                if not width or not height or not comps or any(h < 1 or v < 1 for _c, h, v in comps):
                    return damaged
            elif marker == 0xC4:
                i = 0
                while i < len(body):
                    cls_id = body[i]
                    counts = body[i + 1:i + 17]
                    total = sum(counts)
                    table = _huffman_lookup(counts, body[i + 17:i + 17 + total])
                    if table is None or len(counts) != 16:
                        return damaged
                    tables[(cls_id >> 4, cls_id & 15)] = table
                    i += 17 + total
            elif marker == 0xDB:
                i = 0
                while i < len(body):
                    wide, tq = body[i] >> 4, body[i] & 15
                    quant[tq] = struct.unpack(">H", body[i + 1:i + 3])[0] if wide else body[i + 1]
                    i += 1 + 64 * (2 if wide else 1)
            elif marker == 0xDD:
                interval = struct.unpack(">H", body[:2])[0]
            elif marker == 0xDA:
                if kind is None:
                    return damaged
                ns = body[0]
                ids = [c[0] for c in comps]
                scan, selectors = [], []
                for i in range(ns):
                    cid, sel = body[1 + 2 * i], body[2 + 2 * i]
                    if cid not in ids:
                        return damaged
                    scan.append(ids.index(cid))
                    selectors.append(((0, sel >> 4), (1, sel & 15)))
                found = _segments(data, pos + 2 + length)
                if found is None:
                    return "the compressed data of a JPEG frame is corrupt (its restart markers are out of order)"
                segments, pos = found
                block = 8 if kind == "dct" else 1
                mcus, units = _scan_units(comps, scan, width, height, block)
                decode = _decode_dct_block if kind == "dct" else _decode_lossless_sample
                codes = []
                for (dc_key, ac_key) in selectors:
                    if dc_key not in tables or (kind == "dct" and ac_key not in tables):
                        return damaged
                    codes.append((tables[dc_key], tables.get(ac_key)))
                per_unit = [(*codes[scan.index(k)], k) for k in units]
                # An 8x8 block's DC coefficient lies in [-8 * 2^(P-1), 8 * (2^(P-1) - 1)]; a
                # damaged stream that resynchronises shifts every later DC value.
                dc_low, dc_high = -8 * (1 << (precision - 1)), 8 * ((1 << (precision - 1)) - 1)
                steps = [max(quant.get(comp_quant[k], 1), 1) if kind == "dct" else 0 for k in range(len(comps))]
                per_segment = interval or mcus
                if -(-mcus // per_segment) != len(segments):
                    return damaged
                dc_max, ac_max = precision + 3, precision + 2
                left = mcus
                for seg in segments:
                    bits = _Bits(seg)
                    preds = [0] * len(comps)
                    for _ in range(min(per_segment, left)):
                        for dc, ac, k in per_unit:
                            diff = decode(bits, dc, ac, dc_max, ac_max)
                            if diff is None:
                                return damaged
                            preds[k] += diff
                            if steps[k] and not dc_low - steps[k] <= preds[k] * steps[k] <= dc_high + steps[k]:
                                return damaged
                        if 8 * bits.pos - bits.nbits > 8 * len(seg):  # the data ran out before the image
                            return damaged
                    left -= min(per_segment, left)
                    if not bits.rest_ok():
                        return damaged
                continue
            pos += 2 + length
    except (struct.error, IndexError, ValueError, ZeroDivisionError):
        return damaged
    return None
