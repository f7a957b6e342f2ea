"""Synthetic MRI phantoms: determinism, shapes, label balance and the class cues."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from scipy import ndimage

from preprocessing.phantoms import (
    CONTRASTS,
    MAX_REDRAWS,
    MIN_CONSPICUITY,
    PHANTOM_CLASSES,
    VIEWS,
    PhantomConfig,
    PhantomSample,
    make_phantom,
    make_phantom_set,
    phantom_details,
    phantom_label,
    phantom_sample,
    render_phantom,
)

SEED = 7


@lru_cache(maxsize=None)
def _details(n: int = 240, seed: int = SEED) -> tuple[PhantomSample, ...]:
    """The first ``n`` phantoms of data set ``seed`` with ground truth (~0.5 s)."""
    return tuple(phantom_details(i, seed) for i in range(n))


def _of_class(name: str) -> list[PhantomSample]:
    return [s for s in _details() if s.class_name == name]


def _to_head(sample: PhantomSample, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Pixel ``(row, col)`` -> head-frame ``(u, v)`` through the inverse pose."""
    m = sample.head_to_pixel
    return np.linalg.solve(m[:, :2], np.stack([cols - m[0, 2], rows - m[1, 2]]))


# ---------------------------------------------------------------------- determinism
def test_same_seed_and_index_give_identical_phantoms() -> None:
    a, la = phantom_sample(5, SEED)
    b, lb = phantom_sample(5, SEED)
    assert la == lb
    np.testing.assert_array_equal(a, b)


def test_different_seed_or_index_give_different_phantoms() -> None:
    a, _ = phantom_sample(5, SEED)
    assert not np.array_equal(a, phantom_sample(5, SEED + 1)[0])
    assert not np.array_equal(a, phantom_sample(6, SEED)[0])


def test_samples_do_not_depend_on_generation_order() -> None:
    forward = [phantom_sample(i, 3)[0] for i in range(4)]
    backward = [phantom_sample(i, 3)[0] for i in reversed(range(4))][::-1]
    for f, b in zip(forward, backward):
        np.testing.assert_array_equal(f, b)


def test_make_phantom_is_deterministic_under_rng_state() -> None:
    a = make_phantom("glioma", np.random.default_rng(1))
    b = make_phantom(0, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- shape, dtype, range
@pytest.mark.parametrize("size", [256, 96])
def test_shape_dtype_and_range(size: int) -> None:
    config = PhantomConfig(size=size)
    for i in range(8):
        img, label = phantom_sample(i, SEED, config)
        assert img.shape == (size, size)
        assert img.dtype == np.float32
        assert np.isfinite(img).all()
        assert img.min() >= 0.0 and img.max() <= 1.0
        assert img.max() > 0.5  # real content, not an empty frame
        assert 0 <= label < 4


def test_full_resolution_rendering_matches_contract() -> None:
    img = make_phantom("meningioma", np.random.default_rng(0), PhantomConfig(size=128, render_scale=1.0))
    assert img.shape == (128, 128) and img.dtype == np.float32


def test_make_phantom_set_matches_samples() -> None:
    config = PhantomConfig(size=64)
    images, labels = make_phantom_set(6, SEED, config)
    assert images.shape == (6, 64, 64) and images.dtype == np.float32
    assert labels.shape == (6,) and labels.dtype == np.int64
    img3, lab3 = phantom_sample(3, SEED, config)
    np.testing.assert_array_equal(images[3], img3)
    assert labels[3] == lab3


def test_details_agree_with_sample() -> None:
    d = phantom_details(11, SEED)
    img, label = phantom_sample(11, SEED)
    np.testing.assert_array_equal(d.image, img)
    assert d.label == label == phantom_label(11, SEED)
    assert d.view in VIEWS and d.contrast in CONTRASTS
    assert d.lesion_mask.shape == d.intracranial_mask.shape == img.shape
    assert d.lesion_mask.dtype == d.intracranial_mask.dtype == bool


# --------------------------------------------------------------------------- labels
def test_classes_follow_the_real_data_set() -> None:
    assert PHANTOM_CLASSES == ("glioma", "meningioma", "notumor", "pituitary")


def test_labels_are_balanced_in_any_window() -> None:
    labels = np.array([phantom_label(i, SEED) for i in range(403)])
    counts = np.bincount(labels, minlength=4)
    assert counts.max() - counts.min() <= 1
    for start in (0, 13, 101, 250):
        counts = np.bincount(labels[start : start + 100], minlength=4)
        assert counts.max() - counts.min() <= 2, (start, counts)


def test_labels_are_not_a_fixed_cycle() -> None:
    a = [phantom_label(i, 0) for i in range(40)]
    b = [phantom_label(i, 1) for i in range(40)]
    assert a != b
    assert a != [i % 4 for i in range(40)]


@pytest.mark.parametrize("bad", ["tumour", 4, -1, 1.5, True])
def test_bad_labels_are_rejected(bad) -> None:
    with pytest.raises(ValueError):
        make_phantom(bad, np.random.default_rng(0))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 8},
        {"hard_fraction": 1.5},
        {"noise_range": (0.05, 0.01)},
        {"gamma_range": (0.0, 1.0)},
        {"contrast_weights": (0, 0, 0, 0)},
        {"contrast_weights": (1, 1)},
        {"render_scale": 2.0},
    ],
)
def test_bad_config_is_rejected(kwargs) -> None:
    with pytest.raises(ValueError):
        PhantomConfig(**kwargs)


@pytest.mark.parametrize("index, seed", [(-1, 0), (0, -3), (1.5, 0)])
def test_bad_index_or_seed_is_rejected(index, seed) -> None:
    with pytest.raises(ValueError):
        phantom_sample(index, seed)


def test_hard_fraction_is_respected() -> None:
    rng = np.random.default_rng(0)
    easy = [render_phantom("glioma", rng, PhantomConfig(size=64, hard_fraction=0.0)).hard for _ in range(10)]
    hard = [render_phantom("glioma", rng, PhantomConfig(size=64, hard_fraction=1.0)).hard for _ in range(10)]
    assert not any(easy) and all(hard)
    share = np.mean([s.hard for s in _details()])
    assert 0.12 < share < 0.4


def test_views_and_contrasts_vary() -> None:
    assert {s.view for s in _details()} == set(VIEWS)
    assert {s.contrast for s in _details()} == set(CONTRASTS)


# ------------------------------------------------------------------------ class cues
def test_notumor_has_no_lesion() -> None:
    samples = _of_class("notumor")
    assert samples
    for s in samples:
        assert not s.lesion_mask.any() and s.site is None


def test_glioma_is_inside_the_brain_away_from_the_skull() -> None:
    samples = _of_class("glioma")
    assert len(samples) >= 40
    for s in samples:
        assert s.lesion_mask.any() and s.site == "intra-axial"
        near_skull = ndimage.binary_dilation(~s.intracranial_mask, iterations=2)
        assert not (s.lesion_mask & near_skull).any(), "glioma touches the skull"


def test_meningioma_sits_on_the_dura() -> None:
    samples = _of_class("meningioma")
    assert len(samples) >= 40
    assert {s.site for s in samples} <= {"convexity", "falx"}
    for s in samples:
        assert s.lesion_mask.any()
        if s.site == "convexity":  # broad base on the inner skull surface
            grown = ndimage.binary_dilation(s.lesion_mask, iterations=2)
            assert (grown & ~s.intracranial_mask).sum() >= 3, "convexity meningioma does not reach the skull"
        else:  # attached to the falx: reaches the midline
            rows, cols = np.nonzero(s.lesion_mask)
            u, _ = _to_head(s, rows, cols)
            assert np.abs(u).min() < 0.03


def test_pituitary_is_a_midline_mass_at_the_skull_base() -> None:
    samples = _of_class("pituitary")
    assert len(samples) >= 40
    for s in samples:
        assert s.lesion_mask.any() and s.site == "sella"
        assert s.view != "axial"  # the sella is not in the ventricular axial slice
        rows, cols = np.nonzero(s.lesion_mask)
        u, v = _to_head(s, rows.astype(float), cols.astype(float)).mean(axis=1)
        assert abs(u) < 0.06, "pituitary mass off the midline"
        if s.view in ("coronal", "sagittal"):
            assert v > 0.1, "pituitary mass not below the brain centre"
        # compact: much smaller than the head
        assert s.lesion_mask.sum() < 0.03 * s.lesion_mask.size


def test_lesions_are_visible_in_easy_contrast_enhanced_scans() -> None:
    checked = 0
    for s in _details():
        if s.hard or s.contrast != "t1c" or s.class_name not in ("meningioma", "pituitary"):
            continue
        ring = ndimage.binary_dilation(s.lesion_mask, iterations=6) & ~ndimage.binary_dilation(
            s.lesion_mask, iterations=2
        )
        inside = s.image[ndimage.binary_erosion(s.lesion_mask, iterations=1)]
        if inside.size < 10:
            continue
        assert inside.mean() > s.image[ring].mean() + 0.05, s.class_name
        checked += 1
    assert checked >= 5


def test_every_tumour_stands_out_from_its_surroundings() -> None:
    """A label nobody could read from the image only teaches noise: faint draws are redrawn."""
    tumours = [s for s in _details() if s.class_name != "notumor"]
    for s in tumours:
        assert s.conspicuity >= MIN_CONSPICUITY[s.hard], (s.class_name, s.contrast, s.hard, s.conspicuity)
    assert all(s.conspicuity == 0.0 and s.draws == 1 for s in _of_class("notumor"))
    # the redraw count is recorded, and faint first draws do happen (else the rule does nothing)
    assert all(1 <= s.draws <= MAX_REDRAWS + 1 for s in tumours)
    assert any(s.draws > 1 for s in tumours)
    # hard cases stay harder: lower contrast-to-noise on average
    hard = np.median([s.conspicuity for s in tumours if s.hard])
    easy = np.median([s.conspicuity for s in tumours if not s.hard])
    assert hard < easy


def test_conspicuity_is_contrast_against_the_ring_over_noise() -> None:
    from preprocessing.phantoms import _conspicuity

    image = np.full((64, 64), 0.4, dtype=np.float32)
    yy, xx = np.mgrid[:64, :64]
    disc = ((yy - 32) ** 2 + (xx - 32) ** 2 < 10**2).astype(np.float32)
    image[disc > 0] = 0.8
    # contrast 0.4, noise sigma 0.05 x brightest tissue 0.8 = 0.04 -> CNR 10
    assert _conspicuity(image, disc, 0.05) == pytest.approx(10.0, rel=1e-3)
    assert _conspicuity(np.full_like(image, 0.4), disc, 0.05) == pytest.approx(0.0, abs=1e-4)


def test_mass_effect_and_lesion_do_not_break_the_head_frame() -> None:
    # the head frame maps the image centre region near the head centre
    for s in _details()[:20]:
        rows, cols = np.nonzero(s.intracranial_mask)
        u, _ = _to_head(s, rows.astype(float), cols.astype(float))
        assert abs(u.mean()) < 0.1


def test_conspicuity_script_reports_redraw_shares() -> None:
    """``scripts/phantom_conspicuity.py`` runs and its shares agree with the samples' own record."""
    import subprocess
    import sys
    from pathlib import Path

    from hscc_mri.splits import phantom_split_seeds

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(root / "scripts" / "phantom_conspicuity.py"), "--n", "40"],
                         capture_output=True, text=True, check=True, cwd=root).stdout
    line = next(l for l in out.splitlines() if l.startswith("all tumours"))
    n, redrawn = int(line.split()[2]), float(line.split()[3])
    seed = phantom_split_seeds(0)["train"]
    tumours = [s for s in (phantom_details(i, seed) for i in range(40)) if s.class_name != "notumor"]
    assert n == len(tumours)
    assert redrawn == pytest.approx(100 * np.mean([s.draws > 1 for s in tumours]), abs=0.06)
