"""Calibration images for data-aware compression.

HSCC fits its factors to the responses of a model on *calibration* images. Scans come
from several sources and framings, so a handful of scans is stretched into many views
by strong, label-preserving augmentation: zoom in and out (crop or pad), aspect,
rotation, flips, contrast, gamma, noise and blur. Synthetic phantoms add anatomy and
lesion positions the real scans lack.

The default set for a model is built only from what the repository ships: for the
pretrained VGG16, real training scans of the public data set copied into
``data/calibration/brain-mri/`` (:data:`DEFAULT_RECIPES`); for models trained here on
phantoms, the sample scans in ``samples/`` in augmented views plus phantoms
(:data:`LEGACY_RECIPE`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import albumentations as A
import cv2
import numpy as np
import torch

from preprocessing import ScanError, is_eight_bit, load_scan, model_window, to_model_input
from preprocessing.augment import augment_slice
from preprocessing.datasets import canonical_class_name, is_scan_file
from preprocessing.phantoms import phantom_sample

from .errors import DataError, SettingsError
from .recipes import (DEFAULT_RECIPES, LEGACY_RECIPE, REAL_CALIBRATION_DIR, SAMPLES_DIR, CalibrationRecipe,
                      default_recipe)

__all__ = ["CalibrationRecipe", "DEFAULT_RECIPES", "LEGACY_RECIPE", "REAL_CALIBRATION_DIR", "SAMPLES_DIR",
           "augmented_views", "balanced_files", "calibration_augmentation", "calibration_batches",
           "calibration_for", "calibration_set", "default_calibration", "default_recipe", "folder_calibration",
           "load_slices", "recipe_files", "sample_scans", "scan_files"]


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
        raise DataError(f"calibration folder not found: {root}")
    return sorted(p for p in root.rglob("*") if p.is_file() and is_scan_file(p))


def sample_scans() -> list[Path]:
    """The real 2-D sample scans in ``samples/`` (the JPEG/PNG originals, not their DICOM and
    NIfTI copies, which would count the same scans twice)."""
    return [p for p in scan_files(SAMPLES_DIR) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]


def load_slices(paths: Sequence[str | os.PathLike[str]], spec) -> list[np.ndarray]:
    """Default slices of ``paths``, each brought to ``[0, 1]`` by ``spec``'s input contract
    (:func:`preprocessing.transforms.model_window`); unreadable files are skipped
    (reported in the exception if none is left)."""
    slices, errors = [], []
    for p in paths:
        try:
            scan = load_scan(p)
            slices.append(model_window(scan.image(), spec, is_eight_bit(scan)))
        except ScanError as e:
            errors.append(str(e))
    if not slices:
        raise DataError("no readable calibration scan" + (f": {errors[0]}" if errors else ""))
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


def default_calibration(spec, sample_views: int = LEGACY_RECIPE.views, n_phantoms: int = LEGACY_RECIPE.phantoms, seed: int = 0,
                        scans: Sequence[str | os.PathLike[str]] | None = None,
                        batch_size: int = 16) -> list[torch.Tensor]:
    """The default calibration set: every sample scan (or ``scans``) in ``sample_views``
    augmented views, plus ``n_phantoms`` phantoms (balanced over the four classes).

    Returns:
        Model-input batches for ``spec``.
    """
    files = list(scans) if scans is not None else sample_scans()
    images = augmented_views(load_slices(files, spec), sample_views, seed) if sample_views else []
    images += [phantom_sample(i, seed=10_000 + seed)[0] for i in range(n_phantoms)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    return calibration_batches([images[i] for i in order], spec, batch_size)


def balanced_files(files: Sequence[Path], max_scans: int | None, seed: int = 0) -> list[Path]:
    """At most ``max_scans`` of ``files``, balanced over the classes their folders name.

    A file's class is the first ancestor folder whose name is a class spelling
    (:func:`preprocessing.datasets.canonical_class_name`); files in no class folder form
    one group. Within a group the order of a ``manifest.json`` in the common folder is
    kept when there is one (the shipped set lists its draw order), else a seeded shuffle;
    the groups are then taken in turn, so the first ``4k`` files hold ``k`` of each class.
    """
    files = list(files)
    if max_scans is None or len(files) <= max_scans:
        return files
    groups: dict[str | None, list[Path]] = {}
    for f in files:
        cls = next((c for c in (canonical_class_name(a.name) for a in f.parents) if c), None)
        groups.setdefault(cls, []).append(f)
    rng = np.random.default_rng(seed)
    order = _manifest_order(files)
    for key, members in groups.items():
        if order:
            members.sort(key=lambda m: order.get(m.resolve(), len(order)))
        else:
            groups[key] = [members[j] for j in rng.permutation(len(members))]
    chosen: list[Path] = []
    queues = [list(v) for _, v in sorted(groups.items(), key=lambda kv: str(kv[0]))]
    while len(chosen) < max_scans:
        for q in queues:
            if q and len(chosen) < max_scans:
                chosen.append(q.pop(0))
    return chosen


def _manifest_order(files: Sequence[Path]) -> dict[Path, int]:
    roots = {f.resolve().parent.parent for f in files}
    for root in roots | {r.parent for r in roots}:
        manifest = root / "manifest.json"
        if manifest.is_file():
            try:
                entries = json.loads(manifest.read_text())["files"]
                return {(root / e["file"]).resolve(): k for k, e in enumerate(entries)}
            except (ValueError, KeyError, TypeError):
                return {}
    return {}


def recipe_files(recipe: CalibrationRecipe) -> list[Path]:
    """The scan files ``recipe`` reads (empty for ``"phantoms"``), balanced over classes.

    Raises:
        SettingsError: the source is not ``real``, ``samples``, ``phantoms`` or a folder.
    """
    if recipe.source == "phantoms":
        return []
    if recipe.source == "samples":
        files = sample_scans()
    else:
        folder = REAL_CALIBRATION_DIR if recipe.source == "real" else Path(recipe.source)
        if not folder.is_dir():
            raise SettingsError(f"{recipe.source} is not 'real', 'samples', 'phantoms' or a folder")
        files = scan_files(folder)
    return balanced_files(files, recipe.scans, recipe.seed)


def calibration_set(spec, recipe: CalibrationRecipe, batch_size: int = 16) -> list[torch.Tensor]:
    """Model-input batches for ``spec`` drawn by ``recipe`` (order shuffled with its seed).

    Raises:
        SettingsError: no such folder (or the recipe gives no image).
        DataError: the folder holds no readable scan.
    """
    files = recipe_files(recipe)
    images: list[np.ndarray] = []
    if files:
        slices = load_slices(files, spec)
        images = augmented_views(slices, recipe.views, recipe.seed) if recipe.views > 1 else slices
    images += [phantom_sample(i, seed=10_000 + recipe.seed)[0] for i in range(recipe.phantoms)]
    if not images:
        raise SettingsError("the calibration recipe gives no image (views 0 and no phantoms)")
    order = np.random.default_rng(recipe.seed).permutation(len(images))
    return calibration_batches([images[i] for i in order], spec, batch_size)


def folder_calibration(folder: str | os.PathLike[str], spec, views_per_scan: int = 8, seed: int = 0,
                       batch_size: int = 16, max_scans: int | None = None) -> list[torch.Tensor]:
    """Calibration batches from every scan under ``folder`` (augmented views of each)."""
    files = scan_files(folder)
    if max_scans is not None and len(files) > max_scans:
        rng = np.random.default_rng(seed)
        files = [files[i] for i in sorted(rng.choice(len(files), max_scans, replace=False))]
    images = augmented_views(load_slices(files, spec), views_per_scan, seed)
    return calibration_batches(images, spec, batch_size)


def calibration_for(spec, source: str = "default", views: int = LEGACY_RECIPE.views,
                    phantoms: int = LEGACY_RECIPE.phantoms,
                    seed: int = 0) -> list[torch.Tensor]:
    """Calibration batches by the legacy names (sample scans + phantoms); new code uses
    :class:`CalibrationRecipe` and :func:`calibration_set`.

    Args:
        spec: the model's :class:`models.ModelSpec`.
        source: ``"default"`` (the sample scans in ``views`` augmented views each, plus
            ``phantoms`` phantoms), ``"phantoms"`` (phantoms only) or a folder of scans.
        views: augmented views per scan.
        phantoms: phantoms in the default set.
        seed: seed of the augmentations and phantoms.

    Raises:
        SettingsError: ``source`` is none of the above.
        DataError: the folder holds no readable scan.
    """
    if source == "default":
        return default_calibration(spec, sample_views=views, n_phantoms=phantoms, seed=seed)
    if source == "phantoms":
        return default_calibration(spec, sample_views=0, n_phantoms=max(phantoms, 1), seed=seed)
    if not Path(source).is_dir():
        raise SettingsError(f"{source} is not 'default', 'phantoms' or a folder")
    return folder_calibration(source, spec, views_per_scan=views, seed=seed)
