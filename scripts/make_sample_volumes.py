"""Write the derived DICOM and NIfTI example scans in ``samples/`` from the real JPEGs.

Run from the repository root::

    .venv/bin/python scripts/make_sample_volumes.py

The JPEGs are 8-bit grey stored as RGB; their grey levels ``g`` (0..255, as returned by
``load_scan(jpeg).image()``) are the reference. Every file written here is checked to
load back, on its default slice, to exactly ``g``. The output is deterministic (UIDs
derived from the file names, no dates) and carries no patient data: PatientName
"Anonymous", PatientID "ANON".

Recipes:

``samples/dicom/Te-me_0016.dcm``
    Single-frame MR Image Storage, MONOCHROME2, 16 bits allocated / 12 stored,
    unsigned, Explicit VR Little Endian with preamble and file meta. Rescale Slope 0.5
    and Intercept -100 (non-trivial on purpose); stored values ``2 * g + 200`` so the
    modality LUT gives ``0.5 * (2 g + 200) - 100 = g`` exactly. No window (so no VOI
    LUT is applied).

``samples/dicom/Te-gl_0010_multiframe.dcm``
    Five-frame MR Image Storage (a legacy multi-frame layout, like pydicom's own
    ``emri_small.dcm``), 16-bit unsigned, RLE Lossless compressed. Frame 3 is the real
    slice ``g``; the others are dimmer copies ``round(f * g)`` with
    ``f = 0.2, 0.4, 0.7, -, 0.5``, so the default-slice rule (most foreground signal)
    picks frame 3, which is deliberately not the middle frame (2).

``samples/nifti/Te-pi_0014.nii.gz``
    Seven axial slices, int16, written with
    :func:`preprocessing.readers.nifti.write_nifti_volume` (RAS affine, radiological
    display). Slice 4 is ``g``; the others are ``round(f * g)`` with
    ``f = 0.1, 0.25, 0.45, 0.7, -, 0.6, 0.3``, so the default slice is 4 (not the
    middle one, 3).

``samples/nifti/Te-no_0021.nii``
    One axial slice, float32, uncompressed, written with
    :func:`preprocessing.readers.nifti.write_nifti_slice`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    MRImageStorage,
    RLELossless,
    generate_uid,
)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from preprocessing.loader import load_scan  # noqa: E402
from preprocessing.readers.nifti import write_nifti_slice, write_nifti_volume  # noqa: E402

SAMPLES = ROOT / "samples"
MULTIFRAME_FACTORS = (0.2, 0.4, 0.7, 1.0, 0.5)
NIFTI_FACTORS = (0.1, 0.25, 0.45, 0.7, 1.0, 0.6, 0.3)


def jpeg_grey(name: str) -> np.ndarray:
    """Grey levels of a sample JPEG as ``(H, W)`` uint8."""
    grey = load_scan(SAMPLES / name).image()
    assert np.array_equal(grey, np.round(grey)) and grey.min() >= 0 and grey.max() <= 255
    return grey.astype(np.uint8)


def _mr_dataset(path: Path, rows: int, cols: int, key: str) -> FileDataset:
    """An anonymous MR dataset with file meta and preamble, no pixel data yet."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[key, "sop"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[key, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[key, "series"])
    ds.PatientName = "Anonymous"
    ds.PatientID = "ANON"
    ds.Modality = "MR"
    ds.SeriesDescription = "HSCC-MRI sample derived from a public JPEG"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelRepresentation = 0
    return ds


def write_single_frame_dicom(grey: np.ndarray, path: Path) -> None:
    """Single-frame MR with rescale slope 0.5 / intercept -100 (see module docstring)."""
    ds = _mr_dataset(path, *grey.shape, key=path.name)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "0.5", "-100", "US"
    stored = grey.astype(np.uint16) * 2 + 200  # 0.5 * stored - 100 == grey
    ds.PixelData = stored.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_multiframe_dicom(grey: np.ndarray, path: Path) -> None:
    """Five-frame RLE-compressed MR; the real slice is frame 3 (see module docstring)."""
    ds = _mr_dataset(path, *grey.shape, key=path.name)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.NumberOfFrames = len(MULTIFRAME_FACTORS)
    frames = np.stack([np.round(f * grey.astype(np.float64)) for f in MULTIFRAME_FACTORS])
    ds.compress(RLELossless, frames.astype(np.uint16), generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)


def attenuated_volume(grey: np.ndarray, factors: tuple[float, ...]) -> np.ndarray:
    """``(Z, H, W)`` stack of ``round(f * grey)``; the factor 1.0 slice is ``grey``."""
    return np.stack([np.round(f * grey.astype(np.float64)) for f in factors])


def check(path: Path, grey: np.ndarray, slice_index: int | None) -> None:
    """Assert the file's default slice is exactly the JPEG's grey pixels."""
    scan = load_scan(path)
    assert scan.slice_index == slice_index, (path.name, scan.slice_index, slice_index)
    diff = float(np.abs(scan.image() - grey.astype(np.float32)).max())
    size_kib = path.stat().st_size / 1024
    print(f"{path.relative_to(ROOT)}: shape {scan.data.shape}, default slice "
          f"{scan.slice_index}, max |diff| vs JPEG {diff:g}, {size_kib:.0f} KiB")
    assert diff == 0.0, f"{path.name} does not reproduce the JPEG pixels"
    assert path.stat().st_size < 2 * 1024 * 1024, f"{path.name} is over 2 MB"


def main() -> None:
    (SAMPLES / "dicom").mkdir(exist_ok=True)
    (SAMPLES / "nifti").mkdir(exist_ok=True)

    grey = jpeg_grey("Te-me_0016.jpg")
    out = SAMPLES / "dicom" / "Te-me_0016.dcm"
    write_single_frame_dicom(grey, out)
    check(out, grey, None)

    grey = jpeg_grey("Te-gl_0010.jpg")
    out = SAMPLES / "dicom" / "Te-gl_0010_multiframe.dcm"
    write_multiframe_dicom(grey, out)
    check(out, grey, MULTIFRAME_FACTORS.index(1.0))

    grey = jpeg_grey("Te-pi_0014.jpg")
    out = SAMPLES / "nifti" / "Te-pi_0014.nii.gz"
    write_nifti_volume(attenuated_volume(grey, NIFTI_FACTORS), out, dtype=np.int16)
    check(out, grey, NIFTI_FACTORS.index(1.0))

    grey = jpeg_grey("Te-no_0021.jpg")
    out = SAMPLES / "nifti" / "Te-no_0021.nii"
    write_nifti_slice(grey.astype(np.float32), out)
    check(out, grey, None)


if __name__ == "__main__":
    main()
