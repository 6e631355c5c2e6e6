"""Joint beta–Bernoulli dictionary features and dynamic-HDP clusters, sampled by Gibbs.

MODELS.md §1 (Chen, Carlson, Carin, NeurIPS 2011; Carlson et al., IEEE TBME 2013). For spike `i`
on channel `m` of one electrode group, in noise units (snippets divided by each channel's noise
level)::

    x_{i,m} = A diag(z ∘ w_m) s_{i,m} + e_{i,m},      e_{i,m} ~ N(0, (u_i diag(φ_m))^{-1})
    z_k ~ Bernoulli(π_k),  π_k ~ Beta(a/K, b(K-1)/K)
    A_{tk} ~ N(0, 1/α_{tk}),  w_{mk} ~ N_+(0, σ_w²)
    s_{i,m} | c_i = c, epoch e ~ N(μ_{c,m,e}, (u_i Λ_{c,m})^{-1}),   Λ_{c,m} ~ Wishart(ν_0, W_0)
    u_i ~ Gamma(ν/2, ν/2),   ν uniform on a grid

Cluster weights of epoch `e` come from the dHDP: ``G_e = Σ_{j≤e} v_{e,j} H_j`` with ``H_0 = G_1``,
``v_{e,j} = ω_j Π_{l=j+1..e}(1-ω_l)`` (``ω_0 = 1``), every ``H_j`` a truncated ``DP(α, G_0)``
over the same `H` global atoms (weights ``π_j ~ Dir(α β)``), ``β ~ Dir(γ/H)`` (weak limit).
Cluster means drift across epochs as a Gaussian random walk ``μ_{c,m,e} = μ_{c,m,e-1} + η``,
or stay fixed when drift is off.

Choices of ours (documented as MODELS.md asks): the Normal–Wishart prior is conjugate and the
walk's steps are in units of the cluster's spread, ``μ_{c,m,1} ~ N(μ_0, (κ_0 Λ)^{-1})``,
``η ~ N(0, σ_drift² Λ^{-1})``, so a cluster's marginal likelihood is closed-form
(:mod:`neurodict.sort.walk`) and clusters split and merge by Metropolis–Hastings moves on it
(:mod:`neurodict.sort.splitmerge`); atom usage ``z_k`` is drawn with atom k's features
integrated out (a blocked step for ``(z_k, s_{·,·,k})``), so an atom that explains no structure
switches off; labels are drawn with the features integrated out (a blocked step for
``(c, s)``: ``c ~ p(c | x)``, then ``s ~ p(s | c, x)``), which depends only on the atoms in use
and mixes far better; the auxiliary table counts for ``β`` are Antoniak draws.

Atoms local in space (the kernel beta process, MODELS.md §1b, :mod:`neurodict.sort.kbp`): on a
wide group's chain, cluster ``c`` uses atom ``k`` where ``z_k`` and it considers the atom,
``c_{c,k} ~ Bernoulli(κ(ℓ_c, x*_k; ψ_k))`` at its spikes' mean position ``ℓ_c``; the features of
the atoms it does not consider explain nothing of its spikes and follow the cluster's
conditional. Without a kernel (``κ = 1``) every cluster considers every atom.

Student-t clusters (``sorting.heavy_tails``, on by default; ``u_i = 1`` and Gaussian clusters
when off): the precision scale ``u_i`` that a spike's features and noise share makes each
cluster's snippets a multivariate t once it is integrated out. A spike that a collision or an
artefact moves far from its neuron's mean (its distance ``δ_i`` many times the snippet's
dimension) is then likely under its neuron's cluster, at a small ``u_i`` that weighs it little in
the cluster's statistics, where a Gaussian mixture can only explain such spikes by a broad
cluster of their own beside the neuron's. Labels are drawn with ``u`` integrated out (blocked
with ``(c, s)``), then ``u_i | c_i, x_i`` (Gamma) and ``ν | u`` on its grid; given ``u`` every
other conditional is the Gaussian one with spike i weighted by ``u_i``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.linalg
from scipy.cluster.vq import kmeans2
from scipy.spatial import cKDTree
from scipy.special import gammaln, log_ndtr, ndtri_exp

from neurodict.sort import dhdp, kbp, kernels, splitmerge, walk
from neurodict.sort.params import Priors, SortParams

LIK_BATCH = 4096  # spikes whose likelihoods are computed at once: memory, not results
DOF_GRID_POINTS = 25  # values of ν, evenly spaced in log between the priors' bounds

_DEFAULT = SortParams()  # keyword defaults below are the schema's (one registry)


@dataclass
class State:
    """One Gibbs sample. Shapes: N spikes, M channels, T samples, K atoms, H clusters, E epochs."""

    A: np.ndarray  # (T, K)
    z: np.ndarray  # (K,) bool
    pi: np.ndarray  # (K,)
    w: np.ndarray  # (M, K) ≥ 0
    s: np.ndarray  # (N, M, K)
    ard: np.ndarray  # (T, K)
    phi: np.ndarray  # (M, T)
    labels: np.ndarray  # (N,) cluster of each spike
    r: np.ndarray  # (N,) dHDP component of each spike (≤ its epoch)
    beta: np.ndarray  # (H,)
    pis: np.ndarray  # (E, H) weights of H_0 .. H_{E-1}
    omega: np.ndarray  # (E,) innovation weights; omega[0] = 1 by definition
    mu: np.ndarray  # (H, M, E, K)
    lam: np.ndarray  # (H, M, K, K)
    u: np.ndarray  # (N,) precision scale of each spike (ones for Gaussian clusters)
    nu: float  # their degrees of freedom (inf for Gaussian clusters)
    log_lik: float = -np.inf
    # the kernel beta process (:mod:`neurodict.sort.kbp`), None without one: cluster h's
    # spikes use atom k where z_k and consider[h, k]; atom k's place and width (grid indices)
    consider: np.ndarray | None = None  # (H, K) bool
    place: np.ndarray | None = None  # (K,)
    width: np.ndarray | None = None  # (K,)

    def predictive(self, labelled: bool = False) -> State:
        """What a kept sample needs for the posterior predictive, presence and drift: a copy
        restricted to the atoms in use (``z`` all true; an unused atom enters none of them),
        without the learning subsample's per-spike parts (features, labels, dHDP components,
        precision scales, left empty) unless `labelled`, which keeps the labels and the
        features of the atoms in use (the point estimate's). The clusters' precisions shrink
        from (H, M, K, K) to (H, M, K_a, K_a): a chain's kept samples fit in a few MB on a
        10-channel neighbourhood, not 50."""
        a = np.flatnonzero(self.z)
        out = {k: v[:0].copy() for k, v in vars(self).items() if k in ("s", "labels", "r", "u")}
        out |= {
            "A": self.A[:, a],
            "z": np.ones(a.size, bool),
            "pi": self.pi[a],
            "w": self.w[:, a],
            "ard": self.ard[:, a],
            "mu": self.mu[..., a],
            "lam": self.lam[:, :, a][:, :, :, a],
        }
        if self.consider is not None:
            out |= {"consider": self.consider[:, a], "place": self.place[a], "width": self.width[a]}
        if labelled:
            out |= {"s": self.s[:, :, a], "labels": self.labels.copy()}
        arrays = {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}
        return replace(self, **{k: out[k] if k in out else np.copy(v) for k, v in arrays.items()})


@dataclass
class Data:
    """What the sampler conditions on."""

    x: np.ndarray  # (N, M, T) snippets in noise units
    epoch: np.ndarray  # (N,) epoch index of each spike
    n_epochs: int
    classes: list = field(default_factory=list)  # kernels.colour_classes
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    samples: np.ndarray | None = None  # (N,) sorted spike samples
    refractory_samples: int = 0


class Residual:
    """The residual ``r = x − Σ_k z_k D_k s_k`` (N, M, T), changed in place, with its
    projections ``a_{m,j}'Φ_m r_{i,m}`` on every atom j (K, N, M: one atom's contiguous) kept
    beside it as atoms switch on and off: the birth–death moves read one atom's of these
    instead of a pass over the snippets.

    Parameters
    ----------
    r : numpy.ndarray (N, M, T)
        The residual, held by reference and updated by :meth:`add`.
    atoms : numpy.ndarray (M, T, K)
        ``a_{m,k} = w_{mk} A_k``.
    phi : numpy.ndarray (M, T)
        Noise precisions.
    """

    def __init__(self, r: np.ndarray, atoms: np.ndarray, phi: np.ndarray):
        self.r, self.atoms = r, atoms
        self.gram = gram(atoms, phi)  # (M, K, K)
        self.projected = np.ascontiguousarray(projections(r, atoms, phi).transpose(2, 1, 0))

    def add(self, k: int, s_k: np.ndarray) -> None:
        """``r += a_k s_k`` for features `s_k` (N, M), projections updated alike."""
        self.r += self.atoms[None, :, :, k] * s_k[:, :, None]
        self.projected += s_k[None] * self.gram[:, k, :].T[:, None, :]


def dictionary(state: State) -> np.ndarray:
    """``D_m = A diag(z ∘ w_m)`` restricted to the atoms in use: (M, T, K_active)."""
    active = np.flatnonzero(state.z)
    return state.A[None, :, active] * state.w[:, None, active]


def reconstruction(state: State) -> np.ndarray:
    """``Σ_k z_k c_{h_i,k} w_{mk} A_k s_{i,m,k}`` of every spike and channel: (N, M, T), one
    GEMM (``c = 1`` without a kernel)."""
    use = in_use(state)
    s = state.s if use is None else state.s * use[:, None, :]
    return (s * state.w) @ (state.A * state.z).T


def in_use(state: State) -> np.ndarray | None:
    """``c_{h_i,k}``: whether each spike's cluster considers each atom (N, K) float, None
    without a kernel (every spike considers every atom)."""
    return None if state.consider is None else state.consider[state.labels].astype(float)


def projections(x: np.ndarray, D: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """``D_m'Φ_m x_{i,m}`` of snippets `x` (N, M, T) on each channel's atoms `D` (M, T, K)
    under the noise precisions `phi` (M, T): (M, N, K), one GEMM per channel on the small
    ``Φ_m D_m`` (the snippets are read once, not multiplied by ``Φ`` first)."""
    return np.matmul(x.transpose(1, 0, 2), phi[:, :, None] * D)


def noise_energy(x: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """``Σ_m x_{i,m}'Φ_m x_{i,m}`` of snippets `x` (N, M, T): (N,), one GEMV on the squares."""
    return np.square(x).reshape(len(x), -1) @ phi.ravel()


def per_channel(mats: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``mats_m v_{i,m}`` for matrices `mats` (M, K, L) and vectors `v` (N, M, L): (N, M, K),
    one batched GEMM."""
    return np.matmul(v.transpose(1, 0, 2), np.swapaxes(mats, 1, 2)).transpose(1, 0, 2)


def gram(D: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """``D_m'Φ_m D_m`` of each channel's atoms `D` (M, T, K) under the noise precisions `phi`
    (M, T): (M, K, K), one batched GEMM."""
    return np.matmul(np.swapaxes(phi[:, :, None] * D, 1, 2), D)


def positive_normal(rng: np.random.Generator, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Draws of ``N(mean, sd²)`` truncated to ``[0, ∞)``, elementwise, by the inverse CDF in
    logs (scipy's ``truncnorm`` algorithm and uniforms, without its per-call overhead): with
    ``a = −mean/sd`` and ``q ~ U(0, 1)``, ``Φ(y) = Φ(a) + q Φ(−a)`` for ``a < 0`` and
    ``Φ(−y) = (1 − q) Φ(−a)`` otherwise (far in the tail, each side stays exact)."""
    a = -mean / sd
    q = rng.uniform(size=np.shape(a))
    log_mass = log_ndtr(-a)  # log P(y > a)
    with np.errstate(divide="ignore"):  # q = 0: log 0, the draw at the bound
        left = ndtri_exp(np.logaddexp(log_ndtr(a), np.log(q) + log_mass))
    right = -ndtri_exp(np.log1p(-q) + log_mass)
    return mean + sd * np.where(a < 0, left, right)


def marginal_log_lik(x: np.ndarray, epoch: np.ndarray, state: State) -> np.ndarray:
    """``log p(x_i | c_i = c)`` with the features and the precision scale integrated out:
    (N, H). A multivariate t with ``ν`` degrees of freedom (a Gaussian when ``ν = ∞``) of the
    forms :func:`quadratic_forms`."""
    delta, logdet = quadratic_forms(x, epoch, state)
    return log_density(delta, logdet, x.shape[1] * x.shape[2], state.nu)


def log_density(delta: np.ndarray, logdet: np.ndarray, d: int, nu: float) -> np.ndarray:
    """``log t_ν(x; m, Σ)`` in `d` dimensions from ``δ = (x−m)'Σ^{-1}(x−m)`` (N, H) and
    ``log|Σ|`` (H,), computed in place of `delta`: ``∫ N(x; m, Σ/u) Gamma(u; ν/2, ν/2) du =
    Γ((ν+d)/2) / Γ(ν/2) (νπ)^{-d/2} |Σ|^{-1/2} (1 + δ/ν)^{-(ν+d)/2}``; the Gaussian when
    ``ν = ∞``."""
    if np.isinf(nu):
        delta *= -0.5
        delta -= 0.5 * (logdet + d * np.log(2 * np.pi))
        return delta
    const = gammaln((nu + d) / 2) - gammaln(nu / 2) - 0.5 * d * np.log(nu * np.pi)
    np.log1p(delta / nu, out=delta)
    delta *= -0.5 * (nu + d)
    delta += const - 0.5 * logdet
    return delta


def quadratic_forms(x: np.ndarray, epoch: np.ndarray, state: State):
    """``δ_{i,c}`` (N, H), the squared Mahalanobis distance of each spike from each cluster's
    mean with the features integrated out, and ``log|Σ_c|`` (H,).

    Per channel ``x_{i,m} ~ N(D_m μ_{c,m,e}, D_m Λ_{c,m}^{-1} D_m' + Φ_m^{-1})`` (given the
    spike's precision scale, both parts divided by it), evaluated in the span of the active
    atoms, each scaled to unit norm (its features scaled up: the same distances, and ``G``'s
    eigenpairs exact whatever the atoms' scales): with ``G = D'ΦD = R'R`` (``R = g^{1/2}
    V'`` from ``G``'s eigenpairs ``V, g``), ``y = D'Φx`` and the spike's coordinates in a
    Φ-orthonormal basis of the atoms' span ``a = g^{-1/2} V'y``, the part of ``x`` off the
    span is the noise alone and the part on it has covariance ``C = I + RΛ^{-1}R'`` about
    ``Rμ``, so
    ``δ = x'Φx − ‖a‖² + ‖K^{-1}(a − Rμ)‖²`` with ``C = KK'`` and
    ``log|Σ| = log|C| − log|Φ|``. Both terms are sums of squares and ``C = I + W'W``
    (``W = L_Λ^{-1}R'``) is factored by the QR of ``[I; W]``, never formed: unlike the Woodbury
    form ``x'Φx − y'P^{-1}y + …`` (``P = Λ + G``), nothing large cancels when an atom's scale
    runs far from its features' (a cluster drawn from the prior then has ``P`` ill-conditioned
    and that form gave distances below zero). The last term is a quadratic form in the
    spike's coordinates with 1 appended, ``[a; 1]'B[a; 1]`` with ``B = [[C^{-1}, −K^{-T}c],
    [−c'K^{-1}, c'c]]`` (``c = K^{-1}Rμ``; ``C^{-1} = K^{-T}K^{-1}`` has eigenvalues in (0, 1],
    so forming it amplifies no rounding), evaluated for every cluster at once as the
    products of the pairs of coordinates times ``B``'s upper triangle, one GEMM onto (spikes,
    H) per channel and epoch: no (spikes, H, K_a) array. The spike-dependent parts are
    batches of :data:`LIK_BATCH` spikes, grouped by epoch. With a kernel beta process
    (:mod:`neurodict.sort.kbp`) cluster c's dictionary is ``D_m C_c``, ``C_c`` the diagonal of
    its consider indicators: its ``R`` has no column for an atom it does not consider.
    """
    N, M, T = x.shape
    H = state.mu.shape[0]
    active = np.flatnonzero(state.z)
    phi = state.phi
    log_phi = np.log(phi).sum()
    out = np.empty((N, H))
    if active.size == 0:
        for i in range(0, N, LIK_BATCH):
            xb = x[i : i + LIK_BATCH]
            out[i : i + LIK_BATCH] = noise_energy(xb, phi)[:, None]
        return out, np.full(H, -log_phi)
    Ka = active.size
    D = dictionary(state)  # (M, T, Ka)
    scale = np.linalg.norm(D, axis=1)  # (M, Ka): unit atoms below, features scaled up
    scale[scale == 0] = 1.0
    D = D / scale[:, None, :]
    g, V = np.linalg.eigh(gram(D, phi))  # (M, Ka), (M, Ka, Ka)
    seen = g > np.finfo(float).eps * g.max(1, keepdims=True)  # an atom of no gain: no axis
    root = np.sqrt(np.where(seen, g, 0.0))
    to_axes = V * np.where(seen, 1.0 / np.where(seen, root, 1.0), 0.0)[:, None, :]  # y -> a
    R = root[:, :, None] * np.swapaxes(V, 1, 2) * scale[:, None, :]  # (M, Ka, Ka), on μ
    # a cluster's features of the atoms it does not consider reach no coordinate
    R = R[None] if state.consider is None else R[None] * state.consider[:, None, None, active]
    lam_t = state.lam[:, :, active][:, :, :, active]  # (H, M, Ka, Ka)
    W = np.linalg.solve(np.linalg.cholesky(lam_t), np.swapaxes(R, 2, 3))  # (H, M, Ka, Ka)
    # C = I + W'W = K K' with K' the triangle of [I; W]'s QR (forming W'W would round away
    # the identity beside a large atom's terms)
    stacked = np.concatenate([np.broadcast_to(np.eye(Ka), W.shape), W], axis=2)
    K = np.swapaxes(np.linalg.qr(stacked, mode="r"), 2, 3)
    logdet = 2 * np.log(np.abs(np.diagonal(K, axis1=2, axis2=3))).sum((1, 2))  # (H,)
    Kinv = np.linalg.inv(K)  # (H, M, Ka, Ka)
    mu = state.mu[:, :, :, active]  # (H, M, E, Ka)
    c = np.swapaxes((Kinv @ R) @ np.swapaxes(mu, 2, 3), 2, 3)  # K^{-1}Rμ: (H, M, E, Ka)
    Q = _augmented_forms(Kinv, c)  # (E, M, P, H)
    to_span = D @ to_axes  # x -> a in one product: a = (D V g^{-1/2})'Φx
    for i in range(0, N, LIK_BATCH):
        xb, eb = x[i : i + LIK_BATCH], epoch[i : i + LIK_BATCH]
        n = xb.shape[0]
        order = np.argsort(eb, kind="stable")  # the batch's spikes grouped by epoch
        bounds = np.searchsorted(eb[order], np.arange(Q.shape[0] + 1))
        present = np.flatnonzero(np.diff(bounds))  # the batch's epochs
        a = projections(xb, to_span, phi)[:, order]  # (M, n, Ka) coordinates
        off_span = noise_energy(xb, phi)[order] - np.einsum("mnk,mnk->n", a, a)
        quad = np.zeros((n, H))
        for m in range(M):  # one channel's products at a time: they stay in cache
            products = kernels.pair_products(a[m])  # (n, P)
            for e in present:
                lo, hi = bounds[e], bounds[e + 1]
                quad[lo:hi] += products[lo:hi] @ Q[e, m]
        out[i + order] = off_span[:, None] + quad
    return out, logdet - log_phi


def _augmented_forms(Kinv: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``B``'s upper triangles for :func:`quadratic_forms`, off-diagonal entries doubled,
    from ``K^{-1}`` (H, M, Ka, Ka) and ``c`` (H, M, E, Ka): (E, M, P, H) with ``P =
    (Ka+1)(Ka+2)/2``, the pairs of coordinates in the order of ``np.triu_indices(Ka + 1)``
    (:func:`neurodict.sort.kernels.pair_products`)."""
    H, M, E, Ka = c.shape
    B = np.empty((H, M, E, Ka + 1, Ka + 1))
    B[..., :Ka, :Ka] = (np.swapaxes(Kinv, 2, 3) @ Kinv)[:, :, None]
    cross = -np.einsum("hmkl,hmek->hmel", Kinv, c)  # −K^{-T}c
    B[..., :Ka, Ka] = cross
    B[..., Ka, :Ka] = cross
    B[..., Ka, Ka] = np.einsum("hmek,hmek->hme", c, c)
    pairs = np.triu_indices(Ka + 1)
    upper = B[..., pairs[0], pairs[1]] * np.where(pairs[0] == pairs[1], 1.0, 2.0)
    return np.ascontiguousarray(upper.transpose(2, 1, 3, 0))


class Sampler:
    """Gibbs sampler of the joint model on one group's learning subsample.

    Parameters
    ----------
    data : Data
        Snippets, epochs and the refractory structure of the subsample.
    n_atoms, n_clusters : int
        Truncations K and H.
    drift : bool
        Cluster means follow a random walk across epochs or stay fixed.
    drift_sd : float
        σ_drift: the walk's step per epoch in units of the cluster's spread.
    n_init_clusters : int
        k-means clusters of the SVD features that start the chain.
    rng : numpy.random.Generator
    priors : Priors
    split_merge_axes : int
        Principal axes of the spikes' projections the split–merge moves see.
    split_merge_two_means_iterations : int
        Iterations of the two-means that shapes a split proposal.
    split_merge_min_allocation : float
        A split proposal's allocation probabilities stay in ``[this, 1 − this]``.
    split_merge_neighbours : int
        Half the split–merge pairs are a spike and one of its this many nearest neighbours
        on the moves' principal axes (0: every pair uniform).
    start : (numpy.ndarray, numpy.ndarray), optional
        The starting dictionary A (T, K) and features s (N, M, K), e.g. DB-KSVD's atoms learned
        from every spike of the group and the subsample's sparse codes; by default the top K
        right singular vectors of the subsample's snippets and the projections on them.
    heavy_tails : bool
        Student-t clusters: each spike has a precision scale ``u_i ~ Gamma(ν/2, ν/2)`` that
        divides both its features' covariance and its noise, and ``ν`` is drawn from the grid
        of ``priors.scale_dof_min .. scale_dof_max``; otherwise Gaussian clusters (``u = 1``).
    kernel : kbp.Kernel, optional
        The grid of the kernel beta process over the chain's channels
        (:mod:`neurodict.sort.kbp`): each cluster considers each atom with the kernel's
        probability at its spikes' mean position. None: every cluster considers every atom
        (the beta–Bernoulli process).
    dhdp_iterations : int
        Gibbs steps of the dHDP's weights given the labels each sweep
        (:func:`neurodict.sort.dhdp.sample_weights`; they touch counts only).
    """

    def __init__(
        self,
        data: Data,
        n_atoms: int,
        n_clusters: int,
        drift: bool,
        drift_sd: float,
        n_init_clusters: int,
        rng: np.random.Generator,
        priors: Priors | None = None,
        split_merge_axes: int = _DEFAULT.split_merge_axes,
        split_merge_two_means_iterations: int = _DEFAULT.split_merge_two_means_iterations,
        split_merge_min_allocation: float = _DEFAULT.split_merge_min_allocation,
        split_merge_neighbours: int = _DEFAULT.split_merge_neighbours,
        start: tuple[np.ndarray, np.ndarray] | None = None,
        heavy_tails: bool = _DEFAULT.heavy_tails,
        kernel: kbp.Kernel | None = None,
        dhdp_iterations: int = _DEFAULT.dhdp_iterations,
    ):
        self.data, self.K, self.H = data, n_atoms, n_clusters
        self.dhdp_iterations = dhdp_iterations
        self.kernel = kernel
        # each spike's position, the kernel's covariate
        self.where = None if kernel is None else kbp.spike_positions(data.x, kernel.places_um)
        self.drift, self.q = drift, drift_sd**2
        self.rng, self.p = rng, priors if priors is not None else Priors()
        self.n_axes, self.n_neighbours = split_merge_axes, split_merge_neighbours
        self.proposal = {
            "two_means_iterations": split_merge_two_means_iterations,
            "min_allocation": split_merge_min_allocation,
        }
        self.accepted = {"split": 0, "merge": 0}  # split–merge moves of the last sweep
        self.dof_grid = (
            np.geomspace(self.p.scale_dof_min, self.p.scale_dof_max, DOF_GRID_POINTS)
            if heavy_tails
            else None
        )
        self.state = self._initialise(n_init_clusters, start)
        # x − reconstruction(state), as the last noise step left it: the next sweep's start
        # (nothing changes A, s, w or z between sweeps), None until the first sweep
        self._resid: np.ndarray | None = None

    # -- initialisation ---------------------------------------------------------------------
    def _initialise(self, n_init: int, start: tuple | None) -> State:
        """A and s from `start` or else the SVD of the stacked snippets and the projections on
        it; every z on; k-means of the features for labels."""
        x, K, H, E = self.data.x, self.K, self.H, self.data.n_epochs
        N, M, T = x.shape
        if start is None:
            A = np.linalg.svd(x.reshape(N * M, T), full_matrices=False)[2][:K].T  # (T, K)
            s = np.einsum("imt,tk->imk", x, A)
        else:
            A, s = (np.asarray(a, np.float64) for a in start)
        z = np.ones(K, bool)  # every atom starts in use; the sampler switches off the idle ones
        # k-means, and the prior's spread of cluster means, on the atoms above the noise (1)
        signal = np.einsum("imk,imk->k", s, s) > N * M
        signal |= ~signal.any()
        feats = s[:, :, signal].reshape(N, -1)
        k = int(min(n_init, H, max(N // 10, 1)))  # at most one per 10 spikes (n_init_clusters)
        _, labels = kmeans2(feats, k, minit="++", seed=self.rng)
        self.mu0 = s.reshape(-1, K).mean(0)
        self.spread = float(s.reshape(-1, K).var(0)[signal].mean())
        state = State(
            A=A,
            z=z,
            pi=np.full(K, 0.5),
            w=np.ones((M, K)),
            s=s,
            ard=np.full((T, K), float(T)),
            phi=np.ones((M, T)),
            labels=labels.astype(np.int64),
            r=np.zeros(N, np.int64),
            beta=np.full(H, 1.0 / H),
            pis=np.full((E, H), 1.0 / H),
            omega=np.r_[1.0, np.full(E - 1, 0.1)],
            mu=np.zeros((H, M, E, K)),
            lam=np.tile(np.eye(K), (H, M, 1, 1)),
            u=np.ones(N),
            nu=np.inf if self.dof_grid is None else float(self.dof_grid[0]),
        )
        if self.kernel is not None:  # every atom everywhere (ψ = ∞) until the data say not
            state.consider = np.ones((H, K), bool)
            state.place = self.rng.integers(len(self.kernel.places_um), size=K)
            state.width = np.full(K, self.kernel.widths_um.size - 1)
        self._sample_clusters(state)
        return state

    # -- one sweep --------------------------------------------------------------------------
    def sweep(self, split_merge: int = 0) -> State:
        """One Gibbs sweep in MODELS.md's order, with `split_merge` split–merge proposals after
        the labels; returns the new state (log_lik set)."""
        st = self.state
        resid = self.data.x - reconstruction(st) if self._resid is None else self._resid
        self._sample_z(st, resid)
        self._sample_pi(st)
        self._sample_w(st, resid)
        if self.kernel is not None:
            self._sample_consider(st, resid)
        self._sample_labels(st)
        self.accepted = self._split_merge(st, split_merge)
        self._sample_sticks(st)
        self._sample_clusters(st)
        self._sample_features(st)
        self._sample_atoms(st)
        self._sample_ard(st)
        self._resid = self._sample_noise(st)
        return st

    def _sample_z(self, st: State, resid: np.ndarray) -> None:
        """A birth–death Metropolis–Hastings move on each ``z_k`` (random order), with the
        cluster parameters integrated out; then the cluster parameters from their conditional.

        The target is the posterior of ``(z, s)`` with ``μ`` and ``Λ`` integrated out: the
        Gaussian likelihood of ``x``, the clusters' matrix-t marginal ``M`` of the features in
        use (:func:`neurodict.sort.walk.log_marginal`), ``N(0, 1)`` for the features of unused
        atoms and ``p(z | π)``. A birth proposes the features of atom k from
        ``q(s_k) = N(h/P, 1/P)`` per spike and channel (``a = w_mk A_k``, ``r`` the residual
        without the atom, ``h = a'Φr``, ``P = a'Φa + 1``), a death draws them from ``N(0, 1)``;
        the birth is accepted with probability ``min(1, ρ)``, the death with ``min(1, 1/ρ)``
        for the features it would remove, where
        ``log ρ = Δ log-likelihood + log M(on) − log M(off) − log q(s_k) + log π_k/(1−π_k)``.
        With Student-t clusters, given the precision scales ``u_i``: ``h`` and ``P − 1`` of
        spike i are multiplied by ``u_i`` and ``M`` weights each spike by ``u_i``.
        ``M`` with one atom more or less is the bordered one of the atoms in use
        (:class:`neurodict.sort.walk.BorderedMarginal`), computed afresh after each flip.
        """
        # the clusters that hold spikes (an empty one's marginal is 1 whatever z)
        occupied, cluster = np.unique(st.labels, return_inverse=True)
        swap = walk.ColumnSwap(
            st.s,
            st.z,
            cluster,
            occupied.size,
            self._walk_epoch(),
            self._walk_epochs(),
            self._scales(st),
        )
        marginal = self._bordered(swap, st.z)  # of the z in force, renewed on each flip
        res = Residual(resid, st.A[None] * st.w[:, None, :], st.phi)
        use = in_use(st)
        for k in self.rng.permutation(self.K):
            # h = u a'Φr with r = resid + z_k a s_k, the residual without the atom; a spike
            # whose cluster does not consider the atom weighs nothing (u = 0: h = 0, P = 1)
            s_k = st.s[:, :, k] if st.z[k] else None
            normals = None if st.z[k] else self.rng.standard_normal(res.projected[k].shape)
            u_k = st.u if use is None else st.u * use[:, k]
            born, log_lik = kernels.birth_death_terms(
                res.projected[k], s_k, res.gram[:, k, k], u_k, normals
            )
            current = 0.0 if marginal is None else marginal.total
            if st.z[k]:  # a death: without column p, the atom's place among those in use
                p = int(np.searchsorted(np.flatnonzero(st.z), k))
                log_on, log_off = current, marginal.removing(p)
            else:
                log_on, log_off = self._log_marginal_with(marginal, swap, st.z, k, born), current
            log_rho = log_lik + log_on - log_off + np.log(st.pi[k]) - np.log1p(-st.pi[k])
            if np.log(self.rng.random()) < (log_rho if not st.z[k] else -log_rho):
                # the residual gains the atom's part when it dies, loses the born one's
                part = born if use is None else born * use[:, k, None]
                res.add(k, part if st.z[k] else -part)
                st.z[k] = not st.z[k]
                st.s[:, :, k] = born if st.z[k] else self.rng.standard_normal(born.shape)
                swap.set(k)
                marginal = self._bordered(swap, st.z)
        if not st.z.any():  # keep one atom: the prior's mass on K = 0 is negligible
            st.z[np.argmax(np.abs(st.A).sum(0))] = True
        self._sample_clusters(st)

    def _bordered(self, swap: walk.ColumnSwap, z: np.ndarray) -> walk.BorderedMarginal | None:
        """``log M``, every cluster's marginal of the features of the atoms in use `z`, kept
        to be bordered by one atom more or less (None when no atom is in use: ``M = 1``)."""
        a = np.flatnonzero(z)
        return (
            walk.BorderedMarginal(self.walk_prior(a), swap.stats(a, -1, None)) if a.size else None
        )

    def _log_marginal_with(
        self, marginal, swap: walk.ColumnSwap, z: np.ndarray, k: int, s_k: np.ndarray
    ) -> float:
        """``log M`` with atom k in use too, its features `s_k` (N, M)."""
        if marginal is None:
            alone = np.array([k])
            return float(walk.log_marginal(self.walk_prior(alone), swap.stats(alone, k, s_k)).sum())
        sums, cross = swap.column(k, s_k, np.r_[np.flatnonzero(z), k])
        return marginal.adding(self.mu0[k], sums, cross[..., :-1], cross[..., -1])

    def _sample_pi(self, st: State) -> None:
        K, p = self.K, self.p
        st.pi = self.rng.beta(p.atoms_a / K + st.z, p.atoms_b * (K - 1) / K + 1 - st.z)

    def _sample_w(self, st: State, resid: np.ndarray) -> None:
        """Non-negative gains from their truncated-normal conditionals: for channel m and atom
        k, with ``v_i = A_k s_{i,m,k}``, ``r_i`` the residual without ``w_{mk} v_i`` and
        ``a = A_k'Φ_m A_k``, precision ``Σ_i u_i s_{i,m,k}² a + 1/σ_w²`` and mean
        ``Σ_i u_i s_{i,m,k} A_k'Φ_m r_i`` over it.

        The atoms are drawn in turn, each given the others' new gains, from the residual's
        projections ``A_j'Φ_m r_{i,m}`` on every atom in use, computed once: a new ``w_{mk}``
        changes ``r_{i,m}`` by ``−s_{i,m,k} Δw_{mk} A_k`` and so the projections by
        ``−s_{i,m,k} Δw_{mk} G_{m,kj}`` (``G_m = A'Φ_m A``), a pass over the features instead
        of the snippets; `resid` follows once, after the last atom."""
        active = np.flatnonzero(st.z)
        (N, M, T), Ka = resid.shape, active.size
        A = st.A[:, active]  # (T, Ka)
        every_channel = np.broadcast_to(A, (M, T, Ka))
        G = gram(every_channel, st.phi)  # (M, Ka, Ka)
        # atom-major copies (Ka, N, M): a column of the (N, M, K) arrays is strided; the
        # features of a spike whose cluster does not consider an atom reach nothing
        s = np.ascontiguousarray(st.s[:, :, active].transpose(2, 0, 1))
        use = in_use(st)
        if use is not None:
            s *= use[:, active].T[:, :, None]
        projected = projections(resid, every_channel, st.phi)  # (M, N, Ka)
        projected = np.ascontiguousarray(projected.transpose(2, 1, 0))
        before = st.w[:, active].copy()
        for j, k in enumerate(active):
            aa = G[:, j, j]  # (M,)
            us = st.u[:, None] * s[j]
            own = projected[j] + st.w[:, k] * s[j] * aa  # A_k'Φ r without w_mk's part
            prec = (us * s[j]).sum(0) * aa + 1.0 / self.p.gain_sd**2
            mean = (us * own).sum(0) / prec
            sd = 1.0 / np.sqrt(prec)
            new = positive_normal(self.rng, mean, sd)
            # the atoms still to draw see the new gain
            projected[j + 1 :] -= (s[j] * (new - st.w[:, k]))[None] * G[:, j, j + 1 :].T[:, None]
            st.w[:, k] = new
        change = s * (st.w[:, active] - before).T[:, None, :]  # (Ka, N, M)
        resid -= (change.reshape(Ka, -1).T @ A.T).reshape(N, M, T)

    def _sample_consider(self, st: State, resid: np.ndarray) -> None:
        """The kernel beta process's step (:mod:`neurodict.sort.kbp`): for each atom (random
        order) its place, its width and every occupied cluster's consider indicator ``c_{h,k}``
        as a block (:meth:`neurodict.sort.kbp.Kernel.sample`), from each cluster's evidence
        for considering it: the atom's features integrated out under the cluster's
        conditional ``s_{i,m,k} | s_{i,m,−k} ~ N(m, 1/(u_i Λ_kk))``
        (:func:`neurodict.sort.kbp.consider_log_odds`); then the features of the spikes whose
        cluster's ``c`` changed, given it (``N((Λ_kk m + h)/(Λ_kk + g), 1/(u_i(Λ_kk + g)))``
        where it now considers the atom, the conditional where not; where ``c`` is unchanged,
        keeping them leaves ``p(c, s_k | ·)`` invariant, ``c`` having been drawn from its
        marginal). An atom not in use has no evidence: the prior alone. A cluster without
        spikes considers every atom. `resid` follows the features."""
        H = self.H
        counts = np.bincount(st.labels, minlength=H)
        occupied = np.flatnonzero(counts)
        where = np.zeros((H, 2))
        np.add.at(where, st.labels, self.where)
        log_on, log_off = self.kernel.log_kernel(where[occupied] / counts[occupied, None])  # ℓ_h
        a = np.flatnonzero(st.z)
        Ka, (N, M, T) = a.size, resid.shape
        A = st.A[:, a]
        D = A[None] * st.w[:, None, a]  # (M, T, Ka)
        G = gram(D, st.phi)  # (M, Ka, Ka)
        # the residual's projections on the atoms in use (Ka, N, M), kept as features change
        projected = np.ascontiguousarray(projections(resid, D, st.phi).transpose(2, 1, 0))
        mean = st.mu[st.labels, :, self._walk_epoch()][..., a]  # (N, M, Ka) the clusters'
        s = st.s[:, :, a]
        dev = s - mean
        lam = st.lam[:, :, a][:, :, :, a]  # (H, M, Ka, Ka)
        was = in_use(st)  # (N, K)
        pull = np.empty_like(dev)  # Λ (s − μ) of each spike under its cluster
        for c in occupied:
            idx = np.flatnonzero(st.labels == c)
            pull[idx] = np.einsum("mkl,iml->imk", lam[c], dev[idx])
        new = np.ones((H, self.K), bool)
        change = np.zeros((Ka, N, M))  # r += Σ_j a_j change_j
        for j in self.rng.permutation(Ka):
            k, g = a[j], G[:, j, j]
            evidence = kernels.consider_evidence(
                projected[j], s[:, :, j], was[:, k], g, lam[:, :, j, j], mean[:, :, j],
                pull[:, :, j], dev[:, :, j], st.u, st.labels, H,
            )[occupied]  # fmt: skip
            st.place[k], st.width[k], new[occupied, k] = self.kernel.sample(
                self.rng, log_on, log_off, evidence
            )
            flipped = np.flatnonzero(new[st.labels, k] != was[:, k])
            if flipped.size == 0:
                continue
            f, on = st.labels[flipped], new[st.labels[flipped], k][:, None]
            before = was[flipped, k, None] * s[flipped, :, j]
            h = projected[j, flipped] + before * g  # a_k'Φr of the residual without the atom
            lam_jj = lam[f, :, j, j]
            cond = (
                mean[flipped, :, j] - (pull[flipped, :, j] - lam_jj * dev[flipped, :, j]) / lam_jj
            )
            precision = lam_jj + on * g
            draw = (lam_jj * cond + on * h) / precision
            draw += self.rng.standard_normal(draw.shape) / np.sqrt(st.u[flipped, None] * precision)
            delta = before - on * draw
            projected[:, flipped] += delta[None] * G[:, j, :].T[:, None, :]
            change[j, flipped] = delta
            pull[flipped] += (draw - s[flipped, :, j])[:, :, None] * lam[f, :, :, j]
            s[flipped, :, j] = draw
            dev[flipped, :, j] = draw - mean[flipped, :, j]
        st.s[:, :, a] = s
        resid += ((change * st.w[:, a].T[:, None, :]).reshape(Ka, -1).T @ A.T).reshape(N, M, T)
        for k in np.flatnonzero(~st.z):
            st.place[k], st.width[k], new[occupied, k] = self.kernel.sample(
                self.rng, log_on, log_off
            )
        st.consider = new

    def _sample_labels(self, st: State) -> None:
        """Labels with the refractory mask and the features and precision scales integrated
        out; then each spike's precision scale, ``u_i | c_i, x_i ~ Gamma((ν+d)/2, (ν+δ_i)/2)``
        (``d`` the snippet's dimension, ``δ_i`` its distance from its cluster,
        :func:`quadratic_forms`), ``ν`` from its grid, and each spike's dHDP component ``r_i``."""
        d = self.data
        N, M, T = d.x.shape
        weights, v = dhdp.epoch_weights(st.omega, st.pis)
        delta, logdet = quadratic_forms(d.x, d.epoch, st)
        logp = log_density(delta.copy(), logdet, M * T, st.nu) + np.log(weights[d.epoch] + 1e-300)
        labels = np.full(N, -1, np.int64)
        st.labels = kernels.masked_labels(logp, d.classes, d.lo, d.hi, labels, self.rng.random(N))
        st.log_lik = float(logp[np.arange(N), st.labels].sum())
        if self.dof_grid is not None:
            own = delta[np.arange(N), st.labels]
            st.u = self.rng.gamma((st.nu + M * T) / 2, 2.0 / (st.nu + own))
            st.nu = self._sample_dof(st.u)
        # r_i | c_i ∝ v_{e,j} π_{j,c}
        pr = v[d.epoch] * st.pis[:, st.labels].T  # (N, E)
        cum = np.cumsum(pr, axis=1)
        st.r = (cum < self.rng.random(pr.shape[0])[:, None] * cum[:, -1:]).sum(1)

    def _sample_dof(self, u: np.ndarray) -> float:
        """``ν | u`` on its grid (uniform prior): ``Π_i Gamma(u_i; ν/2, ν/2)``."""
        half = self.dof_grid / 2
        log_p = (
            u.size * (half * np.log(half) - gammaln(half))
            + (half - 1) * np.log(u).sum()
            - half * u.sum()
        )
        p = np.exp(log_p - log_p.max())
        return float(self.rng.choice(self.dof_grid, p=p / p.sum()))

    def _scales(self, st: State) -> np.ndarray | None:
        """The spikes' precision scales as weights of the clusters' statistics (None for
        Gaussian clusters)."""
        return None if self.dof_grid is None else st.u

    def _sample_sticks(self, st: State) -> None:
        """``(r, π, ω)`` given the labels: :func:`neurodict.sort.dhdp.sample_weights` from the
        components the labels' step drew, each spike's component from its last counts (the
        spikes of one epoch and cluster are exchangeable); then ``β`` (Antoniak tables)."""
        d, p, E, H = self.data, self.p, self.data.n_epochs, self.H
        m = np.zeros((E, H, E), np.int64)
        np.add.at(m, (d.epoch, st.labels, st.r), 1)
        st.pis, st.omega, m = dhdp.sample_weights(
            self.rng,
            m,
            p.alpha * st.beta,
            p.innovation_a,
            p.innovation_b,
            self.dhdp_iterations,
        )
        order = np.lexsort((self.rng.random(st.r.size), st.labels, d.epoch))
        st.r[order] = np.repeat(np.tile(np.arange(E), E * H), m.reshape(-1))
        by_component = m.sum(0).T  # (E, H)
        u = self.rng.random((E, H, max(int(by_component.max()), 1)))
        tables = kernels.table_counts(by_component, p.alpha * st.beta, u)
        st.beta = self.rng.dirichlet(p.gamma / H + tables.sum(0))

    def walk_prior(self, active: np.ndarray) -> walk.WalkPrior:
        """The conjugate prior of the clusters on the atoms in use: ``μ_0`` and ``κ_0`` from
        the initial features (``Cov(μ_1) = scale · Var(features)`` on average over the
        atoms above the noise), ``ν_0 = K_a +
        extra``, ``E[Λ^{-1}] = within_cluster_var · I``, walk steps ``drift_sd² Λ^{-1}``."""
        return walk.WalkPrior.isotropic(
            self.mu0[active], self.spread, self.q, self._walk_epochs(), self.p
        )

    def _walk_epochs(self) -> int:
        return self.data.n_epochs if self.drift else 1

    def _walk_epoch(self) -> np.ndarray:
        return self.data.epoch if self.drift else np.zeros_like(self.data.epoch)

    def _split_merge(self, st: State, n_proposals: int) -> dict:
        """`n_proposals` split–merge moves (:mod:`neurodict.sort.splitmerge`) on the labels.

        The moves see each spike through the projection of its snippet on the atoms in use,
        ``ŝ = (D'ΦD + I)^{-1} D'Φx``, not through the sampled features: those are drawn given
        the spike's cluster and so pulled towards its mean, which would make any partition
        look right to a move that conditions on them. They see ``ŝ`` of all channels at once
        on its ``split_merge_axes`` principal axes, one covariance per cluster there: a
        neuron's amplitude varies on every channel together (bursts, drift), which one
        covariance per channel can only explain as several clusters, while one covariance
        over all ``M·K_a`` coordinates costs so much evidence per cluster that distinct
        neurons merge. Measured on a dense tetrode and a drifting 16-channel shank
        (benchmarks/sorting.py, well detected): per channel 7/8 and 0/8, all coordinates
        3/8 and 3/8, 8 axes 8/8 and 2/8, 16 axes 8/8 and 3/8. The target is therefore the
        labels' posterior of a model close to the sampler's, not the sampler's own, which is
        why the moves run during burn-in only: they carry the chain to a good partition, and
        the kept sweeps are plain Gibbs sweeps of the model.
        """
        accepted = {"split": 0, "merge": 0}
        if n_proposals == 0:
            return accepted
        d, a = self.data, np.flatnonzero(st.z)
        D = dictionary(st)  # (M, T, Ka)
        G = gram(D, st.phi) + np.eye(a.size)
        y = projections(d.x, D, st.phi).transpose(0, 2, 1)  # (M, Ka, N)
        s_hat = np.linalg.solve(G, y).transpose(2, 0, 1)  # ŝ = (D'ΦD + I)^{-1} D'Φx
        f = walk.principal_axes(s_hat.reshape(len(s_hat), -1), self.n_axes)
        joint = walk.WalkPrior.isotropic(
            np.zeros(f.shape[1]), float(f.var(0).mean()), self.q, self._walk_epochs(), self.p
        )
        target = splitmerge.Target(
            s=f[:, None],
            epoch=self._walk_epoch(),
            r=st.r,
            alpha_beta=self.p.alpha * st.beta,
            n_components=d.n_epochs,
            prior=joint,
            samples=d.samples,
            refractory_samples=d.refractory_samples,
            u=self._scales(st),
        )
        k = min(self.n_neighbours, len(f) - 1)
        tree = cKDTree(f)

        def nearest(i: int) -> np.ndarray:
            """The `k` nearest neighbours of spike i: asked of the drawn spikes only (a sweep
            draws a few dozen of thousands; querying every spike took most of the moves'
            time on 64 channels)."""
            return tree.query(f[i], k + 1)[1][1:]

        for _ in range(n_proposals):
            kind = splitmerge.move(
                self.rng,
                target,
                st.labels,
                self.H,
                **self.proposal,
                neighbours=nearest if k > 0 else None,
            )
            if kind:
                accepted[kind] += 1
        return accepted

    def _sample_clusters(self, st: State) -> None:
        """``Λ`` and then the walk of means ``μ_{c,m,1..E}`` of every cluster from their
        conditionals (:func:`neurodict.sort.walk.sample`; empty clusters from the prior).

        Cluster parameters live on the atoms in use; features of unused atoms have the fixed
        prior N(0, 1) (``μ = 0``, ``Λ = I`` there).
        """
        d, H = self.data, self.H
        a = np.flatnonzero(st.z)
        prior = self.walk_prior(a)
        stats = walk.Stats.of_labels(
            st.s, st.labels, H, self._walk_epoch(), prior.n_epochs, self._scales(st), a
        )
        mu, lam = walk.sample(self.rng, prior, stats, wishart)  # (H, M, E, Ka), (H, M, Ka, Ka)
        if not self.drift:
            mu = np.repeat(mu, d.n_epochs, axis=2)
        M = st.s.shape[1]
        st.mu = np.zeros_like(st.mu)
        st.mu[..., a] = mu
        st.lam = np.tile(np.eye(self.K), (H, M, 1, 1))
        st.lam[:, :, a[:, None], a] = lam

    def _sample_features(self, st: State) -> None:
        """``s_{i,m} ~ N(P^{-1}(Λμ + w̃A'Φx), (u_i P)^{-1})``, ``P = Λ_{c,m} + w̃A'ΦAw̃`` on
        the atoms in use, ``w̃ = w_m ∘ c_c`` (an atom that cluster c does not consider leaves
        its spikes' features their cluster's conditional). The features of an unused atom have
        its N(0, 1) prior and are read by nothing while it is unused (a birth proposes its
        own, a death draws them from the prior), so they are not drawn again here."""
        x, epoch = self.data.x, self.data.epoch
        a = np.flatnonzero(st.z)
        D = dictionary(st)  # (M, T, Ka)
        G = gram(D, st.phi)
        y = projections(x, D, st.phi).transpose(1, 0, 2)  # (N, M, Ka)
        s_a = np.empty_like(y)
        for c in np.unique(st.labels):
            idx = np.flatnonzero(st.labels == c)
            lam = st.lam[c][:, a[:, None], a]
            on = 1.0 if st.consider is None else st.consider[c, a].astype(float)  # (Ka,)
            P_inv = np.linalg.inv(lam + G * np.outer(on, on))  # (M, Ka, Ka)
            h = per_channel(lam, st.mu[c][:, epoch[idx]][..., a].transpose(1, 0, 2)) + y[idx] * on
            mean = per_channel(P_inv, h)
            chol = np.linalg.cholesky(P_inv)
            noise = per_channel(chol, self.rng.standard_normal(mean.shape))
            s_a[idx] = mean + noise / np.sqrt(st.u[idx])[:, None, None]
        st.s[:, :, a] = s_a

    def _sample_atoms(self, st: State) -> None:
        """Rows of A: ``A_t ~ N(P_t^{-1} Σ_m φ_mt U_m'diag(u)x_{·mt}, P_t^{-1})`` with
        ``U = z∘c∘w∘s`` and ``P_t = Σ_m φ_mt U_m'diag(u)U_m + diag(α_t)``."""
        x = self.data.x
        active = np.flatnonzero(st.z)
        T = x.shape[2]
        U = st.s[:, :, active] * st.w[None, :, active]  # (N, M, Ka)
        use = in_use(st)
        if use is not None:
            U *= use[:, None, active]
        Uu = U * st.u[:, None, None]
        UU = np.matmul(Uu.transpose(1, 2, 0), U.transpose(1, 0, 2))  # (M, Ka, Ka)
        Ux = np.matmul(Uu.transpose(1, 2, 0), x.transpose(1, 0, 2))  # (M, Ka, T)
        P = np.einsum("mt,mkl->tkl", st.phi, UU) + np.eye(active.size) * st.ard[:, None, active]
        h = np.einsum("mt,mkt->tk", st.phi, Ux)
        A = self.rng.standard_normal((T, self.K)) / np.sqrt(st.ard)
        if active.size:
            A[:, active] = _mvn_info(self.rng, P, h)
        st.A = A

    def _sample_ard(self, st: State) -> None:
        """``α_tk ~ Gamma(a + ½, b + ½ A_tk²)``. An atom without data (switched off, or in use
        and considered by no cluster) is drawn from its prior, ``A_tk`` a Student t with
        ``2a`` degrees of freedom and scale ``√(b/a)``: the defaults ``a = 1``, ``b = 0.025``
        hold it at about unit norm (the SVD start's, for T = 40). With ``a = b = 10⁻³`` the
        pair walked in ``log|A_tk|`` by several units a sweep, to norms of 10⁵-10¹⁵ in 60
        sweeps, where switching the atom on costs about ``½ log(a'Φa)`` a spike and channel."""
        p = self.p
        st.ard = self.rng.gamma(p.ard_shape + 0.5, 1.0 / (p.ard_rate + 0.5 * st.A**2))

    def _sample_noise(self, st: State) -> np.ndarray:
        """``φ_mt ~ Gamma(a + N/2, b + Σ_i u_i r_imt²/2)``; returns the residual ``r``."""
        p, x = self.p, self.data.x
        resid = x - reconstruction(st)
        scatter = np.einsum("i,imt->mt", st.u, resid**2, optimize=True)
        st.phi = self.rng.gamma(
            p.noise_shape + 0.5 * x.shape[0], 1.0 / (p.noise_rate + 0.5 * scatter)
        )
        return resid


def wishart(rng: np.random.Generator, dof: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Draws from Wishart(dof, scale) batched over leading axes (Bartlett decomposition).

    `dof` broadcasts against ``scale.shape[:-2]``; ``E[draw] = dof · scale``.
    """
    K = scale.shape[-1]
    batch = scale.shape[:-2]
    dof = np.broadcast_to(dof, batch)
    L = np.linalg.cholesky(_sym(scale))
    A = np.tril(rng.standard_normal(batch + (K, K)), -1)
    diag = np.sqrt(rng.chisquare(dof[..., None] - np.arange(K)))
    A[..., np.arange(K), np.arange(K)] = diag
    LA = L @ A
    return LA @ np.swapaxes(LA, -1, -2)


def _sym(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + np.swapaxes(a, -1, -2))


def _mvn_info(rng, P, h):
    """Draws from N(P^{-1} h, P^{-1}) batched over the leading axis."""
    L = np.linalg.cholesky(P)
    mean = np.linalg.solve(P, h[..., None])[..., 0]
    eps = rng.standard_normal(h.shape)
    return mean + np.stack([scipy.linalg.solve_triangular(L[t].T, eps[t]) for t in range(len(L))])
