"""The command line: ``hscc-mri <command> --help`` (also ``python -m hscc_mri``).

One module per command: ``train`` (a classifier on phantoms or a folder data set),
``compress`` (HSCC / Global SVD / Tucker-2 under a FLOPs budget), ``distill`` (teach a
compressed model its original's answers), ``predict`` (classify
scan files), ``bench`` (side-by-side latency), ``evaluate`` (accuracy and fidelity on a
labelled test set, or leave-one-scan-out), ``export`` (ONNX and OpenVINO IR, checked
against PyTorch), ``report`` (the evidence report) and ``release`` (the app's models as
files in the repository, with a manifest).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from hscc_core import HSCCError

from ..errors import ProductError
from ._common import CliError

__all__ = ["COMMANDS", "CliError", "build_parser", "main"]

#: The commands, in the order ``--help`` lists them; each is the module of that name in this
#: package, imported only when its command runs (or the full ``--help`` is asked for), so
#: ``predict`` loads the serving path and none of the lab's commands.
COMMANDS = ("train", "compress", "distill", "predict", "bench", "evaluate", "export", "report", "release")

EXAMPLES = """examples:
  hscc-mri train --model alexnet --data phantoms --out checkpoints/alexnet-phantoms.safetensors
  hscc-mri predict --model vgg16-brain-mri --json samples/*.jpg
  hscc-mri evaluate --data ../shared/data/brain-mri/Testing --methods hscc svd tucker --budgets 3 6
"""


def build_parser(prog: str | None = None, only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of the command ``only`` (``prog`` defaults to the
    name the CLI was started by)."""
    parser = argparse.ArgumentParser(
        prog=prog or _program_name(),
        description="HSCC-MRI: train, compress, benchmark, evaluate and run brain-tumour MRI classifiers.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS if only is None else (only,):
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (its first word; the top level has no options but
    ``--help``), when it is one of :data:`COMMANDS`."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


def _program_name() -> str:
    path = sys.argv[0] if sys.argv and sys.argv[0] else "hscc-mri"
    name = os.path.basename(path)
    if name == "__main__.py":  # python -m hscc_mri (or its alias python -m hscc_core)
        return f"python -m {os.path.basename(os.path.dirname(path))}"
    return name if name.startswith("hscc") else "hscc-mri"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(only=_command_in(argv)).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CliError, HSCCError, ProductError) as e:  # typed errors a command did not word itself
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
