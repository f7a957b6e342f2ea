"""Scan files → model tensors: readers, transforms, data sets and synthetic phantoms.

Main entry point: :func:`load_scan` (DICOM, NIfTI, PNG/JPEG, detected from content;
a folder, zip or several files of a DICOM series, also via :func:`load_series`), which
raises :class:`ScanError` with a plain-language message for any bad input.
"""
from __future__ import annotations

from .errors import ScanError
from .guard import PASS_THROUGH
from .loader import group_uploads, load_scan, load_series
from .readers.nifti import write_nifti_slice, write_nifti_volume
from .scan import MAX_SIDE, MAX_VOXELS, MIN_SIDE, Scan, default_slice
from .transforms import is_eight_bit, model_window, normalize_intensity, scan_to_model_input, to_model_input

__all__ = ["MAX_SIDE", "MAX_VOXELS", "MIN_SIDE", "PASS_THROUGH", "Scan", "ScanError", "default_slice", "group_uploads", "load_scan", "load_series",
           "is_eight_bit", "model_window",
           "normalize_intensity", "scan_to_model_input", "to_model_input", "write_nifti_slice", "write_nifti_volume"]
