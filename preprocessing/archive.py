"""Zip archives of scans, read in memory only (never extracted to disk), member by member.

Clinicians often receive a series as one ``.zip``. :func:`read_zip` checks the archive's
directory and returns its members as :class:`ZipMember` handles; a member's bytes are
inflated only when asked for (:meth:`ZipMember.read`), in chunks, and dropped by the
caller after use, so memory holds one member at a time. Limits that make a hostile
archive harmless:

* nothing is written to disk, so names such as ``../../etc/passwd`` cannot escape
  anywhere; such names (absolute, with ``..``, with a drive letter) are skipped anyway,
  as are folders, links, encrypted members and nested archives;
* at most :data:`MAX_MEMBERS` members, each at most :data:`MAX_MEMBER_BYTES` and all at
  most :data:`MAX_TOTAL_BYTES` once decompressed, checked on the sizes the directory
  declares *and* while decompressing (a member that inflates past its declared size or
  the cap is stopped there: a 1 MiB archive holding a 1 GiB member costs a few MiB);
* members whose stored data overlap (one compressed block listed many times: a zip bomb
  that multiplies its size without lying about it) are refused before anything is
  inflated.
"""
from __future__ import annotations

import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import ScanError, quote_name
from .scan import MAX_VOXELS

__all__ = ["MAX_MEMBERS", "MAX_MEMBER_BYTES", "MAX_TOTAL_BYTES", "DamagedArchive", "ZipContents", "ZipMember",
           "is_zip", "read_zip"]

#: Most members an archive may have (a series has at most a few thousand slices).
MAX_MEMBERS: int = 10_000
#: Most bytes one member may hold once decompressed: the largest accepted image stored
#: with 4 bytes a sample, plus room for its header.
MAX_MEMBER_BYTES: int = 4 * MAX_VOXELS + 16 * 1024 * 1024
#: Most bytes all members may hold once decompressed.
MAX_TOTAL_BYTES: int = 1024 * 1024 * 1024
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_CHUNK = 1024 * 1024
_LOCAL_HEADER = struct.Struct("<4s22xHH")


class DamagedArchive(ScanError):
    """A member's data contradict the archive's directory (a lying size, a bad checksum):
    the whole archive is refused, not just that member left out."""


def is_zip(head: bytes) -> bool:
    """Whether a file's first bytes are those of a zip archive."""
    return head[:4] in _ZIP_MAGICS


@dataclass
class ZipMember:
    """One regular member of an open archive; :meth:`read` inflates it.

    Attributes:
        name: Its name inside the archive.
        size: The uncompressed size its directory entry declares.
    """

    name: str
    size: int
    _archive: ZipContents = field(repr=False)
    _info: zipfile.ZipInfo = field(repr=False)

    def read(self, limit: int | None = None) -> bytes:
        """The member's bytes (or its first ``limit``), inflated in chunks.

        Raises:
            ScanError: The member inflates past :data:`MAX_MEMBER_BYTES` (its declared size
                lied), or its data are damaged (checksum, truncation).
        """
        return self._archive._read(self, limit)


@dataclass
class ZipContents:
    """An archive opened by :func:`read_zip`; use it as a context manager (closes it).

    Attributes:
        members: The regular members kept, in directory order.
        skipped: Number of members left out (folders, links, unsafe names, encrypted).
    """

    members: list[ZipMember]
    skipped: int
    _zf: zipfile.ZipFile | None = field(default=None, repr=False)
    _quoted: str = field(default="", repr=False)
    _cap: int = field(default=MAX_MEMBER_BYTES, repr=False)

    def __enter__(self) -> ZipContents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the archive file."""
        if self._zf is not None:
            self._zf.close()
            self._zf = None

    def _read(self, member: ZipMember, limit: int | None) -> bytes:
        if self._zf is None:
            raise ScanError(f"{self._quoted} was closed before all its files were read.")
        want = self._cap + 1 if limit is None else min(limit, self._cap + 1)
        chunks, got = [], 0
        try:
            with self._zf.open(member._info) as f:
                while got < want:
                    chunk = f.read(min(_CHUNK, want - got))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    got += len(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError,
                NotImplementedError) as e:
            raise DamagedArchive(f"{self._quoted}: the file {quote_name(member.name)} inside it is damaged "
                            "(its data do not match the archive's directory); please make or copy the "
                            "archive again.") from e
        if got > self._cap:
            raise ScanError(_too_big_member(self._quoted, self._cap))
        return b"".join(chunks)


def _safe_name(name: str) -> bool:
    if not name or "\\" in name or name.startswith("/") or ":" in name.split("/")[0]:
        return False
    return ".." not in PurePosixPath(name).parts


def _too_big_member(q: str, cap: int) -> str:
    return (f"{q} holds a file larger than {cap // (1024 * 1024):,} MiB once decompressed, far more "
            "than any scan file; it was not opened.")


def _check_layout(path: Path, infos: list[zipfile.ZipInfo], end_of_data: int, q: str) -> None:
    """Refuse members whose stored data overlap each other or the directory."""
    spans = []
    with open(path, "rb") as raw:
        for info in infos:
            raw.seek(info.header_offset)
            head = raw.read(_LOCAL_HEADER.size)
            if len(head) < _LOCAL_HEADER.size or head[:4] != b"PK\x03\x04":
                raise zipfile.BadZipFile(f"no local header for {info.filename!r}")
            name_len, extra_len = _LOCAL_HEADER.unpack(head)[1:]
            start = info.header_offset
            spans.append((start, start + _LOCAL_HEADER.size + name_len + extra_len + info.compress_size))
    spans.sort()
    for (_s0, e0), (s1, _e1) in zip(spans, spans[1:]):
        if s1 < e0:
            raise ScanError(f"{q} lists the same stored data under several names (overlapping "
                            "entries, a trick of 'zip bombs'); it was not opened.")
    if spans and spans[-1][1] > end_of_data:
        raise ScanError(f"{q} is a damaged or incomplete zip archive; please make or copy it again.")


def read_zip(path: str | os.PathLike[str], *, max_members: int = MAX_MEMBERS,
             max_total_bytes: int = MAX_TOTAL_BYTES,
             max_member_bytes: int = MAX_MEMBER_BYTES) -> ZipContents:
    """Open a zip archive and check its directory; members are inflated only when read.

    Args:
        path: The archive.
        max_members: Refuse archives with more members than this.
        max_total_bytes: Refuse archives that declare more than this in total.
        max_member_bytes: Refuse members that declare, or inflate to, more than this.

    Returns:
        The open archive (a context manager) with the members kept and how many were
        skipped.

    Raises:
        ScanError: Not a readable zip archive, too many members, too large once
            decompressed, overlapping members, or a compression method that cannot be read.
    """
    q = quote_name(path)
    too_big = (f"{q} would decompress to more than {max_total_bytes // (1024 * 1024):,} MiB, far "
               "more than any scan series; it was not opened.")
    p = Path(os.fspath(path))
    zf = None
    try:
        zf = zipfile.ZipFile(p)
        infos = zf.infolist()
        if len(infos) > max_members:
            raise ScanError(f"{q} holds {len(infos):,} files, more than the {max_members:,} a scan "
                            "series can have; it was not opened.")
        if sum(i.file_size for i in infos) > max_total_bytes:
            raise ScanError(too_big)
        if any(i.file_size > max_member_bytes for i in infos):
            raise ScanError(_too_big_member(q, max_member_bytes))
        _check_layout(p, infos, zf.start_dir, q)
        contents = ZipContents([], 0, zf, q, max_member_bytes)
        for info in infos:
            mode = info.external_attr >> 16
            if (info.is_dir() or not _safe_name(info.filename) or info.flag_bits & 0x1
                    or stat.S_ISLNK(mode) or info.filename.lower().endswith(".zip")):
                contents.skipped += 1
                continue
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                                          zipfile.ZIP_LZMA):
                raise NotImplementedError(info.compress_type)
            contents.members.append(ZipMember(info.filename, info.file_size, contents, info))
        return contents
    except ScanError:
        if zf is not None:
            zf.close()
        raise
    except NotImplementedError as e:
        zf.close()
        raise ScanError(f"{q} uses a zip compression method that cannot be read here; please "
                        "make the archive again with ordinary (deflate) compression.") from e
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
            RuntimeError) as e:
        if zf is not None:
            zf.close()
        raise ScanError(f"{q} is a damaged or incomplete zip archive; please make or copy it "
                        "again.") from e
