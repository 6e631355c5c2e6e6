"""Clusters whose means random-walk across epochs under a conjugate Normal–Wishart prior.

The features ``s_i`` (one channel, ``K`` atoms in use) of the ``n`` spikes of one cluster, spike
``i`` in epoch ``e_i``::

    s_i = μ_{e_i} + ε_i,                  ε_i ~ N(0, Λ^{-1})
    μ_1 ~ N(μ_0, (κ_0 Λ)^{-1}),           μ_e = μ_{e-1} + η_e,   η_e ~ N(0, q Λ^{-1})
    Λ ~ Wishart(ν_0, W_0)

The walk's steps are in units of the cluster's own spread (``q Λ^{-1}``), which keeps the whole
model conjugate: stacking the spikes, ``S − 1μ_0' ~ MatrixNormal(0, C, Λ^{-1})`` with
``C = I + Z B Z'``, ``Z`` (n, E) the epoch indicators and ``B_{ee'} = 1/κ_0 + q·min(e, e')``
(epochs counted from 0). So the cluster's marginal likelihood (``μ`` and ``Λ`` integrated out)
is a matrix-t in closed form, and ``Λ | S`` is Wishart and ``μ | Λ, S`` matrix-normal: this is
what the sampler's split–merge moves (:mod:`neurodict.sort.splitmerge`) and its cluster update
use. Everything depends on the data only through the counts ``n_e``, the sums ``Σ_{i∈e} s_i``
and the scatter ``Σ_i s_i s_i'``; with ``N = diag(n_e)`` and ``R = S − 1μ_0'``,
``C^{-1} = I − Z V Z'`` with ``V = B (I + N B)^{-1}`` (the posterior covariance factor of the
walk), and ``|C| = |I + N B|``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numba
import numpy as np
from scipy import linalg, sparse
from scipy.special import gammaln

from neurodict.sort import kernels

#: Above this size of the smaller Gram matrix, :func:`leading_axes` iterates on a subspace
#: (its axes agree with the exact ones where the spectrum has a gap; see there).
EXACT_GRAM_SIZE = 256
SUBSPACE_OVERSAMPLING = 10  # columns of the iterated block beyond the axes asked for
SUBSPACE_ITERATIONS = 3  # multiplications by F'F after the first


@dataclass(frozen=True)
class WalkPrior:
    """The prior of one channel's clusters on `K` features: ``μ_0`` (K,), ``κ_0``, ``q``,
    ``ν_0`` and ``W_0^{-1}`` (K, K), over `n_epochs` epochs (one when the means do not drift)."""

    mu0: np.ndarray
    kappa0: float
    q: float
    nu0: float
    W0_inv: np.ndarray
    n_epochs: int

    @classmethod
    def isotropic(cls, mu0: np.ndarray, spread: float, q: float, n_epochs: int, priors):
        """The sorter's prior on `K` = ``mu0.size`` features whose variance across spikes is
        `spread` per coordinate: ``κ_0 = within / (scale · spread + 1)`` (``Cov(μ_1)`` about
        `scale` times the features' spread), ``ν_0 = K + extra``, ``E[Λ^{-1}] = within · I``
        (`priors`: :class:`neurodict.sort.params.Priors`)."""
        K = mu0.size
        nu0 = K + priors.wishart_dof_extra
        return cls(
            mu0=mu0,
            kappa0=priors.within_cluster_var / (priors.mean_var_scale * spread + 1.0),
            q=q,
            nu0=nu0,
            W0_inv=np.eye(K) * (nu0 - K - 1) * priors.within_cluster_var,
            n_epochs=n_epochs,
        )

    def B(self) -> np.ndarray:
        """The prior covariance factor of the walk ``B_{ee'} = 1/κ_0 + q·min(e, e')``: (E, E)."""
        e = np.arange(self.n_epochs)
        return 1.0 / self.kappa0 + self.q * np.minimum(e[:, None], e[None, :])


@dataclass
class Stats:
    """Sufficient statistics of clusters, batched over leading axes ``(...)``: counts ``n_e``
    (..., E), sums (..., E, K) and scatter ``Σ s s'`` (..., K, K).

    With a precision scale ``u_i`` per spike (``ε_i ~ N(0, (u_i Λ)^{-1})``, the sorter's
    Student-t clusters), counts, sums and scatter are weighted by ``u_i``, `n` (...) holds the
    spike counts and `log_weight` (...) ``Σ log u_i``; without weights both follow from
    `counts`.
    """

    counts: np.ndarray
    sums: np.ndarray
    scatter: np.ndarray
    n: np.ndarray | None = None
    log_weight: np.ndarray | float = 0.0

    @property
    def spikes(self) -> np.ndarray:
        """The number of spikes of each batch: (...)."""
        return self.counts.sum(-1) if self.n is None else self.n

    @classmethod
    def of(
        cls, s: np.ndarray, epoch: np.ndarray, n_epochs: int, u: np.ndarray | None = None
    ) -> Stats:
        """Of one set of spikes' features `s` (n, M, K) in epochs `epoch` (n,), weighted by
        the precision scales `u` (n,) when given: shapes (M, E), (M, E, K), (M, K, K), one
        cluster per channel."""
        n, M = s.shape[:2]
        su = s if u is None else s * u[:, None, None]
        by_epoch = np.zeros((n_epochs, n))  # Z' weighted by u: one product for all sums
        by_epoch[epoch, np.arange(n)] = 1.0 if u is None else u
        sums = (by_epoch @ s.reshape(n, -1)).reshape((n_epochs,) + s.shape[1:])
        stats = cls(
            np.broadcast_to(by_epoch.sum(1), (M, n_epochs)),
            sums.transpose(1, 0, 2),
            np.matmul(su.transpose(1, 2, 0), s.transpose(1, 0, 2)),
        )
        if u is None:
            return stats
        return replace(
            stats, n=np.full(M, float(len(s))), log_weight=np.full(M, float(np.log(u).sum()))
        )

    @classmethod
    def stacked(cls, batches: list[Stats]) -> Stats:
        """Statistics of equal shapes stacked on a new leading axis."""
        first = batches[0]
        return cls(
            *(np.stack([getattr(b, f) for b in batches]) for f in ("counts", "sums", "scatter")),
            None if first.n is None else np.stack([b.n for b in batches]),
            first.log_weight
            if np.ndim(first.log_weight) == 0
            else np.stack([b.log_weight for b in batches]),
        )

    @classmethod
    def of_labels(
        cls,
        s: np.ndarray,
        labels: np.ndarray,
        n_clusters: int,
        epoch: np.ndarray,
        n_epochs: int,
        u: np.ndarray | None = None,
        columns: np.ndarray | None = None,
    ) -> Stats:
        """Of every cluster of `labels` (n,) in ``0..n_clusters-1`` on the feature columns
        `columns` of `s` (N, M, K) (all by default), weighted by the precision scales `u` (n,)
        when given: shapes (H, M, E), (H, M, E, J), (H, M, J, J)."""
        H, (N, M, K) = n_clusters, s.shape
        columns = np.arange(K) if columns is None else columns
        weight = np.ones(N) if u is None else u
        counts = np.bincount(labels * n_epochs + epoch, weight, H * n_epochs)
        sums, scatter = kernels.cluster_moments(s, columns, labels, epoch, weight, H, n_epochs)
        n = log_weight = None
        if u is not None:
            n = np.repeat(np.bincount(labels, minlength=H)[:, None], M, axis=1).astype(float)
            log_weight = np.repeat(np.bincount(labels, np.log(u), minlength=H)[:, None], M, axis=1)
        return cls(
            np.repeat(counts.reshape(H, 1, n_epochs), M, axis=1),
            sums,
            scatter,
            n,
            0.0 if log_weight is None else log_weight,
        )


class ColumnSwap:
    """The statistics of every cluster on the feature columns in use under fixed labels, with
    one column replaced in O(N·M·K_active): what the birth–death moves on ``z`` evaluate twice
    per atom.

    `s` (N, M, K) is the sampler's feature array and `z` (K,) bool the atoms in use, both held
    by reference: call :meth:`set` after changing a column of `s` and its `z`. The (K, K)
    statistics hold what the moves read, the products among the columns in use; those of an
    unused column are left as they were and made afresh when it is set in use. `u` (N,): the
    spikes' precision scales (weights), or None.
    """

    def __init__(self, s, z, labels, n_clusters, epoch, n_epochs, u=None):
        self.s, self.z, self.H, self.E = s, z, n_clusters, n_epochs
        self.by_atom = np.ascontiguousarray(s.transpose(2, 0, 1))  # (K, N, M): read by column
        weight = np.ones(labels.size) if u is None else u
        self.labels, self.weight = labels, weight
        self.by_cluster = _indicator(labels, n_clusters, weight)
        self.by_segment = _indicator(labels * n_epochs + epoch, n_clusters * n_epochs, weight)
        a = np.flatnonzero(z)
        in_use = Stats.of_labels(s, labels, n_clusters, epoch, n_epochs, u, a)
        M, K = s.shape[1:]
        sums = np.zeros((n_clusters, M, n_epochs, K))
        scatter = np.zeros((n_clusters, M, K, K))
        sums[..., a] = in_use.sums
        scatter[:, :, a[:, None], a] = in_use.scatter
        self.full = replace(in_use, sums=sums, scatter=scatter)

    def column(self, k: int, col: np.ndarray, columns: np.ndarray):
        """Sums (H, M, E) and products with the feature columns `columns` (H, M, len(columns))
        of features `col` (N, M) put in column k."""
        M = self.s.shape[1]
        sums = (self.by_segment @ col).reshape(self.H, self.E, M).transpose(0, 2, 1)
        cross = kernels.cluster_products(
            col, self.by_atom, columns, self.labels, self.weight, self.H
        )
        cross[:, :, columns == k] = (self.by_cluster @ (col * col))[:, :, None]
        return sums, cross

    def stats(self, active: np.ndarray, k: int, col: np.ndarray | None) -> Stats:
        """Of the columns `active` (sorted, in use but for k), column k holding `col` where k
        is among them."""
        sums = self.full.sums[..., active]
        scatter = self.full.scatter[:, :, active][:, :, :, active]
        if col is not None and k in active:
            col_sums, cross = self.column(k, col, active)
            _put(sums, scatter, int(np.searchsorted(active, k)), col_sums, cross)
        return replace(self.full, sums=sums, scatter=scatter)

    def set(self, k: int) -> None:
        """Column k of `s` and `z` have changed: column k's statistics, when in use."""
        self.by_atom[k] = self.s[:, :, k]
        if self.z[k]:
            a = np.flatnonzero(self.z)
            _put(self.full.sums, self.full.scatter, k, *self.column(k, self.s[:, :, k], a), a)


def _put(sums, scatter, j: int, col_sums, cross, columns=slice(None)) -> None:
    """Column j's sums (..., E) and its products with the columns `columns` (..., len), every
    column by default, in place."""
    sums[..., j] = col_sums
    scatter[:, :, j, columns] = cross
    scatter[:, :, columns, j] = cross


def _indicator(index: np.ndarray, n: int, weight: np.ndarray | None = None) -> sparse.csr_matrix:
    """The (n, len(index)) matrix with `weight[i]` (default one) at (index[i], i)."""
    values = np.ones(index.size) if weight is None else weight
    return sparse.csr_matrix((values, (index, np.arange(index.size))), shape=(n, index.size))


def principal_axes(f: np.ndarray, n_axes: int) -> np.ndarray:
    """Rows of `f` (n, d), centred, on their first `n_axes` principal axes: (n, ≤ n_axes)."""
    centre, axes = leading_axes(f, n_axes)
    return (f - centre) @ axes


def leading_axes(f: np.ndarray, n_axes: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean of the rows of `f` (n, d) and their first `n_axes` principal axes, orthonormal
    columns (d, ≤ n_axes).

    Where the smaller of the two Gram matrices, ``F'F`` (d, d) or ``FF'`` (n, n), has at most
    :data:`EXACT_GRAM_SIZE` rows, its top eigenpairs (LAPACK's ``syevx``; with fewer rows
    than columns the eigenvectors ``u`` of ``FF'`` give the axes ``v = F'u / σ``). Above
    that, block subspace iteration (Halko, Martinsson, Tropp 2011, algorithm 4.4): a
    seeded Gaussian block of ``l = n_axes +`` :data:`SUBSPACE_OVERSAMPLING` columns,
    multiplied by ``F'F`` ``q + 1`` times (``q =`` :data:`SUBSPACE_ITERATIONS`) with
    re-orthonormalisation, then the top eigenvectors of ``F'F`` restricted to that block
    (Rayleigh–Ritz). An axis k's error shrinks like ``(σ_{l+1}/σ_k)^{2q+1}`` (σ the singular
    values); each multiplication costs ``O(n d l)`` instead of the Gram's ``O(n d²)``. Where
    σ_k is close to σ_{l+1} (the noise floor of whitened snippets, where any direction is as
    principal as another) the axes are another choice within that floor."""
    centre = f.mean(0)
    centred = f - centre
    n, d = centred.shape
    if min(n, d) > EXACT_GRAM_SIZE:
        return centre, _subspace_axes(
            lambda block: centred.T @ (centred @ block), d, n_axes, centred.dtype
        )
    few_rows = n_axes <= n < d
    gram = centred @ centred.T if few_rows else centred.T @ centred
    values, vectors = _top_eigenpairs(gram, n_axes)
    if few_rows:  # an axis of no spread (σ = 0) projects everything on 0
        sigma = np.sqrt(np.maximum(values, 0.0))
        vectors = centred.T @ vectors / np.where(sigma > 0, sigma, np.inf)
    return centre, vectors


def gram_axes(gram: np.ndarray, n_axes: int) -> np.ndarray:
    """The top `n_axes` eigenvectors of a scatter matrix `gram` (d, d), orthonormal columns (d,
    ≤ n_axes): the principal axes of the rows it sums, as :func:`leading_axes` finds them
    (exactly up to :data:`EXACT_GRAM_SIZE` rows, by block subspace iteration above)."""
    d = gram.shape[0]
    if d > EXACT_GRAM_SIZE:
        return _subspace_axes(lambda block: gram @ block, d, n_axes, gram.dtype)
    return _top_eigenpairs(gram, n_axes)[1]


def _top_eigenpairs(gram: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The `n` largest eigenvalues of a symmetric `gram`, descending, and their eigenvectors
    (LAPACK's ``syevx``: only those computed)."""
    m = gram.shape[0]
    values, vectors = linalg.eigh(gram, subset_by_index=[max(m - n, 0), m - 1], driver="evx")
    return values[::-1], vectors[:, ::-1]


def _subspace_axes(apply, d: int, n_axes: int, dtype) -> np.ndarray:
    """The top `n_axes` eigenvectors of ``F'F`` (d, n_axes) by block subspace iteration,
    `apply` multiplying a block (d, l) by it; the block in `dtype` (the rows' precision: one
    type, no copy of them per GEMM)."""
    block = np.random.default_rng(0).standard_normal((d, n_axes + SUBSPACE_OVERSAMPLING))
    block = block.astype(dtype)
    for _ in range(SUBSPACE_ITERATIONS + 1):
        block = np.linalg.qr(apply(block))[0]
    vectors = np.linalg.eigh(block.T @ apply(block))[1][:, ::-1][:, :n_axes]
    return block @ vectors


def posterior(prior: WalkPrior, stats: Stats):
    """The walk's posterior precision ``Q = B^{-1} + N`` by its Cholesky factor ``L``, with
    ``Y = L^{-1} Z'R`` (..., E, K), ``R'C^{-1}R = R'R − Y'Y`` (..., K, K) (``C^{-1} = I − Z Q^{-1}
    Z'``) and ``log|C| = log|I + N B| = log|Q| + log|B|``.

    The walk is Markov, so ``B^{-1}`` is tridiagonal (``κ_0 + 1/q, 2/q, …, 2/q, 1/q`` on the
    diagonal, ``−1/q`` beside it), ``Q`` too and ``L`` bidiagonal: every step costs O(E) per
    cluster, not the O(E³) of inverting ``I + N B``. Returns ``L`` as its diagonal (..., E)
    and sub-diagonal (..., E − 1), then ``Y``, ``R'C^{-1}R``, ``log|C|``. Without steps
    (``q = 0``) the means are one mean: the walk of one epoch (:func:`_one_mean`), so ``L``
    and ``Y`` have one epoch.
    """
    prior, stats = _one_mean(prior, stats)
    E, q = prior.n_epochs, prior.q
    d = stats.counts + _walk_precision_diagonal(prior)
    L_diag = np.empty_like(d)
    L_sub = np.empty(d.shape[:-1] + (E - 1,))
    L_diag[..., 0] = np.sqrt(d[..., 0])
    for e in range(1, E):
        L_sub[..., e - 1] = -1.0 / (q * L_diag[..., e - 1])
        L_diag[..., e] = np.sqrt(d[..., e] - L_sub[..., e - 1] ** 2)
    Y = _forward_substitute((L_diag, L_sub), stats.sums - stats.counts[..., None] * prior.mu0)
    total = stats.sums.sum(-2)
    n = stats.counts.sum(-1)[..., None, None]
    RR = (
        stats.scatter
        - prior.mu0[:, None] * total[..., None, :]
        - total[..., :, None] * prior.mu0[None, :]
        + n * np.outer(prior.mu0, prior.mu0)
    )
    RCR = RR - np.swapaxes(Y, -1, -2) @ Y
    log_B = -np.log(prior.kappa0) + (E - 1) * np.log(q) if E > 1 else -np.log(prior.kappa0)
    return (L_diag, L_sub), Y, RCR, 2 * np.log(L_diag).sum(-1) + log_B


def _walk_precision_diagonal(prior: WalkPrior) -> np.ndarray:
    """The diagonal of ``B^{-1}``: ``κ_0 + 1/q, 2/q, …, 2/q, 1/q`` (``κ_0`` for one epoch)."""
    E, q = prior.n_epochs, prior.q
    if E == 1:
        return np.array([prior.kappa0])
    out = np.full(E, 2.0 / q)
    out[0], out[-1] = prior.kappa0 + 1.0 / q, 1.0 / q
    return out


def _forward_substitute(factor, ZR: np.ndarray) -> np.ndarray:
    """``Y = L^{-1} Z'R`` (..., E, K) for the bidiagonal factor ``(L_diag, L_sub)`` of
    :func:`posterior`."""
    L_diag, L_sub = factor
    Y = np.empty_like(ZR)
    Y[..., 0, :] = ZR[..., 0, :] / L_diag[..., 0, None]
    for e in range(1, L_diag.shape[-1]):
        Y[..., e, :] = (ZR[..., e, :] - L_sub[..., e - 1, None] * Y[..., e - 1, :]) / L_diag[
            ..., e, None
        ]
    return Y


def _back_substitute(factor, Y: np.ndarray) -> np.ndarray:
    """``X = L^{-T} Y`` (..., E, K) for the bidiagonal factor ``(L_diag, L_sub)`` of
    :func:`posterior`."""
    L_diag, L_sub = factor
    E = L_diag.shape[-1]
    X = np.empty_like(Y)
    X[..., E - 1, :] = Y[..., E - 1, :] / L_diag[..., E - 1, None]
    for e in range(E - 2, -1, -1):
        X[..., e, :] = (Y[..., e, :] - L_sub[..., e, None] * X[..., e + 1, :]) / L_diag[
            ..., e, None
        ]
    return X


def _one_mean(prior: WalkPrior, stats: Stats) -> tuple[WalkPrior, Stats]:
    """A walk without steps (``q = 0``) is one mean over all epochs: the prior and statistics
    of a single epoch (the sums pooled); any other walk unchanged."""
    if prior.q > 0 or prior.n_epochs == 1:
        return prior, stats
    return replace(prior, n_epochs=1), replace(
        stats, counts=stats.counts.sum(-1, keepdims=True), sums=stats.sums.sum(-2, keepdims=True)
    )


def log_marginal(prior: WalkPrior, stats: Stats) -> np.ndarray:
    """``log p(S)`` of each batch of features with ``μ`` and ``Λ`` integrated out (matrix-t);
    with precision scales, ``|C| = |I + N_u B| / Π u_i``. Numba, batch by batch: the walk's
    bidiagonal factor, ``R'C^{-1}R`` and the two log-determinants of :func:`posterior` and
    :func:`_matrix_t` on (E, K) and (K, K) arrays, without numpy's per-call overhead (a
    split–merge proposal asks for a few such marginals)."""
    prior, stats = _one_mean(prior, stats)
    batch = stats.counts.shape[:-1]
    E, K = stats.sums.shape[-2:]
    out = _log_marginal_nb(
        np.ascontiguousarray(np.broadcast_to(stats.counts, batch + (E,)).reshape(-1, E)),
        np.ascontiguousarray(stats.sums.reshape(-1, E, K), float),
        np.ascontiguousarray(stats.scatter.reshape(-1, K, K), float),
        np.broadcast_to(stats.spikes, batch).astype(float).ravel(),
        np.broadcast_to(stats.log_weight, batch).astype(float).ravel(),
        np.asarray(prior.mu0, float),
        _walk_precision_diagonal(prior),
        float(prior.kappa0),
        float(prior.q),
        float(prior.nu0),
        np.ascontiguousarray(prior.W0_inv, float),
    )
    return out.reshape(batch)


@numba.njit(cache=True)
def _log_multigamma_nb(a: float, K: int) -> float:
    out = K * (K - 1) / 4 * np.log(np.pi)
    for j in range(K):
        out += math.lgamma(a - 0.5 * j)
    return out


@numba.njit(cache=True)
def _log_marginal_nb(
    counts, sums, scatter, spikes, log_weight, mu0, walk_diag, kappa0, q, nu0, W0_inv
):
    B, E, K = sums.shape
    logdet_W0_inv = np.linalg.slogdet(W0_inv)[1]
    log_B = -np.log(kappa0) + (E - 1) * np.log(q) if E > 1 else -np.log(kappa0)
    gamma0 = _log_multigamma_nb(nu0 / 2, K)
    L_diag, L_sub = np.empty(E), np.empty(max(E - 1, 0))
    Y, total, S = np.empty((E, K)), np.empty(K), np.empty((K, K))
    out = np.empty(B)
    for b in range(B):
        L_diag[0] = np.sqrt(counts[b, 0] + walk_diag[0])
        for e in range(1, E):
            L_sub[e - 1] = -1.0 / (q * L_diag[e - 1])
            L_diag[e] = np.sqrt(counts[b, e] + walk_diag[e] - L_sub[e - 1] ** 2)
        n_w = 0.0
        total[:] = 0.0
        for e in range(E):
            n_w += counts[b, e]
            for k in range(K):
                total[k] += sums[b, e, k]
                r = sums[b, e, k] - counts[b, e] * mu0[k]
                Y[e, k] = (r if e == 0 else r - L_sub[e - 1] * Y[e - 1, k]) / L_diag[e]
        for k in range(K):
            for j in range(K):
                rr = (
                    scatter[b, k, j] - mu0[k] * total[j] - total[k] * mu0[j] + n_w * mu0[k] * mu0[j]
                )
                for e in range(E):
                    rr -= Y[e, k] * Y[e, j]
                S[k, j] = W0_inv[k, j] + rr
        logdet_C = log_B
        for e in range(E):
            logdet_C += 2 * np.log(L_diag[e])
        logdet_S = np.linalg.slogdet(S)[1]
        n = spikes[b]
        nu_n = nu0 + n
        out[b] = (
            -0.5 * n * K * np.log(np.pi)
            - 0.5 * K * (logdet_C - log_weight[b])
            + _log_multigamma_nb(nu_n / 2, K)
            - gamma0
            + 0.5 * nu0 * logdet_W0_inv
            - 0.5 * nu_n * logdet_S
        )
    return out


def log_marginal_numpy(prior: WalkPrior, stats: Stats) -> np.ndarray:
    """The numpy twin of :func:`log_marginal`."""
    _, _, RCR, logdet_C = posterior(prior, stats)
    return _matrix_t(
        prior.mu0.size,
        stats.spikes,
        logdet_C - stats.log_weight,
        prior.nu0,
        np.linalg.slogdet(prior.W0_inv)[1],
        np.linalg.slogdet(prior.W0_inv + RCR)[1],
    )


def _matrix_t(K: int, n, logdet_C, nu0: float, logdet_W0_inv: float, logdet_S) -> np.ndarray:
    """The matrix-t ``log p(S)`` on `K` features from `n` spikes, ``log|C|`` (over the
    precision scales), ``ν_0``, ``log|W_0^{-1}|`` and ``log|W_0^{-1} + R'C^{-1}R|``."""
    nu_n = nu0 + n
    return (
        -0.5 * n * K * np.log(np.pi)
        - 0.5 * K * logdet_C
        + _log_multigamma(nu_n / 2, K)
        - _log_multigamma(nu0 / 2, K)
        + 0.5 * nu0 * logdet_W0_inv
        - 0.5 * nu_n * logdet_S
    )


class BorderedMarginal:
    """``log M``, the sum of :func:`log_marginal` over clusters (…), on the atoms in use, and
    the same with one atom added or one removed, in O(K²) per cluster instead of O(K³): what
    the birth–death moves on ``z`` ask for each atom.

    For the isotropic prior of :meth:`WalkPrior.isotropic`, ``W_0^{-1} = w I`` and
    ``ν_0 − K`` do not depend on the atoms in use, nor does ``log|C|`` (the counts'), so an
    atom changes only ``S = W_0^{-1} + R'C^{-1}R`` by a row and a column: with ``S^{-1}``
    kept, ``log|S'| = log|S| + log(s − b'S^{-1}b)`` (Schur complement of the new row
    ``(b', s)``) and, without column p, ``log|S'| = log|S| + log (S^{-1})_{pp}``.
    `prior` is the prior on the atoms in use (at least one), `stats` their statistics.
    """

    def __init__(self, prior: WalkPrior, stats: Stats):
        self.mu0, self.K = prior.mu0, prior.mu0.size
        self.stats = _one_mean(prior, stats)[1]  # as the posterior sees them
        self.factor, self.Y, RCR, logdet_C = posterior(prior, stats)
        self.logdet_C = logdet_C - stats.log_weight
        self.w, self.extra = prior.W0_inv[0, 0], prior.nu0 - self.K
        S = prior.W0_inv + RCR
        self.S_inv = np.linalg.inv(S)
        self.logdet_S = np.linalg.slogdet(S)[1]
        self.total = self._log_m(self.K, self.logdet_S)

    def _log_m(self, K: int, logdet_S) -> float:
        n = self.stats.spikes
        logdet_W0_inv = K * np.log(self.w)
        return float(_matrix_t(K, n, self.logdet_C, K + self.extra, logdet_W0_inv, logdet_S).sum())

    def removing(self, p: int) -> float:
        """``log M`` without the `p`-th atom in use."""
        return self._log_m(self.K - 1, self.logdet_S + np.log(self.S_inv[..., p, p]))

    def adding(self, mu0: float, sums: np.ndarray, cross: np.ndarray, square: np.ndarray) -> float:
        """``log M`` with one more atom whose features have prior mean `mu0`, sums (…, E) by
        epoch, products with the atoms in use (…, K) and squares (…) summed per cluster
        (weighted as the statistics are)."""
        counts = self.stats.counts
        if counts.shape[-1] != sums.shape[-1]:  # one mean (:func:`_one_mean`): pooled
            sums = sums.sum(-1, keepdims=True)
        Y = _forward_substitute(self.factor, (sums - counts * mu0)[..., None])[..., 0]
        total, n = sums.sum(-1), counts.sum(-1)
        totals = self.stats.sums.sum(-2)  # (…, K)
        RR = cross - self.mu0 * total[..., None] - totals * mu0 + n[..., None] * self.mu0 * mu0
        b = RR - np.einsum("...ek,...e->...k", self.Y, Y)
        s = self.w + square - 2 * mu0 * total + n * mu0**2 - np.sum(Y * Y, -1)
        schur = s - np.einsum("...k,...kl,...l->...", b, self.S_inv, b)
        return self._log_m(self.K + 1, self.logdet_S + np.log(schur))


def sample(rng: np.random.Generator, prior: WalkPrior, stats: Stats, wishart):
    """``Λ ~ p(Λ | S)`` (Wishart) and then ``μ ~ p(μ_{1..E} | Λ, S)`` (matrix-normal), batched:
    returns ``μ`` (..., E, K) and ``Λ`` (..., K, K). `wishart` draws batched Wishart matrices.

    ``μ | Λ, S`` has mean ``μ_0 + Q^{-1} Z'R = μ_0 + L^{-T} Y`` and covariance ``Q^{-1} ⊗ Λ^{-1}``:
    ``μ = μ_0 + L^{-T}(Y + G L_Σ')`` with ``G`` standard normal (E, K) and ``L_Σ L_Σ' = Λ^{-1}``."""
    factor, Y, RCR, _ = posterior(prior, stats)
    n = stats.spikes
    scale = np.linalg.inv(_sym(prior.W0_inv + RCR))
    lam = wishart(rng, prior.nu0 + n, scale)
    L_lam = np.linalg.cholesky(_sym(lam))
    G = rng.standard_normal(Y.shape)
    # G L_Σ' solves L_Λ' X' = G'
    right = np.swapaxes(np.linalg.solve(np.swapaxes(L_lam, -1, -2), np.swapaxes(G, -1, -2)), -1, -2)
    mu = prior.mu0 + _back_substitute(factor, Y + right)
    return np.broadcast_to(mu, mu.shape[:-2] + (prior.n_epochs, mu.shape[-1])).copy(), lam


def _log_multigamma(a, K: int) -> np.ndarray:
    """``log Γ_K(a) = K(K−1)/4 log π + Σ_{j<K} log Γ(a − j/2)``, elementwise over `a`."""
    a = np.asarray(a, float)
    return K * (K - 1) / 4 * np.log(np.pi) + gammaln(a[..., None] - 0.5 * np.arange(K)).sum(-1)


def _sym(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + np.swapaxes(a, -1, -2))
