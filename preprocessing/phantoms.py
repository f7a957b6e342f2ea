"""Seeded synthetic brain MRI slices for the four tumour classes.

Each phantom is a 2-D slice with normal anatomy (scalp, skull, CSF, grey/white matter,
sulci, ventricles, deep grey nuclei, falx; or skull-base, coronal and sagittal
anatomy), a random pose and contrast (T1, T1 post-contrast, T2, FLAIR), a smooth bias
field, Rician noise and gamma jitter - plus, except for ``notumor``, one tumour drawn
with the cues radiologists use (see :mod:`preprocessing._phantom_lesions`).

Phantoms are *deterministic per (seed, index)* and independent of every other index, so
a data set of any length can be generated lazily, in any order, in any worker::

    image, label = phantom_sample(index=17, seed=0)        # (256, 256) float32, int
    details = phantom_details(17, seed=0)                  # + lesion mask, view, ...
    images, labels = make_phantom_set(64, seed=0)          # (64, 256, 256), (64,)

Rendering is vectorised (about 1-3 ms per 256x256 slice on one CPU core).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from models import BRAIN_TUMOUR_CLASSES
from preprocessing._phantom_anatomy import VIEWS, Head, paint_anatomy, sample_head
from preprocessing._phantom_canvas import Canvas, Ellipse, Frame, noise_pair, smooth_field
from preprocessing._phantom_lesions import Lesion, paint_lesion, sample_lesion

__all__ = [
    "CONTRASTS",
    "MIN_CONSPICUITY",
    "PHANTOM_CLASSES",
    "PhantomConfig",
    "PhantomSample",
    "VIEWS",
    "make_phantom",
    "make_phantom_set",
    "phantom_details",
    "phantom_label",
    "phantom_sample",
    "render_phantom",
]

#: Class names, in the label order of the real data set.
PHANTOM_CLASSES: tuple[str, ...] = BRAIN_TUMOUR_CLASSES

#: MRI contrasts a phantom can have.
CONTRASTS: tuple[str, ...] = ("t1", "t1c", "t2", "flair")

#: Base tissue intensities per contrast (before per-image jitter, bias, noise and gamma).
_TISSUE: dict[str, dict[str, float]] = {
    "t1": dict(fat=.90, muscle=.34, bone=.04, marrow=.70, csf=.10, gm=.42, wm=.60, air=.02, fluid=.12,
               vessel=.05, dura=.35, gland=.50, glioma_rim=.40, necrosis=.16, oedema=.32, glioma_diffuse=.31,
               meningioma=.36, adenoma=.40, cyst=.18),
    "t1c": dict(fat=.86, muscle=.34, bone=.04, marrow=.62, csf=.10, gm=.42, wm=.58, air=.02, fluid=.12,
                vessel=.80, dura=.78, gland=.72, glioma_rim=.90, necrosis=.16, oedema=.33, glioma_diffuse=.32,
                meningioma=.88, adenoma=.74, cyst=.20),
    "t2": dict(fat=.72, muscle=.22, bone=.04, marrow=.55, csf=.95, gm=.55, wm=.38, air=.02, fluid=.95,
               vessel=.05, dura=.20, gland=.55, glioma_rim=.62, necrosis=.88, oedema=.78, glioma_diffuse=.80,
               meningioma=.70, adenoma=.60, cyst=.92),
    "flair": dict(fat=.78, muscle=.28, bone=.04, marrow=.55, csf=.08, gm=.55, wm=.42, air=.02, fluid=.10,
                  vessel=.05, dura=.30, gland=.50, glioma_rim=.68, necrosis=.30, oedema=.84, glioma_diffuse=.82,
                  meningioma=.68, adenoma=.54, cyst=.25),
}

#: How often each class is seen in each view (pituitary tumours are imaged at the skull
#: base, so they are never drawn at the ventricular axial level).
_VIEW_WEIGHTS: dict[str, tuple[float, float, float, float]] = {
    "glioma": (0.45, 0.1, 0.2, 0.25),
    "meningioma": (0.45, 0.1, 0.2, 0.25),
    "notumor": (0.4, 0.15, 0.2, 0.25),
    "pituitary": (0.0, 0.3, 0.35, 0.35),
}


@dataclass(frozen=True)
class PhantomConfig:
    """How phantoms are drawn. All fields have sensible defaults.

    Attributes:
        size: side of the square slice in pixels.
        hard_fraction: share of hard cases (small, faint lesions, more noise).
        noise_range: ``(low, high)`` Rician noise sigma, relative to the brightest tissue.
        hard_noise_range: the same for hard cases.
        bias_strength: largest log-amplitude of the smooth multiplicative bias field
            (0.25: intensities vary by up to about +-25% across the head).
        gamma_range: ``(low, high)`` of the final gamma (contrast) jitter.
        scale_range: head size relative to the field of view.
        max_rotation_deg: in-plane rotation limit.
        max_shift: translation limit, as a fraction of the half field of view.
        blur_sigma_max: largest extra Gaussian blur (pixels) mimicking lower acquired
            resolution.
        render_scale: the anatomy is drawn on a ``render_scale * size`` grid and
            upsampled (bilinear), like a low-resolution acquisition interpolated for
            display; noise is added at full resolution. 1.0 is sharper and about three
            times slower.
        contrast_weights: relative frequency of T1, T1 post-contrast, T2 and FLAIR.
    """

    size: int = 256
    hard_fraction: float = 0.25
    noise_range: tuple[float, float] = (0.01, 0.04)
    hard_noise_range: tuple[float, float] = (0.03, 0.07)
    bias_strength: float = 0.25
    gamma_range: tuple[float, float] = (0.75, 1.3)
    scale_range: tuple[float, float] = (0.82, 1.05)
    max_rotation_deg: float = 12.0
    max_shift: float = 0.06
    blur_sigma_max: float = 0.7
    render_scale: float = 0.5
    contrast_weights: tuple[float, float, float, float] = (0.12, 0.5, 0.2, 0.18)

    def __post_init__(self) -> None:
        if not 32 <= self.size <= 2048:
            raise ValueError(f"size must be in [32, 2048], got {self.size}")
        if not 0.0 <= self.hard_fraction <= 1.0:
            raise ValueError(f"hard_fraction must be in [0, 1], got {self.hard_fraction}")
        for name in ("noise_range", "hard_noise_range", "gamma_range", "scale_range"):
            lo, hi = getattr(self, name)
            if not 0.0 <= lo <= hi:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high, got {(lo, hi)}")
        if self.gamma_range[0] <= 0 or self.scale_range[0] <= 0:
            raise ValueError("gamma_range and scale_range must be positive")
        if len(self.contrast_weights) != len(CONTRASTS) or min(self.contrast_weights) < 0 or not sum(
            self.contrast_weights
        ) > 0:
            raise ValueError(f"contrast_weights must be {len(CONTRASTS)} non-negative numbers, not all 0")
        if self.bias_strength < 0 or self.max_shift < 0 or self.blur_sigma_max < 0:
            raise ValueError("bias_strength, max_shift and blur_sigma_max must be >= 0")
        if not 0.25 <= self.render_scale <= 1.0:
            raise ValueError(f"render_scale must be in [0.25, 1], got {self.render_scale}")

    @property
    def render_size(self) -> int:
        """Side of the grid the anatomy is drawn on."""
        return max(32, int(round(self.size * self.render_scale)))


@dataclass(frozen=True)
class PhantomSample:
    """A phantom with the ground truth used to draw it.

    Attributes:
        image: ``(H, W)`` float32 slice in ``[0, 1]``.
        label: class index into :data:`PHANTOM_CLASSES`.
        lesion_mask: ``(H, W)`` bool, the tumour proper (all False for ``notumor``).
        intracranial_mask: ``(H, W)`` bool, the space inside the inner skull surface.
        view: one of :data:`VIEWS`; contrast: one of :data:`CONTRASTS`.
        hard: whether this is a hard case.
        site: ``"intra-axial"``, ``"convexity"``, ``"falx"``, ``"sella"`` or ``None``.
        head_to_pixel: ``(2, 3)`` affine mapping head-frame ``(u, v, 1)`` to pixel
            ``(col, row)``; in the head frame ``u == 0`` is the midline, the head is
            about the unit disc and ``v`` grows downwards (inferior/posterior).
        conspicuity: the tumour's contrast-to-noise ratio (0 for ``notumor``); at least
            :data:`MIN_CONSPICUITY` unless every redraw fell short.
        draws: how many slices were drawn to get this one (1: the first was conspicuous).
    """

    image: np.ndarray
    label: int
    lesion_mask: np.ndarray
    intracranial_mask: np.ndarray
    view: str
    contrast: str
    hard: bool
    site: str | None
    head_to_pixel: np.ndarray
    conspicuity: float = 0.0
    draws: int = 1

    @property
    def class_name(self) -> str:
        return PHANTOM_CLASSES[self.label]


_DEFAULT_CONFIG = PhantomConfig()


def _class_index(label: str | int) -> int:
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        if 0 <= int(label) < len(PHANTOM_CLASSES):
            return int(label)
    elif isinstance(label, str) and label in PHANTOM_CLASSES:
        return PHANTOM_CLASSES.index(label)
    raise ValueError(f"unknown phantom label {label!r}; expected one of {PHANTOM_CLASSES} or 0..3")


def render_phantom(
    label: str | int, rng: np.random.Generator, config: PhantomConfig = _DEFAULT_CONFIG
) -> PhantomSample:
    """Draw one phantom of class ``label`` with its ground truth.

    A tumour must be visible: its contrast-to-noise ratio (:attr:`PhantomSample.conspicuity`)
    must reach :data:`MIN_CONSPICUITY` (lower for hard cases). Some draws fall short - a
    faint lesion in a contrast where the tumour is nearly isointense, under heavy noise -
    and such an image would carry a label nobody could read from it, which only teaches a
    classifier noise; the whole slice is then drawn again from the same ``rng`` (at most
    :data:`MAX_REDRAWS` times, so the result stays deterministic).

    Args:
        label: class name from :data:`PHANTOM_CLASSES` or its index.
        rng: source of randomness (the result depends only on its state).
        config: drawing parameters.

    Returns:
        A :class:`PhantomSample` whose ``image`` is ``(size, size)`` float32 in ``[0, 1]``.
    """
    idx = _class_index(label)
    for draw in range(1, MAX_REDRAWS + 1):
        sample = _render_once(idx, rng, config)
        if sample.label == _NOTUMOR or sample.conspicuity >= MIN_CONSPICUITY[sample.hard]:
            return replace(sample, draws=draw)
    return replace(_render_once(idx, rng, config), draws=MAX_REDRAWS + 1)


#: Least contrast-to-noise ratio of a tumour (mean absolute intensity change it makes over
#: its own area, in units of the image noise), for ``(normal, hard)`` cases.
MIN_CONSPICUITY: dict[bool, float] = {False: 3.0, True: 2.0}

#: Redraws allowed before a slice is accepted whatever its conspicuity.
MAX_REDRAWS = 6

_NOTUMOR = PHANTOM_CLASSES.index("notumor")


def _render_once(idx: int, rng: np.random.Generator, config: PhantomConfig) -> PhantomSample:
    name = PHANTOM_CLASSES[idx]
    size = config.size
    hard = bool(rng.random() < config.hard_fraction)
    view = VIEWS[int(rng.choice(len(VIEWS), p=_VIEW_WEIGHTS[name]))]
    cw = np.asarray(config.contrast_weights, dtype=float)
    contrast = CONTRASTS[int(rng.choice(len(CONTRASTS), p=cw / cw.sum()))]
    tissue = {k: float(val * rng.uniform(0.92, 1.08)) for k, val in _TISSUE[contrast].items()}

    head = sample_head(view, rng)
    if rng.random() < (0.3 if name == "notumor" else 0.12):  # distractor: asymmetric ventricles
        head.vent_asym = float(rng.uniform(0.25, 0.55))
    lesion: Lesion | None = None if name == "notumor" else sample_lesion(name, head, rng, hard)

    scale = rng.uniform(*config.scale_range)
    rsize = config.render_size
    fr = Frame(
        rsize, scale, math.radians(rng.uniform(-1, 1) * config.max_rotation_deg),
        tuple(rng.uniform(-1, 1, size=2) * config.max_shift), bool(rng.random() < 0.5),
    )
    if lesion is not None:
        fr.warp(lesion.shape.cx, lesion.shape.cy, lesion.mass, lesion.sigma)
    fields = {
        "warp": smooth_field(rng, 7, rsize),
        "tex": smooth_field(rng, 14, rsize),
        "wob": smooth_field(rng, 5, rsize),
        "face": smooth_field(rng, 24, rsize),
        "lobe": smooth_field(rng, 16, rsize),
    }
    cv = Canvas(rsize)
    masks = paint_anatomy(cv, fr, head, tissue, fields)
    _paint_distractors(cv, fr, head, tissue, rng, name)
    noise = rng.uniform(*(config.hard_noise_range if hard else config.noise_range))
    conspicuity = 0.0
    lesion_soft = None
    if lesion is not None:
        lesion_soft = paint_lesion(cv, fr, lesion, tissue, fields, masks)
        conspicuity = _conspicuity(cv.img, lesion_soft, noise)
    cv.img *= np.float32(1.0) + np.float32(0.05) * fields["tex"]
    image = _acquire(_resize(cv.img, size), rng, config, noise)
    lesion_mask = (
        np.zeros((size, size), dtype=bool) if lesion_soft is None else _resize(lesion_soft, size) > 0.5
    )
    return PhantomSample(
        image=image, label=idx, lesion_mask=lesion_mask,
        intracranial_mask=_resize(masks.intracranial, size) > 0.5,
        view=view, contrast=contrast, hard=hard, site=None if lesion is None else lesion.site,
        head_to_pixel=fr.head_to_pixel(size), conspicuity=conspicuity,
    )


def _conspicuity(image: np.ndarray, lesion_soft: np.ndarray, noise: float) -> float:
    """Contrast-to-noise ratio of a tumour against its surroundings: ``|mean inside -
    mean of a ring around it|`` over the tumour (soft mask > 0.5), divided by the noise
    sigma the acquisition will add (``noise`` is relative to the brightest tissue, as in
    :func:`_acquire`). The ring is as wide as a third of the tumour's radius (>= 2 px)."""
    inside = (lesion_soft > 0.5).astype(np.uint8)
    area = int(inside.sum())
    if area == 0:
        return 0.0
    width = max(2, int(round(0.33 * math.sqrt(area / math.pi))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    ring = (cv2.dilate(inside, kernel) > 0) & (inside == 0)
    contrast = abs(float(image[inside > 0].mean()) - float(image[ring].mean()))
    sigma = noise * max(float(np.percentile(image, 99.5)), 1e-6)
    return contrast / max(sigma, 1e-6)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a square float32 image to ``(size, size)``."""
    if img.shape[0] == size:
        return img
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)


def make_phantom(
    label: str | int, rng: np.random.Generator, config: PhantomConfig = _DEFAULT_CONFIG
) -> np.ndarray:
    """Draw one phantom slice of class ``label``.

    Returns:
        ``(config.size, config.size)`` float32 in ``[0, 1]``.
    """
    return render_phantom(label, rng, config).image


def phantom_label(index: int, seed: int) -> int:
    """The class of phantom ``index`` in data set ``seed``, without drawing it.

    Labels are a seeded permutation of the four classes within each block of four
    consecutive indices, so any range of indices is balanced to within one per class.
    """
    _check_index(index, seed)
    perm = np.random.default_rng([seed, index // 4, 0x1ABE1]).permutation(len(PHANTOM_CLASSES))
    return int(perm[index % len(PHANTOM_CLASSES)])


def phantom_details(index: int, seed: int, config: PhantomConfig = _DEFAULT_CONFIG) -> PhantomSample:
    """Phantom ``index`` of data set ``seed`` with its ground truth (see :func:`phantom_sample`)."""
    label = phantom_label(index, seed)
    return render_phantom(label, np.random.default_rng([seed, index]), config)


def phantom_sample(index: int, seed: int, config: PhantomConfig = _DEFAULT_CONFIG) -> tuple[np.ndarray, int]:
    """Phantom ``index`` of data set ``seed``.

    Deterministic per ``(seed, index)`` and independent of any other index.

    Returns:
        ``(image, label)``: ``(size, size)`` float32 in ``[0, 1]`` and the class index.
    """
    sample = phantom_details(index, seed, config)
    return sample.image, sample.label


def make_phantom_set(
    n: int, seed: int, config: PhantomConfig = _DEFAULT_CONFIG
) -> tuple[np.ndarray, np.ndarray]:
    """Phantoms ``0 .. n-1`` of data set ``seed``.

    Returns:
        ``(images, labels)``: ``(n, size, size)`` float32 and ``(n,)`` int64.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    images = np.empty((n, config.size, config.size), dtype=np.float32)
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        images[i], labels[i] = phantom_sample(i, seed, config)
    return images, labels


def _check_index(index: int, seed: int) -> None:
    if int(index) != index or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _paint_distractors(
    cv: Canvas, fr: Frame, head: Head, tissue: dict[str, float], rng: np.random.Generator, name: str
) -> None:
    """Vessel dots (bright with contrast, flow voids otherwise) in every class, a bit more
    often without a tumour, so that "a bright spot" is not a tumour cue."""
    count = int(rng.poisson(1.3 if name == "notumor" else 0.7))
    for _ in range(count):
        u = rng.uniform(-0.6, 0.6) * head.hx
        v = head.hc + rng.uniform(-0.6, 0.5) * head.hy
        if head.view in ("axial", "coronal", "sagittal") and not head.inside_brain(u, v, 0.02):
            continue
        r = rng.uniform(0.01, 0.025)
        cv.paint_ellipse(fr, Ellipse(u, v, r, r * rng.uniform(0.8, 1.6), rng.uniform(0, math.pi)), tissue["vessel"])


def _acquire(img: np.ndarray, rng: np.random.Generator, config: PhantomConfig, noise: float) -> np.ndarray:
    """Scanner effects: blur, bias field, Rician noise (sigma ``noise`` relative to the
    brightest tissue), gamma; output in ``[0, 1]``."""
    size = img.shape[0]
    sigma_blur = rng.uniform(0.0, config.blur_sigma_max)
    if sigma_blur > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma_blur)
    if config.bias_strength > 0:
        bias = smooth_field(rng, 3, size)
        bias *= np.float32(config.bias_strength * rng.uniform(0.3, 1.0) / max(float(np.abs(bias).max()), 1e-6))
        img *= np.exp(bias, out=bias)
    sigma = np.float32(noise * max(float(img.max()), 1e-6))
    n1, n2 = noise_pair(rng, size)
    real = sigma * n1
    real += img
    real *= real
    imag = sigma * n2
    imag *= imag
    real += imag
    img = np.sqrt(real, out=real)
    # scale so the brightest tissue (not a single noisy pixel) reaches about 1
    small = cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA)
    img *= np.float32(rng.uniform(0.95, 1.1) / max(float(small.max()), 1e-6))
    gamma = rng.uniform(*config.gamma_range)
    np.clip(img, 0.0, 1.0, out=img)
    if abs(gamma - 1.0) > 1e-3:
        img += np.float32(1e-6)
        np.log(img, out=img)
        img *= np.float32(gamma)
        np.exp(img, out=img)
        np.clip(img, 0.0, 1.0, out=img)
    return img
