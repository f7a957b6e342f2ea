"""The :class:`Scan` container, shared size limits, pixel checks and the default slice.

A :class:`Scan` is what :func:`preprocessing.load_scan` returns for every format:
float32 pixels as a single 2-D image ``(H, W)`` or a volume ``(Z, H, W)``, the slice
shown by default, basic geometry and a few non-identifying tags.

Display convention (all formats): ``data[..., r, c]`` is drawn with row ``r`` going
top to bottom and column ``c`` going left to right on screen, exactly as stored for
DICOM and PNG/JPEG. NIfTI volumes are reoriented so that every axial slice follows the
radiological convention (patient's right on the viewer's left, anterior at the top);
see :mod:`preprocessing.readers.nifti`.

The limits below are shared by all readers and are checked against header values
*before* any pixel data is decoded, so a file whose header claims an absurd size (a
"decompression bomb") is rejected without allocating memory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .errors import ScanError, quote_name

__all__ = [
    "MAX_ABS_VALUE",
    "MAX_SIDE",
    "MAX_VOXELS",
    "MIN_SIDE",
    "Scan",
    "check_dimensions",
    "check_pixels",
    "default_slice",
    "rgb_to_grey",
]

#: Largest accepted number of rows, columns or slices. Clinical MRI is at most
#: 1024 per side; 4096 leaves room for scanned films and large secondary captures.
MAX_SIDE: int = 4096
#: Smallest accepted number of rows or columns of an image.
MIN_SIDE: int = 8
#: Largest accepted number of voxels (samples) in one file: 2**25, i.e. 128 MiB as
#: float32 (512 x 512 x 128; brain MRI volumes are mostly under 20 million voxels).
#: Checked on the header before decoding. Reading keeps a few copies of the volume at
#: once (stored values, float32, canonical orientation), so this bounds a read's memory
#: to about 600 MiB (issue 26; ``scripts/make_hostile_inputs.py`` measures it).
MAX_VOXELS: int = 32 * 1024 * 1024
#: Largest accepted pixel magnitude. Scanner values (MRI signal, CT units, parametric
#: maps) stay far below; values near float32's limit (3.4e38) come from damaged files and
#: would overflow the arithmetic of every later step.
MAX_ABS_VALUE: float = 1e15


@dataclass
class Scan:
    """Pixels and basic geometry of one scan file.

    Attributes:
        data: float32 pixels in native units (after DICOM rescale/VOI; not normalised),
            ``(H, W)`` for a 2-D image or ``(Z, H, W)`` for a volume. ``Z`` is the
            axial (inferior to superior) axis of a NIfTI volume after reorientation to
            RAS, or the frame axis of a multi-frame DICOM.
        slice_index: Slice shown by default for volumes (``0 <= slice_index < Z``);
            ``None`` for 2-D images. Filled by :func:`default_slice` when left ``None``
            for a volume.
        spacing: Pixel/voxel size in mm, one value per axis of ``data`` in the same
            order (``(dz, dy, dx)`` or ``(dy, dx)``); 1.0 where unknown.
        orientation: Coordinate convention: ``"RAS"`` for NIfTI (reoriented to RAS+
            and shown radiologically), ``"LPS/patient"`` for DICOM with an Image
            Orientation (Patient) (pixels kept as stored; the DICOM header relates them
            to the LPS patient frame), ``"unknown"`` otherwise (PNG/JPEG).
        source_format: ``"dicom"``, ``"nifti"``, ``"png"`` or ``"jpeg"``.
        tags: A few non-identifying facts as strings (e.g. ``Modality``, ``Rows``,
            ``TransferSyntax``, ``original_dtype``, ``converted_from``). Never patient
            names, IDs, dates, institutions or UIDs.
        name: Base name of the file, used in messages.
        notes: Plain-language remarks about how the scan was put together, for the
            user (e.g. which files of a DICOM series were left out and why, or that
            its pixels are in a coding whose damage cannot be detected); usually
            empty for a single file.
    """

    data: np.ndarray
    slice_index: int | None = None
    spacing: tuple[float, ...] = ()
    orientation: str = "unknown"
    source_format: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    name: str = ""
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, dtype=np.float32)
        if self.data.ndim not in (2, 3):
            raise ValueError(f"Scan data must be (H, W) or (Z, H, W), got {self.data.shape}")
        if not self.spacing:
            self.spacing = (1.0,) * self.data.ndim
        self.spacing = tuple(float(s) for s in self.spacing)
        if len(self.spacing) != self.data.ndim:
            raise ValueError(
                f"spacing {self.spacing} does not match data shape {self.data.shape}"
            )
        if self.data.ndim == 2:
            if self.slice_index not in (None, 0):
                raise ValueError("a 2-D Scan has no slice index")
            self.slice_index = None
        elif self.slice_index is None:
            self.slice_index = default_slice(self.data)
        elif not 0 <= self.slice_index < self.data.shape[0]:
            raise ValueError(
                f"slice_index {self.slice_index} outside 0..{self.data.shape[0] - 1}"
            )

    @property
    def is_volume(self) -> bool:
        """Whether ``data`` is a ``(Z, H, W)`` volume."""
        return self.data.ndim == 3

    @property
    def num_slices(self) -> int:
        """Number of slices: ``Z`` for a volume, 1 for a 2-D image."""
        return int(self.data.shape[0]) if self.is_volume else 1

    def image(self, index: int | None = None) -> np.ndarray:
        """Return one 2-D slice.

        Args:
            index: Slice number ``0 <= index < num_slices``; ``None`` for the default
                slice (a 2-D image is its own single slice 0).

        Returns:
            ``(H, W)`` float32 array (a view into ``data``; copy before modifying).

        Raises:
            ScanError: If ``index`` is not a valid slice number.
        """
        if index is None:
            index = self.slice_index if self.is_volume else 0
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ScanError(f"Slice number {index!r} is not a whole number.")
        index = int(index)
        if not 0 <= index < self.num_slices:
            what = quote_name(self.name) if self.name else "This scan"
            if self.is_volume:
                raise ScanError(
                    f"{what} has {self.num_slices} slices, numbered 0 to "
                    f"{self.num_slices - 1}; there is no slice {index}."
                )
            raise ScanError(
                f"{what} is a single 2-D image (slice 0); there is no slice {index}."
            )
        return self.data[index] if self.is_volume else self.data


def check_dimensions(
    shape: Sequence[int], name: str, *, samples: int = 1, check_min_side: bool = True
) -> None:
    """Reject absurd or empty image sizes, from header values, before decoding.

    Args:
        shape: Image size as ``(H, W)`` or ``(Z, H, W)`` (header values).
        name: Base name of the file, for the message.
        samples: Values per pixel (3 for colour), counted towards :data:`MAX_VOXELS`.
        check_min_side: Also require the last two sides to be at least
            :data:`MIN_SIDE`. Off when the stored axis order is not yet the display
            order (NIfTI before reorientation); :func:`check_pixels` checks it later.

    Raises:
        ScanError: If a side is below :data:`MIN_SIDE` or above :data:`MAX_SIDE`, or the
            total exceeds :data:`MAX_VOXELS`.
    """
    dims = [int(d) for d in shape]
    size = " × ".join(str(d) for d in dims)
    if any(d <= 0 for d in dims):
        raise ScanError(
            f"{quote_name(name)} has no pixels (its size is {size}); "
            "the file is empty or damaged."
        )
    if any(d > MAX_SIDE for d in dims) or math.prod(dims) * max(samples, 1) > MAX_VOXELS:
        raise ScanError(
            f"{quote_name(name)} claims to be {size} pixels, far larger than any MRI "
            f"(at most {MAX_SIDE} per side and {MAX_VOXELS:,} in total are accepted). "
            "The file is probably damaged; it was not opened."
        )
    if check_min_side and any(d < MIN_SIDE for d in dims[-2:]):
        raise ScanError(
            f"{quote_name(name)} is only {size} pixels, too small to be a scan "
            f"(at least {MIN_SIDE} × {MIN_SIDE} is needed)."
        )


def check_pixels(data: np.ndarray, name: str) -> None:
    """Checks common to every format on decoded pixels.

    Args:
        data: ``(H, W)`` or ``(Z, H, W)`` pixels.
        name: Base name of the file, for the message.

    Raises:
        ScanError: Wrong number of dimensions, absurd size, NaN or infinite values,
            values beyond :data:`MAX_ABS_VALUE`, or an image whose pixels all have the
            same value.
    """
    if data.ndim not in (2, 3):
        raise ScanError(
            f"{quote_name(name)} has {data.ndim} dimensions; a 2-D image or a 3-D "
            "volume is expected."
        )
    check_dimensions(data.shape, name)
    finite = np.isfinite(data)
    if not finite.all():
        n_nan = int(np.isnan(data).sum())
        n_inf = int(data.size - finite.sum()) - n_nan
        parts = []
        if n_nan:
            parts.append(f"{n_nan:,} not-a-number (NaN)")
        if n_inf:
            parts.append(f"{n_inf:,} infinite")
        raise ScanError(
            f"{quote_name(name)} contains invalid pixel values ({' and '.join(parts)}); "
            "the file is damaged or was converted incorrectly."
        )
    lo, hi = float(data.min()), float(data.max())
    if max(-lo, hi) > MAX_ABS_VALUE:
        raise ScanError(
            f"{quote_name(name)} contains pixel values far outside any scanner's range "
            f"(from {lo:.3g} to {hi:.3g}); the file is damaged or was converted "
            "incorrectly."
        )
    if lo == hi:
        raise ScanError(
            f"{quote_name(name)} is blank: the image is constant (every pixel has the "
            f"value {lo:g}), so there is nothing to classify."
        )


def _otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a 1-D array of finite values (maximal between-class variance)."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    if lo == hi or not math.isfinite(hi - lo):
        return lo
    hist, edges = np.histogram(values, bins=bins, range=(lo, hi))
    hist = hist.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mean0 = m0 / np.maximum(w0, 1)
    mean1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mean0 - mean1) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def default_slice(volume: np.ndarray) -> int:
    """Pick the slice with the most foreground signal, not blindly the middle one.

    The foreground threshold is Otsu's threshold of the whole volume (from a subsample
    of at most ~4 M voxels). Each slice scores the sum of ``value - volume_min`` over
    its voxels above that threshold, i.e. its total foreground signal; the highest score
    wins, ties going to the slice nearest the middle. Non-finite voxels are ignored.

    Args:
        volume: ``(Z, H, W)`` array.

    Returns:
        Index of the chosen slice, ``0 <= index < Z`` (the middle one when no slice has
        any foreground).
    """
    vol = np.asarray(volume)
    n = int(vol.shape[0])
    middle = (n - 1) // 2
    if n <= 1:
        return 0
    flat = vol.reshape(-1)
    sample = flat[:: max(1, flat.size // (1 << 22))]
    sample = sample[np.isfinite(sample)].astype(np.float64)
    if sample.size == 0:
        return middle
    lo = float(sample.min())
    with np.errstate(all="ignore"):  # extreme (damaged) values: scores may overflow
        threshold = _otsu_threshold(sample)
        scores = np.zeros(n, dtype=np.float64)
        for z in range(n):
            sl = vol[z]
            fg = sl[np.isfinite(sl) & (sl > threshold)]
            scores[z] = float(np.sum(fg, dtype=np.float64)) - lo * fg.size
    scores[~np.isfinite(scores)] = 0.0
    best = scores.max()
    if not best > 0:
        return middle
    candidates = np.flatnonzero(scores >= best * (1 - 1e-12))
    return int(candidates[np.argmin(np.abs(candidates - middle))])


#: ITU-R BT.601 luma weights (the ones Pillow's ``convert("L")`` and most viewers use).
LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)


def rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """Convert colour pixels to grey luminance.

    When the three channels are identical (grey stored as colour, as in most exported
    scans) the first channel is returned unchanged; otherwise the BT.601 weighted sum
    of red, green and blue, without rounding. Extra channels (alpha) are ignored.

    Args:
        rgb: ``(..., C)`` array with ``C >= 3`` channels, red, green, blue first.

    Returns:
        ``(...)`` float32 array.
    """
    r, g, b = (rgb[..., i] for i in range(3))
    if np.array_equal(r, g) and np.array_equal(r, b):
        return r.astype(np.float32)
    wr, wg, wb = LUMA_WEIGHTS
    grey = wr * r.astype(np.float64) + wg * g.astype(np.float64) + wb * b.astype(np.float64)
    return grey.astype(np.float32)
