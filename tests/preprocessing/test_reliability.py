"""Regression tests of the reliability campaign (issue 26), each on a real file made here.

Every test failed before the fix: an exception other than ScanError escaped, a damaged
compressed frame was decoded into a scan, a study folder with a localiser was refused,
an inconsistent series was read silently or with a misleading message, or a small
hostile file took seconds and gigabytes.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from preprocessing import ScanError, load_scan, load_series

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


# ------------------------------------------------------------ defect 4: escapes closed
@contextlib.contextmanager
def _as_nobody():
    """Run the block as an unprivileged user when the tests run as root (root may open
    any folder, so the permission check would not be exercised)."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.mark.parametrize("path", ["", b"", "   ", [""], ("",)])
def test_an_empty_path_is_refused_not_read_as_the_current_folder(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stray.dcm").write_bytes((SAMPLES / "dicom" / "Te-me_0016.dcm").read_bytes())
    with pytest.raises(ScanError, match="file name is empty"):
        load_scan(path)


def test_an_over_long_name_is_a_scan_error(tmp_path):
    for path in (tmp_path / ("x" * 300), tmp_path / ("x" * 300) / "DICOMDIR", tmp_path / ("x" * 300 + ".dcm")):
        with pytest.raises(ScanError, match="could not be opened"):
            load_scan(path)
        with pytest.raises(ScanError, match="could not be opened"):
            load_series(path)
    with pytest.raises(ScanError, match="could not be opened"):
        load_scan([tmp_path / ("y" * 300), SAMPLES / "dicom" / "Te-me_0016.dcm"])


def test_a_path_under_an_unreadable_folder_is_a_scan_error(tmp_path):
    locked = tmp_path / "locked"
    (locked / "series").mkdir(parents=True)
    target = locked / "series" / "IM0001.dcm"
    target.write_bytes((SAMPLES / "dicom" / "Te-me_0016.dcm").read_bytes())
    locked.chmod(0)
    try:
        with _as_nobody():
            for path in (target, locked / "series", locked / "series" / "DICOMDIR"):
                with pytest.raises(ScanError, match="permission denied"):
                    load_scan(path)
            with pytest.raises(ScanError, match="permission denied"):
                load_scan([target, target])
    finally:
        locked.chmod(0o755)
