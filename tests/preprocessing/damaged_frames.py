"""A corpus of damaged compressed DICOM frames made from real pixel data (issue 26).

Every codec DICOM uses for MRI — JPEG baseline, JPEG lossless (process 14, first-order
prediction), JPEG-LS lossless, JPEG 2000 lossless, RLE — is written intact and then damaged
in the ways that happen to files in transit: cut short, a length that lies (a marker
segment's, a tile-part's, an RLE segment offset, the DICOM fragment's own item length) and
bytes garbled inside the compressed image data. The pixels are those of the shipped
sample ``samples/Te-gl_0010.jpg`` (grey, cropped); the JPEG-LS frame is pydicom's real MR
test image (no JPEG-LS encoder is installed).

``scripts/make_damaged_frames.py`` writes the corpus to a folder and reports what
``load_scan`` makes of each file; ``tests/preprocessing/test_reliability.py`` reads a small
one in the fast test set.
"""
from __future__ import annotations

import io
import random
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    MRImageStorage,
    RLELossless,
    generate_uid,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "samples" / "Te-gl_0010.jpg"
CODECS = ("jpeg-baseline", "jpeg-lossless", "jpeg-ls", "jpeg2000", "rle")
#: Damage that the readers must refuse, in every codec.
DAMAGE = ("truncated", "segment-length", "fragment-length")
#: Damage that is measured, not promised: bytes garbled inside the compressed data. JPEG
#: 2000 and JPEG-LS carry no checksum and have no structure there to check; in Huffman JPEG
#: and RLE most garbling breaks the codes or the counts, but not all of it can.
MEASURED = ("garbled",)

# The standard luminance DC table (ITU T.81 K.3), used here for lossless differences.
_DC_COUNTS = bytes([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
_DC_SYMBOLS = bytes(range(12))


@dataclass(frozen=True)
class Frame:
    """One intact compressed frame and how to describe it in a DICOM header."""

    codec: str
    data: bytes
    tsyntax: str
    pixels: np.ndarray  # what an intact decode must give
    bits: int


@dataclass(frozen=True)
class Case:
    """One file of the corpus."""

    codec: str
    damage: str  # "intact" or one of DAMAGE
    path: Path


def source_pixels(size: int) -> np.ndarray:
    """``(size, size)`` uint8: the centre of the real sample slice, grey."""
    with Image.open(SOURCE) as im:
        grey = np.asarray(im.convert("L"))
    h, w = grey.shape
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(grey[top:top + size, left:left + size])


# ------------------------------------------------------------------------ encoders
def _huffman_codes(counts: bytes, symbols: bytes) -> dict[int, tuple[int, int]]:
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(counts[length - 1]):
            codes[symbols[k]] = (code, length)
            code, k = code + 1, k + 1
        code <<= 1
    return codes


def encode_jpeg_lossless(pixels: np.ndarray) -> bytes:
    """8-bit grey JPEG lossless (process 14, selection value 1), no restart markers."""
    rows, cols = pixels.shape
    codes = _huffman_codes(_DC_COUNTS, _DC_SYMBOLS)
    x = pixels.astype(np.int32)
    pred = np.empty_like(x)
    pred[0, 0] = 128
    pred[0, 1:] = x[0, :-1]
    pred[1:, 0] = x[:-1, 0]
    pred[1:, 1:] = x[1:, :-1]
    acc, nbits, out = 0, 0, bytearray()
    for diff in (x - pred).ravel().tolist():
        size = abs(diff).bit_length()
        code, length = codes[size]
        extra = diff if diff >= 0 else diff + (1 << size) - 1
        acc = (acc << (length + size)) | (code << size) | (extra & ((1 << size) - 1))
        nbits += length + size
        while nbits >= 8:
            byte = (acc >> (nbits - 8)) & 0xFF
            out.append(byte)
            if byte == 0xFF:
                out.append(0)
            nbits -= 8
        acc &= (1 << nbits) - 1
    if nbits:
        byte = ((acc << (8 - nbits)) | ((1 << (8 - nbits)) - 1)) & 0xFF
        out += b"\xff\x00" if byte == 0xFF else bytes([byte])
    sof = struct.pack(">BHHB", 8, rows, cols, 1) + bytes([1, 0x11, 0])
    dht = bytes([0x00]) + _DC_COUNTS + _DC_SYMBOLS
    sos = bytes([1, 1, 0x00, 1, 0, 0])  # one component, table 0; predictor 1, Se 0, Ah/Al 0

    def segment(marker: int, body: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body

    return (b"\xff\xd8" + segment(0xC3, sof) + segment(0xC4, dht) + segment(0xDA, sos) + bytes(out)
            + b"\xff\xd9")


def intact_frames(size: int = 96) -> list[Frame]:
    """One intact frame per codec."""
    grey = source_pixels(size)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "JPEG", quality=90)
    baseline = buf.getvalue()
    with Image.open(io.BytesIO(baseline)) as im:
        baseline_pixels = np.asarray(im)
    wide = grey.astype(np.uint16) * 16  # 12-bit values, as MRI stores them
    frames = [
        Frame("jpeg-baseline", baseline, JPEGBaseline8Bit, baseline_pixels, 8),
        Frame("jpeg-lossless", encode_jpeg_lossless(grey), JPEGLosslessSV1, grey, 8),
    ]
    jls = pydicom.dcmread(get_testdata_file("MR_small_jpeg_ls_lossless.dcm", download=False))
    frames.append(Frame("jpeg-ls", next(generate_frames(jls.PixelData, number_of_frames=1)), JPEGLSLossless,
                        jls.pixel_array.copy(), int(jls.BitsStored)))
    for codec, uid in (("jpeg2000", JPEG2000Lossless), ("rle", RLELossless)):
        ds = _dataset(JPEG2000Lossless, wide.shape, 16)
        ds.compress(uid, wide, encoding_plugin="pylibjpeg" if codec == "jpeg2000" else "")
        frames.append(Frame(codec, next(generate_frames(ds.PixelData, number_of_frames=1)), uid, wide, 16))
    return frames


def _dataset(tsyntax: str, shape: tuple[int, int], bits: int, signed: bool = False) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = tsyntax
    ds = FileDataset("frame.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = MRImageStorage, meta.MediaStorageSOPInstanceUID, "MR"
    ds.Rows, ds.Columns = shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, int(signed)
    return ds


def write_frame(path: Path, frame: Frame, data: bytes, *, item_length_delta: int = 0) -> Path:
    """A DICOM file holding ``data`` as its one encapsulated frame; ``item_length_delta``
    makes the fragment's item length lie by that many bytes."""
    ds = _dataset(frame.tsyntax, frame.pixels.shape, frame.bits, signed=frame.codec == "jpeg-ls"
                  and frame.pixels.dtype.kind == "i")
    ds.PixelData = encapsulate([data])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    if item_length_delta:
        raw = bytearray(path.read_bytes())
        at = raw.rindex(b"\xfe\xff\x00\xe0" + struct.pack("<I", len(data) + len(data) % 2))
        struct.pack_into("<I", raw, at + 4, len(data) + len(data) % 2 + item_length_delta)
        path.write_bytes(bytes(raw))
    return path


# ------------------------------------------------------------------------ damage
def _payload_start(frame: Frame) -> int:
    """Where the compressed image data begins (after the headers)."""
    data = frame.data
    if frame.codec == "rle":
        return 64
    if frame.codec == "jpeg2000":
        return data.index(b"\xff\x93") + 2  # SOD: start of the tile's data
    sos = data.index(b"\xff\xda") if frame.codec != "jpeg-ls" else data.index(b"\xff\xda")
    return sos + 2 + struct.unpack(">H", data[sos + 2:sos + 4])[0]


def _segment_length_lie(frame: Frame) -> bytes:
    data = bytearray(frame.data)
    if frame.codec == "rle":  # the second segment offset points elsewhere
        count = struct.unpack("<I", data[:4])[0]
        at = 8 if count > 1 else 4
        struct.pack_into("<I", data, at, struct.unpack("<I", data[at:at + 4])[0] + 3)
    elif frame.codec == "jpeg2000":  # a tile-part length (Psot) that lies
        sot = data.index(b"\xff\x90")
        struct.pack_into(">I", data, sot + 6, struct.unpack(">I", data[sot + 6:sot + 10])[0] - 7)
    else:  # the scan header's length that lies
        sos = data.index(b"\xff\xda")
        struct.pack_into(">H", data, sos + 2, struct.unpack(">H", data[sos + 2:sos + 4])[0] + 2)
    return bytes(data)


def damaged(frame: Frame, damage: str, seed: int = 0) -> tuple[bytes, int]:
    """The frame's bytes after ``damage`` and the fragment item-length lie to write."""
    rng = random.Random(f"{frame.codec}/{damage}/{seed}")
    data = frame.data
    if damage == "truncated":
        return data[: _payload_start(frame) + (len(data) - _payload_start(frame)) * rng.randint(3, 8) // 10], 0
    if damage == "segment-length":
        return _segment_length_lie(frame), 0
    if damage == "fragment-length":
        return data, -rng.choice((2, 6, 100))  # the fragment ends early
    if damage == "garbled":  # 64 bytes of noise inside the compressed data (no marker bytes)
        start = _payload_start(frame)
        at = rng.randrange(start, max(start + 1, len(data) - 80))
        noise = bytes(rng.randrange(0, 255) for _ in range(64))
        return data[:at] + noise + data[at + 64:], 0
    raise ValueError(f"unknown damage {damage!r}; choose from {DAMAGE + MEASURED}")


def corrupt_byte(frame: Frame, seed: int) -> bytes:
    """One byte of the compressed image data replaced (the smallest damage)."""
    rng = random.Random(f"{frame.codec}/byte/{seed}")
    start = _payload_start(frame)
    at = rng.randrange(start, len(frame.data) - 4)
    value = rng.randrange(0, 255)
    if value == frame.data[at]:
        value = (value + 1) % 255
    return frame.data[:at] + bytes([value]) + frame.data[at + 1:]


def make_corpus(folder: Path, *, size: int = 96, seeds: int = 1) -> list[Case]:
    """Write every codec intact and under every damage (``seeds`` variants each)."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for frame in intact_frames(size):
        cases.append(Case(frame.codec, "intact", write_frame(folder / f"{frame.codec}-intact.dcm", frame, frame.data)))
        for damage in DAMAGE + MEASURED:
            for seed in range(seeds):
                data, lie = damaged(frame, damage, seed)
                path = write_frame(folder / f"{frame.codec}-{damage}-{seed}.dcm", frame, data, item_length_delta=lie)
                cases.append(Case(frame.codec, damage, path))
    return cases
