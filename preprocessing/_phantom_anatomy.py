"""Normal head anatomy for the synthetic MRI phantoms (private).

Four views, all in the head frame of :mod:`preprocessing._phantom_canvas` (``u`` right,
``v`` down, anterior/superior at the top, midline at ``u == 0``):

* ``axial``: ventricular level - oval head, gyri and sulci, lateral ventricles, third
  ventricle, thalami and basal ganglia, interhemispheric fissure.
* ``axial_base``: skull-base level - orbits and sphenoid sinus in front, temporal lobes,
  pons, fourth ventricle and cerebellum, a small pituitary gland in the sella.
* ``coronal``: through the sella - two hemispheres under the vertex, falx, "bat-wing"
  frontal horns, Sylvian fissures, temporal lobes, pituitary gland above the sphenoid
  sinus, face and neck below.
* ``sagittal``: midline - corpus callosum over the lateral ventricle, thalamus,
  brainstem, cerebellum with folia in the posterior fossa, pituitary in the sella,
  face, airway and spine.

:func:`sample_head` draws the per-image geometry; :func:`paint_anatomy` draws it and
returns the masks the lesion painter needs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from preprocessing._phantom_canvas import Box, Canvas, Ellipse, Frame, soft

VIEWS: tuple[str, ...] = ("axial", "axial_base", "coronal", "sagittal")

#: Posterior fossa of the sagittal view: ``(centre u, centre v, semi-axis u, semi-axis v)``.
_FOSSA = (0.42, 0.3, 0.4, 0.3)


@dataclass
class Head:
    """Geometry of one head (head-frame units; ``q`` = normalised cranial-ellipse radius).

    Attributes:
        view: one of :data:`VIEWS`.
        hx, hy: semi-axes of the cranial vault ellipse; hc: its centre ``v``.
        scalp, skull: thickness of scalp and bone as fractions of the radius.
        gap: CSF space between brain and inner skull (head units).
        gm: cortical thickness; sulc: mean sulcal depth (head units).
        gyri: number of gyri around the hemisphere outline.
        vent: ventricle size factor; vent_asym: extra size of the right ventricle.
        sella: ``(u, v)`` of the pituitary gland (``None`` where the view has none).
        marrow: visibility of the diploe (bright marrow between the skull tables).
        jitter: small per-structure position offsets in ``[-1, 1]``.
    """

    view: str
    hx: float
    hy: float
    hc: float
    scalp: float
    skull: float
    gap: float
    gm: float
    sulc: float
    gyri: float
    vent: float
    vent_asym: float
    sella: tuple[float, float] | None
    marrow: float
    jitter: np.ndarray = field(default_factory=lambda: np.zeros(16))

    @property
    def q_in(self) -> float:
        """Inner-skull radius in ``q`` units."""
        return 1.0 - self.scalp - self.skull

    @property
    def hmin(self) -> float:
        return min(self.hx, self.hy)

    def q2(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Squared normalised cranial radius at ``(u, v)`` (vault, plus posterior fossa
        in the sagittal view)."""
        dv = v - np.float32(self.hc)
        dv *= dv
        dv *= np.float32(1 / self.hy**2)
        out = u * u
        out *= np.float32(1 / self.hx**2)
        out += dv
        if self.view == "sagittal":
            fu, fv, fa, fb = _FOSSA
            du = u - np.float32(fu)
            dw = v - np.float32(fv)
            du *= du
            du *= np.float32(1 / fa**2)
            dw *= dw
            dw *= np.float32(1 / fb**2)
            du += dw
            np.minimum(out, du, out=out)
        return out

    def base(self, u: np.ndarray | float) -> np.ndarray | float:
        """Skull-base ``v`` (the intracranial space lies above it); coronal/sagittal."""
        if self.view == "coronal":
            return 0.37 + 0.55 * u * u
        if self.view == "sagittal":
            sig = 1.0 / (1.0 + np.exp((0.15 - u) / 0.05))
            su = u - self.sella[0]
            return 0.16 + 0.46 * sig + 0.18 * np.exp(-su * su / 0.003)
        raise ValueError(f"view {self.view!r} has no skull-base curve")

    def anterior(self, u: np.ndarray | float) -> np.ndarray | float:
        """Front wall ``v`` of the intracranial space in the skull-base axial view."""
        return -0.32 - 0.16 * np.exp(-u * u / 0.02)

    def inner_point(self, theta: float) -> tuple[tuple[float, float], tuple[float, float]]:
        """Point on the inner vault at parameter angle ``theta`` and its outward normal."""
        q = self.q_in
        p = (q * self.hx * math.cos(theta), self.hc + q * self.hy * math.sin(theta))
        n = (math.cos(theta) / self.hx, math.sin(theta) / self.hy)
        norm = math.hypot(*n)
        return p, (n[0] / norm, n[1] / norm)

    def inside_brain(self, u: float, v: float, margin: float) -> bool:
        """Whether the disc of radius ``margin`` at ``(u, v)`` lies in the cerebrum."""
        q = math.sqrt(u * u / self.hx**2 + (v - self.hc) ** 2 / self.hy**2)
        if (self.q_in - q) * self.hmin < margin + self.gap + 0.02:
            return False
        if self.view in ("coronal", "sagittal") and v > float(self.base(u)) - margin - 0.1:
            return False
        return True


def sample_head(view: str, rng: np.random.Generator) -> Head:
    """Random geometry for ``view`` (see :class:`Head`)."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {VIEWS}")
    if view == "axial":
        hx, hy, hc = rng.uniform(0.66, 0.78), rng.uniform(0.84, 0.93), 0.0
    elif view == "axial_base":
        hx, hy, hc = rng.uniform(0.68, 0.78), rng.uniform(0.86, 0.94), 0.0
    elif view == "coronal":
        hx, hy, hc = rng.uniform(0.72, 0.8), rng.uniform(0.78, 0.86), -0.08
    else:
        hx, hy, hc = rng.uniform(0.84, 0.9), rng.uniform(0.68, 0.74), -0.12
    head = Head(
        view=view, hx=hx, hy=hy, hc=hc,
        scalp=rng.uniform(0.045, 0.07), skull=rng.uniform(0.04, 0.065),
        gap=rng.uniform(0.006, 0.025), gm=rng.uniform(0.026, 0.036), sulc=rng.uniform(0.06, 0.11),
        gyri=rng.uniform(40, 54), vent=rng.uniform(0.75, 1.35), vent_asym=0.0, sella=None,
        marrow=rng.uniform(0.0, 0.8), jitter=rng.uniform(-1.0, 1.0, size=16),
    )
    if view == "axial_base":
        head.sella = (0.0, rng.uniform(-0.17, -0.11))
    elif view == "coronal":
        head.sella = (0.0, rng.uniform(0.32, 0.35))
    elif view == "sagittal":
        su = rng.uniform(-0.04, 0.0)
        head.sella = (su, 0.0)  # base() needs the sella's u
        head.sella = (su, float(head.base(su)) - 0.035)
    return head


@dataclass
class AnatomyMasks:
    """Full-image masks produced while painting the anatomy.

    Attributes:
        intracranial: ``(H, W)`` float32 soft mask of the space inside the inner skull.
        brain: ``(H, W)`` float32 soft mask of the parenchyma.
        white: ``(H, W)`` float32 soft mask of white matter (oedema spreads along it).
    """

    intracranial: np.ndarray
    brain: np.ndarray
    white: np.ndarray


def paint_anatomy(
    cv: Canvas, fr: Frame, head: Head, tissue: dict[str, float], fields: dict[str, np.ndarray],
) -> AnatomyMasks:
    """Paint the normal anatomy of ``head`` onto ``cv``.

    Args:
        cv: canvas, painted in place.
        fr: pixel -> head-frame mapping (with the lesion's mass-effect warp, if any).
        head: geometry from :func:`sample_head`.
        tissue: tissue name -> intensity for this image's contrast.
        fields: smooth ``(H, W)`` random fields ``warp``, ``tex``, ``wob`` and ``face``.
    """
    full = fr.full
    w = fr.px
    u, v = fr.u, fr.v
    q2 = head.q2(u, v)
    q2 += np.float32(0.012) * fields["wob"]
    skull_base = head.view in ("coronal", "sagittal")
    if skull_base:
        _paint_face(cv, fr, head, tissue, fields)
        below = soft(np.float32(head.base(u)) + np.float32(0.045) - v, w)
    else:
        below = None
    # scalp fat, galea/muscle, bone (with diploe), then intracranial CSF
    r_mus = 1.0 - 0.45 * head.scalp
    r_bone = 1.0 - head.scalp
    for r, val in ((1.0, tissue["fat"]), (r_mus, tissue["muscle"]), (r_bone, tissue["bone"])):
        a = soft(np.float32(r * r) - q2, 2 * w * r / head.hmin)
        if below is not None:
            a *= below
        cv.paint(a, val, full)
    if head.marrow > 0.15:
        rm = r_bone - 0.5 * head.skull
        ring = soft(np.float32(0.22 * head.skull * rm * 2) - np.abs(q2 - np.float32(rm * rm)), 2 * w)
        if below is not None:
            ring *= below
        cv.paint(ring * np.float32(head.marrow), tissue["marrow"], full)
    if head.view == "axial_base":
        _paint_face(cv, fr, head, tissue, fields)
    q_in = head.q_in
    ic = soft(np.float32(q_in * q_in) - q2, 2 * w * q_in / head.hmin)
    if skull_base:
        ic *= soft(np.float32(head.base(u)) - v, w)
    elif head.view == "axial_base":
        ic *= soft(v - np.float32(head.anterior(u)), w)
    cv.paint(ic, tissue["csf"], full)

    # intracranial contents use the mass-effect-warped coordinates
    if head.view == "axial_base":
        brain, white = _paint_base_lobes(cv, fr, head, tissue, fields, ic)
        return AnatomyMasks(ic, brain, white)
    ud, vd = fr.ud, fr.vd
    qd = head.q2(ud, vd)
    qd += np.float32(0.012) * fields["wob"]
    np.maximum(qd, 0.0, out=qd)
    np.sqrt(qd, out=qd)
    depth = np.float32(q_in - head.gap / head.hmin) - qd
    depth *= np.float32(head.hmin)
    if head.view == "coronal":
        cistern = 0.12 * np.exp(-ud * ud / np.float32(0.012))
        np.minimum(depth, np.float32(head.base(ud)) - np.float32(head.gap + 0.02) - cistern - vd, out=depth)
    elif head.view == "sagittal":
        np.minimum(depth, np.float32(head.base(ud)) - np.float32(head.gap + 0.04) - vd, out=depth)
    theta = np.arctan2(vd - np.float32(head.hc), ud)
    brain, white = _paint_cortex(cv, full, head, tissue, fields, depth, theta, head.gyri, w)
    brain *= ic
    if head.view == "axial":
        _paint_axial_deep(cv, fr, head, tissue)
    elif head.view == "coronal":
        _paint_coronal_deep(cv, fr, head, tissue)
    else:
        _paint_sagittal_deep(cv, fr, head, tissue, fields)
    return AnatomyMasks(ic, brain, white)


# ---------------------------------------------------------------------------- cortex
def _paint_cortex(
    cv: Canvas, box: Box, head: Head, tissue: dict[str, float], fields: dict[str, np.ndarray],
    depth: np.ndarray, theta: np.ndarray, gyri: float, px: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Grey-matter ribbon, gyral white-matter cores and sulci from a depth map.

    Sulci run roughly perpendicular to the surface: they are the crests of
    ``cos(gyri * theta + warp)``, where ``theta`` is the angle around the hemisphere
    and a smooth random ``warp`` bends and spaces them irregularly. Each sulcus reaches
    a random depth and is lined with grey matter; white matter fills the gyral cores.

    Args:
        box: where ``depth``/``theta`` live on the canvas.
        depth: distance below the brain surface (head units, negative outside).
        theta: angle around the hemisphere centre (radians), same shape.
        gyri: gyri per full turn.

    Returns:
        ``(brain, white)`` soft masks over ``box``.
    """
    brain = soft(depth, px)
    cv.paint(brain, tissue["gm"], box)
    phase = theta * np.float32(gyri)
    phase += np.float32(3.0) * fields["warp"][box]
    phase += np.float32(1.2) * fields["tex"][box]
    c = np.cos(phase, out=phase)
    ds = np.float32(head.sulc) * (np.float32(0.9) + np.float32(0.7) * fields["lobe"][box])
    lined = soft(c + np.float32(0.5), 0.3)
    lined *= soft(ds + np.float32(head.gm) - depth, px)
    white = soft(depth - np.float32(head.gm), px)
    white *= np.float32(1.0) - lined
    cv.paint(white, tissue["wm"], box)
    sulcus = soft(c - np.float32(0.86), 0.1)
    sulcus *= soft(ds - depth, px)
    sulcus *= brain
    cv.paint(sulcus, tissue["csf"], box)
    return brain, white


def _fissure(cv: Canvas, fr: Frame, tissue: dict[str, float], v0: float, v1: float, width: float) -> None:
    """Interhemispheric fissure: a thin CSF line along ``u = 0`` for ``v0 < v < v1``."""
    box = fr.box(0.0, 0.5 * (v0 + v1), 0.5 * (v1 - v0) + 0.05)
    if box is None:
        return
    ud, vd = fr.coords(box)
    a = soft(np.float32(width) - np.abs(ud), fr.px)
    a *= soft(vd - np.float32(v0), 2 * fr.px)
    a *= soft(np.float32(v1) - vd, 2 * fr.px)
    cv.paint(a, tissue["csf"], box)


def _banana(
    cv: Canvas, fr: Frame, value: float, cx: float, cy: float, half_w: float, half_l: float,
    bend: float, side: int,
) -> None:
    """A bent ellipse (lateral ventricle in axial view); ends bow away from the midline."""
    box = fr.box(cx, cy, half_l + abs(bend) * half_l**2 + half_w)
    if box is None:
        return
    ud, vd = fr.coords(box)
    dv = vd - np.float32(cy)
    du = np.float32(side) * ud - np.float32(abs(cx)) - np.float32(bend) * dv * dv
    q2 = du * du * np.float32(1 / half_w**2) + dv * dv * np.float32(1 / half_l**2)
    cv.paint(soft(np.float32(1.0) - q2, 2 * fr.px / half_w), value, box)


# ----------------------------------------------------------------------- deep, per view
def _paint_axial_deep(cv: Canvas, fr: Frame, head: Head, tissue: dict[str, float]) -> None:
    j = head.jitter * 0.02
    s = head.vent
    gm, wm, csf = tissue["gm"], tissue["wm"], tissue["csf"]
    for side in (-1, 1):  # lentiform nuclei, thalami, caudate heads, insula
        cv.paint_ellipse(fr, Ellipse(side * (0.25 + j[0]), -0.03 + j[1], 0.055, 0.15, side * 0.25), 0.4 * gm + 0.6 * wm, edge_px=3)
        cv.paint_ellipse(fr, Ellipse(side * 0.1, 0.15 + j[2], 0.085, 0.11, side * 0.2), 0.8 * gm + 0.2 * wm, edge_px=3)
        cv.paint_ellipse(fr, Ellipse(side * (0.11 + 0.02 * s), -0.2 + j[3], 0.05, 0.07), gm, edge_px=2)
        cv.paint_ellipse(fr, Ellipse(side * (0.41 + j[4] * 0.5), -0.02, 0.012, 0.13, side * 0.15), csf, opacity=0.7)
    for side in (-1, 1):
        grow = 1.0 + (head.vent_asym if side > 0 else 0.0)
        _banana(cv, fr, csf, side * (0.05 + 0.02 * s * grow), -0.04 + j[5], 0.033 * s * grow,
                0.27 * (0.85 + 0.15 * s), 2.0 + j[6] * 10, side)
        cv.paint_ellipse(fr, Ellipse(side * (0.17 + 0.02 * s), 0.27 + j[7], 0.04 * s * grow, 0.065 * s, side * 0.6), csf)
    cv.paint_ellipse(fr, Ellipse(0.0, 0.13 + j[8], 0.011 * s, 0.07), csf)  # third ventricle
    q = head.q_in * head.hy
    _fissure(cv, fr, tissue, -q, -0.36 + j[9], 0.01)
    _fissure(cv, fr, tissue, 0.42 + j[10], q, 0.01)


def _paint_coronal_deep(cv: Canvas, fr: Frame, head: Head, tissue: dict[str, float]) -> None:
    j = head.jitter * 0.02
    s = head.vent
    gm, wm, csf = tissue["gm"], tissue["wm"], tissue["csf"]
    q_top = head.hc - head.q_in * head.hy
    _fissure(cv, fr, tissue, q_top, -0.14 + j[0], 0.01)
    for side in (-1, 1):
        grow = 1.0 + (head.vent_asym if side > 0 else 0.0)
        cv.paint_ellipse(fr, Ellipse(side * 0.15, 0.05 + j[1], 0.06, 0.1, side * 0.3), 0.8 * gm + 0.2 * wm, edge_px=3)
        cv.paint_ellipse(fr, Ellipse(side * 0.3, 0.08 + j[2], 0.05, 0.12, side * 0.1), 0.4 * gm + 0.6 * wm, edge_px=3)
        cv.paint_ellipse(fr, Ellipse(side * (0.075 + 0.02 * s), -0.05 + j[3], 0.028 * s * grow, 0.09 * s, -side * 0.55), csf)
        cv.paint_ellipse(fr, Ellipse(side * (0.47 + j[4]), 0.18 + j[5], 0.19, 0.012, -side * 0.35), csf, opacity=0.8)
        cv.paint_ellipse(fr, Ellipse(side * 0.36, 0.38 + j[6], 0.03 * s, 0.015, side * 0.4), csf)  # temporal horn
        cv.paint_ellipse(fr, Ellipse(side * 0.11, head.sella[1] + 0.01, 0.022, 0.022), tissue["vessel"])  # carotid
    cv.paint_ellipse(fr, Ellipse(0.0, 0.13 + j[7], 0.011 * s, 0.07), csf)  # third ventricle
    cv.paint_ellipse(fr, Ellipse(0.0, head.sella[1] - 0.09, 0.12, 0.05), csf)  # suprasellar cistern
    cv.paint_ellipse(fr, Ellipse(0.0, head.sella[1] - 0.1, 0.07, 0.013), 0.5 * (gm + wm))  # optic chiasm
    _paint_gland(cv, fr, head, tissue)


def _paint_sagittal_deep(
    cv: Canvas, fr: Frame, head: Head, tissue: dict[str, float], fields: dict[str, np.ndarray]
) -> None:
    j = head.jitter * 0.015
    s = head.vent
    gm, wm, csf = tissue["gm"], tissue["wm"], tissue["csf"]
    stem = 0.45 * gm + 0.55 * wm
    # cerebellum under the tentorium, with folia and a white-matter tree
    cb = Ellipse(0.47 + j[0], 0.37 + j[1], 0.27, 0.17, 0.2)
    cv.paint_ellipse(fr, Ellipse(cb.cx, cb.cy - 0.01, cb.ax + 0.025, cb.ay + 0.025, cb.angle), csf)
    _paint_cerebellum(cv, fr, cb, tissue, fields, (cb.cx - 0.15, cb.cy))
    # brainstem on the clivus, pons bulging forward, fourth ventricle behind; cord below
    cv.paint_ellipse(fr, Ellipse(0.15 + j[2], 0.4, 0.07, 0.42, -0.3), stem)
    cv.paint_ellipse(fr, Ellipse(0.1 + j[2], 0.3, 0.085, 0.11, -0.3), stem)
    cv.paint_ellipse(fr, Ellipse(0.255 + j[2], 0.33, 0.03, 0.05, -0.6), csf)
    cv.paint_ellipse(fr, Ellipse(0.05, 0.5, 0.035, 0.14, -0.35), tissue["marrow"], displaced=False)  # clivus
    # corpus callosum arc, lateral ventricle under it, thalamus, cingulate sulcus
    cc = Ellipse(j[3], 0.02 + j[4], 0.37, 0.19 + j[5])
    box = fr.box(cc.cx, cc.cy, cc.radius + 0.15)
    if box is not None:
        _, vd = fr.coords(box)
        upper = soft(np.float32(cc.cy + 0.05) - vd, fr.px)
        ring = fr.ellipse_q2(Ellipse(cc.cx, cc.cy, cc.ax + 0.11, cc.ay + 0.1), box)
        line = soft(np.float32(0.045) - np.abs(ring - np.float32(1.0)), 2 * fr.px / 0.3)
        cv.paint(line * upper, csf, box)  # cingulate sulcus
        cv.paint(fr.ellipse_alpha(cc, box) * upper, wm, box)
        inner = Ellipse(cc.cx + 0.01, cc.cy + 0.02, cc.ax - 0.06, cc.ay - 0.055)
        cv.paint(fr.ellipse_alpha(inner, box) * upper, csf, box)
        thal = Ellipse(cc.cx + 0.03, cc.cy + 0.1 - 0.03 * (s - 1.0), 0.24, 0.12)
        cv.paint(fr.ellipse_alpha(thal, box, edge_px=2), 0.8 * gm + 0.2 * wm, box)
    cv.paint_ellipse(fr, Ellipse(head.sella[0] + 0.01, head.sella[1] - 0.07, 0.08, 0.045), csf)  # cistern
    cv.paint_ellipse(fr, Ellipse(head.sella[0] - 0.01, head.sella[1] - 0.1, 0.06, 0.012, -0.25), stem)  # chiasm
    _paint_gland(cv, fr, head, tissue)


def _paint_cerebellum(
    cv: Canvas, fr: Frame, e: Ellipse, tissue: dict[str, float], fields: dict[str, np.ndarray],
    hub: tuple[float, float], clip: np.ndarray | None = None,
) -> tuple[np.ndarray, Box] | None:
    """Cerebellar hemisphere: grey cortex with fine folia around a white-matter tree."""
    hit = cv.paint_ellipse(fr, e, tissue["gm"], clip=clip)
    if hit is None:
        return None
    alpha, box = hit
    ud, vd = fr.coords(box)
    du = ud - np.float32(hub[0])
    dv = vd - np.float32(hub[1])
    r = np.sqrt(du * du + dv * dv)
    r *= np.float32(140.0)
    r += np.float32(2.0) * fields["tex"][box]
    folia = np.sin(r, out=r)
    q2 = fr.ellipse_q2(e, box)
    outer = soft(q2 - np.float32(0.3), 0.2)
    cv.paint(alpha * soft(folia - np.float32(0.8), 0.2) * outer * np.float32(0.55), tissue["csf"], box)
    tree = soft(np.float32(0.3) - q2, 0.2) * soft(np.float32(-0.2) - folia, 0.6)
    cv.paint(alpha * tree, tissue["wm"], box)
    return hit


def _paint_gland(cv: Canvas, fr: Frame, head: Head, tissue: dict[str, float]) -> None:
    """Normal pituitary gland in the sella (every class has one)."""
    su, sv = head.sella
    size = 0.028 + 0.006 * head.jitter[11]
    cv.paint_ellipse(fr, Ellipse(su, sv, size * 1.5, size), tissue["gland"])


def _paint_base_lobes(
    cv: Canvas, fr: Frame, head: Head, tissue: dict[str, float], fields: dict[str, np.ndarray], ic: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Skull-base axial level: temporal and basal frontal lobes, pons, cerebellum, sella."""
    j = head.jitter * 0.02
    gm, wm, csf = tissue["gm"], tissue["wm"], tissue["csf"]
    brain = np.zeros_like(cv.img)
    white = np.zeros_like(cv.img)
    lobes = (
        (Ellipse(-0.4 - j[0], 0.02 + j[1], 0.21, 0.34, 0.15), 11.0),
        (Ellipse(0.4 + j[0], 0.02 + j[1], 0.21, 0.34, -0.15), 11.0),
        (Ellipse(-0.09, -0.42 + j[2], 0.075, 0.12), 8.0),
        (Ellipse(0.09, -0.42 + j[2], 0.075, 0.12), 8.0),
    )
    for e, gyri in lobes:
        box = fr.box(e.cx, e.cy, e.radius)
        if box is None:
            continue
        q2 = fr.ellipse_q2(e, box)
        np.maximum(q2, 0.0, out=q2)
        depth = np.float32(1.0) - np.sqrt(q2)
        depth *= np.float32(min(e.ax, e.ay))
        ud, vd = fr.coords(box)
        theta = np.arctan2(vd - np.float32(e.cy), ud - np.float32(e.cx))
        sub_cv = cv.sub(box)
        b, wmask = _paint_cortex(sub_cv, (slice(None), slice(None)), head, tissue,
                                 {k: f[box] for k, f in fields.items()}, depth, theta, gyri, fr.px)
        b *= ic[box]
        np.maximum(brain[box], b, out=brain[box])
        np.maximum(white[box], wmask, out=white[box])
    for side in (-1, 1):
        cb = Ellipse(side * 0.25, 0.52 + j[3], 0.27, 0.26, -side * 0.2)
        hit = _paint_cerebellum(cv, fr, cb, tissue, fields, (0.0, 0.3), clip=ic)
        if hit is not None:
            np.maximum(brain[hit[1]], hit[0], out=brain[hit[1]])
    cv.paint_ellipse(fr, Ellipse(0.0, 0.56 + j[3], 0.09, 0.2), gm, clip=ic, edge_px=2)  # vermis
    pons = Ellipse(0.0, 0.14 + j[4], 0.15, 0.13)
    cv.paint_ellipse(fr, Ellipse(pons.cx, pons.cy, pons.ax + 0.03, pons.ay + 0.03), csf, clip=ic)
    hit = cv.paint_ellipse(fr, pons, 0.4 * gm + 0.6 * wm)
    if hit is not None:
        np.maximum(brain[hit[1]], hit[0], out=brain[hit[1]])
    cv.paint_ellipse(fr, Ellipse(0.0, 0.31 + j[4], 0.06, 0.03), csf)  # fourth ventricle
    _, sv = head.sella
    for side in (-1, 1):
        cv.paint_ellipse(fr, Ellipse(side * 0.1, sv, 0.024, 0.024), tissue["vessel"])
    _paint_gland(cv, fr, head, tissue)
    return brain, white


# -------------------------------------------------------------------------- face, neck
def _paint_face(cv: Canvas, fr: Frame, head: Head, tissue: dict[str, float], fields: dict[str, np.ndarray]) -> None:
    """Extracranial tissue: finely mottled fat/muscle with air spaces (orbits in axial)."""
    w = fr.px
    u, v = fr.u, fr.v
    mottled = fields["face"] * np.float32(0.18)
    mottled += np.float32(0.45)
    np.clip(mottled, 0.0, 1.0, out=mottled)
    mottled *= np.float32(tissue["fat"] - tissue["muscle"])
    mottled += np.float32(tissue["muscle"])
    air, mus, fat = tissue["air"], tissue["muscle"], tissue["fat"]
    if head.view == "coronal":
        lower = Ellipse(0.0, 0.62, 0.64, 0.56)
        sil = np.maximum(fr.ellipse_alpha(lower, fr.full, False, 2.0), soft(v - np.float32(0.9), w) * soft(np.float32(0.5) - np.abs(u), w))
        cv.paint(sil, mottled, fr.full)
        sv = head.sella[1]
        cv.paint_ellipse(fr, Ellipse(0.0, sv + 0.13, 0.13, 0.07), air, displaced=False)  # sphenoid sinus
        cv.paint_ellipse(fr, Ellipse(0.0, sv + 0.32, 0.1, 0.045), air, displaced=False, opacity=0.8)  # nasopharynx
        for side in (-1, 1):
            cv.paint_ellipse(fr, Ellipse(side * 0.3, sv + 0.42, 0.09, 0.15, side * 0.2), mus, displaced=False, edge_px=2)
            cv.paint_ellipse(fr, Ellipse(side * 0.5, sv + 0.4, 0.04, 0.2, side * 0.1), tissue["marrow"], displaced=False)
    elif head.view == "sagittal":
        face = Ellipse(-0.42, 0.46, 0.46, 0.46, 0.2)
        neck = Ellipse(0.2, 0.95, 0.42, 0.5)
        sil = np.maximum(fr.ellipse_alpha(face, fr.full, False, 2.0), fr.ellipse_alpha(neck, fr.full, False, 2.0))
        cv.paint(sil, mottled, fr.full)
        su, sv = head.sella
        cv.paint_ellipse(fr, Ellipse(su - 0.1, sv + 0.12, 0.1, 0.07, 0.3), air, displaced=False)  # sphenoid sinus
        cv.paint_ellipse(fr, Ellipse(su - 0.42, sv + 0.1, 0.22, 0.06, 0.35), air, displaced=False, opacity=0.9)
        for k in range(3):  # turbinates
            cv.paint_ellipse(fr, Ellipse(su - 0.45 + 0.03 * k, sv + 0.06 + 0.04 * k, 0.12, 0.012, 0.35), mus, displaced=False)
        cv.paint_ellipse(fr, Ellipse(su - 0.38, sv + 0.24, 0.2, 0.02, 0.15), tissue["marrow"], displaced=False)  # palate
        cv.paint_ellipse(fr, Ellipse(-0.3, 0.86, 0.2, 0.16, 0.3), mus, displaced=False, edge_px=2)  # tongue
        cv.paint_ellipse(fr, Ellipse(0.03, 0.85, 0.035, 0.3, -0.15), air, displaced=False, opacity=0.9)  # airway
        for k in range(4):  # vertebral bodies
            cv.paint_ellipse(fr, Ellipse(0.16 + 0.025 * k, 0.72 + 0.13 * k, 0.05, 0.05, -0.15), tissue["marrow"], displaced=False)
        cv.paint_ellipse(fr, Ellipse(0.3, 0.95, 0.045, 0.4, -0.15), 0.5 * (tissue["gm"] + tissue["wm"]), displaced=False)
    else:  # axial_base: orbits, nasal cavity, sphenoid sinus in front of the middle fossa
        r = 1.0 - head.scalp
        front = soft(np.float32(r * r) - head.q2(u, v), 2 * w)
        front *= soft(np.float32(head.anterior(u)) - np.float32(0.05) - v, w)
        cv.paint(front, mottled, fr.full)
        for side in (-1, 1):
            cv.paint_ellipse(fr, Ellipse(side * 0.3, -0.66, 0.2, 0.17), fat, displaced=False)
            cv.paint_ellipse(fr, Ellipse(side * 0.3, -0.7, 0.12, 0.11), tissue["fluid"], displaced=False)
            cv.paint_ellipse(fr, Ellipse(side * 0.22, -0.5, 0.02, 0.12, side * 0.5), mus, displaced=False)
        cv.paint_ellipse(fr, Ellipse(0.0, -0.7, 0.06, 0.2), air, displaced=False, opacity=0.85)
        cv.paint_ellipse(fr, Ellipse(0.0, -0.4, 0.12, 0.07), air, displaced=False)
