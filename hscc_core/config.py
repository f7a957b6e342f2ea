"""The one validated configuration of a compression run, and its report."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from .errors import CompressionError

__all__ = ["Allocation", "CompressionConfig", "CompressionReport", "METHODS", "Method"]


class Method(str, Enum):
    """The compression methods. Members compare equal to their string values."""

    HSCC = "hscc"      #: hierarchical spatio-channel clustering (data-aware)
    SVD = "svd"        #: Global SVD of each layer's weights
    TUCKER = "tucker"  #: Tucker-2 of each conv's kernel (truncated SVD for linear layers)

    def __str__(self) -> str:
        return self.value


class Allocation(str, Enum):
    """How HSCC spreads the FLOPs budget over the layers."""

    GREEDY = "greedy"    #: global, by response energy per FLOP, within ``ratio_bounds``
    UNIFORM = "uniform"  #: one FLOPs ratio for every layer

    def __str__(self) -> str:
        return self.value


#: The method names, in the order the CLI and reports list them.
METHODS: tuple[str, ...] = tuple(m.value for m in Method)


def _enum(kind: type[Enum], value: Any, what: str) -> Enum:
    try:
        return kind(value)
    except ValueError:
        raise CompressionError(f"{what} must be one of {', '.join(m.value for m in kind)}, got {value!r}") from None


@dataclass(frozen=True)
class CompressionConfig:
    """What to compress and how.

    Attributes:
        method: ``hscc`` (data-aware, regions/clusters), ``svd`` (Global SVD, weights only)
            or ``tucker`` (Tucker-2, weights only).
        budget: whole-model FLOPs ratio ``original / compressed`` (e.g. 3, 6). Exclusive
            with ``energy``.
        energy: HSCC only: keep per region the smallest rank holding this fraction of the
            response energy (e.g. 0.95); the resulting FLOPs are reported.
        regions: ``(gh, gw)`` output grid per conv layer (HSCC only; ``(1, 1)`` = global).
        clusters: channel clusters ``K`` per region (HSCC only; 1 disables clustering).
        sequential: sequential refit (HSCC only; HSCC.md §2).
        include, exclude: shell patterns of layer names (default: all but first conv/last linear).
        allocation: HSCC budget mode: ``greedy`` (global, by response energy per FLOP,
            within ``ratio_bounds``) or ``uniform`` (one FLOPs ratio for every layer).
        ratio_bounds: per-layer FLOPs ratio bounds as multiples of the uniform ratio (greedy).
        ridge: relative ridge of the refit regression.
        rank_multiple: HSCC ranks are multiples of this (CPU kernels work in blocks of 16
            channels: a rank of 17 runs as slowly as 32); charged to the budget. 1 disables.
        seed: for anything random (clustering ties, data order).
    """

    method: Method = Method.HSCC
    budget: float | None = 6.0
    energy: float | None = None
    regions: tuple[int, int] = (1, 1)
    clusters: int = 1
    sequential: bool = True
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    allocation: Allocation = Allocation.GREEDY
    ratio_bounds: tuple[float, float] = (0.5, 2.5)
    ridge: float = 1e-3
    rank_multiple: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        # Strings are accepted everywhere ("hscc"); the config holds the enum members.
        object.__setattr__(self, "method", _enum(Method, self.method, "method"))
        object.__setattr__(self, "allocation", _enum(Allocation, self.allocation, "allocation"))
        object.__setattr__(self, "regions", tuple(self.regions))
        object.__setattr__(self, "include", tuple(self.include))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "ratio_bounds", tuple(self.ratio_bounds))
        self._check()

    def _check(self) -> None:
        error = CompressionError
        if (self.budget is None) == (self.energy is None):
            raise error("give exactly one of budget and energy")
        if self.budget is not None and not self.budget > 1.0:
            raise error(f"budget must be > 1 (a FLOPs reduction factor), got {self.budget}")
        if self.energy is not None and not (0.0 < self.energy <= 1.0):
            raise error(f"energy must be in (0, 1], got {self.energy}")
        if self.energy is not None and self.method != "hscc":
            raise error("energy mode needs data: use method 'hscc'")
        if len(self.regions) != 2 or min(self.regions) < 1:
            raise error(f"regions must be (gh, gw) >= 1, got {self.regions}")
        if self.rank_multiple < 1:
            raise error(f"rank_multiple must be >= 1, got {self.rank_multiple}")
        if self.clusters < 1:
            raise error(f"clusters must be >= 1, got {self.clusters}")
        if self.clusters > 1 and (self.energy is not None or self.allocation != "greedy"):
            raise error("channel clusters (K > 1) need the greedy budget allocation")
        if self.method != "hscc" and (tuple(self.regions) != (1, 1) or self.clusters != 1):
            raise error(f"regions/clusters apply to HSCC only, not {self.method}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: enum members as their string values, tuples as they are."""
        d = asdict(self)
        d["method"], d["allocation"] = self.method.value, self.allocation.value
        return d


@dataclass
class CompressionReport:
    """Everything a compression run did, JSON-serialisable (``to_json``)."""

    config: dict[str, Any]
    model: str
    input_size: list[int]
    flops_original: int = 0
    flops_compressed: int = 0
    params_original: int = 0
    params_compressed: int = 0
    layers: list[dict[str, Any]] = field(default_factory=list)
    calibration_images: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: float = 0.0
    finetune: dict[str, Any] | None = None

    @property
    def flops_ratio(self) -> float:
        return self.flops_original / max(self.flops_compressed, 1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flops_ratio"] = self.flops_ratio
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def table(self) -> str:
        """Per-layer summary for the terminal."""
        lines = [f"{'layer':<16} {'kind':<6} {'regions':>7} {'ranks':<28} {'kept FLOPs':>10}"]
        for l in self.layers:
            ranks = ",".join(str(r) for r in l["ranks"])
            lines.append(f"{l['name']:<16} {l['kind']:<6} {len(l['ranks']):>7} {ranks[:28]:<28} "
                         f"{l['flops_compressed'] / max(l['flops_original'], 1):>9.1%}")
        lines.append(f"model FLOPs {self.flops_original / 1e9:.2f} G -> {self.flops_compressed / 1e9:.2f} G "
                     f"({self.flops_ratio:.2f}x), params {self.params_original / 1e6:.2f} M -> "
                     f"{self.params_compressed / 1e6:.2f} M")
        return "\n".join(lines)
