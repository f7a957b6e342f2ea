"""Calibration images for data-aware compression.

HSCC fits its factors to the responses of a model on *calibration* images. Scans come
from several sources and framings, so a handful of scans is stretched into many views
by strong, label-preserving augmentation: zoom in and out (crop or pad), aspect,
rotation, flips, contrast, gamma, noise and blur. Synthetic phantoms add anatomy and
lesion positions the real scans lack.

The default set for a model is built only from what the repository ships or installs:
the sample scans in ``samples/`` and the phantom generator.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import albumentations as A
import cv2
import numpy as np
import torch

from .augment import augment_slice
from .datasets import is_scan_file
from .errors import ScanError
from .loader import load_scan
from .phantoms import phantom_sample
from .transforms import normalize_intensity, to_model_input

#: The real sample scans shipped with the repository.
SAMPLES_DIR = Path(__file__).resolve().parents[1] / "samples"


def calibration_augmentation() -> A.Compose:
    """Strong augmentation for calibration views of a ``[0, 1]`` grey slice (keeps size)."""
    return A.Compose([
        A.OneOf([
            A.CropAndPad(percent=(-0.25, -0.05), keep_size=True, p=1.0),  # zoom in
            A.CropAndPad(percent=(0.0, 0.25), keep_size=True, border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0),
        ], p=0.85),
        A.Affine(rotate=(-15, 15), scale={"x": (0.85, 1.15), "y": (0.85, 1.15)}, translate_percent=(-0.08, 0.08),
                 border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.8),
        A.HorizontalFlip(p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.25, p=0.7),
        A.RandomGamma(gamma_limit=(70, 140), p=0.5),
        A.GaussNoise(std_range=(0.005, 0.04), p=0.3),
        A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.2, 1.0), p=0.2),
    ])


def scan_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Readable-looking scan files under ``folder`` (recursive, sorted)."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"calibration folder not found: {root}")
    return sorted(p for p in root.rglob("*") if p.is_file() and is_scan_file(p))


def sample_scans() -> list[Path]:
    """The real 2-D sample scans in ``samples/`` (the JPEG/PNG originals, not their DICOM and
    NIfTI copies, which would count the same scans twice)."""
    return [p for p in scan_files(SAMPLES_DIR) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]


def load_slices(paths: Sequence[str | os.PathLike[str]]) -> list[np.ndarray]:
    """Default slices of ``paths``, each normalised to ``[0, 1]``; unreadable files are
    skipped (reported in the exception if none is left)."""
    slices, errors = [], []
    for p in paths:
        try:
            slices.append(normalize_intensity(load_scan(p).image()))
        except ScanError as e:
            errors.append(str(e))
    if not slices:
        raise ValueError("no readable calibration scan" + (f": {errors[0]}" if errors else ""))
    return slices


def augmented_views(slices: Sequence[np.ndarray], views_per_scan: int, seed: int,
                    keep_original: bool = True) -> list[np.ndarray]:
    """``views_per_scan`` augmented versions of each ``[0, 1]`` slice (the first is the
    untouched slice when ``keep_original``)."""
    pipeline = calibration_augmentation()
    pipeline.set_random_seed(seed)
    out = []
    for s in slices:
        for v in range(views_per_scan):
            out.append(s if (keep_original and v == 0) else augment_slice(s, pipeline))
    return out


def calibration_batches(images: Sequence[np.ndarray], spec, batch_size: int = 16) -> list[torch.Tensor]:
    """Stack ``[0, 1]`` slices into model-input batches ``(N, C, H, W)`` for ``spec``."""
    tensors = [to_model_input(img, spec, normalize=False) for img in images]
    return [torch.stack(tensors[i:i + batch_size]) for i in range(0, len(tensors), batch_size)]


def default_calibration(spec, sample_views: int = 16, n_phantoms: int = 32, seed: int = 0,
                        scans: Sequence[str | os.PathLike[str]] | None = None,
                        batch_size: int = 16) -> list[torch.Tensor]:
    """The default calibration set: every sample scan (or ``scans``) in ``sample_views``
    augmented views, plus ``n_phantoms`` phantoms (balanced over the four classes).

    Returns:
        Model-input batches for ``spec``.
    """
    files = list(scans) if scans is not None else sample_scans()
    images = augmented_views(load_slices(files), sample_views, seed) if sample_views else []
    images += [phantom_sample(i, seed=10_000 + seed)[0] for i in range(n_phantoms)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    return calibration_batches([images[i] for i in order], spec, batch_size)


def folder_calibration(folder: str | os.PathLike[str], spec, views_per_scan: int = 8, seed: int = 0,
                       batch_size: int = 16, max_scans: int | None = None) -> list[torch.Tensor]:
    """Calibration batches from every scan under ``folder`` (augmented views of each)."""
    files = scan_files(folder)
    if max_scans is not None and len(files) > max_scans:
        rng = np.random.default_rng(seed)
        files = [files[i] for i in sorted(rng.choice(len(files), max_scans, replace=False))]
    images = augmented_views(load_slices(files), views_per_scan, seed)
    return calibration_batches(images, spec, batch_size)


def calibration_for(spec, source: str = "default", views: int = 16, phantoms: int = 32,
                    seed: int = 0) -> list[torch.Tensor]:
    """Calibration batches by name, as ``python -m hscc_core compress --calib`` takes them.

    Args:
        spec: the model's :class:`models.ModelSpec`.
        source: ``"default"`` (the sample scans in ``views`` augmented views each, plus
            ``phantoms`` phantoms), ``"phantoms"`` (phantoms only) or a folder of scans.
        views: augmented views per scan.
        phantoms: phantoms in the default set.
        seed: seed of the augmentations and phantoms.

    Raises:
        ValueError: ``source`` is none of the above, or the folder holds no readable scan.
    """
    if source == "default":
        return default_calibration(spec, sample_views=views, n_phantoms=phantoms, seed=seed)
    if source == "phantoms":
        return default_calibration(spec, sample_views=0, n_phantoms=max(phantoms, 1), seed=seed)
    if not Path(source).is_dir():
        raise ValueError(f"{source} is not 'default', 'phantoms' or a folder")
    return folder_calibration(source, spec, views_per_scan=views, seed=seed)
