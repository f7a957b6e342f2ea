"""What a runtime backend declares about itself, so that choosing, compiling and keeping
quantised graphs ask the backend instead of testing its name.

Each backend module (``torch_backend``, ``onnxruntime_backend``, ``openvino_backend``)
defines one subclass of :class:`Backend` and one instance of it; :mod:`.registry` lists
them. A backend says which precisions it has at all (:attr:`Backend.precisions`), which
it can run on this machine (:meth:`Backend.runs`: installed, extra packages such as NNCF,
bf16 only with native bfloat16), the int8 options its compile takes, the quantiser
settings an int8 plan chooses among, and how its quantised graph is kept on disk.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import torch
from torch import nn

from ..errors import SettingsError
from .base import Precision, Runtime, RuntimeUnavailable
from .cpu import has_native_bf16

__all__ = ["Backend"]


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


class Backend:
    """One inference runtime: what it can run and how (subclassed once per runtime).

    Attributes:
        runtime: its :class:`Runtime`.
        label: how output and the page name it, e.g. ``"OpenVINO"``.
        package: the Python package that must be installed for it.
        precisions: the precisions it has kernels for (on a suitable CPU).
        extra_packages: precision -> packages it needs besides :attr:`package`
            (e.g. OpenVINO's int8 needs NNCF to quantise).
        int8_options: the keyword arguments its int8 compile takes (an int8 plan's
            ``options``; anything else is refused by :meth:`check_int8_options`).
        graph_suffix: the file suffix of its kept quantised graph (``None``: no int8).
    """

    runtime: ClassVar[Runtime]
    label: ClassVar[str]
    package: ClassVar[str]
    precisions: ClassVar[tuple[Precision, ...]]
    extra_packages: ClassVar[Mapping[Precision, tuple[str, ...]]] = {}
    int8_options: ClassVar[frozenset[str]] = frozenset()
    graph_suffix: ClassVar[str | None] = None

    def installed(self) -> bool:
        """Whether its package is installed here."""
        return _installed(self.package)

    def runs(self, precision: str) -> bool:
        """Whether this machine can run ``precision`` here: installed, with the extra
        packages the precision needs, and bf16 only where the CPU computes it natively
        (elsewhere every runtime emulates it, slower than float32)."""
        if precision not in self.precisions or not self.installed():
            return False
        if precision == Precision.BF16 and not has_native_bf16():
            return False
        return all(_installed(p) for p in self.extra_packages.get(Precision(precision), ()))

    def choice_label(self, precision: str) -> str:
        """How output and the page name this runtime at ``precision``, e.g. ``"OpenVINO INT8"``."""
        return f"{self.label} {str(precision).upper()}"

    def check_int8_options(self, options: Mapping[str, Any]) -> None:
        """Refuse int8 options this runtime does not have.

        Raises:
            SettingsError: an option outside :attr:`int8_options`.
        """
        unknown = set(options) - self.int8_options
        if unknown:
            raise SettingsError(f"{self.runtime} int8 has no option(s) {sorted(unknown)}; it has: "
                                f"{', '.join(sorted(self.int8_options)) or 'none'}")

    def int8_candidates(self) -> list[dict[str, Any]]:
        """The quantiser settings an int8 plan chooses among on this CPU (default: the
        runtime's own defaults only)."""
        return [{}]

    def compile(self, model: nn.Module, precision: str, calibration: Sequence[torch.Tensor] | None = None,
                keep_fp32: Sequence[str] = (), threads: int | None = None, quantized: Any = None,
                **int8_options: Any) -> nn.Module:
        """``model`` ready to run here at ``precision`` (see
        :func:`hscc_mri.runtimes.compile_model`, which checks the options first)."""
        raise NotImplementedError

    def read_graph(self, path: Path) -> Any:
        """The quantised graph kept at ``path`` (what :meth:`compile` takes as ``quantized``)."""
        raise RuntimeUnavailable(f"{self.label} keeps no quantised graphs")

    def write_graph(self, compiled: nn.Module, path: Path) -> None:
        """Keep the quantised graph of ``compiled`` (an int8 model of this runtime) at ``path``."""
        raise RuntimeUnavailable(f"{self.label} keeps no quantised graphs")
