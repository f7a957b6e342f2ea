"""Typed errors of the compressor library: catch :class:`HSCCError` for all of them."""
from __future__ import annotations

__all__ = ["ArtifactError", "CompressionError", "ConfigError", "DistillationError", "HSCCError"]


class HSCCError(Exception):
    """Base class of every error the library raises on purpose."""


class ConfigError(HSCCError, ValueError):
    """An argument the library cannot use outside a compression or distillation: a value out
    of range, an input size it cannot learn, models that do not match, a name already taken."""


class ArtifactError(HSCCError, ValueError):
    """An artifact file is missing, malformed or unsafe."""


class CompressionError(HSCCError, ValueError):
    """A compression cannot be done as asked (bad configuration, unreachable budget,
    missing calibration data, a model the compressor cannot read)."""


class DistillationError(HSCCError, ValueError):
    """A distillation cannot run as asked (bad settings, empty data, a checkpoint made with
    other settings or that is not one)."""
