"""Folder and phantom data sets, augmentation and the stratified split."""
from __future__ import annotations

from pathlib import Path

import multiprocessing
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from models import ModelSpec
from preprocessing.augment import SliceAugmenter, augment_slice, train_augmentation
from preprocessing.datasets import (
    CLASS_FOLDER_ALIASES,
    BrainMRIFolder,
    PhantomDataset,
    canonical_class_name,
    find_split_dir,
    stratified_split,
)
from preprocessing.errors import ScanError
from preprocessing.phantoms import PhantomConfig, phantom_label, phantom_sample

SPEC1 = ModelSpec("t", input_size=(64, 64), channels=1)
SPEC3 = ModelSpec("t3", input_size=(48, 40), channels=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

#: folder name on disk -> canonical class, in alternative spellings
TRAIN_FOLDERS = {"Glioma": "glioma", "meningioma_tumor": "meningioma", "no_tumor": "notumor", "pituitary_tumor": "pituitary"}
TEST_FOLDERS = {"glioma tumor": "glioma", "Meningioma": "meningioma", "notumor": "notumor", "Pituitary": "pituitary"}


def _write_png(path: Path, seed: int, size: int = 72) -> None:
    img, _ = phantom_sample(seed, 99, PhantomConfig(size=size))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((img * 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """``Training/`` (3 PNGs per class) and ``Testing/`` (2 per class), odd spellings."""
    root = tmp_path_factory.mktemp("brain_mri")
    k = 0
    for split, folders, n in (("Training", TRAIN_FOLDERS, 3), ("Testing", TEST_FOLDERS, 2)):
        for folder in folders:
            for i in range(n):
                _write_png(root / split / folder / f"img_{i}.png", k)
                k += 1
    (root / "Training" / "Glioma" / "notes.txt").write_text("not a scan")
    (root / "Training" / "Glioma" / ".DS_Store").write_bytes(b"\0\1")
    (root / "Training" / ".hidden").mkdir()
    return root


# ------------------------------------------------------------------- names and splits
@pytest.mark.parametrize(
    "name, expected",
    [
        ("glioma", "glioma"), ("Glioma_Tumor", "glioma"), ("glioma tumour", "glioma"),
        ("meningioma_tumor", "meningioma"), ("Meningioma-Tumor", "meningioma"),
        ("no_tumor", "notumor"), ("notumor", "notumor"), ("No Tumor", "notumor"), ("normal", "notumor"),
        ("no", "notumor"), ("pituitary", "pituitary"), ("pituitary_tumor", "pituitary"),
        ("tumour", None), ("gliomeningioma", None),
    ],
)
def test_canonical_class_name(name: str, expected: str | None) -> None:
    assert canonical_class_name(name) == expected


def test_aliases_cover_every_class() -> None:
    assert set(CLASS_FOLDER_ALIASES.values()) == {"glioma", "meningioma", "notumor", "pituitary"}


@pytest.mark.parametrize("split, folder", [("Training", "Training"), ("train", "Training"), ("TRAINING", "Training"),
                                           ("test", "Testing"), ("Testing", "Testing"), ("testing", "Testing")])
def test_find_split_dir_accepts_spellings(tree: Path, split: str, folder: str) -> None:
    assert find_split_dir(tree, split) == tree / folder


def test_find_split_dir_errors(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Training"):  # lists what exists
        find_split_dir(tree, "validation")
    with pytest.raises(FileNotFoundError):
        find_split_dir(tmp_path / "missing", "train")


# ------------------------------------------------------------------------ folder data
def test_folder_maps_alternative_spellings(tree: Path) -> None:
    ds = BrainMRIFolder(tree, "Training", SPEC1)
    assert len(ds) == 12
    assert ds.folders == {"Glioma": 0, "meningioma_tumor": 1, "no_tumor": 2, "pituitary_tumor": 3}
    assert ds.targets == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert [label for _, label in ds.samples] == ds.targets
    assert all(p.suffix == ".png" for p, _ in ds.samples)  # notes.txt and .DS_Store skipped
    assert ds.class_counts() == {"glioma": 3, "meningioma": 3, "notumor": 3, "pituitary": 3}
    test = BrainMRIFolder(tree, "test", SPEC1)
    assert len(test) == 8
    assert {folder: test.class_names[i] for folder, i in test.folders.items()} == TEST_FOLDERS


@pytest.mark.parametrize("spec", [SPEC1, SPEC3])
def test_folder_items_follow_the_spec(tree: Path, spec: ModelSpec) -> None:
    ds = BrainMRIFolder(tree, "Training", spec)
    x, y = ds[4]
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32
    assert tuple(x.shape) == (spec.channels, *spec.input_size)
    assert isinstance(y, int) and y == 1
    assert torch.isfinite(x).all()
    if spec.channels == 1:  # unit scaling, no mean/std
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.max()) > 0.5
    assert torch.equal(ds[-1][0], ds[len(ds) - 1][0])
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_folder_augmentation_keeps_the_contract(tree: Path) -> None:
    ds = BrainMRIFolder(tree, "Training", SPEC3, augment=True)
    for i in (0, 5, 11):
        x, y = ds[i]
        assert tuple(x.shape) == (3, 48, 40) and x.dtype == torch.float32
        assert torch.isfinite(x).all() and y == ds.targets[i]


def test_custom_class_order(tree: Path) -> None:
    ds = BrainMRIFolder(tree, "Training", SPEC1, class_names=("pituitary", "notumor", "meningioma", "glioma"))
    assert ds.folders == {"Glioma": 3, "meningioma_tumor": 2, "no_tumor": 1, "pituitary_tumor": 0}


def test_unknown_class_folder_is_rejected(tree: Path, tmp_path: Path) -> None:
    _write_png(tmp_path / "Training" / "glioma" / "a.png", 0)
    _write_png(tmp_path / "Training" / "tumour_x" / "b.png", 1)
    with pytest.raises(ValueError) as info:
        BrainMRIFolder(tmp_path, "Training", SPEC1)
    message = str(info.value)
    assert "tumour_x" in message and "glioma" in message and "notumor" in message


def test_class_missing_from_class_names_is_rejected(tree: Path) -> None:
    with pytest.raises(ValueError, match="no_tumor"):
        BrainMRIFolder(tree, "Training", SPEC1, class_names=("glioma", "meningioma", "pituitary"))


def test_empty_data_set_is_rejected(tmp_path: Path) -> None:
    for folder in ("glioma", "notumor"):
        (tmp_path / "Training" / folder).mkdir(parents=True)
    (tmp_path / "Training" / "glioma" / "readme.md").write_text("empty")
    with pytest.raises(ValueError, match="no scan files"):
        BrainMRIFolder(tmp_path, "Training", SPEC1)


def test_spec_is_required(tree: Path) -> None:
    with pytest.raises(TypeError):
        BrainMRIFolder(tree, "Training")


def test_unreadable_files_are_reported(tmp_path: Path) -> None:
    _write_png(tmp_path / "Training" / "glioma" / "good.png", 0)
    (tmp_path / "Training" / "glioma" / "broken.png").write_bytes(b"definitely not an image")
    (tmp_path / "Training" / "notumor").mkdir()
    (tmp_path / "Training" / "notumor" / "empty.jpg").write_bytes(b"")
    ds = BrainMRIFolder(tmp_path, "Training", SPEC1)
    assert len(ds) == 3
    bad = dict(ds.verify())
    assert set(p.name for p in bad) == {"broken.png", "empty.jpg"}
    assert all(reason for reason in bad.values())
    broken = next(i for i, (p, _) in enumerate(ds.samples) if p.name == "broken.png")
    with pytest.raises(ScanError, match="broken.png"):
        ds[broken]
    good = next(i for i, (p, _) in enumerate(ds.samples) if p.name == "good.png")
    assert tuple(ds[good][0].shape) == (1, 64, 64)


# ----------------------------------------------------------------------- phantom data
def test_phantom_dataset_items_and_targets() -> None:
    config = PhantomConfig(size=96)
    ds = PhantomDataset(16, seed=3, spec=SPEC1, config=config)
    assert len(ds) == 16
    assert ds.targets == [phantom_label(i, 3) for i in range(16)]
    assert np.bincount(ds.targets, minlength=4).tolist() == [4, 4, 4, 4]
    x, y = ds[5]
    assert tuple(x.shape) == (1, 64, 64) and x.dtype == torch.float32 and y == ds.targets[5]
    assert torch.equal(x, ds[5][0])  # lazily regenerated, identical
    x3, _ = PhantomDataset(4, seed=3, spec=SPEC3, config=config)[1]
    assert tuple(x3.shape) == (3, 48, 40)
    with pytest.raises(IndexError):
        ds[16]


def test_phantom_dataset_with_loader_and_augmentation() -> None:
    ds = PhantomDataset(8, seed=1, spec=SPEC1, config=PhantomConfig(size=80), augment=True)
    batch, labels = next(iter(torch.utils.data.DataLoader(ds, batch_size=8)))
    assert tuple(batch.shape) == (8, 1, 64, 64) and labels.tolist() == ds.targets
    assert torch.isfinite(batch).all()


def test_phantom_dataset_maps_labels_by_class_name() -> None:
    spec = ModelSpec("r", input_size=(32, 32), class_names=("pituitary", "notumor", "meningioma", "glioma"))
    ds = PhantomDataset(8, seed=0, spec=spec, config=PhantomConfig(size=64))
    names = ("glioma", "meningioma", "notumor", "pituitary")
    assert [spec.class_names[t] for t in ds.targets] == [names[phantom_label(i, 0)] for i in range(8)]


@pytest.mark.parametrize("kwargs", [{"n": -1, "seed": 0}, {"n": 4, "seed": -2}])
def test_phantom_dataset_rejects_bad_arguments(kwargs) -> None:
    with pytest.raises(ValueError):
        PhantomDataset(spec=SPEC1, **kwargs)


def test_phantom_dataset_needs_the_phantom_classes() -> None:
    with pytest.raises(ValueError, match="pituitary"):
        PhantomDataset(4, 0, ModelSpec("x", class_names=("glioma", "meningioma", "notumor")))


# ----------------------------------------------------------------------- augmentation
@pytest.mark.parametrize("size, expected", [(None, (90, 70)), ((64, 48), (64, 48))])
def test_train_augmentation_shapes(size, expected) -> None:
    img, _ = phantom_sample(0, 0, PhantomConfig(size=96))
    img = img[:90, :70]
    pipe = train_augmentation(size)
    for _ in range(5):
        out = augment_slice(img, pipe)
        assert out.shape == expected and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0


class _SameImage(PhantomDataset):
    """Every index returns phantom 0, so only the augmentation differs between items."""

    def __getitem__(self, index: int):
        return super().__getitem__(0)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_dataloader_workers_draw_different_augmentations() -> None:
    ds = _SameImage(4, seed=0, spec=SPEC1, config=PhantomConfig(size=64), augment=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context="fork")
    first, second = [x for x, _ in loader]
    assert not torch.equal(first, second)  # worker 0 and worker 1 are not in lockstep


def test_slice_augmenter_pickles_without_its_random_state() -> None:
    aug = SliceAugmenter((32, 32))
    img, _ = phantom_sample(0, 0, PhantomConfig(size=64))
    assert aug(img).shape == (32, 32)
    clone = pickle.loads(pickle.dumps(aug))
    assert clone._pipeline is None and clone(img).shape == (32, 32)


# ------------------------------------------------------------------- stratified split
def test_stratified_split_is_proportional_and_complete() -> None:
    targets = [0] * 50 + [1] * 30 + [2] * 20 + [3] * 2 + [4]
    train, val = stratified_split(targets, 0.2, seed=0)
    assert train.dtype == val.dtype == np.int64
    assert np.intersect1d(train, val).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(targets)))
    y = np.asarray(targets)
    assert np.bincount(y[val], minlength=5).tolist() == [10, 6, 4, 1, 0]  # >= 1 per class with >= 2
    assert np.bincount(y[train], minlength=5).tolist() == [40, 24, 16, 1, 1]


def test_stratified_split_is_deterministic() -> None:
    targets = np.random.default_rng(0).integers(0, 4, size=200)
    a = stratified_split(targets, 0.25, seed=5)
    b = stratified_split(list(targets), 0.25, seed=5)
    c = stratified_split(targets, 0.25, seed=6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize(
    "targets, fraction, seed",
    [
        ([0, 1, 0, 1], 0.0, 0),
        ([0, 1, 0, 1], 1.0, 0),
        ([0, 1, 0, 1], -0.1, 0),
        ([0, 1, 0, 1], "0.2", 0),
        ([0, 1, 0, 1], 0.2, -1),
        ([], 0.2, 0),
        ([[0, 1], [1, 0]], 0.2, 0),
        ([0.5, 1.0], 0.2, 0),
        ([0, 1, 2], 0.5, 0),  # every class has one sample: nothing for validation
    ],
)
def test_stratified_split_rejects_bad_arguments(targets, fraction, seed) -> None:
    with pytest.raises(ValueError):
        stratified_split(targets, fraction, seed)
