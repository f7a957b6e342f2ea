"""The one guard around every decoder: nothing but a :class:`ScanError` leaves a reader.

Image decoders are native code (Rust, C, C++) behind Python bindings. On damaged data
they can raise anything: ``IndexError`` from numpy, ``RuntimeError`` from pydicom, and
even ``pyo3_runtime.PanicException`` (a Rust panic, a :class:`BaseException` that
``except Exception`` does not catch). They also talk: Python warnings (Pillow's
"Corrupt EXIF data", numpy's ``RuntimeWarning``), library loggers (pydicom logs every
failed plug-in with a traceback, nibabel logs header notices) and native messages
written straight to the process's standard error (a Rust panic prints its location and
backtrace there).

:func:`reading` turns all of that into one plain-language :class:`ScanError` (the
original exception stays available as ``__cause__``) and keeps the noise off the
terminal. Only :class:`KeyboardInterrupt`, :class:`SystemExit` and
:class:`GeneratorExit` pass through: a user who presses Ctrl+C must be obeyed.

Standard error is redirected at the file-descriptor level while a file is decoded
(native code does not go through ``sys.stderr``) and logging is disabled
(:func:`logging.disable`). Because both are process-wide, reads are serialised by a
lock; whatever other threads write to standard error meanwhile is written out
afterwards when the read succeeds, and dropped with the decoder's own messages when it
fails.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator

import numpy as np

from .errors import ScanError, quote_name

__all__ = ["PASS_THROUGH", "reading"]

#: Exceptions that are never turned into a ScanError.
PASS_THROUGH: tuple[type[BaseException], ...] = (KeyboardInterrupt, SystemExit, GeneratorExit)
_LOCK = threading.RLock()
_depth = 0


def _damaged(name: str) -> str:
    return (f"{quote_name(name)} could not be read: the file is damaged or incomplete "
            "(for example cut short during copying). Please copy or export it again.")


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to a temporary file; write it back only on success."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr (e.g. a daemon)
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        ok = False
        try:
            yield
            ok = True
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if ok:
                sink.seek(0)
                captured = sink.read()
                if captured:
                    with contextlib.suppress(OSError):
                        os.write(2, captured)


@contextlib.contextmanager
def reading(name: str) -> Iterator[None]:
    """Context for decoding one scan: any failure becomes a :class:`ScanError`.

    * :class:`ScanError` passes unchanged;
    * :class:`MemoryError` becomes "too large to open on this computer";
    * anything else, :class:`BaseException` subclasses such as Rust panics included,
      becomes "damaged or incomplete", chained as ``__cause__``;
    * :data:`PASS_THROUGH` (Ctrl+C, ``sys.exit``) is re-raised as is.

    Meanwhile warnings are ignored, numpy floating-point errors are silent, the library
    loggers are muted and native messages on standard error are held back (see the module
    docstring). Nested use is allowed; only the outermost level does the muting.

    Args:
        name: Base name of the file, for the message.

    Raises:
        ScanError: For every failure inside the block.
    """
    global _depth
    with _LOCK:
        outer = _depth == 0
        _depth += 1
        muted = logging.root.manager.disable
        try:
            with contextlib.ExitStack() as stack:
                if outer:
                    stack.enter_context(_quiet_stderr())
                    logging.disable(logging.CRITICAL)
                stack.enter_context(warnings.catch_warnings())
                warnings.simplefilter("ignore")
                stack.enter_context(np.errstate(all="ignore"))
                try:
                    yield
                except (ScanError, *PASS_THROUGH):
                    raise
                except MemoryError as e:
                    raise ScanError(f"{quote_name(name)} is too large to open on this computer.") from e
                except BaseException as e:  # noqa: BLE001 - decoders' panics are BaseExceptions
                    raise ScanError(_damaged(name)) from e
        finally:
            if outer:
                logging.disable(muted)
            _depth -= 1
