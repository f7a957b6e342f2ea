"""NIfTI-1/2 reader (nibabel), ``.nii`` or gzip-compressed ``.nii.gz``.

Orientation and display convention
----------------------------------
The image is first reoriented with :func:`nibabel.as_closest_canonical`, so that the
array ``a[i, j, k]`` is RAS+: increasing ``i`` goes towards the patient's **R**\\ ight,
``j`` towards **A**\\ nterior, ``k`` towards **S**\\ uperior. It is then laid out as
axial slices ``(Z, H, W)`` in the **radiological convention**, the one used by
scanners, PACS and DICOM viewers: the patient is seen from the feet, lying on the back,
so the patient's right is on the viewer's left and anterior is at the top::

    volume = np.flip(a, axis=(0, 1)).transpose(2, 1, 0)
    volume[z, r, c] == a[X - 1 - c, Y - 1 - r, z]

* ``z`` (slice) increases towards superior (``k``),
* ``r`` (row, top to bottom) goes from anterior to posterior (``j`` reversed),
* ``c`` (column, left to right) goes from the patient's right to the patient's left
  (``i`` reversed).

In patient-direction codes the axes ``(Z, H, W)`` point S, P, L, which is also how an
axial DICOM with Image Orientation ``[1, 0, 0, 0, 1, 0]`` is displayed, so NIfTI and
DICOM slices look alike. :func:`write_nifti_volume` / :func:`write_nifti_slice` apply
the exact inverse with an RAS affine, so ``load_scan(path).image()`` gives back the
written pixels.

Dimensions
----------
* 3-D with more than one slice on every axis: a volume; the default slice is the axial
  slice with the most signal (:func:`~preprocessing.scan.default_slice`).
* 2-D, or 3-D with a single slice: a 2-D image. A single axial slice (``k`` of size 1)
  is shown as above; a single coronal slice (``j`` of size 1) with superior at the top
  and the patient's right on the left (``a[::-1, 0, ::-1].T``); a single sagittal
  slice (``i`` of size 1) with superior at the top and anterior on the left
  (``a[0, ::-1, ::-1].T``).
* 4-D (or more) with a single volume, e.g. ``(X, Y, Z, 1)``: squeezed to 3-D.
* 4-D with several volumes (fMRI, diffusion, multi-echo): **rejected** with a
  :class:`~preprocessing.errors.ScanError` asking for a single 3-D volume, because
  which volume to classify is the user's choice, not ours.

Safety: the header is parsed first, the claimed size checked against the shared limits,
and then exactly the bytes the header announces are read (decompressing a ``.nii.gz``
no further), so a small file cannot expand into gigabytes. The data offset
(``vox_offset``) must lie within :data:`MAX_DATA_OFFSET` and, for an uncompressed file,
the data must fit in the file; both are checked before reading. Header extensions are
skipped in chunks, never held in memory. A header with an impossible number of
dimensions, or an orientation matrix that is not finite and invertible, is refused
with a message saying so. Scaling (``scl_slope``,
``scl_inter``) is applied. When neither ``sform`` nor ``qform`` is set, nibabel's
fallback affine is used and ``tags["affine_source"]`` says ``"none"``.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np

from ..errors import ScanError, quote_name
from ..guard import PASS_THROUGH, reading
from ..scan import Scan, check_dimensions

__all__ = ["NiftiReader", "write_nifti_slice", "write_nifti_volume"]

_GZIP_MAGIC = b"\x1f\x8b"
_SIZES = {348: (1, nib.Nifti1Header, nib.Nifti1Image), 540: (2, nib.Nifti2Header, nib.Nifti2Image)}
_SNIFF_BYTES = 540
#: Largest accepted data offset (header plus extensions), in bytes. Extensions hold
#: small metadata (a few KiB); 64 MiB leaves ample room.
MAX_DATA_OFFSET: int = 64 * 1024 * 1024
_CHUNK = 1 << 20


def _header_version(block: bytes) -> int | None:
    """348 or 540 when ``sizeof_hdr`` (int32 at offset 0, either endianness) matches."""
    if len(block) < 4:
        return None
    for endian in "<>":
        (size,) = struct.unpack(endian + "i", block[:4])
        if size in _SIZES:
            return size
    return None


class NiftiReader:
    """Reads single-file NIfTI-1 and NIfTI-2 images, plain or gzip-compressed."""

    name = "nifti"

    def sniff(self, head: bytes, path: Path) -> bool:
        """True for a NIfTI header, or a gzip stream whose content starts with one."""
        if head[:2] == _GZIP_MAGIC:
            try:
                with gzip.open(path, "rb") as f:
                    inner = f.read(_SNIFF_BYTES)
            except (OSError, EOFError, zlib.error):
                return False
            return _header_version(inner) is not None
        return _header_version(head) is not None

    def read(self, path: Path) -> Scan:
        """Read a NIfTI file into a :class:`Scan` (see the module docstring for layout).

        Args:
            path: The file (``.nii`` or ``.nii.gz``; the extension is not relied on).

        Returns:
            ``(Z, H, W)`` volume in RAS radiological layout, or an ``(H, W)`` image.

        Raises:
            ScanError: Corrupt/truncated file, 4-D series, absurd size.
        """
        q = quote_name(path)
        with reading(path.name):
            try:
                img, tags = _load_image(path)
                data, spacing = _to_display(img, q)
            except (ScanError, *PASS_THROUGH, MemoryError):
                raise
            except Exception as e:  # noqa: BLE001 - nibabel/gzip/zlib raise many kinds
                raise ScanError(
                    f"{q} could not be read as NIfTI: the file is damaged or incomplete "
                    "(for example cut short during copying). Please copy or export it again."
                ) from e
        return Scan(
            data=data,
            spacing=spacing,
            orientation="RAS",
            source_format="nifti",
            tags=tags,
            name=path.name,
        )


def _load_image(path: Path) -> tuple[nib.Nifti1Image, dict[str, str]]:
    """Parse the header, check sizes, read exactly the announced bytes, build the image."""
    q = quote_name(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    opener = gzip.open if compressed else open
    with opener(path, "rb") as f:
        block = f.read(_SNIFF_BYTES)
        version = _header_version(block)
        if version is None:
            raise ScanError(f"{q} does not start with a NIfTI header; it is damaged.")
        nifti_version, header_cls, image_cls = _SIZES[version]
        header = header_cls(binaryblock=block[:version], check=False)
        magic = bytes(header["magic"]).rstrip(b"\x00")
        if magic in (b"ni1", b"ni2"):
            raise ScanError(
                f"{q} is the header half of a NIfTI .hdr/.img pair; please convert it "
                "to a single .nii or .nii.gz file."
            )
        if magic not in (b"n+1", b"n+2"):
            raise ScanError(
                f"{q} has a damaged NIfTI header (or is an old Analyze file, which is "
                "not supported); please convert it to NIfTI again."
            )
        n_dims = int(header["dim"][0])
        if not 1 <= n_dims <= 7 or any(int(d) < 0 for d in header["dim"][1:n_dims + 1]):
            raise ScanError(
                f"{q} has an invalid NIfTI header (it states {n_dims} dimensions; 1 to 7 "
                "are possible). The file is damaged; please convert it to NIfTI again."
            )
        shape = tuple(int(d) for d in header.get_data_shape())
        spatial = _spatial_shape(shape, q)
        check_dimensions(spatial, path.name, check_min_side=False)
        dtype = header.get_data_dtype()
        if dtype.fields is not None or dtype.kind not in "biuf":
            raise ScanError(
                f"{q} stores {'colour' if dtype.fields else 'complex'} voxels, which are "
                "not supported; please convert it to a grey-level NIfTI volume."
            )
        offset = int(header.get_data_offset())
        n_bytes = math.prod(shape) * dtype.itemsize
        expected = offset + n_bytes
        if not version <= offset <= MAX_DATA_OFFSET:
            raise ScanError(
                f"{q} has an invalid NIfTI header: its image data is said to start at byte "
                f"{offset:,}, {'inside the header' if offset < version else 'far beyond any real header'}. "
                "The file is damaged; please convert it to NIfTI again."
            )
        if not compressed and os.stat(path).st_size < expected:
            raise ScanError(
                f"{q} is incomplete: it holds {os.stat(path).st_size:,} of the {expected:,} "
                "bytes its header announces (cut short during copying?). Please copy it again."
            )
        # One buffer of exactly the announced size, filled in chunks: no copies of it are
        # made, so a gzip bomb costs at most the announced (size-checked) bytes.
        stored = bytearray(n_bytes)
        got = len(block[offset:offset + n_bytes]) if offset <= len(block) else 0
        stored[:got] = block[offset:offset + got]
        if offset > len(block):
            _skip(f, offset - len(block))
        view = memoryview(stored)
        while got < n_bytes:
            n = f.readinto(view[got:got + _CHUNK])
            if not n:
                break
            got += n
        view.release()
    if got < n_bytes:
        raise ScanError(
            f"{q} is incomplete: it holds {offset + got:,} of the {expected:,} bytes "
            "its header announces (cut short during copying?). Please copy it again."
        )
    slope, inter = header.get_slope_inter()
    values = np.frombuffer(stored, dtype=dtype).reshape(shape, order="F").astype(np.float32)
    del stored  # the stored bytes are not needed once converted
    if slope is not None and math.isfinite(slope) and slope != 0:
        values *= np.float32(slope)
        values += np.float32(inter if inter is not None and math.isfinite(inter) else 0.0)
    img = image_cls(values, header.get_best_affine(), header=header)
    sform_code = int(img.header["sform_code"])
    qform_code = int(img.header["qform_code"])
    tags = {
        "nifti_version": str(nifti_version),
        "original_dtype": str(dtype.newbyteorder("=")),
        "original_shape": "x".join(str(d) for d in shape),
        "affine_source": "sform" if sform_code > 0 else "qform" if qform_code > 0 else "none",
    }
    return img, tags


def _skip(f, count: int) -> None:
    """Read and discard ``count`` bytes, in chunks."""
    while count > 0:
        chunk = f.read(min(count, _CHUNK))
        if not chunk:
            return
        count -= len(chunk)


def _spatial_shape(shape: tuple[int, ...], q: str) -> tuple[int, ...]:
    """Stored shape without trailing singleton dims beyond 3; reject series and 1-D data.

    The axes are still in stored order (not yet RAS), so only orientation-free limits
    are checked on it.
    """
    dims = list(shape)
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    if len(dims) > 3:
        extra = math.prod(dims[3:])
        raise ScanError(
            f"{q} is a {len(dims)}-D series ({extra} volumes, e.g. fMRI or diffusion); "
            "please export a single 3-D volume."
        )
    if len(dims) < 2:
        raise ScanError(f"{q} holds a 1-D signal ({dims}), not an image.")
    return tuple(dims)


def _to_display(img: nib.Nifti1Image, q: str) -> tuple[np.ndarray, tuple[float, ...]]:
    """RAS-canonical data in the radiological ``(Z, H, W)`` / ``(H, W)`` layout."""
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ScanError(
            f"{q} has an invalid orientation matrix (sform/qform): it does not say how the "
            "voxels lie in space, so the slices cannot be shown the right way round. "
            "Please convert the scan to NIfTI again."
        )
    data = np.asarray(img.get_fdata(dtype=np.float32))
    data = data.reshape(data.shape[:3] + tuple(d for d in data.shape[3:] if d != 1))
    if data.ndim == 2:
        data = data[:, :, None]
    canonical = nib.as_closest_canonical(nib.Nifti1Image(data, img.affine))
    a = np.asarray(canonical.dataobj, dtype=np.float32)
    zooms = np.sqrt((canonical.affine[:3, :3] ** 2).sum(axis=0))
    sx, sy, sz = (float(z) if math.isfinite(z) and z > 0 else 1.0 for z in zooms)
    nx, ny, nz = a.shape
    if nz == 1:  # axial slice (also the 3-D-with-one-slice case written by us)
        return np.ascontiguousarray(a[::-1, ::-1, 0].T), (sy, sx)
    if ny == 1:  # coronal slice: superior up, patient's right on the left
        return np.ascontiguousarray(a[::-1, 0, ::-1].T), (sz, sx)
    if nx == 1:  # sagittal slice: superior up, anterior on the left
        return np.ascontiguousarray(a[0, ::-1, ::-1].T), (sz, sy)
    volume = np.ascontiguousarray(np.flip(a, axis=(0, 1)).transpose(2, 1, 0))
    return volume, (sz, sy, sx)


def write_nifti_volume(
    volume: np.ndarray,
    path: str | os.PathLike[str],
    *,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    dtype: np.dtype | type | str = np.float32,
) -> None:
    """Write a ``(Z, H, W)`` volume so that :func:`load_scan` returns it unchanged.

    Recipe (inverse of the reader's layout, see the module docstring)::

        a = np.flip(volume.transpose(2, 1, 0), axis=(0, 1))   # (X, Y, Z), RAS+
        affine = diag(dx, dy, dz, 1), centred on the volume's middle voxel

    i.e. slice ``z`` is axial with anterior at the top and the patient's right on the
    left. Both ``sform`` and ``qform`` are set (code 2, "aligned"). A ``.gz`` suffix
    gives a gzip-compressed file.

    Args:
        volume: ``(Z, H, W)`` array (``Z`` may be 1).
        path: Output file, ``.nii`` or ``.nii.gz``.
        spacing: ``(dz, dy, dx)`` voxel size in mm.
        dtype: On-disk data type; values are cast (round integers yourself first).
            float32 input written as float32 reads back exactly.
    """
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise ValueError(f"expected a (Z, H, W) volume, got shape {vol.shape}")
    dz, dy, dx = (float(s) for s in spacing)
    a = np.flip(vol.transpose(2, 1, 0), axis=(0, 1)).astype(dtype)
    affine = np.diag([dx, dy, dz, 1.0])
    affine[:3, 3] = -(np.array(a.shape, dtype=np.float64) - 1) / 2 * np.array([dx, dy, dz])
    img = nib.Nifti1Image(np.ascontiguousarray(a), affine)
    img.set_sform(affine, code=2)
    img.set_qform(affine, code=2)
    img.header.set_xyzt_units("mm")
    nib.save(img, os.fspath(path))


def write_nifti_slice(
    image: np.ndarray,
    path: str | os.PathLike[str],
    *,
    spacing: Sequence[float] = (1.0, 1.0),
    slice_thickness: float = 1.0,
    dtype: np.dtype | type | str = np.float32,
) -> None:
    """Write a 2-D ``(H, W)`` image as a one-slice axial NIfTI with an RAS affine.

    ``load_scan(path).image()`` returns the same pixels in the same orientation (exactly,
    for float32 input and the default ``dtype``). Same recipe as
    :func:`write_nifti_volume` with ``Z = 1``: ``a = image.T[::-1, ::-1, None]``.

    Args:
        image: ``(H, W)`` array, row 0 at the top (anterior), column 0 on the left
            (patient's right).
        path: Output file, ``.nii`` or ``.nii.gz``.
        spacing: ``(dy, dx)`` pixel size in mm.
        slice_thickness: Slice thickness in mm.
        dtype: On-disk data type.
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D (H, W) image, got shape {img.shape}")
    dy, dx = (float(s) for s in spacing)
    write_nifti_volume(img[None], path, spacing=(slice_thickness, dy, dx), dtype=dtype)
