"""DICOM series from folders, zip archives and several files, written here with pydicom.

The main series is the sample NIfTI volume ``samples/nifti/Te-pi_0014.nii.gz`` written
slice by slice (axial, Image Orientation ``[1, 0, 0, 0, 1, 0]``), so it must read back
with exactly the NIfTI twin's pixels, order and model input.
"""
from __future__ import annotations

import random
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.fileset import FileSet
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from models import ModelSpec
from preprocessing import ScanError, load_scan, load_series, scan_to_model_input

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
TWIN = SAMPLES / "nifti" / "Te-pi_0014.nii.gz"


@pytest.fixture(scope="module")
def twin():
    return load_scan(TWIN)


def write_slice(path: Path, pixels: np.ndarray, *, z: float, number: int, series_uid: str,
                description: str = "T1 AX", series_number: int = 3, spacing=(0.5, 0.5),
                iop=(1, 0, 0, 0, 1, 0), image_type=("ORIGINAL", "PRIMARY", "AXIAL")) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = MRImageStorage, meta.MediaStorageSOPInstanceUID, "MR"
    ds.PatientName, ds.PatientID, ds.StudyDate, ds.StudyTime = "Doe^Jane", "PID-12345", "20240101", "120000"
    ds.StudyID, ds.AccessionNumber = "S1", "A1"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4", series_uid
    ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = description, series_number, number
    ds.ImageType = list(image_type)
    ds.ImageOrientationPatient = [float(v) for v in iop]
    normal = np.cross(np.array(iop[:3], float), np.array(iop[3:], float))
    ds.ImagePositionPatient = [float(v) for v in (-100.0, -100.0, 0.0) + normal * z]
    ds.PixelSpacing, ds.SliceThickness = list(spacing), 2.0
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = pixels.astype("<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_series(folder: Path, volume: np.ndarray, *, dz: float = 2.5, shuffle: bool = True, **kw) -> list[Path]:
    """One file per slice, in shuffled file-name order (names do not follow the slices)."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = kw.pop("series_uid", generate_uid())
    order = list(range(volume.shape[0]))
    if shuffle:
        random.Random(7).shuffle(order)
    paths = []
    for k, z in enumerate(order):
        p = folder / f"IM{k:04d}"
        write_slice(p, volume[z], z=z * dz, number=z + 1, series_uid=uid, **kw)
        paths.append(p)
    return paths


def test_shuffled_series_reads_like_its_nifti_twin(tmp_path, twin):
    files = write_series(tmp_path / "Te-pi_0014", twin.data)
    scan = load_scan(tmp_path / "Te-pi_0014")
    np.testing.assert_array_equal(scan.data, twin.data)
    assert scan.spacing == (2.5, 0.5, 0.5) and scan.orientation == "LPS/patient"
    assert scan.slice_index == twin.slice_index and scan.tags["SeriesDescription"] == "T1 AX"
    assert scan.tags["series_slices"] == "7" and scan.notes == ()
    spec = ModelSpec(name="t", input_size=(64, 64), channels=3)
    assert bool((scan_to_model_input(scan, spec) == scan_to_model_input(twin, spec)).all())
    again = load_series(list(reversed(files)))  # several files given together
    np.testing.assert_array_equal(again.data, twin.data)
    text = " ".join([str(v) for v in scan.tags.values()] + list(scan.notes))
    assert "Doe" not in text and "PID-12345" not in text and "2024" not in text


def test_zipped_series_with_a_localiser_and_a_readme(tmp_path, twin):
    folder = tmp_path / "export"
    write_series(folder, twin.data)
    write_slice(folder / "scout", twin.data[3], z=0, number=99, series_uid=pydicom.dcmread(folder / "IM0000").SeriesInstanceUID,
                iop=(0, 1, 0, 0, 0, -1), image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    (folder / "README.txt").write_text("exported by a viewer")
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"DICOM/{p.name}")
        zf.writestr("../evil.dcm", b"not read")
    scan = load_scan(archive)
    np.testing.assert_array_equal(scan.data, twin.data)
    notes = " ".join(scan.notes)
    assert "1 localiser (scout) image was left out" in notes and "not DICOM" in notes


def test_missing_slice_is_a_gap(tmp_path, twin):
    files = write_series(tmp_path / "gap", twin.data, shuffle=False)
    files[3].unlink()
    msg = str(pytest.raises(ScanError, load_scan, tmp_path / "gap").value)
    assert "'gap' has a gap" in msg and "slices 2 and 3" in msg and "5.00 mm instead of 2.50 mm" in msg


def test_two_series_are_listed_and_one_can_be_chosen(tmp_path, twin):
    folder = tmp_path / "study"
    write_series(folder / "a", twin.data, description="T1 AX", series_number=3)
    write_series(folder / "b", twin.data[:4] * 2, description="T2 AX", series_number=4)
    with pytest.raises(ScanError) as info:
        load_scan(folder)
    msg = str(info.value)
    assert '1. "T1 AX" (7 slices); 2. "T2 AX" (4 slices)' in msg and "--series" in msg
    assert "Doe" not in msg and "PID" not in msg and "1.2.3.4" not in msg
    t2 = load_scan(folder, series=2)
    np.testing.assert_array_equal(t2.data, twin.data[:4] * 2)
    assert load_scan(folder, series="t1 ax").num_slices == 7
    assert "other series left out" in " ".join(t2.notes)
    with pytest.raises(ScanError, match="no series described"):
        load_scan(folder, series="FLAIR")


def test_mixed_sizes_and_orientations_are_refused(tmp_path, twin):
    uid = generate_uid()
    write_series(tmp_path / "sizes", twin.data[:3], series_uid=uid)
    write_slice(tmp_path / "sizes" / "odd", twin.data[3, :256], z=7.5, number=4, series_uid=uid)
    with pytest.raises(ScanError, match="different sizes"):
        load_scan(tmp_path / "sizes")
    uid = generate_uid()
    write_series(tmp_path / "mixed", twin.data[:3], series_uid=uid)
    for k in range(3):
        write_slice(tmp_path / "mixed" / f"sag{k}", twin.data[k], z=k, number=10 + k, series_uid=uid,
                    iop=(0, 1, 0, 0, 0, -1))
    with pytest.raises(ScanError, match="different orientations"):
        load_scan(tmp_path / "mixed")


def test_instance_numbers_order_slices_without_positions(tmp_path, twin):
    files = write_series(tmp_path / "nopos", twin.data)
    for p in files:
        ds = pydicom.dcmread(p)
        del ds.ImagePositionPatient
        ds.save_as(p)
    scan = load_scan(tmp_path / "nopos")
    np.testing.assert_array_equal(scan.data, twin.data)
    assert scan.spacing[0] == 2.0  # SliceThickness: positions are unknown


def test_dicomdir_points_to_its_series(tmp_path, twin):
    staged = tmp_path / "staged"
    write_series(staged, twin.data)
    fs = FileSet()
    for p in sorted(staged.iterdir()):
        fs.add(pydicom.dcmread(p))
    out = tmp_path / "cd"
    fs.write(out)
    (out / "stray.dcm").write_bytes((staged / "IM0000").read_bytes())  # not listed: not used
    scan = load_scan(out / "DICOMDIR")
    np.testing.assert_array_equal(scan.data, twin.data)
    assert load_scan(out).num_slices == 7


def test_zip_bombs_and_junk_are_refused(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.dcm", bytes(200 * 1024 * 1024))
    from preprocessing.archive import read_zip
    with pytest.raises(ScanError, match="would decompress to more than"):
        read_zip(bomb, max_total_bytes=100 * 1024 * 1024)
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(30):
            zf.writestr(f"{i}.txt", b"x")
    with pytest.raises(ScanError, match="holds 30 files"):
        read_zip(many, max_members=20)
    with pytest.raises(ScanError, match="holds no DICOM image files"):
        load_scan(many)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ScanError, match="damaged or incomplete zip"):
        load_scan(broken)
