"""Compressed layer modules: what a factorised layer becomes at run time.

Every module here is built from a JSON-able ``config`` (so artifacts can rebuild it
without pickles) and exports to ONNX. Shapes use ``I`` input channels, ``O`` output
channels, ``k`` kernel, ``d`` rank.

* :class:`LowRankConv2d` — ``k x k`` conv with ``d`` filters, then ``1 x 1`` ``d → O`` with
  bias. Used by Global SVD and by HSCC with a ``1 x 1`` grid. With channel clusters, the
  first conv also computes each cluster's residual filters and a :class:`ClusterHead`
  adds their cluster-only ``1 x 1`` maps.
* :class:`SpatialLowRankConv2d` — one such pair per output region of a ``gh x gw`` grid.
  Execution is engineered for speed: the input is padded once; each region convolves a
  view of it (no halo copies of the whole map); the 1x1 stage and bias are one
  ``addmm``-style conv; regions of rank 0 emit their constant bias; rows of regions are
  assembled with a single ``cat`` per axis.
* :class:`LowRankLinear` — ``Linear(D → d)`` then ``Linear(d → O)`` with bias.
* :class:`TuckerConv2d` — Tucker-2: ``1x1 (I → R_in)``, ``k x k (R_in → R_out)``,
  ``1x1 (R_out → O)``.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CompressionError, ConfigError

__all__ = ["ClusterHead", "LowRankConv2d", "LowRankLinear", "MODULE_TYPES", "SpatialLowRankConv2d",
           "TuckerConv2d", "module_factory", "register_module_type"]

#: Module types that an artifact may name, mapped to ``(config) -> nn.Module`` factories.
#: The compressed layer types below register themselves; users may add their own.
MODULE_TYPES: dict[str, Callable[[dict[str, Any]], nn.Module]] = {}


def register_module_type(name: str, factory: Callable[[dict[str, Any]], nn.Module]) -> None:
    """Allow artifacts to contain modules of type ``name`` built by ``factory(config)``."""
    if name in MODULE_TYPES and MODULE_TYPES[name] is not factory:
        raise ConfigError(f"module type {name!r} is already registered")
    MODULE_TYPES[name] = factory


def module_factory(name: str) -> Callable[[dict[str, Any]], nn.Module] | None:
    """The factory registered for module type ``name`` (``None`` if there is none)."""
    return MODULE_TYPES.get(name)


def _pair(v: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv_geometry(conv: nn.Conv2d) -> dict[str, Any]:
    """The JSON-able geometry of a conv (channels, kernel, stride, padding, dilation)."""
    if conv.groups != 1:
        raise CompressionError(f"grouped convolutions are not targets (groups={conv.groups})")
    if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
        raise CompressionError("only explicit zero padding is supported")
    return {
        "in_channels": conv.in_channels, "out_channels": conv.out_channels,
        "kernel_size": list(_pair(conv.kernel_size)), "stride": list(_pair(conv.stride)),
        "padding": list(_pair(conv.padding)), "dilation": list(_pair(conv.dilation)),
    }


def conv_output_size(hw: tuple[int, int] | torch.Size, conv: nn.Conv2d) -> tuple[int, int]:
    """Output ``(H, W)`` of ``conv`` for an input of spatial size ``hw``."""
    return tuple(  # type: ignore[return-value]
        (int(hw[i]) + 2 * conv.padding[i] - conv.dilation[i] * (conv.kernel_size[i] - 1) - 1) // conv.stride[i] + 1
        for i in range(2))


class ClusterHead(nn.Module):
    """The cluster-specific second stage of a hierarchical factor (HSCC.md §4).

    ``clusters`` is a list of ``{"channels": [...], "rank": d_g}``; cluster ``g`` maps its
    ``d_g`` residual filter responses to its own ``|g|`` output channels only (a 1x1 conv
    costing ``d_g |g|`` per pixel instead of ``d_g O``). The cluster outputs are
    concatenated behind one zero channel and gathered into channel order with a constant
    index (one ``index_select``: no Python per channel, ONNX ``Gather``).
    """

    def __init__(self, out_channels: int, clusters: list[dict[str, Any]]) -> None:
        super().__init__()
        self.active = [c for c in clusters if int(c["rank"]) > 0]
        self.ranks = [int(c["rank"]) for c in self.active]
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.zeros(len(c["channels"]), int(c["rank"]), 1, 1)) for c in self.active])
        gather = torch.zeros(out_channels, dtype=torch.long)
        pos = 1
        for c in self.active:
            for ch in c["channels"]:
                gather[int(ch)] = pos
                pos += 1
        self.register_buffer("gather", gather, persistent=False)

    @property
    def total_rank(self) -> int:
        return sum(self.ranks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z``: the ``Σ d_g`` cluster filter responses → the ``(N, O, h, w)`` cluster term."""
        n, _, h, w = z.shape
        pieces, start = [z.new_zeros(n, 1, h, w)], 0
        for d, weight in zip(self.ranks, self.weights):
            pieces.append(F.conv2d(z[:, start:start + d], weight))
            start += d
        return torch.cat(pieces, dim=1).index_select(1, self.gather)


class LowRankConv2d(nn.Module):
    """``conv(I → d, k x k)`` then ``conv(d → O, 1 x 1) + bias``. ``d = 0`` outputs the bias."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        g = self.config
        self.rank = int(g["rank"])
        self.out_channels = int(g["out_channels"])
        self.head = ClusterHead(self.out_channels, g["clusters"]) if g.get("clusters") else None
        total = self.rank + (self.head.total_rank if self.head is not None else 0)
        self.first = nn.Conv2d(g["in_channels"], max(total, 1), _pair(g["kernel_size"]), _pair(g["stride"]),
                               _pair(g["padding"]), _pair(g["dilation"]), bias=False)
        self.second = nn.Conv2d(max(self.rank, 1), self.out_channels, 1, bias=True)
        self.total_rank = total
        if self.rank == 0:  # keep shapes valid; the forward never uses the weights
            nn.init.zeros_(self.second.weight)
        if total == 0:
            nn.init.zeros_(self.first.weight)

    def _constant(self, x: torch.Tensor) -> torch.Tensor:
        h, w = conv_output_size(x.shape[-2:], self.first)
        # A fresh tensor, not an expanded view of the parameter: views of parameters
        # break FlopCounterMode's module tracker under inference mode.
        return x.new_zeros(x.shape[0], self.out_channels, h, w) + self.second.bias.view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.total_rank == 0:
            return self._constant(x)
        z = self.first(x)
        if self.head is None:
            return self.second(z)
        out = self.second(z[:, :self.rank]) if self.rank else self._constant(x)
        return out + self.head(z[:, self.rank:])


class LowRankLinear(nn.Module):
    """``Linear(D → d)`` then ``Linear(d → O) + bias``."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        d = max(int(config["rank"]), 1)
        self.first = nn.Linear(int(config["in_features"]), d, bias=False)
        self.second = nn.Linear(d, int(config["out_features"]), bias=True)
        if int(config["rank"]) == 0:
            nn.init.zeros_(self.first.weight)
            nn.init.zeros_(self.second.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


def grid_bounds(size: int, parts: int) -> list[int]:
    """Split ``size`` output rows (or columns) into ``parts`` near-equal bands.

    Returns ``parts + 1`` boundaries ``[0, ..., size]``.
    """
    if not 1 <= parts <= size:
        raise CompressionError(f"cannot cut {size} pixels into {parts} regions")
    return [round(i * size / parts) for i in range(parts + 1)]


class SpatialLowRankConv2d(nn.Module):
    """A conv replaced by one low-rank factor pair per output region of a grid.

    Config keys: conv geometry (see :func:`conv_geometry`), ``out_size [H, W]`` (output map
    size at the model's input size), ``rows`` and ``cols`` (region boundaries in output
    pixels, from :func:`grid_bounds`), ``ranks`` (row-major list, one per region).
    Parameters: ``first.{r}`` (``d_r x I x k x k``), ``second.{r}`` (``O x d_r x 1 x 1``) and
    ``bias`` (``R x O``). Optional ``clusters``: per region a list of
    ``{"channels", "rank"}`` (see :class:`ClusterHead`); their filters follow the shared
    ones in ``first.{r}``.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        g = self.config
        self.in_channels, self.out_channels = int(g["in_channels"]), int(g["out_channels"])
        self.kernel, self.stride = _pair(g["kernel_size"]), _pair(g["stride"])
        self.padding, self.dilation = _pair(g["padding"]), _pair(g["dilation"])
        self.rows, self.cols = [int(v) for v in g["rows"]], [int(v) for v in g["cols"]]
        self.out_size = (int(g["out_size"][0]), int(g["out_size"][1]))
        self.ranks = [int(r) for r in g["ranks"]]
        n_regions = (len(self.rows) - 1) * (len(self.cols) - 1)
        if len(self.ranks) != n_regions:
            raise CompressionError(f"{len(self.ranks)} ranks for {n_regions} regions")
        kh, kw = self.kernel
        clusters = g.get("clusters") or [[] for _ in self.ranks]
        self.heads = nn.ModuleList([ClusterHead(self.out_channels, c) for c in clusters])
        self.total_ranks = [d + h.total_rank for d, h in zip(self.ranks, self.heads)]
        self.first = nn.ParameterList(
            [nn.Parameter(torch.zeros(max(d, 1), self.in_channels, kh, kw)) for d in self.total_ranks])
        self.second = nn.ParameterList(
            [nn.Parameter(torch.zeros(self.out_channels, max(d, 1), 1, 1)) for d in self.ranks])
        self.bias = nn.Parameter(torch.zeros(n_regions, self.out_channels))

    def _input_window(self, r0: int, r1: int, c0: int, c1: int) -> tuple[int, int, int, int]:
        """Rows/cols of the padded input that produce output rows r0:r1, cols c0:c1."""
        (sh, sw), (dh, dw), (kh, kw) = self.stride, self.dilation, self.kernel
        return (r0 * sh, (r1 - 1) * sh + dh * (kh - 1) + 1, c0 * sw, (c1 - 1) * sw + dw * (kw - 1) + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = self.padding
        xp = F.pad(x, (pw, pw, ph, ph)) if (ph or pw) else x
        n_cols = len(self.cols) - 1
        band_rows = []
        for i in range(len(self.rows) - 1):
            r0, r1 = self.rows[i], self.rows[i + 1]
            pieces = []
            for j in range(n_cols):
                c0, c1 = self.cols[j], self.cols[j + 1]
                r = i * n_cols + j
                bias, d, head = self.bias[r], self.ranks[r], self.heads[r]
                if self.total_ranks[r] == 0:
                    pieces.append(x.new_zeros(x.shape[0], self.out_channels, r1 - r0, c1 - c0) + bias.view(1, -1, 1, 1))
                    continue
                a0, a1, b0, b1 = self._input_window(r0, r1, c0, c1)
                z = F.conv2d(xp[:, :, a0:a1, b0:b1], self.first[r], None, self.stride, 0, self.dilation)
                if head.total_rank == 0:
                    pieces.append(F.conv2d(z, self.second[r], bias))
                    continue
                out = (F.conv2d(z[:, :d], self.second[r], bias) if d else
                       z.new_zeros(z.shape[0], self.out_channels, r1 - r0, c1 - c0) + bias.view(1, -1, 1, 1))
                pieces.append(out + head(z[:, d:]))
            band_rows.append(torch.cat(pieces, dim=3) if len(pieces) > 1 else pieces[0])
        return torch.cat(band_rows, dim=2) if len(band_rows) > 1 else band_rows[0]


class TuckerConv2d(nn.Module):
    """Tucker-2 factorised conv: ``1x1 (I → R_in)``, ``k x k (R_in → R_out)``, ``1x1 (R_out → O) + bias``."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        g = self.config
        r_in, r_out = int(g["rank_in"]), int(g["rank_out"])
        self.first = nn.Conv2d(g["in_channels"], r_in, 1, bias=False)
        self.core = nn.Conv2d(r_in, r_out, _pair(g["kernel_size"]), _pair(g["stride"]), _pair(g["padding"]),
                              _pair(g["dilation"]), bias=False)
        self.last = nn.Conv2d(r_out, g["out_channels"], 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.core(self.first(x)))


for _cls in (LowRankConv2d, LowRankLinear, SpatialLowRankConv2d, TuckerConv2d):
    register_module_type(_cls.__name__, _cls)
