"""What every command shares: the user-error type, thread setting, argument parsers."""
from __future__ import annotations

import argparse

__all__ = ["CliError", "HelpFormatter", "parse_grid", "set_threads"]


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the option help and the description kept as written."""


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)`` when given (``None``: torch's default, all cores)."""
    import torch

    if threads:
        torch.set_num_threads(threads)


def parse_grid(text: str) -> tuple[int, int]:
    """``"2x3"`` -> ``(2, 3)``: an HSCC output grid of at least 1x1."""
    try:
        gh, gw = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"regions must look like 2x2, got {text!r}") from None
    if gh < 1 or gw < 1:
        raise argparse.ArgumentTypeError(f"regions must be at least 1x1, got {text!r}")
    return gh, gw
