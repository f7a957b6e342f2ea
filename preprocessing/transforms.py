"""From a 2-D scan slice to the tensor a model expects, by the model's own input contract.

Two steps, kept separate because they answer different questions:

1. :func:`model_window` brings the slice to ``[0, 1]`` the way the model's training
   images were scaled (``ModelSpec.scaling``):

   * ``"uint8"`` (the pretrained Keras VGG16, trained on 8-bit JPEGs divided by 255):
     an 8-bit PNG/JPEG is divided by 255 and nothing else, so it reaches the model
     exactly as in training; DICOM, NIfTI and 16-bit images have no such fixed scale
     and go through the *display window* :data:`DISPLAY_PERCENTILES` first (their
     darkest value to 0, their brightest to 1; chosen by measurement on a validation
     split of the real training scans, ``scripts/choose_preprocessing.py``).
   * ``"unit"`` (models trained here, e.g. ``alexnet``): every slice goes through the
     percentile window :data:`DEFAULT_PERCENTILES`, as in our training pipeline.

2. :func:`to_model_input` resizes to the model's input size with its own filter
   (:func:`resize_slice`)
   (``ModelSpec.resize``: OpenCV area averaging, or Pillow's antialiased filters as a
   Keras/PIL pipeline uses them), replicates grey to RGB where the model wants three
   channels, and applies the model's mean/std.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from PIL import Image

if TYPE_CHECKING:
    from models import ModelSpec

    from .scan import Scan

#: Default percentile window. The low end is 0 because MRI background is true black and
#: must stay black; the high end ignores the brightest 0.5% (fat, vessels, artefacts).
DEFAULT_PERCENTILES: tuple[float, float] = (0.0, 99.5)

#: Display window for scans without a fixed 8-bit scale (DICOM, NIfTI, 16-bit PNG) when
#: the model was trained on 8-bit pixels / 255 (``scaling="uint8"``): darkest value to 0,
#: brightest to 1 (after the DICOM file's own VOI window, where it has one). Chosen on a
#: validation split of the real training scans (``scripts/choose_preprocessing.py``): the
#: same JPEGs windowed from their minimum to the 99th / 99.5th / 99.9th / 100th percentile
#: gave 87.7% / 89.5% / 92.5% / 94.3% accuracy (cross-entropy 0.46 / 0.36 / 0.26 / 0.15);
#: the model was trained on unsaturated 8-bit pixels, and clipping the brightest ones hurts.
DISPLAY_PERCENTILES: tuple[float, float] = (0.0, 100.0)

_PIL_FILTERS = {"pil-bicubic": Image.Resampling.BICUBIC, "pil-bilinear": Image.Resampling.BILINEAR,
                "pil-nearest": Image.Resampling.NEAREST}


def normalize_intensity(
    image: np.ndarray, percentiles: tuple[float, float] = DEFAULT_PERCENTILES
) -> np.ndarray:
    """Map a 2-D slice to float32 in ``[0, 1]`` using a percentile window.

    Args:
        image: ``(H, W)`` array of any real dtype, finite values.
        percentiles: ``(low, high)`` percentiles that map to 0 and 1.

    Returns:
        ``(H, W)`` float32 array in ``[0, 1]``. A constant slice maps to zeros.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D slice, got shape {img.shape}")
    lo, hi = np.percentile(img, percentiles)
    if not hi > lo:  # fall back to the full range, e.g. for mostly-constant images
        lo, hi = float(img.min()), float(img.max())
    if not hi > lo:
        return np.zeros_like(img)
    return np.clip((img - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def is_eight_bit(scan: "Scan") -> bool:
    """Whether ``scan`` is an 8-bit PNG/JPEG (pixels 0..255 with a fixed meaning), as
    opposed to a DICOM, NIfTI or 16-bit image whose scale has to be windowed."""
    return scan.source_format in ("png", "jpeg") and scan.tags.get("original_dtype") in ("uint8", "bool")


def model_window(image: np.ndarray, spec: "ModelSpec", eight_bit: bool = False) -> np.ndarray:
    """The slice in ``[0, 1]`` as ``spec``'s model saw its training images (see the module
    docstring): ``/ 255`` for an 8-bit image under ``scaling="uint8"``, else a percentile
    window (:data:`DISPLAY_PERCENTILES` for ``"uint8"``, :data:`DEFAULT_PERCENTILES` for
    ``"unit"``)."""
    if spec.scaling == "uint8":
        if eight_bit:
            return np.clip(np.asarray(image, dtype=np.float32) / 255.0, 0.0, 1.0)
        return normalize_intensity(image, DISPLAY_PERCENTILES)
    return normalize_intensity(image, DEFAULT_PERCENTILES)


def scan_to_model_input(scan: "Scan", spec: "ModelSpec", index: int | None = None) -> torch.Tensor:
    """``(C, H, W)`` model input of slice ``index`` of ``scan`` (its own scale decides
    the window, see :func:`model_window`)."""
    return to_model_input(scan.image(index), spec, eight_bit=is_eight_bit(scan))


def resize_slice(grey: np.ndarray, spec: "ModelSpec") -> np.ndarray:
    """Resize a 2-D slice to ``spec.input_size`` with ``spec.resize``. A ``uint8`` slice is
    resized in 8 bits (Pillow rounds, as a PIL pipeline on JPEGs does), anything else in
    float32."""
    height, width = spec.input_size
    if spec.resize == "area":
        out = cv2.resize(np.asarray(grey, dtype=np.float32), (width, height), interpolation=cv2.INTER_AREA)
        return out.astype(np.float32)
    pil = Image.fromarray(grey if grey.dtype == np.uint8 else np.asarray(grey, dtype=np.float32))
    return np.asarray(pil.resize((width, height), _PIL_FILTERS[spec.resize]))


def to_model_input(image: np.ndarray, spec: "ModelSpec", normalize: bool = True,
                   eight_bit: bool = False) -> torch.Tensor:
    """Turn one 2-D slice into a ``(C, H, W)`` float32 tensor for ``spec``'s model.

    Args:
        image: ``(H, W)`` slice: raw intensities if ``normalize``, else already in ``[0, 1]``.
        spec: the model's input contract.
        normalize: apply :func:`model_window` first.
        eight_bit: the raw slice is 8-bit PNG/JPEG pixels (see :func:`is_eight_bit`); for a
            ``scaling="uint8"`` model it is then resized in 8 bits and divided by 255,
            exactly as that model's training pipeline did.
    """
    if normalize and eight_bit and spec.scaling == "uint8" and spec.resize != "area":
        pixels = np.clip(np.rint(np.asarray(image, dtype=np.float32)), 0, 255).astype(np.uint8)
        grey = resize_slice(pixels, spec).astype(np.float32) / 255.0
    else:
        grey = resize_slice(model_window(image, spec, eight_bit) if normalize else image, spec)
        if spec.resize != "area":  # clipped like the 8-bit path, where Pillow clips bicubic overshoot
            grey = np.clip(grey, 0.0, 1.0)
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    out = (np.repeat(grey[:, :, None], spec.channels, axis=2) - mean) / std
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32))
