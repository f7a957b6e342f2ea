"""Tumours for the synthetic MRI phantoms (private).

The cues follow what radiologists look for:

* glioma - intra-axial (inside the parenchyma, away from the skull), lobulated,
  often ring-enhancing with a necrotic core, wrapped in oedema that spreads along white
  matter; mass effect on the ventricles and midline. Some are non-enhancing and diffuse.
* meningioma - extra-axial: a smooth, homogeneous, brightly enhancing ovoid with a broad
  base on the inner skull (or on the falx), a CSF cleft between it and the brain, an
  optional dural tail; it pushes the brain inwards.
* pituitary adenoma - a midline mass in the sella growing upwards ("snowman" in coronal
  and sagittal views), homogeneous, moderately enhancing, sometimes with a cyst.

"Hard" lesions are small and faint, and some hard gliomas sit just under the cortex
where they resemble meningiomas, so the classes genuinely overlap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from preprocessing._phantom_anatomy import AnatomyMasks, Head
from preprocessing._phantom_canvas import Box, Canvas, Ellipse, Frame, soft

#: Smallest factor the lobulated outline applies to the normalised radius (see paint_lesion).
_MIN_BUMP = 0.7

#: Parameter-angle ranges of the inner skull where convexity meningiomas may sit.
_DURAL_THETA: dict[str, tuple[float, float]] = {
    "axial": (-math.pi, math.pi),
    "axial_base": (-0.1 * math.pi, 1.1 * math.pi),
    "coronal": (-math.pi + 0.35, -0.35),
    "sagittal": (-math.pi + 0.3, 0.0),
}


@dataclass
class Lesion:
    """One tumour in head-frame units.

    Attributes:
        kind: ``"glioma"``, ``"meningioma"`` or ``"pituitary"``.
        site: ``"intra-axial"``, ``"convexity"``, ``"falx"`` or ``"sella"``.
        shape: the tumour's ellipse (before lobulation).
        alpha: conspicuity in ``[0, 1]`` (1: full tissue contrast; hard cases less).
        mass: mass-effect strength ``k`` of :meth:`Frame.warp`; sigma: its reach.
        lobulation: amplitude of the outline's random perturbation.
        necrosis: radius of the necrotic core as a fraction (0: none).
        oedema: outer radius of oedema as a multiple of the tumour radius (0: none).
        enhancing: whether the tumour takes up contrast (glioma rim, meningioma body).
        cleft: CSF cleft around an extra-axial mass.
        tail: length of the dural tail in tumour radii (0: none).
        base: ``(u, v, nu, nv)`` dural attachment point and outward normal (meningioma).
        side: hemisphere of a falx meningioma (``-1``/``+1``), 0 otherwise.
        cyst: relative size of a cystic part (0: none).
    """

    kind: str
    site: str
    shape: Ellipse
    alpha: float
    mass: float
    sigma: float
    lobulation: float = 0.0
    necrosis: float = 0.0
    oedema: float = 0.0
    enhancing: bool = True
    cleft: bool = False
    tail: float = 0.0
    base: tuple[float, float, float, float] | None = None
    side: int = 0
    cyst: float = 0.0


def sample_lesion(kind: str, head: Head, rng: np.random.Generator, hard: bool) -> Lesion:
    """Draw a tumour of ``kind`` that fits ``head`` (see the module docstring for cues)."""
    if kind == "glioma":
        return _sample_glioma(head, rng, hard)
    if kind == "meningioma":
        return _sample_meningioma(head, rng, hard)
    if kind == "pituitary":
        return _sample_pituitary(head, rng, hard)
    raise ValueError(f"no lesion model for {kind!r}")


def _brain_point(head: Head, rng: np.random.Generator, radius: float, peripheral: bool) -> tuple[float, float]:
    """A point whose disc of ``radius`` lies in the brain (near the cortex if asked)."""
    for _ in range(200):
        if head.view == "axial_base":  # temporal lobe or cerebellar hemisphere
            cu, cv = ((0.36, 0.02), (0.25, 0.5))[int(rng.random() < 0.35)]
            u = rng.choice((-1.0, 1.0)) * (cu + rng.uniform(-0.04, 0.04))
            v = cv + rng.uniform(-0.08, 0.08)
        else:
            u = rng.uniform(-0.8, 0.8) * head.hx
            v = head.hc + rng.uniform(-0.8, 0.8) * head.hy
        if head.view == "sagittal" and v > 0.12:
            continue
        if not head.inside_brain(u, v, radius):
            continue
        if peripheral and head.view != "axial_base" and head.inside_brain(u, v, radius + 0.07):
            continue
        return u, v
    return 0.0, head.hc - 0.3 * head.hy  # fallback: deep white matter in front of the centre


def _sample_glioma(head: Head, rng: np.random.Generator, hard: bool) -> Lesion:
    r = rng.uniform(0.06, 0.1) if hard else rng.uniform(0.09, 0.19)
    if head.view == "axial_base":
        r = min(r, 0.09)
    peripheral = hard and rng.random() < 0.4
    aspect = rng.uniform(0.75, 1.3)
    reach = r * max(aspect, 1 / aspect) / _MIN_BUMP  # farthest extent of the lobulated outline
    cx, cy = _brain_point(head, rng, reach, peripheral)
    enhancing = rng.random() < (0.45 if hard else 0.7)
    return Lesion(
        kind="glioma", site="intra-axial",
        shape=Ellipse(cx, cy, r * aspect, r / aspect, rng.uniform(0, math.pi)),
        alpha=rng.uniform(0.5, 0.8) if hard else rng.uniform(0.85, 1.0),
        mass=rng.uniform(0.08, 0.25) if hard else rng.uniform(0.35, 0.6),
        sigma=1.8 * r,
        lobulation=rng.uniform(0.08, 0.16) if peripheral else rng.uniform(0.14, 0.3),
        necrosis=rng.uniform(0.35, 0.7) if enhancing and not peripheral else 0.0,
        oedema=(rng.uniform(1.0, 1.4) if hard else rng.uniform(1.4, 2.2)) if enhancing else rng.uniform(1.0, 1.4),
        enhancing=enhancing,
    )


def _sample_meningioma(head: Head, rng: np.random.Generator, hard: bool) -> Lesion:
    r = rng.uniform(0.07, 0.11) if hard else rng.uniform(0.1, 0.21)
    falx = head.view in ("axial", "coronal") and rng.random() < 0.2
    if falx:
        side = int(rng.choice((-1, 1)))
        v0 = rng.uniform(-0.5, 0.25) if head.view == "axial" else rng.uniform(-0.55, -0.25)
        base = (0.0, v0, -float(side), 0.0)
        off = r * rng.uniform(0.55, 0.9)
        centre = (side * off, v0)
    else:
        side = 0
        lo, hi = _DURAL_THETA[head.view]
        for _ in range(100):
            (pu, pv), (nu, nv) = head.inner_point(rng.uniform(lo, hi))
            if head.view != "axial_base" or pv > float(head.anterior(pu)) + r + 0.05:
                break
        base = (pu, pv, nu, nv)
        depth = r * rng.uniform(0.15, 0.45)
        centre = (pu - nu * depth, pv - nv * depth)
    ang = math.atan2(base[3], base[2])
    return Lesion(
        kind="meningioma", site="falx" if falx else "convexity",
        shape=Ellipse(centre[0], centre[1], r * rng.uniform(0.85, 1.05), r * rng.uniform(1.0, 1.45), ang),
        alpha=rng.uniform(0.5, 0.8) if hard else rng.uniform(0.85, 1.0),
        mass=rng.uniform(0.12, 0.3) if hard else rng.uniform(0.4, 0.7),
        sigma=1.7 * r,
        lobulation=rng.uniform(0.0, 0.05),
        oedema=rng.uniform(1.2, 1.5) if (not hard and rng.random() < 0.3) else 0.0,
        enhancing=True,
        cleft=rng.random() < (0.3 if hard else 0.75),
        tail=rng.uniform(1.6, 2.4) if rng.random() < (0.2 if hard else 0.6) else 0.0,
        base=base, side=side,
    )


def _sample_pituitary(head: Head, rng: np.random.Generator, hard: bool) -> Lesion:
    su, sv = head.sella
    r = rng.uniform(0.045, 0.07) if hard else rng.uniform(0.06, 0.12)
    if head.view == "axial_base":
        shape = Ellipse(su + rng.uniform(-0.01, 0.01), sv, r * rng.uniform(1.0, 1.3), r)
    else:
        tall = rng.uniform(1.0, 1.35)
        shape = Ellipse(su + rng.uniform(-0.015, 0.015), sv + 0.02 - 0.6 * r * tall, r, r * tall)
    return Lesion(
        kind="pituitary", site="sella", shape=shape,
        alpha=rng.uniform(0.55, 0.85) if hard else rng.uniform(0.85, 1.0),
        mass=0.05 if hard else rng.uniform(0.15, 0.35), sigma=1.6 * r,
        lobulation=rng.uniform(0.0, 0.08),
        cyst=rng.uniform(0.25, 0.45) if (not hard and rng.random() < 0.15) else 0.0,
    )


def paint_lesion(
    cv: Canvas, fr: Frame, lesion: Lesion, tissue: dict[str, float], fields: dict[str, np.ndarray],
    masks: AnatomyMasks,
) -> np.ndarray:
    """Paint ``lesion`` over the anatomy.

    Returns:
        ``(H, W)`` float32 soft mask of the tumour proper (oedema, cleft and dural tail
        excluded); ``> 0.5`` inside.
    """
    e = lesion.shape
    # the outline is perturbed by a factor in [0.7, 1.5] (oedema by another 0.75): the
    # box must hold radius * extent / (0.7 * 0.75)
    reach = e.radius * max(1.0, lesion.oedema) / 0.5 + 0.02
    if lesion.tail:
        reach = max(reach, e.radius * (lesion.tail + 1.5))
    box = fr.box(e.cx, e.cy, reach)
    mask = np.zeros(cv.img.shape, dtype=np.float32)
    if box is None:
        return mask
    rho = np.sqrt(fr.ellipse_q2(e, box, displaced=False))
    if lesion.lobulation:
        bump = np.float32(lesion.lobulation) * fields["lobe"][box]
        bump += np.float32(1.0)
        rho *= np.clip(bump, _MIN_BUMP, 1.5, out=bump)
    r_px = min(e.ax, e.ay) / fr.px  # tumour radius in pixels
    painter = {"glioma": _paint_glioma, "meningioma": _paint_meningioma, "pituitary": _paint_pituitary}
    tumour = painter[lesion.kind](cv, fr, lesion, tissue, fields, masks, box, rho, r_px)
    mask[box] = tumour
    return mask


def _paint_glioma(
    cv: Canvas, fr: Frame, lesion: Lesion, tissue: dict[str, float], fields: dict[str, np.ndarray],
    masks: AnatomyMasks, box: Box, rho: np.ndarray, r_px: float,
) -> np.ndarray:
    """Oedema along white matter, then an enhancing rim around a necrotic core (or a
    diffuse, ill-defined non-enhancing mass). ``rho``: lobulated normalised radius over
    ``box``; ``r_px``: tumour radius in pixels. Returns the tumour's soft mask over ``box``."""
    a = np.float32(lesion.alpha)
    ic = masks.intracranial[box]
    if lesion.oedema > 1.0:
        ragged = rho * np.clip(np.float32(1.0) + np.float32(0.12) * fields["warp"][box], 0.75, 1.3)
        oed = soft(np.float32(lesion.oedema) - ragged, 6.0 / r_px)
        oed *= (np.float32(0.45) + np.float32(0.55) * masks.white[box]) * masks.brain[box]
        cv.paint(oed * a, tissue["oedema"], box)
    if lesion.enhancing:
        tumour = soft(np.float32(1.0) - rho, 1.5 / r_px) * ic
        cv.paint(tumour * a, tissue["glioma_rim"], box)
        if lesion.necrosis:
            inner = rho * (np.float32(1.0) + np.float32(0.2) * fields["tex"][box])
            core = soft(np.float32(lesion.necrosis) - inner, 2.0 / r_px) * tumour
            cv.paint(core * a, tissue["necrosis"], box)
    else:
        tumour = soft(np.float32(1.0) - rho, 4.0 / r_px) * ic
        cv.paint(tumour * a, tissue["glioma_diffuse"] * (1.0 + 0.06 * fields["tex"][box]), box)
    return tumour


def _paint_meningioma(
    cv: Canvas, fr: Frame, lesion: Lesion, tissue: dict[str, float], fields: dict[str, np.ndarray],
    masks: AnatomyMasks, box: Box, rho: np.ndarray, r_px: float,
) -> np.ndarray:
    """CSF cleft, then a homogeneous mass clipped to the intracranial space (and to its
    side of the falx), then the dural tail. Returns the tumour's soft mask over ``box``."""
    a = np.float32(lesion.alpha)
    clip = masks.intracranial[box]
    if lesion.side:
        u, _ = fr.coords(box, displaced=False)
        clip = clip * soft(np.float32(lesion.side) * u - np.float32(0.01), fr.px)
    if lesion.oedema:
        oed = soft(np.float32(lesion.oedema) - rho, 4.0 / r_px) * masks.brain[box]
        cv.paint(oed * a * np.float32(0.8), tissue["oedema"], box)
    if lesion.cleft:
        cleft = soft(np.float32(1.1) - rho, 1.0 / r_px) * clip
        cv.paint(cleft * a, tissue["csf"], box)
    tumour = soft(np.float32(1.0) - rho, 1.2 / r_px) * clip
    value = tissue["meningioma"] * (np.float32(1.0) + np.float32(0.04) * fields["tex"][box])
    cv.paint(tumour * a, value, box)
    if lesion.tail and lesion.base is not None:
        pu, pv, nu, nv = lesion.base
        along = min(lesion.shape.ax, lesion.shape.ay) * lesion.tail
        tail = Ellipse(pu - 0.01 * nu, pv - 0.01 * nv, 0.018, along, math.atan2(nv, nu))
        t_alpha = fr.ellipse_alpha(tail, box, displaced=False) * masks.intracranial[box]
        cv.paint(t_alpha * a * np.float32(0.8), tissue["dura"], box)
    return tumour


def _paint_pituitary(
    cv: Canvas, fr: Frame, lesion: Lesion, tissue: dict[str, float], fields: dict[str, np.ndarray],
    masks: AnatomyMasks, box: Box, rho: np.ndarray, r_px: float,
) -> np.ndarray:
    """A homogeneous sellar mass, optionally with a cyst. Returns its soft mask over ``box``."""
    a = np.float32(lesion.alpha)
    tumour = soft(np.float32(1.0) - rho, 1.2 / r_px)
    value = tissue["adenoma"] * (np.float32(1.0) + np.float32(0.05) * fields["tex"][box])
    cv.paint(tumour * a, value, box)
    if lesion.cyst:
        e = lesion.shape
        cyst = Ellipse(e.cx + 0.35 * e.ax, e.cy - 0.3 * e.ay, e.ax * lesion.cyst, e.ay * lesion.cyst)
        cv.paint(fr.ellipse_alpha(cyst, box, displaced=False) * tumour * a, tissue["cyst"], box)
    return tumour
