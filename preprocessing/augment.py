"""Training-time augmentation of ``[0, 1]`` grey MRI slices.

Applied to the normalised 2-D slice *before* :func:`preprocessing.transforms.to_model_input`,
so it is independent of the model's channels and mean/std. Only label-preserving
changes: a random crop with mild zoom and aspect change, a small rotation, left/right
flips (brains are nearly symmetric; up/down flips are not anatomical), brightness,
contrast and gamma jitter, a little noise and blur.
"""
from __future__ import annotations

import os

import albumentations as A
import cv2
import numpy as np
import torch

__all__ = ["SliceAugmenter", "augment_slice", "train_augmentation"]


def train_augmentation(size: tuple[int, int] | None = None, seed: int | None = None) -> A.Compose:
    """The training augmentation pipeline.

    Args:
        size: ``(height, width)`` of the output. With a size, a random resized crop
            (80-100% of the area, aspect 0.85-1.18) produces it directly; without one,
            a random crop/pad of up to 10% per side keeps the input size.
        seed: seed of the pipeline's random state (``None``: fresh entropy).

    Returns:
        An albumentations ``Compose`` taking ``image=`` a ``(H, W)`` float32 slice in
        ``[0, 1]``; its output may leave ``[0, 1]`` slightly (use :func:`augment_slice`,
        which clips).
    """
    if size is None:
        crop: A.BasicTransform = A.CropAndPad(percent=(-0.1, 0.05), keep_size=True, border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.7)
    else:
        crop = A.RandomResizedCrop(size=tuple(size), scale=(0.8, 1.0), ratio=(0.85, 1.18), p=1.0)
    return A.Compose(
        [
            crop,
            A.Affine(rotate=(-10, 10), scale=(0.95, 1.05), border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.5),
            A.HorizontalFlip(p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.15, p=0.5),
            A.RandomGamma(gamma_limit=(80, 125), p=0.4),
            A.GaussNoise(std_range=(0.005, 0.03), p=0.25),
            A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.2, 0.9), p=0.15),
        ],
        seed=seed,
    )


def augment_slice(image: np.ndarray, pipeline: A.Compose) -> np.ndarray:
    """Run ``pipeline`` on one ``(H, W)`` ``[0, 1]`` slice.

    Returns:
        ``(H', W')`` float32 in ``[0, 1]`` (``H', W'`` = the pipeline's output size).
    """
    img = np.ascontiguousarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D slice, got shape {img.shape}")
    out = pipeline(image=img)["image"]
    if out.ndim == 3:
        out = out[:, :, 0]
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


class SliceAugmenter:
    """:func:`train_augmentation` as a callable on slices, safe in DataLoader workers.

    A pipeline pickled into worker processes would carry the same random state into
    each of them, so all workers would apply identical "random" augmentations. This
    wrapper rebuilds its pipeline once per process, seeded in a worker from
    ``torch.initial_seed()`` (distinct per worker and per epoch).

    Args:
        size: output ``(height, width)`` (see :func:`train_augmentation`).
    """

    def __init__(self, size: tuple[int, int] | None = None) -> None:
        self.size = None if size is None else tuple(size)
        self._pid: int | None = None
        self._pipeline: A.Compose | None = None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Augment one ``(H, W)`` ``[0, 1]`` slice (see :func:`augment_slice`)."""
        if self._pid != os.getpid() or self._pipeline is None:
            in_worker = torch.utils.data.get_worker_info() is not None
            seed = torch.initial_seed() % 2**32 if in_worker else None
            self._pipeline = train_augmentation(self.size, seed=seed)
            self._pid = os.getpid()
        return augment_slice(image, self._pipeline)

    def __getstate__(self) -> dict:
        return {"size": self.size, "_pid": None, "_pipeline": None}
