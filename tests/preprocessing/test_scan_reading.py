"""Scan reading: every format, every bad input, on real files.

Files are pydicom's shipped test files, the project's ``samples/``, or tiny files
written here with pydicom, nibabel and Pillow into ``tmp_path``. No mocks.
"""
from __future__ import annotations

import gzip
import io
import shutil
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image, ImageFile
from pydicom.data import get_testdata_file
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from preprocessing.errors import ScanError
from preprocessing.loader import load_scan
from preprocessing.readers.nifti import write_nifti_slice, write_nifti_volume
from preprocessing.scan import MAX_SIDE, Scan, default_slice

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
RNG_SEED = 1234


# --------------------------------------------------------------------------- helpers
def pydicom_file(name: str) -> Path:
    """A test file shipped inside the pydicom package (never downloaded)."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not shipped with this pydicom")
    return Path(path)


def expect_scan_error(path: Path, match: str, **kwargs) -> str:
    """load_scan must raise ScanError matching ``match`` with a clean message."""
    with pytest.raises(ScanError, match=match) as info:
        load_scan(path, **kwargs)
    message = str(info.value)
    assert f"'{path.name}'" in message
    assert "Traceback" not in message and 'File "' not in message
    assert str(path.parent) not in message  # base name only, never the folder
    return message


def make_mr(
    path: Path,
    pixels: np.ndarray,
    *,
    signed: bool = False,
    bits_stored: int | None = None,
    **attrs,
) -> Path:
    """Write an MR DICOM (Part 10, Explicit VR LE) holding ``pixels``.

    ``pixels`` is ``(H, W)``, ``(F, H, W)`` or ``(H, W, 3)`` (RGB) of an integer dtype.
    Extra keyword arguments become DICOM attributes (``None`` deletes one).
    """
    pixels = np.asarray(pixels)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.PatientName = "Anonymous"
    colour = pixels.ndim == 3 and pixels.shape[-1] == 3 and attrs.get("NumberOfFrames") is None
    if colour:
        ds.Rows, ds.Columns = pixels.shape[:2]
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
        ds.PhotometricInterpretation = "RGB"
    else:
        ds.Rows, ds.Columns = pixels.shape[-2:]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        if pixels.ndim == 3:
            ds.NumberOfFrames = pixels.shape[0]
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(signed)
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    for key, value in attrs.items():
        if value is None:
            if key in ds:
                delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def png_claiming_size(path: Path, width: int, height: int) -> Path:
    """A valid tiny PNG whose IHDR (with a correct CRC) claims ``width x height``."""
    raw = bytearray(png_bytes(np.zeros((8, 8), np.uint8)))
    assert raw[12:16] == b"IHDR"
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    path.write_bytes(bytes(raw))
    return path


def blob_volume(z: int = 20, hw: int = 24, centre: int = 15, radius: int = 2) -> np.ndarray:
    """``(Z, H, W)`` low noise plus a bright ball centred on slice ``centre``."""
    rng = np.random.default_rng(RNG_SEED)
    vol = rng.uniform(0, 5, size=(z, hw, hw))
    zz, yy, xx = np.mgrid[:z, :hw, :hw]
    ball = (zz - centre) ** 2 + (yy - hw / 2) ** 2 / 16 + (xx - hw / 2) ** 2 / 16 <= radius**2
    vol[ball] += 200
    return vol


def jpeg_grey(name: str) -> np.ndarray:
    """Reference grey levels of a sample JPEG straight from Pillow (R == G == B)."""
    rgb = np.asarray(Image.open(SAMPLES / name))
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all()
    return rgb[..., 0].astype(np.float32)


# ----------------------------------------------------------------- path-level errors
def test_scan_error_is_value_error():
    assert issubclass(ScanError, ValueError)


def test_missing_file(tmp_path):
    expect_scan_error(tmp_path / "nowhere.dcm", "was not found")


def test_directory_instead_of_file(tmp_path):
    folder = tmp_path / "series_folder"
    folder.mkdir()
    expect_scan_error(folder, "holds no DICOM image files")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.dcm"
    path.write_bytes(b"")
    expect_scan_error(path, r"is empty \(0 bytes\)")


def test_unknown_format_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("Patient scan notes: nothing to see here.\n" * 20)
    expect_scan_error(path, r"not a recognised scan format \(DICOM, NIfTI, PNG or JPEG\)")


def test_png_name_with_text_content(tmp_path):
    path = tmp_path / "slice.png"
    path.write_text("this is not an image")
    msg = expect_scan_error(path, "not a recognised scan format")
    assert "PNG" in msg


def test_dcm_name_with_text_content(tmp_path):
    path = tmp_path / "slice.dcm"
    path.write_text("definitely not DICOM " * 30)
    expect_scan_error(path, "not a recognised scan format")


# --------------------------------------------------------------------- raster errors
@pytest.mark.parametrize("pillow_lenient", [False, True])
def test_truncated_jpeg(tmp_path, monkeypatch, pillow_lenient):
    # Even if another module told Pillow to pad truncated images, we must refuse them.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", pillow_lenient)
    data = (SAMPLES / "Te-gl_0010.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    expect_scan_error(path, "damaged or incomplete")


def test_truncated_png(tmp_path):
    noise = np.random.default_rng(RNG_SEED).integers(0, 255, (64, 64), dtype=np.uint8)
    data = png_bytes(noise)
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    expect_scan_error(path, "damaged or incomplete")


def test_constant_png(tmp_path):
    path = tmp_path / "grey.png"
    path.write_bytes(png_bytes(np.full((32, 32), 128, np.uint8)))
    msg = expect_scan_error(path, "blank: the image is constant")
    assert "128" in msg


@pytest.mark.parametrize("size", [(100_000, 100_000), (5000, 5000), (MAX_SIDE + 1, 16)])
def test_png_decompression_bomb(tmp_path, size):
    path = png_claiming_size(tmp_path / "bomb.png", *size)
    expect_scan_error(path, "far larger than any MRI")


def test_tiny_png_rejected(tmp_path):
    path = tmp_path / "tiny.png"
    path.write_bytes(png_bytes(np.arange(16, dtype=np.uint8).reshape(4, 4)))
    expect_scan_error(path, "too small to be a scan")


# ---------------------------------------------------------------------- DICOM errors
def test_truncated_dicom(tmp_path):
    data = pydicom_file("MR_small.dcm").read_bytes()
    path = tmp_path / "half.dcm"
    path.write_bytes(data[: len(data) // 2])
    expect_scan_error(path, "damaged or incomplete")


def test_truncated_dicom_shipped_by_pydicom():
    expect_scan_error(pydicom_file("MR_truncated.dcm"), "damaged or incomplete")


def test_dicom_without_pixel_data_shipped(tmp_path):
    msg = expect_scan_error(pydicom_file("rtstruct.dcm"), r"contains no image \(no pixel data\)")
    assert "RT Structure Set" in msg


def test_dicom_without_pixel_data_built(tmp_path):
    path = make_mr(tmp_path / "nopix.dcm", np.zeros((16, 16), np.uint16), PixelData=None)
    expect_scan_error(path, r"is incomplete: it describes an image but its image data is missing")


def test_structured_report_shipped():
    expect_scan_error(pydicom_file("test-SR.dcm"), "structured report")


def test_structured_report_built(tmp_path):
    path = make_mr(
        tmp_path / "report.dcm",
        np.zeros((16, 16), np.uint16),
        PixelData=None,
        SOPClassUID="1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
        Modality="SR",
    )
    expect_scan_error(path, "structured report.*not an image")


def test_constant_dicom(tmp_path):
    path = make_mr(tmp_path / "flat.dcm", np.full((16, 16), 7, np.uint16))
    expect_scan_error(path, "constant")


@pytest.mark.parametrize(
    "attrs",
    [
        {"Rows": 60000, "Columns": 60000},
        {"Rows": 512, "Columns": 512, "NumberOfFrames": 4000},
    ],
    ids=["huge-slice", "too-many-frames"],
)
def test_dicom_decompression_bomb_rejected_before_decoding(tmp_path, attrs):
    # Pixel data is only 512 bytes: decoding would fail differently; the header check
    # must fire first.
    path = make_mr(tmp_path / "bomb.dcm", np.ones((16, 16), np.uint16), **attrs)
    expect_scan_error(path, "far larger than any MRI")


def _encapsulated_mr(path: Path, transfer_syntax: str) -> Path:
    ds = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    ds.PixelData = encapsulate([b"\xff\x0a" + bytes(200)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.save_as(path)
    return path


def test_unsupported_compression_known_to_pydicom(tmp_path):
    path = _encapsulated_mr(tmp_path / "part2.dcm", "1.2.840.10008.1.2.4.92")
    expect_scan_error(
        path,
        r"uses the compression 'JPEG 2000 Part 2 Multi-component Image Compression "
        r"\(Lossless Only\)' which this installation cannot decode",
    )


def test_unsupported_compression_jpeg_xl(tmp_path):
    # pydicom 3.0 refuses to write a syntax it does not know, so write MPEG2 (same UID
    # length) and patch the UID bytes into JPEG XL Lossless.
    path = _encapsulated_mr(tmp_path / "jxl.dcm", "1.2.840.10008.1.2.4.100")
    raw = path.read_bytes()
    assert raw.count(b"1.2.840.10008.1.2.4.100") == 1
    path.write_bytes(raw.replace(b"1.2.840.10008.1.2.4.100", b"1.2.840.10008.1.2.4.110"))
    expect_scan_error(path, "uses the compression 'JPEG XL Lossless' which this installation")


def test_no_patient_identifiers_in_errors_or_tags(tmp_path):
    identifiers = {
        "PatientName": "Doe^Jane",
        "PatientID": "12345",
        "PatientBirthDate": "19700101",
        "StudyDate": "20240315",
        "InstitutionName": "Saint Elsewhere Hospital",
        "ReferringPhysicianName": "House^Gregory",
    }
    secrets = ["Doe", "Jane", "12345", "19700101", "20240315", "Elsewhere", "House"]
    folder = tmp_path / "Doe_Jane_12345"
    folder.mkdir()

    bad = make_mr(folder / "flat.dcm", np.full((16, 16), 3, np.uint16), **identifiers)
    msg = expect_scan_error(bad, "constant")
    assert not any(s in msg for s in secrets)

    cut = folder / "cut.dcm"
    pixels = np.arange(256, dtype=np.uint16).reshape(16, 16)
    good = make_mr(folder / "good.dcm", pixels, **identifiers)
    cut.write_bytes(good.read_bytes()[:-300])
    msg = expect_scan_error(cut, "damaged or incomplete")
    assert not any(s in msg for s in secrets)

    scan = load_scan(good)
    flat = " ".join(f"{k}={v}" for k, v in scan.tags.items())
    assert not any(s in flat for s in secrets)
    assert not any("UID" in k or "Patient" in k or "Date" in k for k in scan.tags)
    assert "1.2.840" not in flat  # no UIDs either


# ---------------------------------------------------------------------- NIfTI errors
def _nifti_bytes(data: np.ndarray, affine: np.ndarray | None = None) -> bytes:
    return nib.Nifti1Image(data, np.eye(4) if affine is None else affine).to_bytes()


def test_corrupt_nii_gz_garbage_after_gzip_header(tmp_path):
    good = gzip.compress(_nifti_bytes(np.ones((8, 8, 8), np.float32)))
    garbage = np.random.default_rng(RNG_SEED).integers(0, 256, 400, dtype=np.uint8).tobytes()
    path = tmp_path / "brain.nii.gz"
    path.write_bytes(good[:10] + garbage)
    expect_scan_error(path, "gzip.*damaged")


def test_truncated_nii_gz(tmp_path):
    vol = np.random.default_rng(RNG_SEED).normal(size=(32, 32, 16)).astype(np.float32)
    data = gzip.compress(_nifti_bytes(vol))
    path = tmp_path / "brain.nii.gz"
    path.write_bytes(data[: len(data) // 2])
    expect_scan_error(path, "damaged or incomplete")


def test_truncated_nii(tmp_path):
    data = _nifti_bytes(np.arange(16 * 16 * 4, dtype=np.float32).reshape(16, 16, 4))
    path = tmp_path / "brain.nii"
    path.write_bytes(data[: len(data) // 2])
    expect_scan_error(path, "is incomplete")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_voxels(tmp_path, bad):
    vol = np.random.default_rng(RNG_SEED).uniform(0, 100, size=(16, 16, 5)).astype(np.float32)
    vol[3, 4, 2] = bad
    path = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
    word = "not-a-number" if np.isnan(bad) else "infinite"
    expect_scan_error(path, f"invalid pixel values \\(1 {word}")


def test_4d_nifti_rejected(tmp_path):
    vol = np.random.default_rng(RNG_SEED).uniform(size=(12, 12, 6, 3)).astype(np.float32)
    path = tmp_path / "fmri.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
    expect_scan_error(path, r"is a 4-D series \(3 volumes.*export a single 3-D volume")


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_decompression_bomb_rejected_from_header(tmp_path, suffix):
    header = nib.Nifti1Header()
    header.set_data_shape((5000, 5000, 5000))
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = 352
    raw = header.binaryblock + b"\0" * 4 + bytes(64)  # 64 voxels instead of 1.25e11
    path = tmp_path / f"bomb{suffix}"
    path.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else raw)
    expect_scan_error(path, "far larger than any MRI")


def test_nifti_rgb_voxels_rejected(tmp_path):
    rgb = np.zeros((16, 16, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    path = tmp_path / "rgb.nii"
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), path)
    expect_scan_error(path, "stores colour voxels")


def test_constant_nifti(tmp_path):
    path = tmp_path / "flat.nii"
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 4), np.int16), np.eye(4)), path)
    expect_scan_error(path, "constant")


# ---------------------------------------------------------------- slice index errors
def test_slice_index_out_of_range(tmp_path):
    path = tmp_path / "vol.nii.gz"
    write_nifti_volume(blob_volume(), path)
    expect_scan_error(path, "has 20 slices, numbered 0 to 19; there is no slice 25", slice_index=25)
    scan = load_scan(path, slice_index=3)
    assert scan.slice_index == 3
    with pytest.raises(ScanError, match="there is no slice -1"):
        scan.image(-1)


def test_slice_index_on_2d_image(tmp_path):
    path = tmp_path / "img.png"
    path.write_bytes(png_bytes(np.arange(256, dtype=np.uint8).reshape(16, 16)))
    expect_scan_error(path, "single 2-D image", slice_index=1)
    assert load_scan(path, slice_index=0).image().shape == (16, 16)


# ------------------------------------------------------------------------ DICOM good
def _mr_small_expected() -> np.ndarray:
    ds = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    return apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds).astype(np.float32)


def test_mr_small_matches_pydicom():
    scan = load_scan(pydicom_file("MR_small.dcm"))
    assert scan.source_format == "dicom" and not scan.is_volume and scan.num_slices == 1
    assert scan.data.dtype == np.float32 and scan.data.shape == (64, 64)
    np.testing.assert_array_equal(scan.image(), _mr_small_expected())
    assert scan.tags["Modality"] == "MR" and scan.tags["voi"] == "window"
    assert scan.spacing == (0.3125, 0.3125)
    assert scan.orientation == "LPS/patient"


def test_ct_rescale_applied():
    path = pydicom_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    expected = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    scan = load_scan(path)
    np.testing.assert_array_equal(scan.image(), expected)
    assert scan.data.min() < 0  # Hounsfield units, intercept -1024


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm"])
def test_compressed_lossless_mr_small(name):
    scan = load_scan(pydicom_file(name))
    np.testing.assert_array_equal(scan.image(), _mr_small_expected())
    assert scan.tags["TransferSyntax"] != "Explicit VR Little Endian"


def test_jpeg2000_lossy_decodes():
    scan = load_scan(pydicom_file("JPEG2000.dcm"))
    assert scan.data.shape == (1024, 256)
    assert scan.tags["TransferSyntax"] == "JPEG 2000 Image Compression"
    assert np.ptp(scan.data) > 0


def test_rescale_slope_intercept_built(tmp_path):
    stored = np.arange(400, dtype=np.uint16).reshape(20, 20)
    path = make_mr(tmp_path / "resc.dcm", stored, RescaleSlope="2", RescaleIntercept="-100")
    np.testing.assert_array_equal(load_scan(path).image(), stored * 2.0 - 100)


def test_multiframe_dicom_volume_with_off_centre_default(tmp_path):
    vol = np.round(blob_volume(z=12, centre=9)).astype(np.uint16)
    path = make_mr(
        tmp_path / "multi.dcm", vol, SpacingBetweenSlices="2.5", PixelSpacing=[0.5, 0.75]
    )
    scan = load_scan(path)
    assert scan.is_volume and scan.data.shape == (12, 24, 24) and scan.num_slices == 12
    assert 7 <= scan.slice_index <= 11
    np.testing.assert_array_equal(scan.image(), vol[scan.slice_index].astype(np.float32))
    np.testing.assert_array_equal(scan.image(0), vol[0].astype(np.float32))
    assert scan.spacing == (2.5, 0.5, 0.75)
    assert scan.tags["NumberOfFrames"] == "12"


def test_enhanced_multiframe_rescale_from_functional_groups(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    frames = np.arange(3 * 16 * 16, dtype=np.uint16).reshape(3, 16, 16)
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept = "2", "-10"
    group = Dataset()
    group.PixelValueTransformationSequence = Sequence([transform])
    path = make_mr(tmp_path / "enh.dcm", frames, SharedFunctionalGroupsSequence=Sequence([group]))
    np.testing.assert_array_equal(load_scan(path).data, frames * 2.0 - 10)


def test_monochrome1_is_inverted(tmp_path):
    stored = np.arange(10, 410, dtype=np.uint16).reshape(20, 20)
    path = make_mr(tmp_path / "m1.dcm", stored, PhotometricInterpretation="MONOCHROME1")
    image = load_scan(path).image()
    np.testing.assert_array_equal(image, (409 + 10) - stored.astype(np.float32))
    assert image[0, 0] > image[-1, -1]  # low stored value = bright


def test_window_centre_width_applied(tmp_path):
    stored = np.arange(0, 4096, 16, dtype=np.uint16).reshape(16, 16)
    centre, width = 2048.0, 1025.0
    path = make_mr(
        tmp_path / "win.dcm", stored, bits_stored=12, WindowCenter=centre, WindowWidth=width
    )
    # DICOM PS3.3 C.11.2.1.2.1 linear window, output range of 12-bit unsigned: 0..4095
    x = stored.astype(np.float64)
    c, w = centre - 0.5, width - 1
    expected = np.clip(((x - c) / w + 0.5) * 4095, 0, 4095)
    expected[x <= c - w / 2] = 0
    expected[x > c + w / 2] = 4095
    scan = load_scan(path)
    np.testing.assert_allclose(scan.image(), expected, atol=1e-3)
    assert scan.tags["voi"] == "window"


def test_rgb_dicom_to_luminance():
    path = pydicom_file("SC_rgb_rle.dcm")
    rgb = pydicom.dcmread(path).pixel_array.astype(np.float64)
    expected = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    scan = load_scan(path)
    np.testing.assert_allclose(scan.image(), expected, atol=1e-3)
    assert scan.tags["converted_from"] == "rgb"


def test_grey_stored_as_rgb_dicom_keeps_exact_values(tmp_path):
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    path = make_mr(tmp_path / "rgb.dcm", np.repeat(grey[..., None], 3, axis=-1))
    np.testing.assert_array_equal(load_scan(path).image(), grey.astype(np.float32))


def test_dicom_named_png_loads_as_dicom(tmp_path):
    path = tmp_path / "scan.png"
    shutil.copy(pydicom_file("MR_small.dcm"), path)
    scan = load_scan(path)
    assert scan.source_format == "dicom"
    np.testing.assert_array_equal(scan.image(), _mr_small_expected())


def test_dicom_without_preamble_needs_dcm_name(tmp_path):
    ds = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    bare = pydicom.Dataset()
    bare.update(ds)  # no file meta
    path = tmp_path / "bare.dcm"
    bare.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert path.read_bytes()[128:132] != b"DICM"
    np.testing.assert_array_equal(load_scan(path).image(), _mr_small_expected())
    renamed = tmp_path / "bare.bin"
    shutil.copy(path, renamed)
    expect_scan_error(renamed, "not a recognised scan format")


# ------------------------------------------------------------------------ raster good
def test_png_8bit_grey(tmp_path):
    grey = np.arange(0, 256, dtype=np.uint8).reshape(16, 16)
    path = tmp_path / "g8.png"
    path.write_bytes(png_bytes(grey))
    scan = load_scan(path)
    assert scan.source_format == "png" and scan.data.dtype == np.float32
    np.testing.assert_array_equal(scan.image(), grey.astype(np.float32))
    assert scan.orientation == "unknown" and scan.spacing == (1.0, 1.0)


def test_png_16bit_grey_keeps_native_units(tmp_path):
    grey = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)  # up to 65535
    path = tmp_path / "g16.png"
    Image.fromarray(grey).save(path)
    scan = load_scan(path)
    assert scan.tags["mode"].startswith("I;16")
    np.testing.assert_array_equal(scan.image(), grey.astype(np.float32))
    assert scan.data.max() == 65535


def test_png_rgb_to_luminance(tmp_path):
    rgb = np.random.default_rng(RNG_SEED).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    path = tmp_path / "rgb.png"
    path.write_bytes(png_bytes(rgb))
    expected = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    scan = load_scan(path)
    np.testing.assert_allclose(scan.image(), expected, atol=1e-3)
    assert scan.tags["converted_from"] == "rgb"


def test_png_rgba_and_palette(tmp_path):
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 200)])
    path = tmp_path / "rgba.png"
    path.write_bytes(png_bytes(rgba))
    np.testing.assert_array_equal(load_scan(path).image(), grey.astype(np.float32))

    pal = Image.fromarray(grey, mode="L").convert("P")
    path = tmp_path / "pal.png"
    pal.save(path)
    scan = load_scan(path)
    assert scan.tags["converted_from"] == "palette"
    np.testing.assert_array_equal(scan.image(), np.asarray(pal.convert("L"), np.float32))


def test_jpeg_grey_and_rgb(tmp_path):
    grey = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (32, 1))
    path = tmp_path / "g.jpg"
    Image.fromarray(grey).save(path, quality=95)
    scan = load_scan(path)
    assert scan.source_format == "jpeg" and "converted_from" not in scan.tags
    np.testing.assert_array_equal(scan.image(), np.asarray(Image.open(path), np.float32))

    rgb = np.dstack([grey, grey[::-1], np.full_like(grey, 60)])
    path = tmp_path / "c.jpg"
    Image.fromarray(rgb).save(path, quality=95)
    decoded = np.asarray(Image.open(path)).astype(np.float64)
    np.testing.assert_allclose(
        load_scan(path).image(), decoded @ np.array([0.299, 0.587, 0.114]), atol=1e-3
    )


def test_png_named_dcm_loads_as_png(tmp_path):
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    path = tmp_path / "really_a_png.dcm"
    path.write_bytes(png_bytes(grey))
    assert load_scan(path).source_format == "png"


# ------------------------------------------------------------------------ NIfTI good
def test_nifti_slice_round_trip_exact(tmp_path):
    image = np.random.default_rng(RNG_SEED).normal(size=(20, 13)).astype(np.float32)
    for name in ("slice.nii", "slice.nii.gz"):
        write_nifti_slice(image, tmp_path / name, spacing=(0.8, 0.6))
        scan = load_scan(tmp_path / name)
        assert scan.source_format == "nifti" and not scan.is_volume
        np.testing.assert_array_equal(scan.image(), image)
        assert scan.spacing == pytest.approx((0.8, 0.6))
        assert scan.orientation == "RAS"


def test_nifti_volume_round_trip_and_default_slice(tmp_path):
    vol = blob_volume(z=20, centre=15).astype(np.float32)
    path = tmp_path / "vol.nii.gz"
    write_nifti_volume(vol, path, spacing=(3.0, 2.0, 1.5))
    scan = load_scan(path)
    np.testing.assert_array_equal(scan.data, vol)
    assert scan.spacing == pytest.approx((3.0, 2.0, 1.5))
    assert 13 <= scan.slice_index <= 17 and scan.slice_index != 9


def test_nifti_radiological_display_convention(tmp_path):
    # RAS+ array: i -> patient's right, j -> anterior, k -> superior.
    a = np.zeros((10, 12, 4), np.float32)
    a[9, 11, 2] = 100  # right-most, most anterior voxel of slice k=2
    a[0, 0, 2] = 50  # left-most, most posterior
    path = tmp_path / "ras.nii"
    nib.save(nib.Nifti1Image(a, np.eye(4)), path)
    vol = load_scan(path).data
    assert vol.shape == (4, 12, 10)  # (Z=S, H=A->P rows, W=R->L columns)
    assert vol[2, 0, 0] == 100  # patient's right on the viewer's left, anterior at top
    assert vol[2, 11, 9] == 50


def _reoriented_copies(vol_ras: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The same RAS+ volume stored with other axis orders/directions, and affines."""
    lps_affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    # stored axes (P, R, S): the affine maps each voxel index to the same RAS position
    pra_affine = np.array([[0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    # stored axes (I, R, A)
    ira_affine = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [-1, 0, 0, 0], [0, 0, 0, 1.0]])
    return {
        "ras": (vol_ras, np.eye(4)),
        "lps": (vol_ras[::-1, ::-1, :], lps_affine),
        "permuted": (vol_ras.transpose(1, 0, 2)[::-1], pra_affine),
        "ias": (vol_ras.transpose(2, 0, 1)[::-1], ira_affine),
    }


@pytest.mark.parametrize("layout", ["lps", "permuted", "ias"])
def test_nifti_canonical_reorientation(tmp_path, layout):
    a = np.random.default_rng(RNG_SEED).uniform(size=(9, 11, 6)).astype(np.float32)
    copies = _reoriented_copies(a)
    ref_path = tmp_path / "ras.nii"
    nib.save(nib.Nifti1Image(*copies["ras"]), ref_path)
    data, affine = copies[layout]
    # sanity: the affine really maps the stored voxel to the same RAS position
    img = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    np.testing.assert_array_equal(nib.as_closest_canonical(img).get_fdata(), a)
    path = tmp_path / f"{layout}.nii.gz"
    nib.save(img, path)
    np.testing.assert_array_equal(load_scan(path).data, load_scan(ref_path).data)


def test_nifti_4d_with_one_volume_is_squeezed(tmp_path):
    vol = blob_volume(z=6, centre=4).astype(np.float32)
    path3, path4 = tmp_path / "v3.nii", tmp_path / "v4.nii"
    write_nifti_volume(vol, path3)
    img = nib.load(path3)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., None], img.affine), path4)
    np.testing.assert_array_equal(load_scan(path4).data, vol)


def test_nifti2_big_endian_and_scaled(tmp_path):
    a = np.random.default_rng(RNG_SEED).integers(0, 1000, (12, 12, 3)).astype(np.int16)
    path = tmp_path / "n2.nii"
    nib.save(nib.Nifti2Image(a, np.eye(4)), path)
    assert load_scan(path).tags["nifti_version"] == "2"

    header = nib.Nifti1Header(endianness=">")
    img = nib.Nifti1Image(a.astype(">i2"), np.eye(4), header=header)
    img.header.set_slope_inter(0.5, 10.0)
    path = tmp_path / "be_scaled.nii"
    nib.save(img, path)
    assert path.read_bytes()[:4] == struct.pack(">i", 348)
    expected = load_scan(tmp_path / "n2.nii").data * 0.5 + 10
    np.testing.assert_allclose(load_scan(path).data, expected, rtol=1e-6)


def test_nifti_coronal_single_slice(tmp_path):
    a = np.zeros((10, 1, 12), np.float32)  # one coronal slice: x (R) by z (S)
    a[9, 0, 11] = 7  # patient's right, top
    a[0, 0, 0] = 3
    path = tmp_path / "coronal.nii"
    nib.save(nib.Nifti1Image(a, np.eye(4)), path)
    image = load_scan(path).image()
    assert image.shape == (12, 10)  # rows S->I, columns R->L
    assert image[0, 0] == 7 and image[11, 9] == 3


def test_nifti_named_png_loads_as_nifti(tmp_path):
    path = tmp_path / "volume.png"
    vol = blob_volume(z=5, centre=2).transpose(2, 1, 0).astype(np.float32)
    path.write_bytes(gzip.compress(_nifti_bytes(vol)))
    assert load_scan(path).source_format == "nifti"


# ---------------------------------------------------------------- default slice rule
def test_default_slice_is_not_blindly_the_middle():
    vol = blob_volume(z=30, centre=24, radius=3)
    idx = default_slice(vol)
    assert 22 <= idx <= 26
    scan = Scan(vol)
    assert scan.slice_index == idx and scan.image().shape == (24, 24)


def test_default_slice_prefers_more_signal_than_brighter_speck():
    vol = np.zeros((9, 32, 32))
    vol[2, 10:20, 10:20] = 100  # a large region of brain-like signal
    vol[6, 5, 5] = 1000  # one hot pixel elsewhere
    assert default_slice(vol) == 2


# --------------------------------------------------------------------------- samples
SAMPLE_FILES = sorted(p for p in SAMPLES.rglob("*") if p.is_file() and p.suffix != ".md")


def test_samples_present():
    names = {p.relative_to(SAMPLES).as_posix() for p in SAMPLE_FILES}
    assert {
        "dicom/Te-me_0016.dcm",
        "dicom/Te-gl_0010_multiframe.dcm",
        "nifti/Te-pi_0014.nii.gz",
        "nifti/Te-no_0021.nii",
    } <= names
    assert all(p.stat().st_size < 2 * 1024 * 1024 for p in SAMPLE_FILES)


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.relative_to(SAMPLES).as_posix())
def test_every_sample_loads(path):
    scan = load_scan(path)
    image = scan.image()
    assert image.ndim == 2 and image.dtype == np.float32 and np.ptp(image) > 0
    assert scan.source_format in {"dicom", "nifti", "png", "jpeg"}


@pytest.mark.parametrize(
    ("derived", "jpeg", "slice_index"),
    [
        ("dicom/Te-me_0016.dcm", "Te-me_0016.jpg", None),
        ("dicom/Te-gl_0010_multiframe.dcm", "Te-gl_0010.jpg", 3),
        ("nifti/Te-pi_0014.nii.gz", "Te-pi_0014.jpg", 4),
        ("nifti/Te-no_0021.nii", "Te-no_0021.jpg", None),
    ],
)
def test_derived_samples_match_jpeg(derived, jpeg, slice_index):
    scan = load_scan(SAMPLES / derived)
    assert scan.slice_index == slice_index
    np.testing.assert_array_equal(scan.image(), jpeg_grey(jpeg))
    np.testing.assert_array_equal(load_scan(SAMPLES / jpeg).image(), jpeg_grey(jpeg))
    assert "PatientName" not in scan.tags


def test_sample_dicom_rescale_is_non_trivial():
    ds = pydicom.dcmread(SAMPLES / "dicom" / "Te-me_0016.dcm")
    assert float(ds.RescaleSlope) != 1 and float(ds.RescaleIntercept) != 0
    assert str(ds.PatientName) == "Anonymous"
