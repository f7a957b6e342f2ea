"""Pure factorisations of one layer's weight (no modules, no data loading).

``W`` is the layer weight reshaped to ``O x D`` (``D = I*k*k`` for a conv), ``b`` its bias.
Every function returns ``(first, second, bias)`` with ``first (d x D)``, ``second (O x d)``
and ``bias (O,)`` such that the layer becomes ``y ≈ second @ (first @ x) + bias``.
"""
from __future__ import annotations

import numpy as np


def top_eigen(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending, clipped at 0) and eigenvectors of a symmetric matrix."""
    vals, vecs = np.linalg.eigh((c + c.T) / 2)
    order = np.argsort(vals)[::-1]
    return np.clip(vals[order], 0.0, None), vecs[:, order]


def pca_factors(w: np.ndarray, b: np.ndarray, mu: np.ndarray, cov: np.ndarray,
                rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Response-PCA factors (HSCC.md §5): project responses on their top-``rank``
    principal subspace ``P``; ``first = Pᵀ W``, ``second = P``,
    ``bias = P Pᵀ b + (I - P Pᵀ) μ`` (the mean-corrected bias). ``rank = 0`` gives the
    constant ``μ``; ``rank = O`` reproduces the layer exactly."""
    _, vecs = top_eigen(cov)
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
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    return s[:rank, None] * vt[:rank], u[:, :rank], b.copy()


def tucker2_factors(w4: np.ndarray, rank_in: int, rank_out: int,
                    iters: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tucker-2 (Kim et al., 2016) of a ``O x I x kh x kw`` kernel by HOOI on modes 0, 1.

    Returns:
        ``u_in (I x R_in)``, ``core (R_out x R_in x kh x kw)``, ``u_out (O x R_out)`` with
        ``W ≈ core ×₀ u_out ×₁ u_in``.
    """
    o, i = w4.shape[:2]

    def leading(mat: np.ndarray, r: int) -> np.ndarray:
        return np.linalg.svd(mat, full_matrices=False)[0][:, :r]

    u_out = leading(w4.reshape(o, -1), rank_out)  # HOSVD initialisation
    u_in = leading(w4.transpose(1, 0, 2, 3).reshape(i, -1), rank_in)
    for _ in range(iters):
        t = np.einsum("oikl,ir->orkl", w4, u_in)
        u_out = leading(t.reshape(o, -1), rank_out)
        t = np.einsum("oikl,or->rikl", w4, u_out)
        u_in = leading(t.transpose(1, 0, 2, 3).reshape(i, -1), rank_in)
    core = np.einsum("oikl,or,is->rskl", w4, u_out, u_in)
    return u_in, core, u_out
