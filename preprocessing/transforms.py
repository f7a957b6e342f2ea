"""From a 2-D scan slice to the tensor a model expects.

Two steps, kept separate because they answer different questions:

1. :func:`normalize_intensity` makes scans from different scanners comparable: a
   percentile window (robust to a few hot pixels and to empty background) maps the
   slice to ``[0, 1]``.
2. :func:`model_transform` applies the model's own input contract (size, channels,
   scaling, mean/std) from its :class:`models.ModelSpec`, through albumentations.
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import albumentations as A
import cv2
import numpy as np
import torch

if TYPE_CHECKING:
    from models._spec import ModelSpec

#: Default percentile window. The low end is 0 because MRI background is true black and
#: must stay black; the high end ignores the brightest 0.5% (fat, vessels, artefacts).
DEFAULT_PERCENTILES: tuple[float, float] = (0.0, 99.5)


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


def model_transform(spec: "ModelSpec") -> A.Compose:
    """The albumentations pipeline that turns a ``[0, 1]`` grey ``(H, W)`` slice into the
    model's input layout ``(H', W', C)`` (resize, then mean/std normalisation)."""
    return _cached_transform(tuple(spec.input_size), tuple(spec.mean), tuple(spec.std))


@lru_cache(maxsize=16)
def _cached_transform(size: tuple[int, int], mean: tuple[float, ...], std: tuple[float, ...]) -> A.Compose:
    # Building a Compose validates every transform: too slow to repeat per image.
    height, width = size
    return A.Compose(
        [
            A.Resize(height, width, interpolation=cv2.INTER_AREA),
            A.Normalize(mean=mean, std=std, max_pixel_value=1.0),
        ]
    )


def to_model_input(image: np.ndarray, spec: "ModelSpec", normalize: bool = True) -> torch.Tensor:
    """Turn one 2-D slice into a ``(C, H, W)`` float32 tensor for ``spec``'s model.

    Args:
        image: ``(H, W)`` slice (raw intensities if ``normalize`` else already in ``[0, 1]``).
        spec: the model's input contract.
        normalize: apply :func:`normalize_intensity` first.
    """
    grey = normalize_intensity(image) if normalize else np.asarray(image, dtype=np.float32)
    if spec.channels == 3:
        grey = np.repeat(grey[:, :, None], 3, axis=2)
    out = model_transform(spec)(image=grey)["image"]
    if out.ndim == 2:
        out = out[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))
