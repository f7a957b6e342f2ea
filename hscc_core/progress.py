"""Progress bars that suit where the output goes.

On a terminal: an ordinary ``tqdm`` bar. Anywhere else (a log file, CI, a pipe): the same
bar as plain lines, at most one every :data:`LOG_INTERVAL_S` seconds, instead of the
carriage-return redraws that pile up as one unreadable line in a log.
"""
from __future__ import annotations

import sys
from typing import Any, Iterable, TextIO

from tqdm import tqdm

__all__ = ["LOG_INTERVAL_S", "progress_bar"]

#: Seconds between two progress lines when the output is not a terminal.
LOG_INTERVAL_S = 30.0


class _LineWriter:
    """A file for tqdm that turns each redraw into one line (blank redraws dropped)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(iterable: Iterable | None = None, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)``, line-based when its stream (``file``, default stderr) is
    not a terminal: ASCII, no redraws, one line every :data:`LOG_INTERVAL_S` seconds (and the
    last one), nothing when ``leave=False`` would have cleared it."""
    stream = kwargs.pop("file", None) or sys.stderr
    if kwargs.get("disable") or _is_terminal(stream):
        return tqdm(iterable, file=stream, **kwargs)
    kwargs.setdefault("mininterval", LOG_INTERVAL_S)
    kwargs.setdefault("ascii", True)
    kwargs.setdefault("dynamic_ncols", False)
    kwargs.setdefault("ncols", 100)
    return tqdm(iterable, file=_LineWriter(stream), **kwargs)
