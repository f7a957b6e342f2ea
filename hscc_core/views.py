"""Random views of image batches for distillation: what teacher and student both see.

Function matching (Beyer et al., CVPR 2022, "Knowledge distillation: A good teacher is
patient and consistent") teaches a student the teacher's *function*, not its answers on
a fixed set of images: every step draws one aggressively augmented view of a batch and
feeds that same view to both models. This module draws such views for any image
classifier, on tensors, a whole batch at a time (no per-image Python work on the hot path):

* :func:`geometric_view`: flips, rotation, zoom and translation in one resampling;
* :func:`acquisition_view`: what changes between two copies of the same scan —
  resampling (upscaling then nearest-neighbour downsampling leaves the aliasing of an
  image decimated from a higher resolution), unsharp mask or blur, an intensity gain and
  gamma, a little noise;
* :func:`mix_view`: mixup or CutMix between images of the batch (the teacher's answer on
  a blend is exactly the kind of uncertain output that function matching needs);
* :func:`draw_views`: all of them, as :class:`ViewConfig` says.

Batches are in model units ``(x01 - mean) / std``; the pixel operations work on the
``[0, 1]`` image and the result is returned in model units. Randomness comes only from the
``torch.Generator`` given, so a view is reproducible from its seed.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .errors import DistillationError

__all__ = ["ViewConfig", "acquisition_view", "draw_views", "gaussian_blur", "geometric_view", "mix_view"]


@dataclass(frozen=True)
class ViewConfig:
    """How strong each kind of view is (0 or an empty range switches a part off).

    Attributes:
        flip: probability of a left/right flip.
        rotate: rotation up to this many degrees either way.
        zoom: ``(low, high)`` scale factor (> 1 zooms in).
        shift: translation up to this fraction of the size.
        resample: probability of a resampling view; ``resample_factor`` bounds the
            upscaling factor before the nearest-neighbour decimation back to size.
        resample_factor: ``(low, high)`` upscaling factors.
        sharpen: probability of an unsharp mask / blur; ``sharpen_amount`` its amount
            (negative blurs), one blur width (0.5–1.2 px) per batch.
        sharpen_amount: ``(low, high)`` unsharp-mask amounts.
        gain: ``(low, high)`` intensity gain (clipped to ``[0, 1]`` afterwards), applied
            with probability ``intensity``.
        gamma: ``(low, high)`` gamma, applied with probability ``intensity``.
        intensity: probability of the gain and gamma change.
        noise: Gaussian noise up to this sigma (on ``[0, 1]``) with probability 0.25.
        mix: probability that a batch is mixed (mixup or CutMix, half each).
        mix_alpha: Beta(alpha, alpha) of the mixing weight.
    """

    flip: float = 0.5
    rotate: float = 12.0
    zoom: tuple[float, float] = (0.85, 1.2)
    shift: float = 0.1
    resample: float = 0.5
    resample_factor: tuple[float, float] = (1.2, 2.4)
    sharpen: float = 0.5
    sharpen_amount: tuple[float, float] = (-0.6, 1.5)
    gain: tuple[float, float] = (0.8, 1.3)
    gamma: tuple[float, float] = (0.7, 1.4)
    intensity: float = 0.6
    noise: float = 0.03
    mix: float = 0.5
    mix_alpha: float = 1.0

    def __post_init__(self) -> None:
        for name in ("flip", "resample", "sharpen", "intensity", "mix"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise DistillationError(f"{name} is a probability in [0, 1], got {value}")
        for name in ("zoom", "resample_factor", "sharpen_amount", "gain", "gamma"):
            low, high = getattr(self, name)
            if low > high:
                raise DistillationError(f"{name} must be (low, high) with low <= high, got {(low, high)}")
        if self.zoom[0] <= 0 or self.gain[0] < 0 or self.gamma[0] <= 0 or self.resample_factor[0] < 1:
            raise DistillationError("zoom and gamma must be > 0, gain >= 0 and resample factors >= 1")
        if self.mix_alpha <= 0:
            raise DistillationError(f"mix_alpha must be > 0, got {self.mix_alpha}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _chance(n: int, p: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) < p


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``(N, C, H, W)``: a 5-tap separable kernel as weighted sums of shifted
    slices (edge padding), 5x faster on CPU than a grouped convolution of one channel."""
    taps = torch.arange(-2, 3, dtype=torch.float32)
    k = torch.exp(-taps**2 / (2 * sigma**2))
    k = (k / k.sum()).tolist()
    h, w = x.shape[-2:]
    p = F.pad(x, (2, 2, 2, 2), mode="replicate")
    rows = sum(k[i] * p[..., i:i + h, :] for i in range(5))
    return sum(k[i] * rows[..., :, i:i + w] for i in range(5))


def geometric_view(x01: torch.Tensor, generator: torch.Generator, config: ViewConfig) -> torch.Tensor:
    """Flip, rotate, zoom and translate each image of ``x01`` ``(N, C, H, W)`` in ``[0, 1]``
    with one bilinear resampling (black outside the image). Up/down flips are never made."""
    n = x01.shape[0]
    angle = _uniform(n, -config.rotate, config.rotate, generator) * (math.pi / 180)
    scale = 1.0 / _uniform(n, config.zoom[0], config.zoom[1], generator)  # a smaller sampled area zooms in
    flip = torch.where(_chance(n, config.flip, generator), -1.0, 1.0)
    tx, ty = (_uniform(n, -2 * config.shift, 2 * config.shift, generator) for _ in range(2))  # grid spans 2
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x01.device), list(x01.shape), align_corners=False)
    return F.grid_sample(x01, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp_(0, 1)


def _resampled(x01: torch.Tensor, factor: float) -> torch.Tensor:
    """Upscale by ``factor`` (bicubic), then decimate back to size by nearest neighbour: the
    aliasing of an image that a nearest-neighbour resize took down from a higher resolution."""
    h, w = x01.shape[-2:]
    big = F.interpolate(x01, size=(round(h * factor), round(w * factor)), mode="bicubic", align_corners=False)
    return F.interpolate(big, size=(h, w), mode="nearest").clamp_(0, 1)


def acquisition_view(x01: torch.Tensor, generator: torch.Generator, config: ViewConfig) -> torch.Tensor:
    """Change ``x01`` ``(N, C, H, W)`` in ``[0, 1]`` the way two copies of one image differ:
    resampling (one factor per batch, applied to a random subset), unsharp mask or blur,
    intensity gain and gamma, noise. Returns a new tensor in ``[0, 1]``."""
    n = x01.shape[0]
    out = x01
    chosen = torch.nonzero(_chance(n, config.resample, generator)).flatten().to(x01.device)
    factor = float(_uniform(1, *config.resample_factor, generator))
    if len(chosen):  # only the chosen images: the upscaled copies are the costly part
        out = out.clone()
        out[chosen] = _resampled(out[chosen], factor)
    amount = torch.where(_chance(n, config.sharpen, generator), _uniform(n, *config.sharpen_amount, generator), 0.0)
    sigma_px = float(_uniform(1, 0.5, 1.2, generator))
    sharp = torch.nonzero(amount).flatten().to(x01.device)
    if len(sharp):
        a = amount.to(x01.device)[sharp].view(-1, 1, 1, 1)
        picked = out[sharp]
        out = out.clone()
        out[sharp] = (picked + a * (picked - gaussian_blur(picked, sigma_px))).clamp_(0, 1)
    change = _chance(n, config.intensity, generator)
    gain = torch.where(change, _uniform(n, *config.gain, generator), 1.0).to(x01.device).view(n, 1, 1, 1)
    gamma = torch.where(change, _uniform(n, *config.gamma, generator), 1.0).to(x01.device).view(n, 1, 1, 1)
    out = (out * gain).clamp_(0, 1).pow(gamma)
    sigma = torch.where(_chance(n, 0.25, generator), _uniform(n, 0.0, config.noise, generator), 0.0)
    if bool((sigma > 0).any()):
        field = torch.randn(out.shape, generator=generator).to(x01.device)
        out = out + field * sigma.to(x01.device).view(n, 1, 1, 1)
    return out.clamp_(0, 1)


def mix_view(x: torch.Tensor, generator: torch.Generator, config: ViewConfig) -> torch.Tensor:
    """With probability ``config.mix``, blend the batch with a shuffled copy of itself:
    mixup (``λ x + (1 - λ) x'``) or CutMix (a box of ``x'`` pasted into ``x``), one of the
    two at random, ``λ ~ Beta(alpha, alpha)``. No labels are mixed: the teacher labels
    the blend."""
    n = x.shape[0]
    if n < 2 or float(torch.rand(1, generator=generator)) >= config.mix:
        return x
    perm = torch.randperm(n, generator=generator).to(x.device)
    lam = float(_beta(config.mix_alpha, generator))
    other = x.index_select(0, perm)
    if float(torch.rand(1, generator=generator)) < 0.5:
        return lam * x + (1 - lam) * other
    h, w = x.shape[-2:]
    cut_h, cut_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(torch.randint(h, (1,), generator=generator)), int(torch.randint(w, (1,), generator=generator))
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    out = x.clone()
    out[..., y0:y1, x0:x1] = other[..., y0:y1, x0:x1]
    return out


def _beta(alpha: float, generator: torch.Generator) -> torch.Tensor:
    """One draw of Beta(alpha, alpha) from ``generator`` (``torch.distributions`` takes no
    generator, so it is built from two Gamma draws)."""
    g = torch._standard_gamma(torch.full((2,), float(alpha)), generator=generator)
    return g[0] / g.sum()


def draw_views(x: torch.Tensor, generator: torch.Generator, config: ViewConfig,
               mean: Sequence[float] = (0.0,), std: Sequence[float] = (1.0,)) -> torch.Tensor:
    """One random view of each image of the batch ``x`` ``(N, C, H, W)`` in model units:
    geometric, then acquisition changes on the ``[0, 1]`` image, then mixing. Returns a
    float32 batch in model units, on ``x``'s device."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).reshape(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).reshape(1, -1, 1, 1)
    x01 = (x.float() * s + m).clamp_(0, 1)
    channels = x01.shape[1]
    # Grey images given to an RGB model (three equal channels): draw the view on one channel
    # and repeat it, a third of the work, and the channels stay equal as in real inputs.
    grey = channels > 1 and bool((x01 == x01[:, :1]).all())
    view = acquisition_view(geometric_view(x01[:, :1] if grey else x01, generator, config), generator, config)
    if grey:
        view = view.expand(-1, channels, -1, -1)
    return mix_view((view - m) / s, generator, config)
