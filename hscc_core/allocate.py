"""Rank allocation under a global FLOPs budget (HSCC.md §6).

A :class:`LayerPlan` describes one target layer: its grid, the output pixels of each
region and the FLOPs of one rank unit there. Allocators fill ``plan.ranks``.

FLOPs follow ``FlopCounterMode`` (2 per multiply-add, biases not counted): a rank unit in
region ``r`` costs ``2 * area_r * (D + O)`` (its ``k x k`` filter plus its 1x1 column).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass
class LayerPlan:
    """One target layer and its allocated ranks (one per region, row-major)."""

    name: str
    kind: str  # "conv" or "linear"
    in_dim: int  # D = I*k*k
    out_dim: int  # O
    rows: list[int]
    cols: list[int]
    areas: list[int]
    flops_original: int
    in_size: tuple[int, int] = (1, 1)  # input map (H, W) of a conv; (1, 1) for linear
    ranks: list[int] = field(default_factory=list)
    #: per region, the channel index lists of its co-activation clusters (None: no clusters)
    clusters: list[list[list[int]]] | None = None
    #: per region, per cluster: residual rank feeding only that cluster
    cluster_ranks: list[list[int]] | None = None

    @property
    def num_regions(self) -> int:
        return len(self.areas)

    @property
    def max_rank(self) -> int:
        """Largest useful rank: beyond it a factor pair costs more than the layer."""
        return max(1, min(self.out_dim, self.in_dim, (self.out_dim * self.in_dim) // (self.out_dim + self.in_dim)))

    def unit_cost(self, region: int) -> int:
        return 2 * self.areas[region] * (self.in_dim + self.out_dim)

    def flops(self, ranks: Sequence[int] | None = None) -> int:
        """Modelled FLOPs of the factored layer (shared ranks, plus cluster units if any)."""
        own = ranks is None
        ranks = self.ranks if ranks is None else ranks
        total = sum(self.unit_cost(r) * d for r, d in enumerate(ranks))
        if own and self.clusters is not None and self.cluster_ranks is not None:
            total += sum(2 * self.areas[r] * (self.in_dim + len(ch)) * d
                         for r in range(self.num_regions)
                         for ch, d in zip(self.clusters[r], self.cluster_ranks[r]))
        return total


def uniform_ranks(plans: Sequence[LayerPlan], target_flops: float) -> float:
    """Give every layer the same FLOPs ratio ``ρ`` (one rank for all of its regions), with
    ``ρ`` solved by bisection so the summed FLOPs land just under ``target_flops``.
    Sets ``plan.ranks``; returns ``ρ``."""

    def ranks_for(rho: float) -> list[list[int]]:
        out = []
        for p in plans:
            d = int(min(p.max_rank, max(1, math.floor(rho * p.out_dim * p.in_dim / (p.out_dim + p.in_dim)))))
            out.append([d] * p.num_regions)
        return out

    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        total = sum(p.flops(r) for p, r in zip(plans, ranks_for(mid)))
        lo, hi = (mid, hi) if total <= target_flops else (lo, mid)
    for p, r in zip(plans, ranks_for(lo)):
        p.ranks = r
    return lo


def greedy_ranks(plans: Sequence[LayerPlan], spectra: Sequence[Sequence[np.ndarray]], target_flops: float,
                 layer_weights: Sequence[float] | None = None,
                 ratio_bounds: tuple[float, float] = (0.5, 2.5), rank_multiple: int = 1,
                 cluster_spectra: Sequence[Sequence[Sequence[np.ndarray]]] | None = None) -> None:
    """Global greedy allocation of rank units by gain per FLOP.

    The gain of the ``j``-th unit of region ``r`` of layer ``l`` is the share of the layer's
    response energy it keeps, ``area_r λ_rj / Σ_r' area_r' tr C_r'``, times the layer's
    weight ``w_l`` (a measured end-to-end sensitivity; 1 by default). To keep error from
    compounding through layers that the plain score would strip, each layer's FLOPs are
    held within ``ratio_bounds`` times the uniform ratio: first every layer gets its floor
    (its best units), then units are taken globally in descending score.

    With ``cluster_spectra`` (HSCC.md §4), each region also offers *cluster units*: a
    residual direction that feeds only the ``|g|`` channels of cluster ``g``, at
    ``2 area (D + |g|)`` FLOPs instead of ``2 area (D + O)`` for a shared unit. Shared and
    cluster units compete on the same score; taking no cluster unit is exactly ``K = 1``.

    Args:
        plans: target layers; ``plan.ranks`` (and ``plan.cluster_ranks``) are set.
        spectra: per layer, per region, eigenvalues in descending order.
        target_flops: FLOPs the target layers may use in total.
        layer_weights: optional per-layer multipliers of the score.
        ratio_bounds: ``(low, high)`` multiples of the uniform per-layer ratio.
        rank_multiple: ranks move in blocks of this many units (CPU conv kernels run a
            rank of 17 as slowly as one of 32), so every rank is a multiple of it except a
            region's full rank; the blocks are charged to the budget at their real cost.
            Layers whose largest useful rank is below ``4 * rank_multiple`` use single units.
        cluster_spectra: optional, per layer, per region, per cluster: the eigenvalues of
            the cluster's residual covariance (empty lists where a layer has no clusters);
            the cluster sizes are ``plan.clusters``.
    """
    weights = list(layer_weights) if layer_weights is not None else [1.0] * len(plans)
    total_orig = sum(p.flops_original for p in plans)
    rho = target_flops / total_orig
    m = max(1, int(rank_multiple))
    # slots: (layer, region, slot) with slot 0 = shared, 1.. = clusters
    unit_slot, unit_score, unit_cost, unit_size = [], [], [], []
    for li, (p, spec) in enumerate(zip(plans, spectra)):
        energy = sum(p.areas[r] * float(np.sum(spec[r])) for r in range(p.num_regions)) or 1.0
        ml = m if p.max_rank >= 4 * m else 1  # blocks too coarse for a small layer's budget
        for r in range(p.num_regions):
            slots = [(np.asarray(spec[r][: p.max_rank], dtype=np.float64), p.unit_cost(r))]
            if cluster_spectra is not None and cluster_spectra[li]:
                for g, lam_g in enumerate(cluster_spectra[li][r]):
                    size = len(p.clusters[r][g])
                    cap = min(size, (size * p.in_dim) // (size + p.in_dim) or 1)
                    slots.append((np.asarray(lam_g[:cap], dtype=np.float64), 2 * p.areas[r] * (p.in_dim + size)))
            for si, (lam, cost) in enumerate(slots):
                mult = ml if si == 0 else 1  # cluster ranks are small: single units
                sizes = [min(mult, len(lam) - k) for k in range(0, len(lam), mult)]
                gains = np.add.reduceat(lam, np.arange(0, len(lam), mult)) if len(lam) else np.zeros(0)
                score = weights[li] * p.areas[r] * gains / energy / (cost * np.asarray(sizes, dtype=np.float64))
                # Rank order inside a slot must be kept: enforce non-increasing scores.
                score = np.minimum.accumulate(score) if len(score) else score
                unit_slot += [(li, r, si)] * len(sizes)
                unit_score.append(score)
                unit_cost += [cost * k for k in sizes]
                unit_size += sizes
    scores = np.concatenate(unit_score) if unit_score else np.zeros(0)
    ranks: dict[tuple[int, int, int], int] = {}
    spent = [0] * len(plans)
    floor = [min(p.flops_original, ratio_bounds[0] * rho * p.flops_original) for p in plans]
    ceil = [min(p.flops_original, ratio_bounds[1] * rho * p.flops_original) for p in plans]
    order = np.argsort(-scores, kind="stable")
    # A slot's blocks must be taken in order: ``given`` counts the blocks it already has.
    given: dict[tuple[int, int, int], int] = {}
    # 1) each layer's floor, from its own best units
    closed: set[tuple[int, int, int]] = set()
    for u in order:
        key, c = unit_slot[u], int(unit_cost[u])
        if key in closed:
            continue
        if spent[key[0]] + c <= floor[key[0]] + c / 2:  # round to the nearest unit
            ranks[key] = ranks.get(key, 0) + int(unit_size[u])
            spent[key[0]] += c
            given[key] = given.get(key, 0) + 1
        else:
            closed.add(key)
    # 2) global greedy for the rest
    total = sum(spent)
    closed = set()
    seen: dict[tuple[int, int, int], int] = {}
    for u in order:
        key, c = unit_slot[u], int(unit_cost[u])
        index = seen.get(key, 0)
        seen[key] = index + 1
        if index < given.get(key, 0) or key in closed:  # given in step 1, or a block before it was refused
            continue
        if total + c > target_flops or spent[key[0]] + c > ceil[key[0]]:
            closed.add(key)
            continue
        ranks[key] = ranks.get(key, 0) + int(unit_size[u])
        spent[key[0]] += c
        total += c
    for li, p in enumerate(plans):
        p.ranks = [ranks.get((li, r, 0), 0) for r in range(p.num_regions)]
        if p.clusters is not None:
            p.cluster_ranks = [[ranks.get((li, r, g + 1), 0) for g in range(len(p.clusters[r]))]
                               for r in range(p.num_regions)]
