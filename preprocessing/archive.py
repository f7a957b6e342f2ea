"""Zip archives of scans, read into memory only: never extracted to disk.

Clinicians often receive a series as one ``.zip``. :func:`read_zip` returns the bytes of
its members, with limits that make a hostile archive harmless:

* nothing is written to disk, so names such as ``../../etc/passwd`` cannot escape
  anywhere; such names (absolute, with ``..``, with a drive letter) are skipped anyway,
  as are folders, links, encrypted members and nested archives;
* at most :data:`MAX_MEMBERS` members, and at most :data:`MAX_TOTAL_BYTES` uncompressed
  in total, checked on the sizes the archive declares *and* while decompressing (a
  "zip bomb" that lies about its sizes is stopped at the limit).
"""
from __future__ import annotations

import os
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import ScanError, quote_name

__all__ = ["MAX_MEMBERS", "MAX_TOTAL_BYTES", "ZipContents", "is_zip", "read_zip"]

#: Most members an archive may have (a series has at most a few thousand slices).
MAX_MEMBERS: int = 10_000
#: Most bytes all members may hold once decompressed.
MAX_TOTAL_BYTES: int = 1024 * 1024 * 1024
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def is_zip(head: bytes) -> bool:
    """Whether a file's first bytes are those of a zip archive."""
    return head[:4] in _ZIP_MAGICS


@dataclass
class ZipContents:
    """Members of an archive read into memory.

    Attributes:
        members: ``(name inside the archive, bytes)`` of every regular member kept.
        skipped: Number of members left out (folders, links, unsafe names, encrypted).
    """

    members: list[tuple[str, bytes]]
    skipped: int


def _safe_name(name: str) -> bool:
    if not name or "\\" in name or name.startswith("/") or ":" in name.split("/")[0]:
        return False
    return ".." not in PurePosixPath(name).parts


def read_zip(path: str | os.PathLike[str], *, max_members: int = MAX_MEMBERS,
             max_total_bytes: int = MAX_TOTAL_BYTES) -> ZipContents:
    """Read the regular members of a zip archive into memory.

    Args:
        path: The archive.
        max_members: Refuse archives with more members than this.
        max_total_bytes: Refuse archives that decompress to more than this.

    Returns:
        The members kept and how many were skipped.

    Raises:
        ScanError: Not a readable zip archive, too many members, too large once
            decompressed, or a compression method that cannot be read.
    """
    q = quote_name(path)
    too_big = (f"{q} would decompress to more than {max_total_bytes // (1024 * 1024):,} MiB, far "
               "more than any scan series; it was not opened.")
    try:
        with zipfile.ZipFile(Path(os.fspath(path))) as zf:
            infos = zf.infolist()
            if len(infos) > max_members:
                raise ScanError(f"{q} holds {len(infos):,} files, more than the {max_members:,} a scan "
                                "series can have; it was not opened.")
            if sum(i.file_size for i in infos) > max_total_bytes:
                raise ScanError(too_big)
            members: list[tuple[str, bytes]] = []
            skipped, total = 0, 0
            for info in infos:
                mode = info.external_attr >> 16
                if (info.is_dir() or not _safe_name(info.filename) or info.flag_bits & 0x1
                        or stat.S_ISLNK(mode) or info.filename.lower().endswith(".zip")):
                    skipped += 1
                    continue
                with zf.open(info) as f:
                    data = f.read(max_total_bytes - total + 1)
                total += len(data)
                if total > max_total_bytes:
                    raise ScanError(too_big)
                members.append((info.filename, data))
            return ZipContents(members, skipped)
    except ScanError:
        raise
    except NotImplementedError as e:
        raise ScanError(f"{q} uses a zip compression method that cannot be read here; please "
                        "make the archive again with ordinary (deflate) compression.") from e
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
            RuntimeError) as e:
        raise ScanError(f"{q} is a damaged or incomplete zip archive; please make or copy it "
                        "again.") from e
