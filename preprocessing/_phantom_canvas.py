"""Drawing primitives for the synthetic MRI phantoms (private).

Everything is vectorised numpy/OpenCV on float32 arrays. Shapes are drawn in a *head
frame* ``(u, v)``: ``u`` runs left→right, ``v`` top→bottom (anterior/superior at the
top), the head is roughly the unit disc, and ``u == 0`` is the midline. A :class:`Frame`
maps the image grid into that frame (pose: scale, rotation, shift, flip) and optionally
through a *mass-effect* warp that pushes intracranial anatomy away from a lesion.

Small structures are evaluated only inside their pixel bounding box, which keeps a
256x256 phantom at a few milliseconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

Box = tuple[slice, slice]


@lru_cache(maxsize=8)
def image_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in ``[-1, 1]``.

    Returns:
        ``(X, Y)``, each ``(size, size)`` float32, read-only (cached).
    """
    axis = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0).astype(np.float32)
    xx, yy = np.meshgrid(axis, axis)
    xx.setflags(write=False)
    yy.setflags(write=False)
    return xx, yy


@lru_cache(maxsize=4)
def noise_bank(size: int) -> np.ndarray:
    """A fixed bank of standard-normal noise, ``(2, 2*size, 2*size)`` float32.

    Drawing fresh Gaussian noise costs more than the rest of a phantom, so each phantom
    takes two randomly offset and flipped windows of this bank instead. The bank is
    generated from a constant seed, so results stay deterministic per (seed, index) in
    every process.
    """
    bank = np.random.default_rng(20240917).standard_normal((2, 2 * size, 2 * size), dtype=np.float32)
    bank.setflags(write=False)
    return bank


def noise_pair(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Two independent-looking ``(size, size)`` standard-normal fields from the bank."""
    bank = noise_bank(size)
    out = []
    for k in range(2):
        oy, ox = rng.integers(0, size, size=2)
        win = bank[k, oy : oy + size, ox : ox + size]
        flip = int(rng.integers(0, 4))
        if flip & 1:
            win = win[::-1]
        if flip & 2:
            win = win[:, ::-1]
        out.append(win)
    return out[0], out[1]


def smooth_field(rng: np.random.Generator, cells: int, size: int) -> np.ndarray:
    """A smooth random field with unit-ish standard deviation.

    White noise on a ``cells x cells`` grid, upsampled with bicubic then bilinear
    interpolation (two steps: much faster than one big bicubic upsampling).

    Returns:
        ``(size, size)`` float32.
    """
    cells = max(2, int(cells))
    g = rng.standard_normal((cells, cells), dtype=np.float32)
    mid = min(size, max(4 * cells, 32))
    f = cv2.resize(g, (mid, mid), interpolation=cv2.INTER_CUBIC)
    if mid != size:
        f = cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR)
    return f * np.float32(1.35)


def soft(d: np.ndarray, width: float) -> np.ndarray:
    """Anti-aliased indicator of ``d > 0``: a linear ramp of ``width`` around 0.

    Returns:
        A new float32 array of ``d``'s shape, in ``[0, 1]``.
    """
    out = d * np.float32(1.0 / width)
    out += np.float32(0.5)
    return np.clip(out, 0.0, 1.0, out=out)


@dataclass
class Ellipse:
    """An ellipse in the head frame (centre, semi-axes, rotation in radians)."""

    cx: float
    cy: float
    ax: float
    ay: float
    angle: float = 0.0

    @property
    def radius(self) -> float:
        return max(self.ax, self.ay)

    def mirrored(self) -> "Ellipse":
        return Ellipse(-self.cx, self.cy, self.ax, self.ay, -self.angle)


class Frame:
    """Maps the image grid into the head frame.

    Args:
        size: image side in pixels.
        scale: head-frame unit in image half-widths (1.0: the unit disc fills the image).
        angle: in-plane rotation in radians.
        shift: ``(tx, ty)`` translation in normalised image units.
        flip: mirror left/right.

    Attributes:
        u, v: ``(size, size)`` head-frame coordinates of every pixel (undisplaced).
        ud, vd: the same after the mass-effect warp (equal to ``u``, ``v`` without it).
        px: the size of one pixel in head-frame units.
    """

    def __init__(self, size: int, scale: float, angle: float, shift: tuple[float, float], flip: bool):
        self.size = size
        self.scale = scale
        self.px = 2.0 / (size * scale)
        c, s = math.cos(angle), math.sin(angle)
        fu = -1.0 if flip else 1.0
        # forward (head -> normalised image): X = scale * R(angle) @ diag(fu, 1) @ (u, v) + t
        self._fwd = np.array([[scale * c * fu, -scale * s], [scale * s * fu, scale * c]])
        self._t = np.array(shift, dtype=np.float64)
        inv = np.linalg.inv(self._fwd)
        xx, yy = image_grid(size)
        X = xx - np.float32(shift[0])
        Y = yy - np.float32(shift[1])
        self.u = (np.float32(inv[0, 0]) * X + np.float32(inv[0, 1]) * Y).astype(np.float32)
        self.v = (np.float32(inv[1, 0]) * X + np.float32(inv[1, 1]) * Y).astype(np.float32)
        self.ud, self.vd = self.u, self.v
        self._warp: tuple[float, float, float, float] | None = None
        self._full: Box = (slice(0, size), slice(0, size))

    # ------------------------------------------------------------------ geometry
    def head_to_pixel(self, size: int | None = None) -> np.ndarray:
        """``(2, 3)`` affine mapping head ``(u, v, 1)`` to pixel ``(col, row)`` of an
        image of ``size`` pixels covering the same field of view (default: this grid)."""
        half = (size or self.size) / 2.0
        m = np.zeros((2, 3))
        m[:, :2] = self._fwd * half
        m[:, 2] = (self._t + 1.0) * half - 0.5
        return m

    def warp(self, cx: float, cy: float, strength: float, sigma: float) -> None:
        """Push the intracranial anatomy away from ``(cx, cy)`` (mass effect).

        Pixel ``p`` shows the anatomy found at ``c + (p - c) * (1 - k * exp(-|p-c|^2 / s^2))``,
        a local magnification around ``c`` that displaces structures outwards by at most
        about ``0.43 * k * s`` head units.
        """
        if strength <= 0:
            return
        du = self.u - np.float32(cx)
        dv = self.v - np.float32(cy)
        g = np.exp((du * du + dv * dv) * np.float32(-1.0 / (sigma * sigma)))
        f = np.float32(1.0) - np.float32(strength) * g
        self.ud = np.float32(cx) + du * f
        self.vd = np.float32(cy) + dv * f
        self._warp = (cx, cy, strength, sigma)

    def box(self, cx: float, cy: float, radius: float, margin_px: int = 2) -> Box | None:
        """Pixel bounding box of a head-frame disc (``None`` when it misses the image)."""
        p = self._fwd @ np.array([cx, cy]) + self._t
        col = (p[0] + 1.0) * self.size / 2.0 - 0.5
        row = (p[1] + 1.0) * self.size / 2.0 - 0.5
        r = radius / self.px + margin_px
        if self._warp is not None:
            r += 0.45 * self._warp[2] * self._warp[3] / self.px + 1
        c0, c1 = max(0, int(col - r)), min(self.size, int(math.ceil(col + r)) + 1)
        r0, r1 = max(0, int(row - r)), min(self.size, int(math.ceil(row + r)) + 1)
        if c0 >= c1 or r0 >= r1:
            return None
        return (slice(r0, r1), slice(c0, c1))

    @property
    def full(self) -> Box:
        return self._full

    def coords(self, box: Box, displaced: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Head-frame coordinates inside ``box``."""
        if displaced:
            return self.ud[box], self.vd[box]
        return self.u[box], self.v[box]

    def ellipse_q2(self, e: Ellipse, box: Box, displaced: bool = True) -> np.ndarray:
        """Squared normalised radius of ``e`` (``< 1`` inside) over ``box``."""
        u, v = self.coords(box, displaced)
        du = u - np.float32(e.cx)
        dv = v - np.float32(e.cy)
        if e.angle:
            c, s = np.float32(math.cos(e.angle)), np.float32(math.sin(e.angle))
            du, dv = c * du + s * dv, c * dv - s * du
        return du * du * np.float32(1.0 / (e.ax * e.ax)) + dv * dv * np.float32(1.0 / (e.ay * e.ay))

    def ellipse_alpha(self, e: Ellipse, box: Box, displaced: bool = True, edge_px: float = 1.0) -> np.ndarray:
        """Anti-aliased membership of ``e`` over ``box``, float32 in ``[0, 1]``."""
        q2 = self.ellipse_q2(e, box, displaced)
        # near the rim, (1 - q2) * a / 2 approximates the distance to it in head units
        a = min(e.ax, e.ay)
        return soft(np.float32(1.0) - q2, 2.0 * edge_px * self.px / a)


class Canvas:
    """A float32 image painted back-to-front (each layer blends over what is below)."""

    def __init__(self, size: int):
        self.img = np.zeros((size, size), dtype=np.float32)

    def sub(self, box: Box) -> "Canvas":
        """A canvas drawing into ``self.img[box]`` (a view, not a copy)."""
        child = Canvas.__new__(Canvas)
        child.img = self.img[box]
        return child

    def paint(self, alpha: np.ndarray, value: float | np.ndarray, box: Box | None = None) -> None:
        """``img[box] <- img[box] + alpha * (value - img[box])``."""
        sub = self.img if box is None else self.img[box]
        delta = np.float32(value) - sub if np.isscalar(value) else value - sub
        delta *= alpha
        sub += delta

    def paint_ellipse(
        self, frame: Frame, e: Ellipse, value: float, opacity: float = 1.0, displaced: bool = True,
        edge_px: float = 1.0, clip: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Box] | None:
        """Paint one ellipse; returns ``(alpha, box)`` (``None`` if off-image).

        ``clip``: optional full-image ``(H, W)`` mask multiplied into the alpha.
        """
        box = frame.box(e.cx, e.cy, e.radius)
        if box is None:
            return None
        alpha = frame.ellipse_alpha(e, box, displaced, edge_px)
        if clip is not None:
            alpha *= clip[box]
        if opacity != 1.0:
            alpha *= np.float32(opacity)
        self.paint(alpha, value, box)
        return alpha, box
