"""What every command shares: the user-error type, thread setting, argument parsers."""
from __future__ import annotations

import argparse

__all__ = ["CliError", "HelpFormatter", "add_runtime_arguments", "parse_grid", "set_threads"]


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


def add_runtime_arguments(p: argparse.ArgumentParser, default: str = "auto", models: str = "the model") -> None:
    """``--runtime`` and ``--precision`` (see :mod:`hscc_mri.runtimes`) of ``models`` (how
    the help names what runs: ``"the model"``, ``"both models"``), for every command and
    the app alike."""
    from ..runtimes import PRECISIONS, RUNTIMES

    every = "both have" if models == "both models" else f"{models} has"
    p.add_argument("--runtime", default=default, choices=("auto", *RUNTIMES),
                   help=f"inference runtime of {models}; auto: the fastest measured for this CPU (OpenVINO when "
                        "installed)")
    p.add_argument("--precision", default=default, choices=("auto", *PRECISIONS),
                   help=f"arithmetic of {models}; bf16 only on CPUs with native bfloat16; int8 runs the "
                        f"release's shipped graph or is calibrated on the default calibration set; auto: int8 "
                        f"when {every} a measured int8 plan for this CPU kind (kept or shipped), else bf16 where "
                        "native, else fp32")

