"""Data sets for training and evaluation (torch ``Dataset``s).

* :class:`BrainMRIFolder` reads the public four-class layout
  ``root/<Training|Testing>/<class>/<scan files>`` (any format
  :func:`preprocessing.loader.load_scan` reads), tolerating the common folder spellings
  (``glioma_tumor``, ``no_tumor``, ``Pituitary`` ...).
* :class:`PhantomDataset` generates seeded synthetic slices lazily
  (:mod:`preprocessing.phantoms`), so any length costs no disk and no start-up time.
* :func:`stratified_split` makes a deterministic, per-class proportional train/val split.

Both data sets return ``(tensor (C, H, W) float32, label int)`` shaped by the model's
:class:`models.ModelSpec`; with ``augment=True`` the training augmentation of
:mod:`preprocessing.augment` is applied to the ``[0, 1]`` slice first.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from preprocessing.augment import SliceAugmenter
from preprocessing.phantoms import PHANTOM_CLASSES, PhantomConfig, phantom_label, phantom_sample
from preprocessing.transforms import is_eight_bit, model_window, to_model_input

if TYPE_CHECKING:
    from models import ModelSpec
    from preprocessing.scan import Scan

__all__ = [
    "CLASS_FOLDER_ALIASES",
    "SCAN_SUFFIXES",
    "SPLIT_ALIASES",
    "BrainMRIFolder",
    "PhantomDataset",
    "canonical_class_name",
    "find_split_dir",
    "stratified_split",
]

#: Folder-name spellings -> canonical class. Keys are *normalised*: lower case with
#: ``-``, ``_`` and spaces removed (see :func:`canonical_class_name`), so "Glioma",
#: "glioma_tumor", "glioma tumor" and "Glioma-Tumour" all match.
CLASS_FOLDER_ALIASES: dict[str, str] = {
    **dict.fromkeys(("glioma", "gliomas", "gliomatumor", "gliomatumour", "gliomatumors", "gliomatumours"), "glioma"),
    **dict.fromkeys(
        ("meningioma", "meningiomas", "meningiomatumor", "meningiomatumour", "meningiomatumors", "meningiomatumours"),
        "meningioma",
    ),
    **dict.fromkeys(
        ("notumor", "notumour", "notumors", "notumours", "no", "none", "normal", "healthy", "negative"),
        "notumor",
    ),
    **dict.fromkeys(
        ("pituitary", "pituitarytumor", "pituitarytumour", "pituitarytumors", "pituitarytumours",
         "pituitaryadenoma", "pituitaryadenomas"),
        "pituitary",
    ),
}

#: Split-folder spellings (normalised like class names) for each split.
SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "training": ("training", "train"),
    "testing": ("testing", "test"),
    "validation": ("validation", "val", "valid"),
}

#: File name endings the scan loader reads; files without any suffix are read too
#: (DICOM files often have none). Matching is case-insensitive.
SCAN_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".dcm", ".dicom", ".ima", ".nii", ".nii.gz")


def _normalise(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


def canonical_class_name(folder_name: str) -> str | None:
    """Canonical class of a folder name (``"No_Tumor"`` -> ``"notumor"``), or ``None``."""
    return CLASS_FOLDER_ALIASES.get(_normalise(folder_name))


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_split_dir(root: str | os.PathLike[str], split: str) -> Path:
    """The folder of ``split`` under ``root``.

    Args:
        root: data-set root holding the split folders.
        split: ``"Training"``/``"training"``/``"train"``, ``"Testing"``/``"test"``,
            ``"Validation"``/``"val"`` (any case), or the exact name of a sub-folder.

    Raises:
        FileNotFoundError: ``root`` is missing, or has no folder for ``split`` (the
            message lists the folders found).
    """
    root_p = Path(os.fspath(root))
    if not root_p.is_dir():
        raise FileNotFoundError(f"data-set root {str(root_p)!r} does not exist or is not a folder")
    wanted = _normalise(split)
    accepted: tuple[str, ...] = (wanted,)
    for names in SPLIT_ALIASES.values():
        if wanted in names:
            accepted = names
            break
    found = _subdirs(root_p)
    for sub in found:
        if _normalise(sub.name) in accepted:
            return sub
    raise FileNotFoundError(
        f"no folder for split {split!r} under {str(root_p)!r} (accepted names: {', '.join(accepted)}); "
        f"folders found: {', '.join(p.name for p in found) or 'none'}"
    )


def is_scan_file(path: Path) -> bool:
    """Whether ``path`` looks like a scan worth trying: a visible file with a scan
    extension, or with no extension at all (DICOM files often have none)."""
    if not path.is_file() or path.name.startswith("."):
        return False
    name = path.name.lower()
    return name.endswith(SCAN_SUFFIXES) or "." not in name


def _class_map(class_names: Sequence[str]) -> dict[str, int]:
    """Canonical class name -> label index in ``class_names`` (which may use aliases)."""
    mapping: dict[str, int] = {}
    for i, name in enumerate(class_names):
        canon = canonical_class_name(name) or name
        if canon in mapping:
            raise ValueError(f"class_names {tuple(class_names)} name the class {canon!r} twice")
        mapping[canon] = i
    return mapping


class BrainMRIFolder(Dataset):
    """Scans in ``root/<split>/<class>/``, as ``(tensor, label)`` pairs for one model.

    Args:
        root: data-set root (holding ``Training/`` and ``Testing/`` or equivalents).
        split: which split folder to read (see :func:`find_split_dir`).
        spec: the model's input contract (size, channels, mean/std, class names).
        augment: apply :func:`preprocessing.augment.train_augmentation` (training only).
        class_names: label order; defaults to ``spec.class_names``. Folder names are
            matched through :data:`CLASS_FOLDER_ALIASES`.

    Attributes:
        samples: ``(path, label)`` for every scan file, sorted by class then path.
        targets: the labels alone.
        class_names: label index -> class name.
        folders: class folder name -> label index, as found on disk.

    Raises:
        FileNotFoundError: no such root or split folder.
        ValueError: a class folder whose name is not a known spelling of a class in
            ``class_names``, or no scan files at all.

    Files are not opened while indexing; a file that cannot be read raises
    :class:`preprocessing.errors.ScanError` naming it when its item is loaded. Call
    :meth:`verify` first to find such files.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "Training",
        spec: "ModelSpec | None" = None,
        augment: bool = False,
        class_names: Sequence[str] | None = None,
    ) -> None:
        if spec is None:
            raise TypeError("BrainMRIFolder needs the model's ModelSpec (spec=...)")
        self.spec = spec
        self.class_names: tuple[str, ...] = tuple(class_names if class_names is not None else spec.class_names)
        self.split_dir = find_split_dir(root, split)
        self.augment = augment
        self._augmenter = SliceAugmenter(spec.input_size) if augment else None
        by_canon = _class_map(self.class_names)
        folders = _subdirs(self.split_dir)
        self.folders: dict[str, int] = {}
        unknown = []
        for folder in folders:
            canon = canonical_class_name(folder.name)
            if canon is None or canon not in by_canon:
                unknown.append(folder.name)
            else:
                self.folders[folder.name] = by_canon[canon]
        if unknown:
            accepted = sorted(k for k, v in CLASS_FOLDER_ALIASES.items() if v in by_canon)
            raise ValueError(
                f"unknown class folder(s) {unknown} in {str(self.split_dir)!r}; folders found: "
                f"{[f.name for f in folders]}. Expected one folder per class of {self.class_names}; "
                f"accepted names (case, '-', '_' and spaces ignored): {', '.join(accepted)}"
            )
        self.samples: list[tuple[Path, int]] = []
        for folder in folders:
            label = self.folders[folder.name]
            files = sorted(p for p in folder.rglob("*") if is_scan_file(p))
            self.samples.extend((p, label) for p in files)
        self.samples.sort(key=lambda s: (s[1], str(s[0])))
        if not self.samples:
            raise ValueError(
                f"no scan files ({', '.join(SCAN_SUFFIXES)} or no extension) in the class folders of "
                f"{str(self.split_dir)!r}; folders found: {[f.name for f in folders] or 'none'}"
            )
        self.targets: list[int] = [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def class_counts(self) -> dict[str, int]:
        """Number of samples per class name (0 for classes without a folder)."""
        counts = np.bincount(self.targets, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts)}

    def load_item(self, index: int) -> "Scan":
        """The :class:`~preprocessing.scan.Scan` of sample ``index``.

        Raises:
            ScanError: the file cannot be read; the message names the file.
        """
        from preprocessing.errors import ScanError
        from preprocessing.loader import load_scan

        path = self.samples[index][0]
        try:
            return load_scan(path)
        except ScanError as e:
            # name the file relative to the split folder: enough to find it, without
            # repeating parent folders that may carry identifiers
            where = path.relative_to(self.split_dir).as_posix()
            raise ScanError(f"sample {index} ({self.split_dir.name}/{where}) could not be read: {e}") from e

    def load_slice(self, index: int) -> np.ndarray:
        """The raw 2-D slice of sample ``index`` (``(H, W)`` float32, scanner units).

        Raises:
            ScanError: the file cannot be read; the message names the file.
        """
        return self.load_item(index).image()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """``(tensor (C, H, W) float32, label)`` of sample ``index``, through the model's own
        input contract (:func:`preprocessing.transforms.to_model_input`)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        scan = self.load_item(index)
        eight_bit = is_eight_bit(scan)
        if self._augmenter is not None:
            window = model_window(scan.image(), self.spec, eight_bit)
            tensor = to_model_input(self._augmenter(window), self.spec, normalize=False)
        else:
            tensor = to_model_input(scan.image(), self.spec, normalize=True, eight_bit=eight_bit)
        return tensor, self.samples[index][1]

    def verify(self) -> list[tuple[Path, str]]:
        """Try to read every file.

        Returns:
            ``(path, reason)`` for each unreadable file (empty when all are fine).
        """
        from preprocessing.errors import ScanError
        from preprocessing.loader import load_scan

        bad: list[tuple[Path, str]] = []
        for path, _ in self.samples:
            try:
                load_scan(path).image()
            except ScanError as e:
                bad.append((path, str(e)))
        return bad

    def __repr__(self) -> str:
        return f"BrainMRIFolder({str(self.split_dir)!r}, n={len(self)}, classes={self.class_counts()})"


class PhantomDataset(Dataset):
    """``n`` synthetic slices of data set ``seed``, generated lazily per index.

    Item ``i`` is always the same phantom (:func:`preprocessing.phantoms.phantom_sample`),
    whatever the order or worker, so train/val/test sets are simply different seeds.

    Args:
        n: number of samples.
        seed: data-set seed (non-negative).
        spec: the model's input contract; its ``class_names`` must contain the four
            phantom classes (their label is the index in ``spec.class_names``).
        config: phantom drawing parameters.
        augment: apply :func:`preprocessing.augment.train_augmentation` (random, so not
            deterministic).
    """

    def __init__(
        self,
        n: int,
        seed: int,
        spec: "ModelSpec",
        config: PhantomConfig = PhantomConfig(),
        augment: bool = False,
    ) -> None:
        if int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        if int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        by_canon = _class_map(spec.class_names)
        missing = [c for c in PHANTOM_CLASSES if c not in by_canon]
        if missing:
            raise ValueError(f"spec.class_names {spec.class_names} lack the phantom classes {missing}")
        self.n, self.seed, self.spec, self.config, self.augment = int(n), int(seed), spec, config, augment
        self.class_names: tuple[str, ...] = tuple(spec.class_names)
        self._label_map = [by_canon[c] for c in PHANTOM_CLASSES]
        self._augmenter = SliceAugmenter(spec.input_size) if augment else None
        self._targets: list[int] | None = None

    def __len__(self) -> int:
        return self.n

    @property
    def targets(self) -> list[int]:
        """Labels of all samples (computed without drawing any image)."""
        if self._targets is None:
            self._targets = [self._label_map[phantom_label(i, self.seed)] for i in range(self.n)]
        return self._targets

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """``(tensor (C, H, W) float32, label)`` of phantom ``index``."""
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} samples")
        index %= self.n
        image, label = phantom_sample(index, self.seed, self.config)
        if self._augmenter is not None:
            image = self._augmenter(image)
        return to_model_input(image, self.spec, normalize=True), self._label_map[label]

    def __repr__(self) -> str:
        return f"PhantomDataset(n={self.n}, seed={self.seed}, size={self.config.size})"


def stratified_split(
    targets: Sequence[int] | np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic per-class proportional split of sample indices.

    Each class gives ``round(val_fraction * n_c)`` samples to validation, but at least
    one and at most ``n_c - 1`` when it has two or more (a class with a single sample
    stays in training).

    Args:
        targets: ``(N,)`` integer labels.
        val_fraction: share of each class for validation, in ``(0, 1)``.
        seed: seed of the shuffle (same inputs -> same split).

    Returns:
        ``(train_idx, val_idx)``: sorted int64 index arrays, disjoint, covering ``0..N-1``.

    Raises:
        ValueError: bad ``val_fraction``, empty or non-integer ``targets``, or a split
            that would leave validation empty.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float, np.floating)):
        raise ValueError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}")
    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    y = np.asarray(targets)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"targets must be a non-empty 1-D sequence of labels, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y))):
            raise ValueError(f"targets must be integer labels, got dtype {y.dtype}")
        y = y.astype(np.int64)
    rng = np.random.default_rng(int(seed))
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        n_val = 0
        if idx.size >= 2:
            n_val = min(max(int(round(float(val_fraction) * idx.size)), 1), idx.size - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    val_idx = np.sort(np.concatenate(val)).astype(np.int64)
    if val_idx.size == 0:
        raise ValueError("no class has two or more samples, so the validation split would be empty")
    return np.sort(np.concatenate(train)).astype(np.int64), val_idx
