"""PNG and JPEG reader (Pillow): exported slices and screenshots.

Pixels are returned as float32 in their native units (0..255 for 8-bit, 0..65535 for
16-bit PNG); intensity normalisation happens later (``preprocessing.transforms``).

Modes:

* grey ``L``, 16-bit ``I;16``/``I;16B``, 32-bit ``I``, float ``F``: taken as is;
  bilevel ``1`` becomes 0/255; ``LA`` keeps the grey channel.
* ``RGB``/``RGBA``/``CMYK``/``YCbCr`` and palette ``P``/``PA``: converted to RGB, then
  to grey by :func:`~preprocessing.scan.rgb_to_grey` (one channel when R == G == B, as
  in most exported scans, else BT.601 luminance without rounding). Alpha is ignored.
  ``tags["converted_from"]`` records ``"rgb"`` or ``"palette"``.

Orientation is unknown (``"unknown"``): rows top to bottom and columns left to right as
the image is shown on screen, after applying an EXIF orientation tag if present.

Safety: the size from the header is checked against the shared limits before
``load()``; Pillow's own decompression-bomb guard is turned into a ScanError; a
truncated file is an error, never silently padded (``LOAD_TRUNCATED_IMAGES`` is forced
off while decoding, under a lock because it is a global Pillow setting). Pillow's other
warnings (e.g. "Corrupt EXIF data") stay quiet (:func:`preprocessing.guard.reading`).
"""
from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

from ..errors import ScanError, quote_name
from ..guard import reading
from ..scan import Scan, check_dimensions, rgb_to_grey

__all__ = ["RasterReader"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_FORMATS = {"PNG": "png", "JPEG": "jpeg"}
_LOCK = threading.Lock()
_AS_IS_MODES = ("L", "I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_COLOUR_MODES = ("RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV")


class RasterReader:
    """Reads PNG and JPEG images."""

    name = "raster"

    def sniff(self, head: bytes, path: Path) -> bool:
        """True for the PNG or JPEG signature."""
        return head.startswith(_PNG_MAGIC) or head.startswith(_JPEG_MAGIC)

    def read(self, path: Path) -> Scan:
        """Read a PNG or JPEG file into a 2-D :class:`Scan`.

        Args:
            path: The file.

        Returns:
            ``(H, W)`` float32 scan, ``source_format`` ``"png"`` or ``"jpeg"``.

        Raises:
            ScanError: Truncated/corrupt file, absurd size, unsupported pixel layout.
        """
        q = quote_name(path)
        with reading(path.name), _LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            previous = ImageFile.LOAD_TRUNCATED_IMAGES
            ImageFile.LOAD_TRUNCATED_IMAGES = False
            try:
                return _read(path, q)
            except ScanError:
                raise
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
                raise ScanError(
                    f"{q} claims a size far larger than any MRI; the file is probably "
                    "damaged and was not opened."
                ) from e
            except MemoryError as e:
                raise ScanError(f"{q} is too large to open on this computer.") from e
            except Exception as e:  # noqa: BLE001 - Pillow raises many kinds
                raise ScanError(
                    f"{q} could not be read as an image: the file is damaged or "
                    "incomplete (for example cut short during copying). Please copy or "
                    "export it again."
                ) from e
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _read(path: Path, q: str) -> Scan:
    with Image.open(path, formats=tuple(_FORMATS)) as img:
        width, height = img.size
        check_dimensions((height, width), path.name)  # before decoding
        img.load()
        fmt = _FORMATS[str(img.format)]
        mode = img.mode
        img = ImageOps.exif_transpose(img) or img
        data, converted, stored_dtype = _to_grey(img, q)
    tags = {"format": fmt.upper(), "mode": mode, "original_dtype": stored_dtype}
    if converted:
        tags["converted_from"] = converted
    return Scan(
        data=data.astype(np.float32),
        orientation="unknown",
        source_format=fmt,
        tags=tags,
        name=path.name,
    )


def _to_grey(img: Image.Image, q: str) -> tuple[np.ndarray, str, str]:
    """Grey pixels in native units, what they were converted from ("" if grey) and the
    stored sample type."""
    mode = img.mode
    if mode in _AS_IS_MODES:
        arr = np.asarray(img)
        return arr, "", str(arr.dtype.newbyteorder("="))
    if mode == "1":
        return np.asarray(img.convert("L")), "", "bool"
    if mode == "LA":
        return np.asarray(img.getchannel("L")), "", "uint8"
    if mode in ("P", "PA"):
        return rgb_to_grey(np.asarray(img.convert("RGB"))), "palette", "uint8"
    if mode in _COLOUR_MODES:
        rgb = img if mode in ("RGB", "RGBA", "RGBX") else img.convert("RGB")
        return rgb_to_grey(np.asarray(rgb)), "rgb", "uint8"
    raise ScanError(
        f"{q} uses the pixel layout '{mode}', which is not supported; please export it "
        "as a grey or colour PNG/JPEG."
    )
