"""Calibration recipes: the shipped real set is the VGG16's default, any folder works,
classes are balanced, and the cache key follows the scans' bytes."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from hscc_mri.cache import cache_path, calibration_recipe
from models import build_model
from hscc_mri.calibration import (LEGACY_RECIPE, REAL_CALIBRATION_DIR, CalibrationRecipe, balanced_files,
                                       calibration_set, default_recipe, recipe_files)
from preprocessing.datasets import canonical_class_name

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "brain-mri-mini" / "Testing"


def _classes(files):
    return Counter(next(c for c in (canonical_class_name(a.name) for a in f.parents) if c) for f in files)


def test_the_shipped_real_set_is_the_vgg16_default_and_is_balanced():
    recipe = default_recipe("vgg16-brain-mri")
    assert recipe.source == "real"
    files = recipe_files(recipe)
    assert len(files) == recipe.scans and all(REAL_CALIBRATION_DIR in f.parents for f in files)
    assert set(_classes(files).values()) == {recipe.scans // 4}
    manifest = json.loads((REAL_CALIBRATION_DIR / "manifest.json").read_text())
    assert len(manifest["files"]) >= recipe.scans
    assert (REAL_CALIBRATION_DIR / "README.md").is_file()


def test_smaller_sets_are_the_first_draws_of_each_class():
    manifest = json.loads((REAL_CALIBRATION_DIR / "manifest.json").read_text())["files"]
    first = {c: [REAL_CALIBRATION_DIR / f["file"] for f in manifest if f["class"] == c][:2]
             for c in ("glioma", "meningioma", "notumor", "pituitary")}
    chosen = recipe_files(CalibrationRecipe(source="real", scans=8))
    assert sorted(chosen) == sorted(p for v in first.values() for p in v)


def test_models_trained_here_keep_the_sample_and_phantom_recipe():
    assert default_recipe("alexnet") == LEGACY_RECIPE
    assert LEGACY_RECIPE.source == "samples" and LEGACY_RECIPE.phantoms > 0


def test_any_folder_with_class_folder_spellings_is_balanced(tmp_path):
    for src, name in (("glioma", "Glioma_Tumor"), ("notumor", "no_tumor"), ("pituitary", "pituitary tumour")):
        shutil.copytree(FIXTURE / src, tmp_path / "scans" / name)
    shutil.copy(FIXTURE / "meningioma" / sorted(p.name for p in (FIXTURE / "meningioma").iterdir())[0],
                tmp_path / "scans" / "Glioma_Tumor" / "nested_extra.jpg")
    files = recipe_files(CalibrationRecipe(source=str(tmp_path / "scans"), scans=6))
    assert len(files) == 6 and set(_classes(files).values()) == {2}
    assert len(recipe_files(CalibrationRecipe(source=str(tmp_path / "scans")))) == 25  # recursive, all of them


def test_balanced_files_without_class_folders_is_a_seeded_draw(tmp_path):
    files = [tmp_path / f"s{i}.jpg" for i in range(10)]
    a, b = balanced_files(files, 4, seed=0), balanced_files(files, 4, seed=0)
    assert a == b and len(set(a)) == 4
    assert balanced_files(files, None) == files


def test_calibration_set_builds_batches_from_views_and_phantoms(vgg16):
    batches = calibration_set(vgg16.spec, CalibrationRecipe(source=str(FIXTURE), scans=4, views=2, phantoms=3),
                              batch_size=4)
    assert sum(len(b) for b in batches) == 4 * 2 + 3
    assert all(b.shape[1:] == (3, 240, 240) for b in batches)
    with pytest.raises(ValueError, match="folder"):
        recipe_files(CalibrationRecipe(source="no/such/folder"))


def test_cache_key_follows_the_calibration_scans(tmp_path):
    folder = tmp_path / "calib"
    shutil.copytree(FIXTURE / "glioma", folder / "glioma")
    key = lambda: cache_path("vgg16-brain-mri", "hscc", 6.0, tmp_path, calibration={"source": str(folder)})  # noqa: E731
    before = key()
    victim = sorted(folder.rglob("*.jpg"))[0]
    victim.write_bytes(victim.read_bytes() + b"\0")  # bytes after the JPEG end marker: same image, new bytes
    assert key() != before
    assert cache_path("vgg16-brain-mri", "hscc", 6.0, tmp_path) != cache_path(
        "vgg16-brain-mri", "hscc", 6.0, tmp_path, calibration={"scans": 128})
    assert calibration_recipe("vgg16-brain-mri", {"scans": 128}).scans == 128


def test_recipe_refuses_nonsense():
    with pytest.raises(ValueError):
        CalibrationRecipe(scans=0)
    with pytest.raises(ValueError):
        CalibrationRecipe(source="phantoms", phantoms=0)
