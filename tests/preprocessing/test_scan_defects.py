"""Regression tests of the defects fuzzing found (issue 13), each on a real file made here.

Every test failed before the fix: an exception other than ScanError, a read of
seconds or gigabytes, a damaged image accepted, a misleading message, or library
noise on the terminal.
"""
from __future__ import annotations

import gzip
import io
import random
import struct
import time
import tracemalloc
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, MRImageStorage, generate_uid

from preprocessing import ScanError, load_scan, write_nifti_volume
from tests.preprocessing import test_scan_reading as base

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def quiet_load(path: Path, capfd) -> Exception | None:
    """load_scan with every warning recorded: returns the ScanError (or None) and checks
    that no warning and nothing on stdout/stderr came out of the reader."""
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            load_scan(path)
            error = None
        except ScanError as e:
            error = e
    out, err = capfd.readouterr()
    assert not caught, [str(w.message) for w in caught]
    assert out == "" and err == "", (out, err)
    return error


def _encapsulated(path: Path, frame: bytes, tsyntax, rows: int, cols: int, samples: int, bits: int,
                  photometric: str) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = tsyntax
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = MRImageStorage, meta.MediaStorageSOPInstanceUID, "MR"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, samples
    ds.PhotometricInterpretation = photometric
    if samples > 1:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


# ------------------------------------------------------------ 1. finite extreme values
def test_nifti_with_extreme_finite_values_is_a_scan_error(tmp_path, capfd):
    vol = np.zeros((10, 20, 20), np.float32)
    vol[3], vol[5], vol[4, 3, 3] = 3e38, -3e38, 1.0
    write_nifti_volume(vol, tmp_path / "extreme.nii")
    err = quiet_load(tmp_path / "extreme.nii", capfd)
    assert err is not None and "far outside any scanner's range" in str(err)


# ---------------------------------------------------------------- 2. decoder panics
def rle_panic_bytes() -> tuple[bytes, BaseException]:
    """A corrupt copy of the RLE sample on which the Rust decoder panics, and the panic.

    Found by seeded byte changes; pydicom is called directly, outside any guard.
    """
    raw = (SAMPLES / "dicom" / "Te-gl_0010_multiframe.dcm").read_bytes()
    rng = random.Random(0)
    for _ in range(400):
        data = bytearray(raw)
        for _ in range(5):
            data[rng.randrange(2000, len(data))] = rng.randrange(256)
        try:
            pydicom.dcmread(io.BytesIO(bytes(data))).pixel_array
        except Exception:  # noqa: BLE001 - ordinary errors were always caught
            continue
        except BaseException as e:  # noqa: BLE001 - the Rust panic
            return bytes(data), e
    raise AssertionError("no mutation made the RLE decoder panic")


def test_rle_decoder_panic_becomes_a_scan_error(tmp_path, capfd):
    """Corrupt RLE data makes the Rust decoder panic (a BaseException, not an Exception)."""
    panic = rle_panic_bytes()
    capfd.readouterr()
    assert not isinstance(panic[1], Exception)
    path = tmp_path / "panic.dcm"
    path.write_bytes(panic[0])
    err = quiet_load(path, capfd)
    assert err is not None and "damaged" in str(err)


def test_keyboard_interrupt_is_not_swallowed():
    from preprocessing.guard import reading

    with pytest.raises(KeyboardInterrupt):
        with reading("x.dcm"):
            raise KeyboardInterrupt
    with pytest.raises(ScanError, match="'x.dcm' could not be read"):
        with reading("x.dcm"):
            raise type("PanicException", (BaseException,), {})("boom")


# ------------------------------------------------------------- 3. zero-filled .dcm
def test_zero_filled_dcm_is_refused_quickly(tmp_path):
    path = tmp_path / "zeros.dcm"
    path.write_bytes(bytes(16 * 1024 * 1024))
    start = time.perf_counter()
    base.expect_scan_error(path, "not a recognised scan format")
    assert time.perf_counter() - start < 1.0


# ----------------------------------------------------------------- 4. vox_offset
def _nifti_bytes(offset: int) -> bytes:
    img = nib.Nifti1Image(np.arange(8 * 8 * 8, dtype=np.float32).reshape(8, 8, 8), np.eye(4))
    buf = io.BytesIO()
    img.to_file_map({"image": nib.FileHolder(fileobj=buf)})
    data = bytearray(buf.getvalue())
    body = data[352:]
    data[108:112] = struct.pack("<f", float(offset))
    return bytes(data[:352]) + bytes(offset - 352) + bytes(body)


def test_nifti_huge_vox_offset_is_refused_before_reading(tmp_path):
    path = tmp_path / "offset.nii.gz"
    offset = 200_000_000
    with gzip.open(path, "wb", compresslevel=1) as f:  # 200 MB of zeros: a ~0.2 MB file
        raw = _nifti_bytes(352)
        f.write(raw[:348] + b"\0" * 4)
        chunk = bytes(1 << 22)
        for _ in range((offset - 352) // len(chunk)):
            f.write(chunk)
        f.write(bytes((offset - 352) % len(chunk)) + raw[352:])
    with gzip.open(path) as f:
        header = bytearray(f.read(348))
    assert path.stat().st_size < 1_000_000
    patched = gzip.decompress(path.read_bytes())
    patched = patched[:108] + struct.pack("<f", float(offset)) + patched[112:]
    path.write_bytes(gzip.compress(patched, compresslevel=1))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        msg = base.expect_scan_error(path, "invalid NIfTI header")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert "far beyond" in msg and time.perf_counter() - start < 1.0 and peak < 50_000_000
    assert header[:4] == struct.pack("<i", 348)


def test_nifti_vox_offset_beyond_the_file_is_refused_without_reading(tmp_path):
    path = tmp_path / "short.nii"
    path.write_bytes(_nifti_bytes(352)[:348] + struct.pack("<f", 0.0)[:0] + _nifti_bytes(352)[348:])
    data = bytearray(path.read_bytes())
    data[108:112] = struct.pack("<f", 40_000_000.0)
    path.write_bytes(bytes(data))
    base.expect_scan_error(path, "is incomplete")


def test_nifti_with_extensions_still_reads(tmp_path):
    path = tmp_path / "ext.nii"
    path.write_bytes(_nifti_bytes(352 + 4096))  # a header extension area (zeros) before the data
    scan = load_scan(path)
    assert scan.is_volume and scan.data.shape == (8, 8, 8)


# ------------------------------------------------------- 5. damaged compressed pixels
def test_truncated_jpeg_baseline_dicom_is_refused(tmp_path, capfd):
    jpg = (SAMPLES / "Te-gl_0010.jpg").read_bytes()
    with Image.open(SAMPLES / "Te-gl_0010.jpg") as im:
        w, h = im.size
    whole = _encapsulated(tmp_path / "whole.dcm", jpg, JPEGBaseline8Bit, h, w, 3, 8, "YBR_FULL_422")
    assert load_scan(whole).data.shape == (h, w)
    cut = _encapsulated(tmp_path / "third.dcm", jpg[: len(jpg) // 3], JPEGBaseline8Bit, h, w, 3, 8, "YBR_FULL_422")
    err = quiet_load(cut, capfd)
    assert err is not None and "cut short" in str(err)
    jpeg_file = tmp_path / "third.jpg"  # the same bytes as a .jpg were always refused
    jpeg_file.write_bytes(jpg[: len(jpg) // 3])
    base.expect_scan_error(jpeg_file, "damaged or incomplete")


def _j2k_dicom(tmp_path: Path) -> tuple[Path, np.ndarray]:
    grey = np.asarray(Image.open(SAMPLES / "Te-gl_0010.jpg"))[..., 0].astype(np.uint16) * 4
    path = base.make_mr(tmp_path / "j2k.dcm", grey)
    ds = pydicom.dcmread(path)
    ds.compress(JPEG2000Lossless, grey)
    ds.save_as(path, enforce_file_format=True)
    return path, grey


def test_jpeg2000_dicom_with_damaged_tile_data_is_refused(tmp_path, capfd):
    path, grey = _j2k_dicom(tmp_path)
    np.testing.assert_array_equal(load_scan(path).data, grey)
    raw = path.read_bytes()
    frame_at = raw.index(b"\xff\x4f\xff\x51")
    sot = raw.index(b"\xff\x90", frame_at)
    damaged = bytearray(raw)
    damaged[sot + 6:sot + 10] = struct.pack(">I", 5000)  # a tile-part length that lies
    bad = tmp_path / "j2k_bad.dcm"
    bad.write_bytes(bytes(damaged))
    err = quiet_load(bad, capfd)
    assert err is not None and "JPEG 2000" in str(err)
    cut = bytearray(raw)  # the end of the codestream overwritten (EOC lost)
    end = raw.rindex(b"\xff\xd9")
    cut[end - 2000:end + 2] = bytes(2002)
    bad.write_bytes(bytes(cut))
    err = quiet_load(bad, capfd)
    assert err is not None and "damaged or incomplete" in str(err)


# ----------------------------------------------------------------- smaller ones
def test_dicom_cut_before_its_pixel_data_says_it_is_incomplete(tmp_path):
    raw = (SAMPLES / "dicom" / "Te-me_0016.dcm").read_bytes()
    for n in (600, raw.index(b"\xe0\x7f\x10\x00")):
        path = tmp_path / f"cut{n}.dcm"
        path.write_bytes(raw[:n])
        msg = base.expect_scan_error(path, "is incomplete")
        assert "report" not in msg


def test_nifti_with_impossible_dimension_count_says_the_header_is_invalid(tmp_path):
    path = tmp_path / "dims.nii"
    data = bytearray(_nifti_bytes(352))
    data[40:42] = struct.pack("<h", 9)
    path.write_bytes(bytes(data))
    msg = base.expect_scan_error(path, "invalid NIfTI header")
    assert "series" not in msg and "volumes" not in msg


def test_nifti_with_a_singular_sform_blames_the_orientation_matrix(tmp_path):
    img = nib.Nifti1Image(np.random.default_rng(0).random((8, 8, 8)).astype(np.float32), np.eye(4))
    img.set_sform(np.zeros((4, 4)), code=2)
    img.set_qform(None, code=0)
    nib.save(img, tmp_path / "sform.nii")
    msg = base.expect_scan_error(tmp_path / "sform.nii", "invalid orientation matrix")
    assert "copying" not in msg


def test_library_warnings_stay_inside_the_readers(tmp_path, capfd):
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHII", 0x0112, 3, 1000, 200)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8)).save(
        buf, "JPEG", exif=b"Exif\x00\x00" + tiff + b"\0\0\0\0")
    (tmp_path / "exif.jpg").write_bytes(buf.getvalue())
    with warnings.catch_warnings(record=True) as direct:  # Pillow does warn on this file
        warnings.simplefilter("always")
        with Image.open(tmp_path / "exif.jpg") as im:
            im.getexif().get_ifd(0x8769)
            im.load()
            from PIL import ImageOps
            ImageOps.exif_transpose(im)
    assert direct
    assert quiet_load(tmp_path / "exif.jpg", capfd) is None
    vol = np.zeros((6, 16, 16), np.float32)
    vol[2, 4:8, 4:8] = 1e10
    write_nifti_volume(vol, tmp_path / "big.nii")  # large values: no numpy RuntimeWarning
    assert quiet_load(tmp_path / "big.nii", capfd) is None
    data = bytearray(_nifti_bytes(352 + 8))  # an offset nibabel finds odd (not a multiple of 16)
    (tmp_path / "odd.nii").write_bytes(bytes(data))
    assert quiet_load(tmp_path / "odd.nii", capfd) is None
