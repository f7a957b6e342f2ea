"""``compress(model, calibration, config) -> (compressed_model, report)``.

The compression flow: model + calibration images → statistics → plan (ranks) →
compressed model → report. One entry point for every method:

* ``svd`` / ``tucker``: weights only; one FLOPs ratio for every target layer.
* ``hscc``: (1) one forward pass over the calibration images accumulates per-region
  response statistics of every target layer; (2) the global allocator turns their
  spectra into ranks under the budget; (3) with sequential refit, layers are fitted in
  network order against the partially compressed network (HSCC.md §2), otherwise
  directly by response PCA (§5).
"""
from __future__ import annotations

import copy
import os
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .allocate import LayerPlan, greedy_ranks, uniform_ranks
from .artifacts import atomic_write
from .config import CompressionConfig, CompressionReport, Method
from .distributed import all_reduce_sum_, broadcast_module_
from .errors import CompressionError
from .factorize import (co_activation_clusters, eigenvalues, hierarchical_factors, pca_factors, refit_factors,
                        residual_cluster_spectra, ridge_map, svd_factors, top_eigen, tucker2_factors)
from .flops import count_flops, count_params, flops_by_module, input_shape_of
from .graph import layer_shapes, replace_submodule, sequential_stages, target_layers
from .modules import (LowRankConv2d, LowRankLinear, SpatialLowRankConv2d, TuckerConv2d, conv_geometry,
                      grid_bounds)
from .progress import progress_bar
from .stats import RegionMoments

Factors = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class TuckerFactors:
    """Tucker-2 factors of one conv: ``first (I x R_in)``, ``core (R_out, R_in, k, k)``,
    ``last (O x R_out)`` and the bias ``(O,)``."""

    first: np.ndarray
    core: np.ndarray
    last: np.ndarray
    bias: np.ndarray


# ----------------------------------------------------------------------------- plans
def _weight_matrix(layer: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    w = layer.weight.detach().double().cpu().numpy()
    b = layer.bias.detach().double().cpu().numpy() if layer.bias is not None else np.zeros(w.shape[0])
    return w.reshape(w.shape[0], -1), b


def make_plans(model: nn.Module, names: Sequence[str], regions: tuple[int, int],
               input_shape: Sequence[int] | None = None) -> list[LayerPlan]:
    """One :class:`LayerPlan` per target layer, with its output grid at the input size
    ``input_shape`` (default: the model's own)."""
    shapes = layer_shapes(model, names, input_shape)
    plans = []
    for name in names:
        layer = model.get_submodule(name)
        out_shape = shapes[name][1]
        if isinstance(layer, nn.Conv2d):
            h, w = out_shape[2], out_shape[3]
            rows, cols = grid_bounds(h, min(regions[0], h)), grid_bounds(w, min(regions[1], w))
            areas = [(rows[i + 1] - rows[i]) * (cols[j + 1] - cols[j])
                     for i in range(len(rows) - 1) for j in range(len(cols) - 1)]
            d = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
            in_shape = shapes[name][0]
            plans.append(LayerPlan(name, "conv", d, layer.out_channels, rows, cols, areas,
                                   2 * layer.out_channels * d * h * w, in_size=(in_shape[2], in_shape[3])))
        else:
            plans.append(LayerPlan(name, "linear", layer.in_features, layer.out_features, [0, 1], [0, 1], [1],
                                   2 * layer.out_features * layer.in_features))
    return plans


# ----------------------------------------------------------------------------- modules
def build_lowrank_module(plan: LayerPlan, layer: nn.Module, factors: Sequence[Factors],
                         out_size: tuple[int, int] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Turn per-region factors ``(first (d x D), second (O x d), bias (O,))`` into a module
    (a fourth element, per-cluster ``P_g``, adds cluster heads; see :func:`hierarchical_factors`).

    Returns the module and its artifact record config (without the path).
    """
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float()  # noqa: E731
    if plan.kind == "linear":
        first, second, bias = factors[0]
        cfg = {"in_features": plan.in_dim, "out_features": plan.out_dim, "rank": int(first.shape[0])}
        mod = LowRankLinear(cfg)
        with torch.no_grad():
            if first.shape[0]:
                mod.first.weight.copy_(t(first))
                mod.second.weight.copy_(t(second))
            mod.second.bias.copy_(t(bias))
        return mod, {"type": "LowRankLinear", "config": cfg}
    geom = conv_geometry(layer)
    kh, kw = geom["kernel_size"]
    def cluster_cfg(r: int) -> list[dict[str, Any]]:
        if plan.clusters is None or len(factors[r]) < 4:
            return []
        return [{"channels": [int(c) for c in ch], "rank": int(pg.shape[1])}
                for ch, pg in zip(plan.clusters[r], factors[r][3])]

    def fill_head(head, r: int) -> None:
        if len(factors[r]) < 4:
            return
        for weight, pg in zip(head.weights, [pg for pg in factors[r][3] if pg.shape[1]]):
            weight.copy_(t(pg).reshape(weight.shape))

    if plan.num_regions == 1:
        first, second, bias = factors[0][:3]
        cfg = {**geom, "rank": int(second.shape[1])}
        if cluster_cfg(0):
            cfg["clusters"] = cluster_cfg(0)
        mod = LowRankConv2d(cfg)
        with torch.no_grad():
            if first.shape[0]:
                mod.first.weight.copy_(t(first).reshape(-1, geom["in_channels"], kh, kw))
            if second.shape[1]:
                mod.second.weight.copy_(t(second).reshape(plan.out_dim, -1, 1, 1))
            mod.second.bias.copy_(t(bias))
            if mod.head is not None:
                fill_head(mod.head, 0)
        return mod, {"type": "LowRankConv2d", "config": cfg}
    cfg = {**geom, "rows": plan.rows, "cols": plan.cols, "out_size": [plan.rows[-1], plan.cols[-1]],
           "ranks": [int(f[1].shape[1]) for f in factors]}
    if any(cluster_cfg(r) for r in range(len(factors))):
        cfg["clusters"] = [cluster_cfg(r) for r in range(len(factors))]
    mod = SpatialLowRankConv2d(cfg)
    with torch.no_grad():
        for r, f in enumerate(factors):
            first, second, bias = f[:3]
            if first.shape[0]:
                mod.first[r].copy_(t(first).reshape(-1, geom["in_channels"], kh, kw))
            if second.shape[1]:
                mod.second[r].copy_(t(second).reshape(plan.out_dim, -1, 1, 1))
            mod.bias[r].copy_(t(bias))
            fill_head(mod.heads[r], r)
    return mod, {"type": "SpatialLowRankConv2d", "config": cfg}


def build_tucker_module(layer: nn.Conv2d, factors: TuckerFactors) -> tuple[nn.Module, dict[str, Any]]:
    """A :class:`TuckerConv2d` holding ``factors``, and its artifact record config."""
    cfg = {**conv_geometry(layer), "rank_in": int(factors.first.shape[1]), "rank_out": int(factors.last.shape[1])}
    mod = TuckerConv2d(cfg)
    with torch.no_grad():
        mod.first.weight.copy_(torch.from_numpy(factors.first.T.copy()).float()[:, :, None, None])
        mod.core.weight.copy_(torch.from_numpy(np.ascontiguousarray(factors.core)).float())
        mod.last.weight.copy_(torch.from_numpy(factors.last.copy()).float()[:, :, None, None])
        mod.last.bias.copy_(torch.from_numpy(np.ascontiguousarray(factors.bias)).float())
    return mod, {"type": "TuckerConv2d", "config": cfg}


def build_module(plan: LayerPlan, layer: nn.Module,
                 factors: Sequence[Factors] | TuckerFactors) -> tuple[nn.Module, dict[str, Any]]:
    """The compressed module for ``plan`` from its factors (every method builds here):
    Tucker-2 factors give a :class:`TuckerConv2d`, per-region low-rank factors the
    low-rank conv/linear modules (see :func:`build_lowrank_module`)."""
    if isinstance(factors, TuckerFactors):
        return build_tucker_module(layer, factors)
    return build_lowrank_module(plan, layer, factors)


def _install(compressed: nn.Module, plan: LayerPlan, layer: nn.Module, factors: Sequence[Factors] | TuckerFactors,
             records: list[dict[str, Any]]) -> nn.Module:
    """Build the factored module for ``plan``, put it into ``compressed`` and record it."""
    module, record = build_module(plan, layer, factors)
    replace_submodule(compressed, plan.name, module)
    records.append({"path": plan.name, **record})
    return module


# ----------------------------------------------------------------------------- statistics
def _as_batches(calibration: Iterable) -> list[torch.Tensor]:
    batches = []
    for item in calibration:
        x = item[0] if isinstance(item, (tuple, list)) else item
        batches.append(torch.as_tensor(x).float())
    if not batches:
        raise CompressionError("the calibration set is empty")
    return batches


@torch.no_grad()
def collect_statistics(model: nn.Module, batches: Sequence[torch.Tensor], plans: Sequence[LayerPlan],
                       progress: bool = True) -> list[RegionMoments]:
    """One forward pass with hooks: per-region response moments of every planned layer."""
    stats = [RegionMoments.empty(p.out_dim, p.rows, p.cols) for p in plans]
    hooks = [model.get_submodule(p.name).register_forward_hook(lambda m, i, o, s=s: s.update(o))
             for p, s in zip(plans, stats)]
    try:
        for x in progress_bar(batches, desc="calibration statistics", unit="batch", disable=not progress, leave=False):
            model(x)
    finally:
        for h in hooks:
            h.remove()
    for s in stats:  # under torchrun: each process saw its share of the calibration set
        s.all_reduce_()
    return stats


@dataclass(frozen=True)
class CalibrationStatistics:
    """The calibration statistics of one model's planned layers, collected once and given to
    :func:`compress` (``statistics=``) for any number of HSCC runs on the same calibration
    set that differ only in budget, allocation, clusters, ridge or refit.

    The layer plans depend on the model, ``include``/``exclude``, ``regions`` and the input
    size, never on the budget, so one collection serves every budget; :func:`compress`
    refuses statistics whose layers, grids or image count do not match its own.

    Attributes:
        layers: the planned layers' names, in network order.
        moments: their per-region response moments (read only; never modified by ``compress``).
        images: calibration images they were collected on (all processes together).
        seconds: how long the collection took.
    """

    layers: tuple[str, ...]
    moments: tuple[RegionMoments, ...]
    images: int
    seconds: float

    def check(self, plans: Sequence[LayerPlan], images: int) -> None:
        """Raise :class:`CompressionError` unless these statistics belong to ``plans`` over
        ``images`` calibration images."""
        names = tuple(p.name for p in plans)
        if names != self.layers:
            raise CompressionError(f"the statistics were collected for layers {list(self.layers)}, "
                                   f"this compression plans {list(names)}")
        for p, m in zip(plans, self.moments):
            if (m.rows, m.cols, int(m.sum_y.shape[1])) != (p.rows, p.cols, p.out_dim):
                raise CompressionError(f"the statistics of {p.name} were collected on another region grid "
                                       "(regions or input size differ)")
        if images != self.images:
            raise CompressionError(f"the statistics were collected on {self.images} calibration images, "
                                   f"this compression got {images}")


def calibration_statistics(model: nn.Module, calibration: Iterable, config: CompressionConfig,
                           progress: bool = True, input_shape: Sequence[int] | None = None) -> CalibrationStatistics:
    """Collect the HSCC calibration statistics that :func:`compress` would collect for
    ``config`` (its layers and regions; the budget does not matter), to pass to it as
    ``statistics=`` for several budgets. Same arguments as :func:`compress`."""
    t0 = time.perf_counter()
    model = model.eval()
    _, plans = _plan_layers(model, calibration, config, input_shape)
    batches = _as_batches(calibration)
    images = _count_images(batches)
    moments = collect_statistics(model, batches, plans, progress)
    return CalibrationStatistics(tuple(p.name for p in plans), tuple(moments), images, time.perf_counter() - t0)


def _energy_ranks(plan: LayerPlan, spectra: Sequence[np.ndarray], tau: float, multiple: int = 1) -> list[int]:
    ranks = []
    for lam in spectra:
        total = float(np.sum(lam))
        d = int(np.searchsorted(np.cumsum(lam), tau * total - 1e-12) + 1) if total > 0 else 0
        d = -(-d // multiple) * multiple  # round up: never keep less energy than asked
        ranks.append(min(d, plan.max_rank))
    return ranks


def _allocate_clusters(plans: Sequence[LayerPlan], stats: Sequence[RegionMoments],
                       spectra: Sequence[Sequence[np.ndarray]], target_flops: float, config: CompressionConfig) -> None:
    """Second allocation pass with cluster units (HSCC.md §4).

    Channels of each conv region are clustered by co-activation; each cluster offers
    residual units left after the shared ranks of the first (``K = 1``) pass, and shared
    and cluster units compete again for the same budget.
    """
    cluster_spectra = []
    for p, s in zip(plans, stats):
        if p.kind != "conv":
            cluster_spectra.append([])
            continue
        covs = [s.covariance(r) for r in range(p.num_regions)]
        p.clusters = [co_activation_clusters(c, config.clusters) for c in covs]
        cluster_spectra.append([residual_cluster_spectra(c, d, ch) for c, d, ch in zip(covs, p.ranks, p.clusters)])
    greedy_ranks(plans, spectra, target_flops, ratio_bounds=config.ratio_bounds,
                 rank_multiple=config.rank_multiple, cluster_spectra=cluster_spectra)


#: Above this estimated size of one activation stream of the sequential refit (bytes, float16),
#: the streams are spilled to disk; ``$HSCC_SPILL_BYTES`` overrides it (``0``: always spill).
SPILL_THRESHOLD_BYTES = 1 << 28


def _spill_threshold() -> int:
    """``$HSCC_SPILL_BYTES`` if set, else :data:`SPILL_THRESHOLD_BYTES` (read at call time)."""
    env = os.environ.get("HSCC_SPILL_BYTES", "").strip()
    if not env:
        return SPILL_THRESHOLD_BYTES
    try:
        return int(float(env))
    except ValueError:
        raise CompressionError(f"HSCC_SPILL_BYTES must be a number of bytes, got {env!r}") from None


class _MemoryStream:
    """One activation stream, a tensor per calibration batch, held in RAM."""

    def __init__(self, n: int) -> None:
        self._items: list[torch.Tensor | None] = [None] * n

    def __len__(self) -> int:
        return len(self._items)

    def get(self, j: int) -> torch.Tensor:
        t = self._items[j]
        if t is None:
            raise KeyError(f"stream batch {j} was never written")
        return t

    def put(self, j: int, t: torch.Tensor) -> None:
        self._items[j] = t

    def close(self) -> None:
        self._items = [None] * len(self._items)


class _SpilledStream:
    """One activation stream, a tensor per calibration batch, in files of ``directory``.

    Each batch is one ``.npy`` file, written and read with plain file I/O (no memory
    mapping, whose pages would count in the RSS; no pickle). :meth:`put` writes a new
    file and then replaces the old one, so batch ``j`` may be overwritten while the
    other batches are still to be read. Only the batch in hand is in memory.
    """

    def __init__(self, directory: str | os.PathLike, name: str, n: int) -> None:
        self._dir = os.fspath(directory)
        self._name = name
        self._written = [False] * n

    def _path(self, j: int) -> str:
        return os.path.join(self._dir, f"{self._name}-{j:06d}.npy")

    def __len__(self) -> int:
        return len(self._written)

    def get(self, j: int) -> torch.Tensor:
        if not self._written[j]:
            raise KeyError(f"stream batch {j} was never written")
        with open(self._path(j), "rb") as f:
            return torch.from_numpy(np.load(f, allow_pickle=False))

    def put(self, j: int, t: torch.Tensor) -> None:
        array = t.detach().cpu().contiguous().numpy()

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.save(f, array, allow_pickle=False)

        atomic_write(self._path(j), write)
        self._written[j] = True

    def close(self) -> None:
        for j, w in enumerate(self._written):
            if w:
                try:
                    os.remove(self._path(j))
                except FileNotFoundError:
                    pass
        self._written = [False] * len(self._written)


@torch.no_grad()
def _stream_bytes(stages: Sequence[tuple[str, nn.Module]], at: Sequence[int],
                  batches: Sequence[torch.Tensor]) -> int:
    """Estimated bytes of the widest stored stream: images x (C x H x W) x 2 (float16).

    The stored streams are the inputs of the 2nd, 3rd, ... planned layer (the first
    one's input is recomputed from the images); their per-image sizes are measured by
    running one calibration image through the stages.
    """
    if len(at) < 2:
        return 0
    t = batches[0][:1].float()
    widest = 0
    for i, (_, stage) in enumerate(stages[:at[-1]]):
        t = stage(t)
        if i + 1 in at[1:]:
            widest = max(widest, t.numel())
    return widest * sum(len(b) for b in batches) * 2


@torch.no_grad()
def _sequential_refit(model: nn.Module, compressed: nn.Module, batches: Sequence[torch.Tensor],
                      plans: Sequence[LayerPlan], ridge: float, progress: bool) -> list[dict[str, Any]]:
    """Fit every planned layer in network order against the partially compressed network.

    Two activation streams are carried from planned layer to planned layer (original
    ``x`` and compressed ``x̂``), stored in float16. Memory is what bounds this on a
    laptop, so each stream holds the *input of the next planned layer*: the stages in
    between (ReLU, pooling) run right after the planned layer, batch by batch, and the
    stages before the first planned layer (where both streams are still the images) are
    recomputed from the images rather than stored — for VGG16 at 240 px that keeps
    64-channel full-resolution maps out of memory (peak 4.2 GB → under 3 GB).

    Where the streams are stored: if the widest stream (calibration images x C x H x W
    x 2 bytes) is estimated above :data:`SPILL_THRESHOLD_BYTES` (256 MiB: VGG16 at 240 px
    from 128 calibration images on; the environment variable ``HSCC_SPILL_BYTES``
    overrides it, ``0`` = always), both streams live in
    files of a private temporary folder, one file per batch (under
    ``tempfile.gettempdir()``, or ``$HSCC_SPILL_DIR`` if set; removed at the end, also on
    errors and interrupts), so the peak memory does not grow with the calibration set;
    otherwise they stay in RAM. Both ways give bit-identical results.
    """
    if not plans:
        return []
    by_name = {p.name: p for p in plans}
    stages = sequential_stages(model)
    at = [i for i, (name, _) in enumerate(stages) if name in by_name]
    if len(at) != len(plans):
        missing = sorted(set(by_name) - {stages[i][0] for i in at})
        raise CompressionError(f"sequential refit: layers not in the model's stage list: {', '.join(missing)}")
    prefix = nn.Sequential(*(s for _, s in stages[:at[0]]))
    store = lambda t: t.to(torch.float16)  # noqa: E731
    n = len(batches)
    if _stream_bytes(stages, at, batches) > _spill_threshold():
        spill_dir = tempfile.TemporaryDirectory(prefix="hscc-refit-",
                                                dir=os.environ.get("HSCC_SPILL_DIR") or None)
        xs, hs = _SpilledStream(spill_dir.name, "x", n), _SpilledStream(spill_dir.name, "h", n)
    else:
        spill_dir = None
        xs, hs = _MemoryStream(n), _MemoryStream(n)
    image = lambda j: store(batches[j])  # noqa: E731  both streams start as the images
    records = []
    try:
        for k, i in enumerate(progress_bar(at, desc="sequential refit", unit="layer", disable=not progress, leave=False)):
            name, stage = stages[i]
            plan = by_name[name]
            last = k == len(at) - 1
            post = nn.Sequential(*(s for _, s in stages[i + 1:at[k + 1] if not last else i + 1]))
            enter = (lambda t: prefix(t.float())) if k == 0 else (lambda t: t.float())  # noqa: E731
            x_of, h_of = (image, image) if k == 0 else (xs.get, hs.get)
            moments = RegionMoments.empty(plan.out_dim, plan.rows, plan.cols, joint=True)
            for j in range(n):
                y = stage(enter(x_of(j)))
                y_hat = y if k == 0 else stage(enter(h_of(j)))  # nothing compressed upstream yet
                moments.update(y, y_hat)
                if not last:
                    xs.put(j, store(post(y)))
                del y, y_hat
            moments.all_reduce_()
            w, b = _weight_matrix(stage)
            factors = []
            for r, d in enumerate(plan.ranks):
                mu_y, mu_h, _, c_hh, c_yh = moments.joint_moments(r)
                if plan.clusters is not None:
                    a = ridge_map(c_hh, c_yh, ridge)
                    factors.append(hierarchical_factors(w, b, a, a @ c_yh.T, mu_h, mu_y, d, plan.clusters[r],
                                                        plan.cluster_ranks[r]))
                else:
                    factors.append(refit_factors(w, b, mu_y, mu_h, c_hh, c_yh, d, ridge))
            del moments
            module = _install(compressed, plan, stage, factors, records)
            if not last:
                for j in range(n):
                    hs.put(j, store(post(module(enter(h_of(j))))))
    finally:
        xs.close()
        hs.close()
        if spill_dir is not None:
            spill_dir.cleanup()
    return records


# ----------------------------------------------------------------------------- entry point
@dataclass
class _Job:
    """What one method needs: the original and its copy being compressed, the plans,
    the FLOPs the planned layers may use, the calibration data and the config."""

    model: nn.Module
    compressed: nn.Module
    plans: list[LayerPlan]
    target_flops: float | None
    calibration: Iterable | None
    config: CompressionConfig
    progress: bool
    seconds: dict[str, float]
    records: list[dict[str, Any]]
    calibration_images: int = 0
    statistics: CalibrationStatistics | None = None


def _run_svd(job: _Job) -> None:
    """Global SVD: one FLOPs ratio for every layer, truncated SVD of its weights."""
    uniform_ranks(job.plans, job.target_flops)
    for p in job.plans:
        layer = job.model.get_submodule(p.name)
        w, b = _weight_matrix(layer)
        _install(job.compressed, p, layer, [svd_factors(w, b, p.ranks[0])], job.records)


def _run_tucker(job: _Job) -> None:
    job.records.extend(_tucker(job.model, job.compressed, job.plans, job.target_flops))


def _run_hscc(job: _Job) -> None:
    """HSCC: statistics, allocation, then sequential refit (or direct response PCA)."""
    config, plans, model, seconds = job.config, job.plans, job.model, job.seconds
    if job.calibration is None:
        raise CompressionError("HSCC is data-aware: give calibration images")
    batches = _as_batches(job.calibration)
    job.calibration_images = _count_images(batches)
    t0 = time.perf_counter()
    if job.statistics is not None:  # collected once for several budgets (the plans do not depend on it)
        job.statistics.check(plans, job.calibration_images)
        stats = list(job.statistics.moments)
    else:
        stats = collect_statistics(model, batches, plans, job.progress)
    seconds["statistics"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if config.sequential:  # the refit finds its own directions: spectra suffice here
        eigen = None
        spectra = [[eigenvalues(s.covariance(r)) for r in range(s.num_regions)] for s in stats]
    else:
        eigen = [[top_eigen(s.covariance(r)) for r in range(s.num_regions)] for s in stats]
        spectra = [[vals for vals, _ in layer] for layer in eigen]
    if config.energy is not None:
        for p, spec in zip(plans, spectra):
            p.ranks = _energy_ranks(p, spec, config.energy, config.rank_multiple)
    elif config.allocation == "uniform":
        uniform_ranks(plans, job.target_flops)
    else:
        greedy_ranks(plans, spectra, job.target_flops, ratio_bounds=config.ratio_bounds,
                     rank_multiple=config.rank_multiple)
        if config.clusters > 1:
            _allocate_clusters(plans, stats, spectra, job.target_flops, config)
    seconds["allocation"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if config.sequential:
        job.records.extend(_sequential_refit(model, job.compressed, batches, plans, config.ridge, job.progress))
    else:
        for p, s, eig in zip(plans, stats, eigen):
            layer = model.get_submodule(p.name)
            w, b = _weight_matrix(layer)
            if p.clusters is not None:
                eye = np.eye(p.out_dim)
                factors = [hierarchical_factors(w, b, eye, s.covariance(r), s.mean(r), s.mean(r), d, p.clusters[r],
                                                p.cluster_ranks[r]) for r, d in enumerate(p.ranks)]
            else:
                factors = [pca_factors(w, b, s.mean(r), s.covariance(r), d, eig[r][1])
                           for r, d in enumerate(p.ranks)]
            _install(job.compressed, p, layer, factors, job.records)
    seconds["factorisation"] = time.perf_counter() - t0


#: The methods :func:`compress` can run, each ``(job) -> None`` filling ``job.compressed``.
METHOD_RUNNERS: dict[Method, Callable[[_Job], None]] = {
    Method.HSCC: _run_hscc, Method.SVD: _run_svd, Method.TUCKER: _run_tucker,
}


def _count_images(batches: Sequence[torch.Tensor]) -> int:
    """Calibration images over all processes (under torchrun each holds its share)."""
    counts = torch.tensor([sum(len(b) for b in batches)], dtype=torch.float64)
    all_reduce_sum_([counts])
    return int(counts.item())


def _plan_layers(model: nn.Module, calibration: Iterable | None, config: CompressionConfig,
                 input_shape: Sequence[int] | None) -> tuple[tuple[int, ...], list[LayerPlan]]:
    """The input shape a compression measures at and the plans of its target layers."""
    shape = input_shape_of(model, input_shape if input_shape is not None else _first_batch_shape(calibration))
    names = target_layers(model, config.include, config.exclude)
    return shape, make_plans(model, names, tuple(config.regions) if config.method == Method.HSCC else (1, 1), shape)


def _first_batch_shape(calibration: Iterable | None) -> tuple[int, ...] | None:
    if isinstance(calibration, (list, tuple)) and calibration:
        item = calibration[0]
        x = item[0] if isinstance(item, (tuple, list)) else item
        if hasattr(x, "shape") and len(x.shape) == 4:
            return (1, *(int(v) for v in x.shape[1:]))
    return None


def compress(model: nn.Module, calibration: Iterable | None, config: CompressionConfig,
             progress: bool = True, input_shape: Sequence[int] | None = None,
             name: str | None = None, statistics: CalibrationStatistics | None = None,
             ) -> tuple[nn.Module, CompressionReport]:
    """Compress ``model`` under ``config``.

    Args:
        model: any CNN classifier built from ``Conv2d``/``Linear`` layers, in eval mode;
            it is not modified.
        calibration: input batches ``(N, C, H, W)`` (or ``(x, y)`` pairs); required by
            ``hscc``, ignored by ``svd``/``tucker``.
        config: the method and its hyper-parameters.
        progress: progress bars on stderr.
        input_shape: ``(1, C, H, W)`` (or ``(C, H, W)``); default the calibration batches'
            shape, else the model's own (see :func:`hscc_core.flops.input_shape_of`).
        name: the model's name in the report (default: its class name).
        statistics: HSCC only: calibration statistics from :func:`calibration_statistics`
            on the same model, layers, regions and calibration images, used instead of
            collecting them again (the result is bit-identical; the report's
            ``seconds["statistics"]`` is then only the check). Layers, grids and the number
            of images are checked; that they are the very same images is the caller's
            promise. Other methods ignore them.

    Returns:
        The compressed model (a copy of ``model`` with its attributes, eval mode,
        ``.hscc_replacements`` set, ready for :func:`hscc_core.save`) and its
        :class:`CompressionReport`.

    Raises:
        CompressionError: the budget is unreachable, HSCC got no calibration data, the
            calibration set is empty, or ``statistics`` belong to other layers or images.
    """
    t_start = time.perf_counter()
    model = model.eval()
    shape, plans = _plan_layers(model, calibration, config, input_shape)
    flops_orig = count_flops(model, shape)
    target_orig = sum(p.flops_original for p in plans)
    target_flops = None
    if config.budget is not None:
        target_flops = flops_orig / config.budget - (flops_orig - target_orig)
        if target_flops <= 0:
            raise CompressionError(f"budget {config.budget}x is unreachable: the layers left uncompressed alone "
                                   f"use {(flops_orig - target_orig) / flops_orig:.0%} of the FLOPs")
    job = _Job(model, copy.deepcopy(model), plans, target_flops, calibration, config, progress, {}, [],
               statistics=statistics)
    METHOD_RUNNERS[Method(config.method)](job)
    compressed, seconds = job.compressed, job.seconds
    broadcast_module_(compressed)  # every process returns rank 0's factors (identical anyway)
    compressed.hscc_replacements = job.records
    compressed.eval()
    seconds["total"] = time.perf_counter() - t_start
    per_module = flops_by_module(compressed, shape)
    layer_flops = {p.name: sum(v for k, v in per_module.items() if k == p.name or k.startswith(p.name + "."))
                   for p in plans}
    report = CompressionReport(
        config=config.to_dict(), model=name or type(model).__name__, input_size=list(shape[1:]),
        flops_original=flops_orig, flops_compressed=count_flops(compressed, shape),
        params_original=count_params(model), params_compressed=count_params(compressed),
        layers=[{"name": p.name, "kind": p.kind, "in_dim": p.in_dim, "out_dim": p.out_dim,
                 "rows": p.rows, "cols": p.cols, "areas": p.areas,
                 "ranks": p.ranks, "max_rank": p.max_rank, "flops_original": p.flops_original,
                 **({"cluster_sizes": [[len(c) for c in reg] for reg in p.clusters],
                     "cluster_ranks": p.cluster_ranks} if p.clusters is not None else {}),
                 "flops_compressed": layer_flops[p.name]} for p in plans],
        calibration_images=job.calibration_images, seconds=seconds,
        peak_memory_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    return compressed, report


# ----------------------------------------------------------------------------- tucker
def _tucker_cost(p: LayerPlan, layer: nn.Conv2d, in_hw: tuple[int, int], r_in: int, r_out: int) -> int:
    kh, kw = layer.kernel_size
    area_out = sum(p.areas)
    return 2 * (in_hw[0] * in_hw[1] * layer.in_channels * r_in + area_out * (r_in * r_out * kh * kw + r_out * p.out_dim))


def _tucker(model: nn.Module, compressed: nn.Module, plans: list[LayerPlan], target_flops: float) -> list[dict]:
    """Tucker-2 for convs (ranks proportional to I and O, one scale per layer solved for a
    common per-layer ratio) and truncated SVD for linear layers, meeting ``target_flops``."""
    def ranks_for(p: LayerPlan, rho: float) -> tuple[int, int]:
        layer = model.get_submodule(p.name)
        if p.kind == "linear":
            d = int(min(p.max_rank, max(1, np.floor(rho * p.out_dim * p.in_dim / (p.out_dim + p.in_dim)))))
            return d, d
        in_hw = p.in_size
        lo, hi = 0.0, 1.0  # scale s: R_in = s*I, R_out = s*O
        for _ in range(40):
            s = (lo + hi) / 2
            r_in, r_out = max(1, round(s * layer.in_channels)), max(1, round(s * layer.out_channels))
            lo, hi = (s, hi) if _tucker_cost(p, layer, in_hw, r_in, r_out) <= rho * p.flops_original else (lo, s)
        return max(1, round(lo * layer.in_channels)), max(1, round(lo * layer.out_channels))

    def cost(p: LayerPlan, r: tuple[int, int]) -> int:
        if p.kind == "linear":
            return p.unit_cost(0) * r[0]
        return _tucker_cost(p, model.get_submodule(p.name), p.in_size, *r)

    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        total = sum(cost(p, ranks_for(p, mid)) for p in plans)
        lo, hi = (mid, hi) if total <= target_flops else (lo, mid)
    records = []
    for p in plans:
        layer = model.get_submodule(p.name)
        r_in, r_out = ranks_for(p, lo)
        if p.kind == "linear":
            p.ranks = [r_in]
            w, b = _weight_matrix(layer)
            _install(compressed, p, layer, [svd_factors(w, b, r_in)], records)
            continue
        u_in, core, u_out = tucker2_factors(layer.weight.detach().double().numpy(), r_in, r_out)
        bias = (layer.bias.detach().numpy() if layer.bias is not None else np.zeros(p.out_dim, np.float32))
        p.ranks = [r_out]
        _install(compressed, p, layer, TuckerFactors(u_in, core, u_out, bias), records)
    return records
