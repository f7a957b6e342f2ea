"""Scan files → model tensors: readers, transforms, data sets and synthetic phantoms.

Main entry point: :func:`load_scan` (DICOM, NIfTI, PNG/JPEG, detected from content),
which raises :class:`ScanError` with a plain-language message for any bad input.
"""
from __future__ import annotations

from .errors import ScanError
from .loader import load_scan
from .scan import Scan
from .transforms import normalize_intensity, to_model_input

__all__ = ["Scan", "ScanError", "load_scan", "normalize_intensity", "to_model_input"]
