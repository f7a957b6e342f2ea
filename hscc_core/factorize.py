"""Pure factorisations of one layer's weight (no modules, no data loading).

``W`` is the layer weight reshaped to ``O x D`` (``D = I*k*k`` for a conv), ``b`` its bias.
Every function returns ``(first, second, bias)`` with ``first (d x D)``, ``second (O x d)``
and ``bias (O,)`` such that the layer becomes ``y ≈ second @ (first @ x) + bias``.
"""
from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits


def top_eigen(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending, clipped at 0) and eigenvectors of a symmetric matrix."""
    # One LAPACK thread: multi-threaded OpenBLAS eigensolvers fight torch's spinning
    # OpenMP workers for the cores (measured 3-20x slower on 2 busy cores).
    with threadpool_limits(limits=1, user_api="blas"):
        vals, vecs = np.linalg.eigh((c + c.T) / 2)
    order = np.argsort(vals)[::-1]
    return np.clip(vals[order], 0.0, None), vecs[:, order]


def eigenvalues(c: np.ndarray) -> np.ndarray:
    """Eigenvalues of a symmetric matrix, descending and clipped at 0 (no vectors: faster)."""
    with threadpool_limits(limits=1, user_api="blas"):
        vals = np.linalg.eigvalsh((c + c.T) / 2)
    return np.clip(vals[::-1], 0.0, None)


def pca_factors(w: np.ndarray, b: np.ndarray, mu: np.ndarray, cov: np.ndarray, rank: int,
                eigvecs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Response-PCA factors (HSCC.md §5): project responses on their top-``rank``
    principal subspace ``P``; ``first = Pᵀ W``, ``second = P``,
    ``bias = P Pᵀ b + (I - P Pᵀ) μ`` (the mean-corrected bias). ``rank = 0`` gives the
    constant ``μ``; ``rank = O`` reproduces the layer exactly. ``eigvecs`` (descending order)
    may be passed when the eigendecomposition of ``cov`` is already known."""
    vecs = top_eigen(cov)[1] if eigvecs is None else eigvecs
    p = vecs[:, :rank]
    proj = p @ p.T
    return p.T @ w, p, proj @ b + mu - proj @ mu


def refit_factors(w: np.ndarray, b: np.ndarray, mu_y: np.ndarray, mu_h: np.ndarray, c_hh: np.ndarray,
                  c_yh: np.ndarray, rank: int, ridge: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sequential-refit factors (HSCC.md §2): reduced-rank ridge regression of the
    original responses ``y`` on the refit responses ``ŷ = W x̂ + b`` of the partially
    compressed network.

    ``A = C_yŷ (C_ŷŷ + αI)⁻¹``; ``P`` = top-``rank`` eigenvectors of ``A C_ŷy`` (the fitted
    values' covariance); the layer becomes ``y ≈ P Pᵀ A (ŷ - μ_ŷ) + μ_y``, i.e.
    ``first = Pᵀ A W``, ``second = P``, ``bias = P Pᵀ A (b - μ_ŷ) + μ_y``.
    ``α = ridge * tr(C_ŷŷ) / O`` keeps dead channels from blowing up the inverse.
    """
    a = ridge_map(c_hh, c_yh, ridge)
    _, vecs = top_eigen(a @ c_yh.T)
    p = vecs[:, :rank]
    pa = p.T @ a
    return pa @ w, p, p @ (pa @ (b - mu_h)) + mu_y


def ridge_map(c_hh: np.ndarray, c_yh: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """``A = C_yŷ (C_ŷŷ + αI)⁻¹`` with ``α = ridge * tr(C_ŷŷ) / O`` (see :func:`refit_factors`)."""
    o = c_hh.shape[0]
    alpha = ridge * max(float(np.trace(c_hh)) / o, 1e-12)
    return np.linalg.solve(c_hh + alpha * np.eye(o), c_yh.T).T  # C_hh symmetric


def svd_factors(w: np.ndarray, b: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global SVD baseline (weights only): ``W ≈ U_d Σ_d V_dᵀ``; ``first = Σ_d V_dᵀ``,
    ``second = U_d``, bias unchanged."""
    if w.shape[0] <= w.shape[1]:  # eigh of the small Gram matrix: much faster than a full SVD
        _, u = top_eigen(w @ w.T)
        return u[:, :rank].T @ w, u[:, :rank], b.copy()
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    return s[:rank, None] * vt[:rank], u[:, :rank], b.copy()


def _leading_left(mat: np.ndarray, r: int) -> np.ndarray:
    """Top-``r`` left singular vectors of a wide matrix (via its small Gram matrix)."""
    return top_eigen(mat @ mat.T)[1][:, :r]


def tucker2_factors(w4: np.ndarray, rank_in: int, rank_out: int,
                    iters: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tucker-2 (Kim et al., 2016) of a ``O x I x kh x kw`` kernel: HOSVD initialisation,
    then ``iters`` HOOI sweeps on the output and input modes.

    Returns:
        ``u_in (I x R_in)``, ``core (R_out x R_in x kh x kw)``, ``u_out (O x R_out)`` with
        ``W ≈ core ×₀ u_out ×₁ u_in``.
    """
    o, i, kh, kw = w4.shape
    by_out = w4.reshape(o, i * kh * kw)  # mode-0 unfolding
    by_in = w4.transpose(1, 0, 2, 3).reshape(i, o * kh * kw)  # mode-1 unfolding
    u_out, u_in = _leading_left(by_out, rank_out), _leading_left(by_in, rank_in)
    for _ in range(iters):
        # project the input mode, refit the output mode, and vice versa (BLAS matmuls only)
        t = np.tensordot(w4, u_in, axes=([1], [0]))  # (o, kh, kw, r_in)
        u_out = _leading_left(t.reshape(o, -1), rank_out)
        t = np.tensordot(u_out, w4, axes=([0], [0]))  # (r_out, i, kh, kw)
        u_in = _leading_left(t.transpose(1, 0, 2, 3).reshape(i, -1), rank_in)
    core = np.tensordot(u_out, w4, axes=([0], [0]))  # (r_out, i, kh, kw)
    core = np.tensordot(core, u_in, axes=([1], [0])).transpose(0, 3, 1, 2)  # (r_out, r_in, kh, kw)
    return u_in, np.ascontiguousarray(core), u_out


def co_activation_clusters(cov: np.ndarray, k: int, silent_tol: float = 1e-6) -> list[list[int]]:
    """Cluster output channels by co-activation (HSCC.md §4).

    Complete-linkage agglomerative clustering on ``1 - |corr|`` of the region's response
    covariance, cut into at most ``k`` clusters (complete linkage: average linkage gave
    degenerate clusters in the prototype). *Silent* channels — variance below
    ``silent_tol`` times the mean — join no cluster: they output their mean at no cost.

    Returns:
        Sorted channel index lists, largest cluster first.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    var = np.clip(np.diag(cov), 0.0, None)
    active = np.flatnonzero(var > silent_tol * max(float(var.mean()), 1e-30))
    if k <= 1 or len(active) <= 1:
        return [active.tolist()] if len(active) else []
    sd = np.sqrt(var[active])
    corr = cov[np.ix_(active, active)] / np.outer(sd, sd)
    dist = np.clip(1.0 - np.abs(corr), 0.0, None)
    np.fill_diagonal(dist, 0.0)
    labels = fcluster(linkage(squareform((dist + dist.T) / 2, checks=False), method="complete"),
                      t=min(k, len(active)), criterion="maxclust")
    groups = [sorted(active[labels == c].tolist()) for c in np.unique(labels)]
    return sorted(groups, key=len, reverse=True)


def residual_cluster_spectra(cov: np.ndarray, shared_rank: int, clusters: list[list[int]]) -> list[np.ndarray]:
    """Eigenvalues of each cluster's block of the residual covariance ``Q C Q`` left after
    the top-``shared_rank`` shared directions ``P0`` (``Q = I - P0 P0ᵀ``)."""
    p0 = top_eigen(cov)[1][:, :shared_rank]
    q = np.eye(cov.shape[0]) - p0 @ p0.T
    res = q @ cov @ q
    return [eigenvalues(res[np.ix_(ch, ch)]) for ch in clusters]


def hierarchical_factors(w: np.ndarray, b: np.ndarray, fit: np.ndarray, fitted_cov: np.ndarray,
                         mu_in: np.ndarray, mu_out: np.ndarray, rank: int, clusters: list[list[int]],
                         cluster_ranks: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Shared factors plus cluster-specific residual factors (HSCC.md §4).

    The layer's response ``v = W x + b`` becomes ``μ_out + F (v - μ_in)`` with
    ``F = P0 P0ᵀ M + Σ_g E_g P_g P_gᵀ E_gᵀ Q M`` where ``M = fit`` (``I`` for response PCA,
    the ridge map ``A`` for sequential refit), ``P0`` the top-``rank`` eigenvectors of the
    fitted responses' covariance ``fitted_cov``, ``Q = I - P0 P0ᵀ`` and ``P_g`` the top
    ``d_g`` eigenvectors of cluster ``g``'s block of ``Q fitted_cov Q``. With no cluster
    rank this is exactly :func:`pca_factors` / :func:`refit_factors`.

    Returns:
        ``first ((rank + Σ d_g) x D)`` (shared filters, then each cluster's), ``second
        (O x rank)``, ``bias (O,)`` and per cluster ``P_g (|g| x d_g)``.
    """
    o = fitted_cov.shape[0]
    p0 = top_eigen(fitted_cov)[1][:, :rank]
    maps = [p0.T @ fit]
    q = np.eye(o) - p0 @ p0.T
    res = q @ fitted_cov @ q
    qfit = q @ fit
    cluster_p = []
    for ch, d in zip(clusters, cluster_ranks):
        pg = top_eigen(res[np.ix_(ch, ch)])[1][:, :d] if d else np.zeros((len(ch), 0))
        cluster_p.append(pg)
        if d:
            maps.append(pg.T @ qfit[ch])
    maps = np.vstack(maps)
    z = maps @ (b - mu_in)
    bias = mu_out + p0 @ z[:rank]
    start = rank
    for ch, pg in zip(clusters, cluster_p):
        d = pg.shape[1]
        if d:
            bias[ch] += pg @ z[start:start + d]
            start += d
    return maps @ w, p0, bias, cluster_p
