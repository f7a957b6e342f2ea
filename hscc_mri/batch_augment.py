"""Label-preserving augmentation of whole training batches, on tensors.

Training on 2 CPU cores is compute-bound: augmenting each scan in DataLoader worker
processes (:mod:`preprocessing.augment`) takes cores the model needs (measured: 1.74 s
per AlexNet batch of 64 with two workers against 1.43 s without). The scans are therefore
decoded and windowed once, kept in memory, and augmented here, a batch at a time:

* :func:`shift_augment`: left/right flips and translations (phantoms, the original recipe);
* :func:`affine_augment`: flips, rotation, zoom and translation in one resampling, then
  gamma, contrast and brightness jitter and a little noise. The intensity part is what
  teaches a model trained on the resized, re-encoded ``Training/`` copy of the real data
  set to read the original ``Testing/`` files (the data set's README measures the shift).

Both take batches in model units (``(x01 - mean) / std``) and return them in model units.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from hscc_core.views import gaussian_blur

from .errors import SettingsError

__all__ = ["AFFINE_DESCRIPTION", "BATCH_AUGMENTATIONS", "affine_augment", "augment_batch", "shift_augment"]

#: What :func:`affine_augment` does with its defaults, in words (for reports).
AFFINE_DESCRIPTION = ("flips, rotation ±10°, zoom 0.9–1.12, shift ±8%, then on the [0, 1] slice an unsharp mask or "
                      "blur (amount −0.6…1.5), gamma 0.6–1.5, contrast ±15%, brightness ±0.08 and noise")

#: Names of the batch augmentations (``TrainConfig.batch_augment``).
BATCH_AUGMENTATIONS: tuple[str, ...] = ("none", "shift", "affine")


def shift_augment(x: torch.Tensor, generator: torch.Generator, max_shift: float = 0.08) -> torch.Tensor:
    """Random left/right flips and translations by up to ``max_shift`` of the size (zero
    fill) of a batch ``(N, C, H, W)``; values are only moved, never altered."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    dy = torch.randint(-int(max_shift * h), int(max_shift * h) + 1, (n,), generator=generator)
    dx = torch.randint(-int(max_shift * w), int(max_shift * w) + 1, (n,), generator=generator)
    out = torch.zeros_like(x)
    for i in range(n):
        ys, yd = (slice(0, h - dy[i]), slice(dy[i], h)) if dy[i] >= 0 else (slice(-dy[i], h), slice(0, h + dy[i]))
        xs, xd = (slice(0, w - dx[i]), slice(dx[i], w)) if dx[i] >= 0 else (slice(-dx[i], w), slice(0, w + dx[i]))
        out[i, :, yd, xd] = x[i, :, ys, xs]
    return out


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def affine_augment(x: torch.Tensor, generator: torch.Generator, mean: Sequence[float] = (0.0,),
                   std: Sequence[float] = (1.0,), rotate: float = 10.0, zoom: tuple[float, float] = (0.9, 1.12),
                   shift: float = 0.08, gamma: tuple[float, float] = (0.6, 1.5),
                   contrast: float = 0.15, brightness: float = 0.08, noise: float = 0.03,
                   sharpen: tuple[float, float] = (-0.6, 1.5)) -> torch.Tensor:
    """Geometric and intensity augmentation of a batch ``(N, C, H, W)`` in model units.

    Per image: a left/right flip (p 0.5), rotation by up to ``rotate`` degrees, zoom in
    ``zoom`` and translation by up to ``shift`` of the size (one bilinear resampling,
    black outside the scan); then, on the ``[0, 1]`` slice, an unsharp mask
    ``x + a (x - blur(x))`` with ``a`` in ``sharpen`` (p 0.5; ``a < 0`` blurs; one blur width
    per batch, 0.5-1.2 px), gamma in ``gamma`` (p 0.5), contrast ``1 ± contrast`` and
    brightness ``± brightness`` (p 0.5), Gaussian noise up to ``noise`` (p 0.25), clipped
    back to ``[0, 1]``. Up/down flips are not anatomical and are never made.

    Why sharpening: ``Training/`` is a resized, re-encoded copy and softer than the original
    ``Testing/`` files. Measured on the validation split (``scripts/alexnet_shift_probe.py``),
    an AlexNet trained without it lost 5.6 points of accuracy to a mild unsharp mask and 21
    to a strong one, and 3 to gamma 0.7 (hence the wider gamma range).

    Args:
        x: the batch, ``(x01 - mean) / std`` with the model's per-channel ``mean``/``std``.
        generator: the source of randomness (seeded: the same batch, the same result).

    Returns:
        A new batch of the same shape and dtype, in model units.
    """
    n = x.shape[0]
    dtype = x.dtype
    m = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
    x01 = x.float() * s + m
    angle = _uniform(n, -rotate, rotate, generator) * (math.pi / 180)
    scale = 1.0 / _uniform(n, zoom[0], zoom[1], generator)  # the grid samples a smaller area to zoom in
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    tx, ty = (_uniform(n, -2 * shift, 2 * shift, generator) for _ in range(2))  # grid units span 2
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x01.shape), align_corners=False)
    out = F.grid_sample(x01, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp_(0, 1)
    amount = torch.where(torch.rand(n, generator=generator) < 0.5, _uniform(n, sharpen[0], sharpen[1], generator), 0.0)
    sigma_px = float(_uniform(1, 0.5, 1.2, generator))
    out = (out + amount.reshape(n, 1, 1, 1) * (out - gaussian_blur(out, sigma_px))).clamp_(0, 1)
    g = torch.where(torch.rand(n, generator=generator) < 0.5, _uniform(n, gamma[0], gamma[1], generator), 1.0)
    out = out.pow(g.reshape(n, 1, 1, 1))
    jitter = torch.rand(n, generator=generator) < 0.5
    a = torch.where(jitter, _uniform(n, 1 - contrast, 1 + contrast, generator), 1.0).reshape(n, 1, 1, 1)
    b = torch.where(jitter, _uniform(n, -brightness, brightness, generator), 0.0).reshape(n, 1, 1, 1)
    out = out * a + b
    sigma = torch.where(torch.rand(n, generator=generator) < 0.25, _uniform(n, 0.0, noise, generator), 0.0)
    noisy = torch.nonzero(sigma).flatten()
    if len(noisy):  # noise for the chosen images only: a full-batch field costs a third of this function
        out[noisy] += torch.randn(out[noisy].shape, generator=generator) * sigma[noisy].reshape(-1, 1, 1, 1)
    out = out.clamp_(0, 1)
    return ((out - m) / s).to(dtype)


def augment_batch(name: str, x: torch.Tensor, generator: torch.Generator, mean: Sequence[float] = (0.0,),
                  std: Sequence[float] = (1.0,)) -> torch.Tensor:
    """Apply the batch augmentation ``name`` (one of :data:`BATCH_AUGMENTATIONS`)."""
    if name == "none":
        return x
    if name == "shift":
        return shift_augment(x, generator)
    if name == "affine":
        return affine_augment(x, generator, mean, std)
    raise SettingsError(f"unknown batch augmentation {name!r}; choose from {', '.join(BATCH_AUGMENTATIONS)}")
