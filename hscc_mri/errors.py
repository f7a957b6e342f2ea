"""Typed errors of the product: catch :class:`ProductError` for every error ``hscc_mri``
raises on purpose (the library's, :class:`hscc_core.HSCCError` and its kinds, pass through
as they are).

:class:`SettingsError` and :class:`DataError` are also ``ValueError`` s, as the bare ones they
replace were; :class:`~hscc_mri.release.ReleaseError` is also an
:class:`hscc_core.ArtifactError` and :class:`~hscc_mri.runtimes.RuntimeUnavailable` also a
``RuntimeError``. A scan file that cannot be read is :class:`preprocessing.ScanError`.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["DataError", "ProductError", "SettingsError", "typed_value_errors"]


class ProductError(Exception):
    """Base class of every error the product raises on purpose."""


class SettingsError(ProductError, ValueError):
    """A setting or argument the product cannot use: an unknown name, a value out of range,
    options that do not go together, a folder given where another is needed."""


class DataError(ProductError, ValueError):
    """Data the product reads is missing, empty or not what it should be: no readable scan
    in a folder, class folders it does not know, a manifest or result file of another
    kind, a file whose bytes changed."""


@contextmanager
def typed_value_errors(kind: type[ProductError] = SettingsError) -> Iterator[None]:
    """Inside the block, a bare ``ValueError`` becomes ``kind`` with the same message; a
    typed one (the product's, or :class:`hscc_core.HSCCError` and its kinds) passes as it is.

    For a lab function around a call that may still refuse with a bare ``ValueError``: its
    caller (the command line) then catches the typed errors only to word every refusal.
    """
    try:
        yield
    except ProductError:
        raise
    except ValueError as e:
        # Imported here: the library (and torch) loads with the code that raised, not with this module.
        from hscc_core import HSCCError

        if isinstance(e, HSCCError):
            raise
        raise kind(str(e)) from e
