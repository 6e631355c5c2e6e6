"""Spike->LFP convolutional dictionary learning on sufficient statistics (MODELS.md section 2).

    y_r(t) = c_r + sum_n (u_n * f_{n,r})(t) + e_r(t),     f_{n,r}(tau) = sum_k b_{n,k,r} d_k(tau)

Objective, per sample, summed over regions r:

    J(b, d) = 1/(2 n) ||y_r - c_r - sum_n u_n * f_{n,r}||^2
              + lam_r (alpha ||b_{.,.,r}||_1 + (1 - alpha) sum_n ||b_{n,.,r}||_2),
    subject to ||d_k||_2 <= 1,

with c_r minimised out exactly. Learning alternates ``b | d`` (FISTA on the Gram matrix of the
coefficients, ``H = D^T G D``, computed from the cross-correlograms in one GEMM) and ``d | b``
(projected FISTA on the block-Toeplitz Hessian of the atoms). Neither step touches the recording:
both run on :class:`~neurodict.lfpdict.stats.SegmentStats`. Every step is monotone, so J never
rises.

References
----------
Carlson, Schaich Borg, Dzirasa & Carin, "On the relations of LFPs & Neural Spike Trains",
NeurIPS 2014.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from neurodict.backend import Backend
from neurodict.lfpdict.solvers import fista, power_iteration, project_unit_ball, prox_sparse_group
from neurodict.lfpdict.stats import SegmentStats


def atom_correlations(be: Backend, D):
    """A[k, j, delta] = sum_tau d_k(tau) d_j(tau - delta), shape (K, K, 2L - 1).

    delta runs from -(L - 1) to L - 1."""
    xp = be.xp
    K, L = D.shape
    n_fft = 4 * L
    Df = be.fft.rfft(D, n=n_fft, axis=-1)
    corr = be.fft.irfft(Df[:, None, :] * xp.conj(Df[None, :, :]), n=n_fft, axis=-1)
    lags = be.asarray(np.arange(-(L - 1), L) % n_fft)
    return corr[:, :, lags].astype(D.dtype)


@dataclass
class CoefProblem:
    """The coefficient problem for fixed atoms, centred (intercept minimised out), per sample.

    Attributes
    ----------
    H : array of shape (N K, N K)
        (D^T G D - q q^T / n) / n.
    Z : array of shape (N K, R)
        (D^T S - q ysum^T / n) / n.
    q : array of shape (N K,)
        D^T g: the intercept column against the coefficients.
    var : array of shape (R,)
        Variance of each region's LFP in the segment(s).
    stats : SegmentStats
    """

    H: object
    Z: object
    q: object
    var: object
    stats: SegmentStats

    def intercept(self, B):
        """c_r = (ysum_r - q^T b_r) / n for coefficients B of shape (N, K, R)."""
        s = self.stats
        return (s.ysum - self.q @ B.reshape(self.q.size, -1)) / max(s.n_samples, 1)

    def loss(self, B):
        """Per-region 1/(2n) squared error with the optimal intercept, shape (R,)."""
        b = B.reshape(self.q.size, -1)
        return 0.5 * ((b * (self.H @ b)).sum(axis=0)) - (self.Z * b).sum(axis=0) + 0.5 * self.var


def centred_target(be: Backend, stats: SegmentStats, D):
    """Z = (D^T S - q ysum^T / n) / n of shape (N K, R), and q = D^T g of shape (N K,).

    Cheap (no Gram matrix): enough for :func:`lambda_max`."""
    xp = be.xp
    q = (stats.g @ D.T).reshape(-1)
    Z = xp.einsum("nrl,kl->nkr", stats.S, D).reshape(q.size, -1)
    n = max(stats.n_samples, 1)  # an empty window contributes nothing (all sums are 0)
    return (Z - xp.outer(q, stats.ysum) / n) / n, q


def coef_problem(be: Backend, stats: SegmentStats, D) -> CoefProblem:
    """Build the coefficient problem for atoms D of shape (K, L) from segment statistics
    (H in N (N + 1) K^2 (2L - 1) flops)."""
    xp = be.xp
    N = stats.R.shape[0]
    K = D.shape[0]
    A = atom_correlations(be, D)
    # H[(n, k), (m, j)] = sum_delta R[n, m, delta] A[k, j, delta]: one GEMM over the pairs
    # n <= m; the rest is the transpose (R[m, n, d] = R[n, m, -d], A[j, k, d] = A[k, j, -d])
    n, m = (be.asarray(i) for i in np.triu_indices(N))
    upper = (stats.R[n, m] @ A.reshape(K * K, -1).T).reshape(-1, K, K)
    H = xp.empty((N, N, K, K), dtype=upper.dtype)
    H[n, m] = upper
    H[m, n] = upper.transpose(0, 2, 1)
    H = H.transpose(0, 2, 1, 3).reshape(N * K, N * K)
    Z, q = centred_target(be, stats, D)
    n = max(stats.n_samples, 1)
    return CoefProblem(
        H=(H - xp.outer(q, q) / n) / n,
        Z=Z,
        q=q,
        var=(stats.yy - stats.ysum**2 / n) / n,
        stats=stats,
    )


def penalty(xp, B, lam, alpha: float):
    """Per-region sparse-group penalty of B (N, K, R); lam of shape (R,)."""
    l1 = xp.abs(B).sum(axis=(0, 1))
    group = xp.linalg.norm(B, axis=1).sum(axis=0)
    return lam * (alpha * l1 + (1 - alpha) * group)


def window_weights(problems: list[CoefProblem]) -> list[float]:
    """omega_w = n_w / sum n: each window's share of the samples."""
    n = [p.stats.n_samples for p in problems]
    return [k / max(sum(n), 1) for k in n]


def smoothness_scale(problems: list[CoefProblem]) -> float:
    """Mean curvature of the coefficient losses, trace(H_w) / (N K) averaged over windows.

    The dimensionless ``smoothness`` setting is multiplied by it to give mu."""
    return float(np.mean([float(p.H.trace()) / p.q.size for p in problems]))


def objective(be: Backend, problems: list[CoefProblem], B, lam, alpha: float, mu: float):
    """sum_w omega_w (loss_w + penalty_w) + mu sum_w ||B_w - B_{w-1}||^2 (a float)."""
    lam = be.xp.asarray(lam, dtype=B.dtype)
    return float(objective_batch(be, [problems], B[None], lam[None], alpha, mu)[0])


def objective_batch(be: Backend, problems: list[list[CoefProblem]], B, lam, alpha, mu):
    """:func:`objective` of each problem of a batch: B of shape (P, W, N, K, R), lam (P, R);
    returns an ndarray of shape (P,) on the host."""
    xp = be.xp
    out = []
    for windows, Bp, lam_p in zip(problems, B, lam, strict=True):
        terms = [
            w * (p.loss(Bw) + penalty(xp, Bw, lam_p, alpha)).sum()
            for w, p, Bw in zip(window_weights(windows), windows, Bp, strict=True)
        ]
        out.append(sum(terms) + mu * ((Bp[1:] - Bp[:-1]) ** 2).sum())
    return be.to_numpy(xp.stack(out)).astype(float)


def unit_scales(xp, problems: list[CoefProblem], n_units: int) -> object:
    """s_n = sqrt(sum_w omega_w mean_k H_w[(n, k), (n, k)]): each unit's mean curvature of the
    coefficient loss, shape (N,) (1 for a unit without spikes).

    Curvature grows with a unit's spike count, so across units it spans as much as their rates
    (0.1 to 50 Hz in a session: 500 times); FISTA's one step size follows the largest and
    crawls on the rest. In coordinates ``c_n = s_n b_n`` every unit's curvature is about 1."""
    d = sum(
        w * xp.diagonal(p.H).reshape(n_units, -1).mean(axis=1)
        for w, p in zip(window_weights(problems), problems, strict=True)
    )
    positive = d > 0
    return xp.where(positive, xp.sqrt(xp.where(positive, d, 1.0)), 1.0)


def fit_coef(
    be: Backend,
    problems: list[CoefProblem],
    lam,
    alpha: float,
    B0,
    mask=None,
    mu: float = 0.0,
    n_iter: int = 300,
):
    """Minimise the coefficient objective for fixed atoms by FISTA, all windows at once
    (:func:`fit_coef_batch` for one problem).

    Parameters
    ----------
    problems : list of CoefProblem, one per window
    lam : array of shape (R,)
    alpha : float
        Share of the l1 part in the penalty (the rest is the group part).
    B0 : array of shape (W, N, K, R)
        Warm start.
    mask : array of shape (N, R), optional
        Predictor set: which units may predict which region.
    mu : float
        Smoothness of the coefficients across consecutive windows.

    Returns
    -------
    B : array of shape (W, N, K, R)
    """
    lam = be.xp.asarray(lam, dtype=B0.dtype)
    return fit_coef_batch(be, [problems], lam[None], alpha, B0[None], mask, mu, n_iter)[0]


def fit_coef_batch(
    be: Backend,
    problems: list[list[CoefProblem]],
    lam,
    alpha: float,
    B0,
    mask=None,
    mu: float = 0.0,
    n_iter: int = 300,
):
    """Minimise the coefficient objectives of a batch of independent problems (each its own
    statistics and penalties, the same atoms' size, mask and mu) by one batched FISTA.

    FISTA runs in the coordinates ``C = s B`` of :func:`unit_scales` (the same objective and
    minimiser; each unit's penalty weighted by ``1 / s_n`` there, so the prox stays the sparse
    group lasso's, group by group), with the step ``1 / L`` of each problem's rescaled Hessian.
    A batch runs until its last problem has converged; each iteration is one batched Gram
    product per window and one prox for the whole batch, so a GPU issues the same kernels for
    a batch as for one problem.

    Parameters
    ----------
    problems : list (P) of list (W) of CoefProblem
    lam : array of shape (P, R)
    B0 : array of shape (P, W, N, K, R)

    Returns
    -------
    B : array of shape (P, W, N, K, R)
    """
    xp = be.xp
    P, W, N, K, R = B0.shape
    lam = xp.asarray(lam, dtype=B0.dtype)
    omega = be.asarray([window_weights(p) for p in problems], dtype=B0.dtype)  # (P, W)
    inv = 1.0 / xp.stack([unit_scales(xp, p, N) for p in problems]).astype(B0.dtype)  # (P, N)
    inv_b = inv[:, None, :, None, None]  # b = c / s
    inv_rows = xp.repeat(inv, K, axis=1)[:, :, None]  # (P, N K, 1)
    # in the coordinates C: per window, Hs = omega S^-1 H S^-1 and Zs = omega S^-1 Z, so the
    # gradient of the loss is one batched product and a difference, Hs C - Zs
    Hs, Zs = [], []
    for w in range(W):
        H = xp.stack([p[w].H for p in problems])  # (P, N K, N K): a copy, scaled in place
        H *= inv_rows
        H *= inv_rows.transpose(0, 2, 1)
        H *= omega[:, w, None, None]
        Hs.append(H)
        Zs.append(xp.stack([p[w].Z for p in problems]) * inv_rows * omega[:, w, None, None])
    lip = np.max(
        [
            power_iteration(xp, lambda v, H=H: H @ v, (P, N * K, 1), B0.dtype, batch_ndim=1)
            for H in Hs
        ],
        axis=0,
    )
    inv2 = inv_b * inv_b
    smooth = 8 * mu * be.to_numpy((inv * inv).max(axis=1))
    step = be.asarray(1.0 / np.maximum(lip + smooth, 1e-30), dtype=B0.dtype)
    step = step[:, None, None, None, None]
    weight = omega[:, :, None, None, None] * inv_b * lam[:, None, None, None, :]  # (P, W, N, 1, R)
    t_l1, t_group = step * alpha * weight, step * (1 - alpha) * weight

    def grad(C):
        if W == 1:
            return (Hs[0] @ C.reshape(P, N * K, R) - Zs[0]).reshape(C.shape)
        g = xp.stack(
            [
                (H @ C[:, w].reshape(P, N * K, R) - Z).reshape(P, N, K, R)
                for w, (H, Z) in enumerate(zip(Hs, Zs, strict=True))
            ],
            axis=1,
        )
        if mu > 0:
            diff = 2 * mu * inv2 * (C[:, 1:] - C[:, :-1])  # smoothness, in C's coordinates
            g[:, 1:] += diff
            g[:, :-1] -= diff
        return g

    C, _ = fista(
        xp,
        B0 / inv_b * (1.0 if mask is None else mask[:, None, :]),
        grad,
        lambda V: prox_sparse_group(xp, V, t_l1, t_group, mask),
        lambda C: objective_batch(be, problems, C * inv_b, lam, alpha, mu),
        step,
        n_iter,
        check_every=be.sync_every,
        replay=be.replayable,
        batch_ndim=1,
    )
    return C * inv_b


class AtomHessian:
    """Q, the Hessian of the squared error in the atoms for fixed B, as an operator on D (K, L)
    (or on a batch of problems' atoms, (P, K, L), for a batch made by :meth:`combine`).

    ``(Q D)[k, tau] = sum_j sum_tau' M[tau - tau', k, j] D[j, tau']`` with
    ``M[delta] = sum_r B_r^T R(delta) B_r`` (two GEMMs); the product is a convolution in tau,
    applied by FFT, so an iteration costs O(K^2 L) instead of O((K L)^2).
    """

    def __init__(self, be: Backend, stats: SegmentStats, B):
        xp = be.xp
        N, K, R = B.shape
        n_delta = stats.R.shape[2]
        self.be, self.L = be, (n_delta + 1) // 2
        X = xp.matmul(stats.R.transpose(2, 0, 1), B.reshape(N, K * R))  # (2L-1, N, K R)
        X = X.reshape(n_delta, N, K, R).transpose(0, 1, 3, 2).reshape(n_delta, N * R, K)
        M = xp.matmul(B.transpose(1, 0, 2).reshape(K, N * R), X)  # (2L-1, K, K)
        self.P = scipy.fft.next_fast_len(3 * self.L - 2, real=True)
        self.Mf = be.fft.rfft(M, n=self.P, axis=0)  # (F, K, K)

    @classmethod
    def combine(cls, hessians: list[list[AtomHessian]], weights) -> AtomHessian:
        """``weights[p] sum_w Q_{p,w}`` for each problem p of a batch: one operator on (P, K, L)."""
        first = hessians[0][0]
        out = cls.__new__(cls)
        out.be, out.L, out.P = first.be, first.L, first.P
        out.Mf = first.be.xp.stack(
            [w * sum(q.Mf for q in qs) for qs, w in zip(hessians, weights, strict=True)]
        )
        return out

    def __matmul__(self, D):
        be, L = self.be, self.L
        Df = be.xp.swapaxes(be.fft.rfft(D, n=self.P, axis=-1), -1, -2)[..., None]  # (F, K, 1)
        out = be.fft.irfft(be.xp.matmul(self.Mf, Df)[..., 0], n=self.P, axis=-2)  # (P, K)
        return be.xp.swapaxes(out[..., L - 1 : 2 * L - 1, :], -1, -2).astype(D.dtype)


def fit_atoms(be: Backend, stats: list[SegmentStats], B, c, D0, n_iter: int = 100):
    """Minimise the squared error over atoms (unit-ball constraint) for fixed B and intercepts
    (:func:`fit_atoms_batch` for one problem).

    Parameters
    ----------
    stats : list of SegmentStats, one per window
    B : array of shape (W, N, K, R)
    c : array of shape (W, R)
    D0 : array of shape (K, L)

    Returns
    -------
    D : array of shape (K, L)
    """
    return fit_atoms_batch(be, [stats], B[None], c[None], D0[None], n_iter)[0]


def fit_atoms_batch(be: Backend, stats: list[list[SegmentStats]], B, c, D0, n_iter: int = 100):
    """:func:`fit_atoms` for a batch of independent problems by one batched projected FISTA.

    Parameters
    ----------
    stats : list (P) of list (W) of SegmentStats
    B : array of shape (P, W, N, K, R)
    c : array of shape (P, W, R)
    D0 : array of shape (P, K, L)

    Returns
    -------
    D : array of shape (P, K, L)
    """
    xp = be.xp
    n = [max(sum(s.n_samples for s in windows), 1) for windows in stats]
    Q = AtomHessian.combine(
        [
            [AtomHessian(be, s, Bw) for s, Bw in zip(windows, Bp, strict=True)]
            for windows, Bp in zip(stats, B, strict=True)
        ],
        [1.0 / k for k in n],
    )
    E = xp.stack(
        [
            sum(
                xp.einsum("nkr,nrl->kl", Bw, s.S) - xp.einsum("nkr,r,nl->kl", Bw, cw, s.g)
                for s, Bw, cw in zip(windows, Bp, cp, strict=True)
            )
            / k
            for windows, Bp, cp, k in zip(stats, B, c, n, strict=True)
        ]
    )
    lip = power_iteration(xp, Q.__matmul__, D0.shape, D0.dtype, batch_ndim=1)
    step = be.asarray(1.0 / np.maximum(lip, 1e-30), dtype=D0.dtype)[:, None, None]

    def objective(D):
        return be.to_numpy(0.5 * (D * (Q @ D)).sum(axis=(1, 2)) - (E * D).sum(axis=(1, 2)))

    D, _ = fista(
        xp,
        D0,
        lambda D: Q @ D - E,
        lambda V: project_unit_ball(xp, V),
        objective,
        step,
        n_iter,
        check_every=be.sync_every,
        replay=be.replayable,
        batch_ndim=1,
    )
    return D


def filters_from(xp, B, D):
    """f[..., n, r, tau] = sum_k B[..., n, k, r] D[k, tau], shape (..., N, R, L)."""
    return xp.einsum("...nkr,kl->...nrl", B, D)


def lambda_max(be: Backend, stats: SegmentStats, D, alpha: float, mask=None):
    """Per region, the smallest lam for which B = 0 solves the coefficient problem, shape (R,).

    B = 0 is optimal when every group's target z = Z[n, :, r] satisfies
    ``f(lam) = ||soft(z, alpha lam)||_2 - (1 - alpha) lam <= 0``; f falls with lam, so each
    group has one root and lam_max is the largest. With a_1 >= ... >= a_K the sorted |z|, f
    changes sign at the breakpoints ``alpha lam = a_j`` as
    ``alpha^2 sum_i (a_i - a_j)_+^2 - (1 - alpha)^2 a_j^2``; between the last breakpoint
    where it is <= 0 (m of them) and the next, f's root is that of
    ``sum_{i <= m} (a_i - alpha lam)^2 = (1 - alpha)^2 lam^2``, a quadratic: in closed form,
    all groups at once (no bisection)."""
    xp = be.xp
    Z = centred_target(be, stats, D)[0].reshape(stats.S.shape[0], D.shape[0], -1)
    if mask is not None:
        Z = Z * mask[:, None, :]
    a = -xp.sort(-xp.abs(Z), axis=1)  # (N, K, R), descending over the atoms
    excess = xp.maximum(a[:, :, None, :] - a[:, None, :, :], 0)  # (N, i, j, R)
    sign = alpha**2 * (excess * excess).sum(axis=1) - (1 - alpha) ** 2 * a * a
    m = (sign <= 0).sum(axis=1, keepdims=True)  # (N, 1, R), at least 1
    s1 = xp.take_along_axis(xp.cumsum(a, axis=1), m - 1, axis=1)[:, 0]
    s2 = xp.take_along_axis(xp.cumsum(a * a, axis=1), m - 1, axis=1)[:, 0]
    quadratic = m[:, 0] * alpha**2 - (1 - alpha) ** 2
    root = xp.sqrt(xp.maximum(alpha**2 * s1 * s1 - quadratic * s2, 0))
    lam = s2 / xp.maximum(alpha * s1 + root, xp.finfo(a.dtype).tiny)  # the root, stably
    return lam.max(axis=0) + 1e-30


def learn_batch(
    be: Backend,
    stats: list[list[SegmentStats]],
    D0,
    lam,
    alpha: float,
    mu: float = 0.0,
    n_outer: int = 15,
    n_inner: int = 200,
    mask=None,
):
    """Alternate b | d and d | b from atoms D0 (atoms shared by the windows, coefficients per
    window), for a batch of independent problems (each its own statistics, start and
    penalties): each half-step one batched fit; the alternation stops when every problem's
    objective has stopped falling.

    Parameters
    ----------
    stats : list (P) of list (W) of SegmentStats
    D0 : array of shape (P, K, L)
    lam : array of shape (P, R)
    mu : float
        Smoothness of the coefficients across windows.

    Returns
    -------
    D : array of shape (P, K, L)
    B : array of shape (P, W, N, K, R)
    c : array of shape (P, W, R)
    traces : list (P) of list of float
        Each problem's objective after each half-step (never increasing).
    """
    xp = be.xp
    N, R = stats[0][0].S.shape[:2]
    D = D0
    B = xp.zeros((len(stats), len(stats[0]), N, D0.shape[1], R), dtype=D0.dtype)
    lam = xp.asarray(lam, dtype=D0.dtype)
    traces = []

    def problems_of(D):
        return [
            [coef_problem(be, s, Dp) for s in windows] for windows, Dp in zip(stats, D, strict=True)
        ]

    def intercepts(problems, B):
        return xp.stack(
            [
                xp.stack([p.intercept(Bw) for p, Bw in zip(windows, Bp, strict=True)])
                for windows, Bp in zip(problems, B, strict=True)
            ]
        )

    problems = problems_of(D)  # each built once per atoms: H costs 2 N^2 K^2 (2L - 1) flops
    for _ in range(n_outer):
        B = fit_coef_batch(be, problems, lam, alpha, B, mask=mask, mu=mu, n_iter=n_inner)
        traces.append(objective_batch(be, problems, B, lam, alpha, mu))
        D = fit_atoms_batch(be, stats, B, intercepts(problems, B), D, n_iter=n_inner)
        problems = problems_of(D)
        traces.append(objective_batch(be, problems, B, lam, alpha, mu))
        if len(traces) > 2 and np.all(traces[-3] - traces[-1] <= 1e-6 * np.abs(traces[-1])):
            break
    return D, B, intercepts(problems, B), [list(t) for t in np.transpose(traces)]
