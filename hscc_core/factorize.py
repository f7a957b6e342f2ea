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
    o = c_hh.shape[0]
    alpha = ridge * max(float(np.trace(c_hh)) / o, 1e-12)
    a = np.linalg.solve(c_hh + alpha * np.eye(o), c_yh.T).T  # C_yh (C_hh + αI)^-1, C_hh symmetric
    _, vecs = top_eigen(a @ c_yh.T)
    p = vecs[:, :rank]
    pa = p.T @ a
    return pa @ w, p, p @ (pa @ (b - mu_h)) + mu_y


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
