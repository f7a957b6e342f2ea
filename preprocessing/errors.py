"""The one error type raised for every scan that cannot be used.

Every message is written for the person who chose the file (often a clinician, not a
programmer): it names the file by its base name only, says what is wrong in plain
language and, where possible, what to do about it. Messages never contain patient
identifiers (names, IDs, dates, institutions) nor library tracebacks; the underlying
library error, when there is one, stays available as ``__cause__`` for developers::

    try:
        scan = load_scan(path)
    except ScanError as err:
        show_to_user(str(err))
"""
from __future__ import annotations

import os

__all__ = ["ScanError", "quote_name"]


class ScanError(ValueError):
    """A scan file is missing, unreadable, unsupported or holds unusable pixels.

    Subclasses :class:`ValueError` so that generic callers that already catch bad
    values keep working. ``str(err)`` is the plain-language message.
    """


def quote_name(path: str | os.PathLike[str]) -> str:
    """Return the file's base name in quotes, for use in messages.

    Only the base name is used: folders often carry patient names or record numbers.

    Args:
        path: Path to the file.

    Returns:
        The quoted base name, e.g. ``"'Te-gl_0010.dcm'"``.
    """
    text = os.fspath(path)
    name = os.path.basename(os.path.normpath(text)) if text else ""
    return f"'{name or text}'"
