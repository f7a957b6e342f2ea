"""Reading an untrusted file in a child process with a deadline.

:func:`load_scan_within` runs :func:`~preprocessing.load_scan` in a process of its own
(forked from a small server that has imported :mod:`preprocessing` once, so a read
starts in milliseconds) and kills it when the deadline passes. The reader guard's lock
(:mod:`preprocessing.guard`) is process-wide, so in one process a slow file would hold up
every other read; in a child it holds only its own. A crash or the out-of-memory killer
in the child is a :class:`ScanError` too.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from multiprocessing.context import BaseContext
from typing import Any

from .errors import ScanError
from .loader import ScanSource, load_scan
from .scan import Scan

__all__ = ["load_scan_within"]

_context: BaseContext | None = None


def _ctx() -> BaseContext:
    global _context
    if _context is None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["preprocessing"])
        _context = ctx
    return _context


def _child(conn: Any, source: ScanSource, kwargs: dict[str, Any]) -> None:
    try:
        result: tuple[str, Any] = ("ok", load_scan(source, **kwargs))
    except ScanError as e:
        result = ("refused", str(e))
    except BaseException as e:  # noqa: BLE001 - the parent turns anything into a ScanError
        result = ("refused", f"The file could not be read ({type(e).__name__}).")
    conn.send(result)
    conn.close()


def load_scan_within(source: ScanSource, timeout_s: float, **kwargs: Any) -> Scan:
    """:func:`~preprocessing.load_scan` in a child process, stopped after ``timeout_s``.

    Args:
        source: As for :func:`~preprocessing.load_scan`.
        timeout_s: Seconds the read may take (the child is killed after them).
        **kwargs: ``slice_index``/``series`` for :func:`~preprocessing.load_scan`.

    Returns:
        The scan, as :func:`~preprocessing.load_scan` returns it.

    Raises:
        ScanError: The read's own refusal; the deadline passed; the child died.
    """
    ctx = _ctx()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, source, kwargs), daemon=True)
    proc.start()
    send.close()
    try:
        if not recv.poll(timeout_s):
            raise ScanError(f"Reading the file took longer than {timeout_s:g} s, the limit for one "
                            "upload, and was stopped; it is probably damaged or far larger than a scan. "
                            "Please export it again (one series, ordinary compression).")
        status, value = recv.recv()
    except (EOFError, OSError) as e:
        raise ScanError("Reading the file stopped unexpectedly (it may need more memory than this "
                        "computer allows). Please export it again.") from e
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        recv.close()
    if status != "ok":
        raise ScanError(value)
    return value


if os.name != "posix":  # pragma: no cover - forkserver is POSIX only
    raise ImportError("preprocessing.isolated needs a POSIX system")
