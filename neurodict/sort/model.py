"""Joint beta–Bernoulli dictionary features and dynamic-HDP clusters, sampled by Gibbs.

MODELS.md §1 (Chen, Carlson, Carin, NeurIPS 2011; Carlson et al., IEEE TBME 2013). For spike `i`
on channel `m` of one electrode group, in noise units (snippets divided by each channel's noise
level)::

    x_{i,m} = A diag(z ∘ w_m) s_{i,m} + e_{i,m},      e_{i,m} ~ N(0, diag(φ_m)^{-1})
    z_k ~ Bernoulli(π_k),  π_k ~ Beta(a/K, b(K-1)/K)
    A_{tk} ~ N(0, 1/α_{tk}),  w_{mk} ~ N_+(0, σ_w²)
    s_{i,m} | c_i = c, epoch e ~ N(μ_{c,m,e}, Λ_{c,m}^{-1})

Cluster weights of epoch `e` come from the dHDP: ``G_e = Σ_{j≤e} v_{e,j} H_j`` with ``H_0 = G_1``,
``v_{e,j} = ω_j Π_{l=j+1..e}(1-ω_l)`` (``ω_0 = 1``), every ``H_j`` a truncated ``DP(α, G_0)``
over the same `H` global atoms (weights ``π_j ~ Dir(α β)``), ``β ~ Dir(γ/H)`` (weak limit).
Cluster means drift across epochs as a Gaussian random walk ``μ_{c,m,e} = μ_{c,m,e-1} + η``,
``η ~ N(0, σ_drift² I)``, or stay fixed when drift is off.

Choices of ours (documented as MODELS.md asks): the Normal–Wishart prior is used in its
semi-conjugate form (``μ_{c,m,1} ~ N(μ_0, V_0)`` independent of ``Λ``) so that the random walk
stays conjugate; labels are drawn with the features integrated out (a blocked step for
``(c, s)``: ``c ~ p(c | x)``, then ``s ~ p(s | c, x)``), which depends only on the atoms in use
and mixes far better; the auxiliary table counts for ``β`` are Antoniak draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.linalg
import scipy.stats
from scipy.cluster.vq import kmeans2

from neurodict.sort import kernels


@dataclass(frozen=True)
class Priors:
    """Hyperparameters (noise units). Defaults are ours; see the module docstring."""

    a: float = 1.0  # beta–Bernoulli: π_k ~ Beta(a/K, b(K-1)/K)
    b: float = 1.0
    ard_shape: float = 1e-3  # α_tk ~ Gamma(shape, rate)
    ard_rate: float = 1e-3
    noise_shape: float = 1000.0  # φ_mt ~ Gamma(shape, rate): mean 1 (whitened noise), tight
    noise_rate: float = 1000.0
    gain_sd: float = 1.0  # w_mk ~ N_+(0, gain_sd²)
    gamma: float = 1.0  # global DP concentration
    alpha: float = 1.0  # epoch DP concentration
    innovation_a: float = 1.0  # ω ~ Beta(innovation_a, innovation_b)
    innovation_b: float = 4.0
    wishart_dof_extra: float = 2.0  # ν_0 = K + extra; E[Λ^{-1}] = within_cluster_var · I
    within_cluster_var: float = 1.0
    mean_var_scale: float = 4.0  # V_0 = scale · Var(features) per dimension
    init_atom_var: float = 2.0  # atoms whose SVD variance exceeds this (noise: 1) start in use


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
    log_lik: float = -np.inf

    def copy(self) -> State:
        return replace(
            self, **{k: np.copy(v) for k, v in vars(self).items() if isinstance(v, np.ndarray)}
        )


@dataclass
class Data:
    """What the sampler conditions on."""

    x: np.ndarray  # (N, M, T) snippets in noise units
    epoch: np.ndarray  # (N,) epoch index of each spike
    n_epochs: int
    classes: list = field(default_factory=list)  # kernels.colour_classes
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None


def epoch_weights(omega: np.ndarray, pis: np.ndarray) -> np.ndarray:
    """``w_{e,c} = Σ_{j≤e} v_{e,j} π_{j,c}`` and the mixing matrix ``v`` (E, E)."""
    E = omega.size
    v = np.zeros((E, E))
    for e in range(E):
        for j in range(e + 1):
            v[e, j] = omega[j] * np.prod(1.0 - omega[j + 1 : e + 1])
    return v @ pis, v


def dictionary(state: State) -> np.ndarray:
    """``D_m = A diag(z ∘ w_m)`` restricted to the atoms in use: (M, T, K_active)."""
    active = np.flatnonzero(state.z)
    return state.A[None, :, active] * state.w[:, None, active]


def marginal_log_lik(x: np.ndarray, epoch: np.ndarray, state: State) -> np.ndarray:
    """``log p(x_i | c_i = c)`` with the features integrated out: (N, H).

    Per channel ``x_{i,m} ~ N(D_m μ_{c,m,e}, D_m Λ_{c,m}^{-1} D_m' + Φ_m^{-1})``, evaluated by
    Woodbury in the space of the active atoms: with ``G = D'ΦD``, ``y = D'Φx`` and
    ``P = Λ̃ + G`` (``Λ̃`` the precision of the active coordinates), the quadratic form
    is ``x'Φx − y'P^{-1}y + y'(2P^{-1}Gμ − 2μ) + μ'Gμ − μ'GP^{-1}Gμ`` and
    ``log|Σ| = log|P| − log|Λ̃| − log|Φ|``. The spike-dependent parts are two GEMMs per channel.
    """
    N, M, T = x.shape
    H = state.mu.shape[0]
    active = np.flatnonzero(state.z)
    phi = state.phi
    xphi = x * phi
    out = np.repeat(
        (-0.5 * (xphi * x).sum((1, 2)) + 0.5 * np.log(phi).sum() - 0.5 * M * T * np.log(2 * np.pi))[
            :, None
        ],
        H,
        axis=1,
    )
    if active.size == 0:
        return out
    D = dictionary(state)  # (M, T, Ka)
    y = np.stack([xphi[:, m] @ D[m] for m in range(M)])  # (M, N, Ka)
    G = np.einsum("mtk,mt,mtl->mkl", D, phi, D)  # (M, Ka, Ka)
    lam_t = state.lam[:, :, active][:, :, :, active]  # (H, M, Ka, Ka)
    P = lam_t + G[None]
    L = np.linalg.cholesky(P)
    logdet = (
        2 * np.log(np.diagonal(L, axis1=2, axis2=3)).sum(2) - np.linalg.slogdet(lam_t)[1]
    ).sum(1)  # (H,)
    Linv = np.linalg.inv(L)  # (H, M, Ka, Ka)
    mu = state.mu[:, :, :, active]  # (H, M, E, Ka)
    Gmu = np.einsum("mkl,hmel->hmek", G, mu)
    PiGmu = np.linalg.solve(P[:, :, None], Gmu[..., None])[..., 0]  # (H, M, E, Ka)
    v = 2 * (PiGmu - mu)
    const = np.einsum("hmek,hmek->he", mu, Gmu) - np.einsum("hmek,hmek->he", Gmu, PiGmu)
    quad = np.zeros((N, H))
    for m in range(M):
        z = y[m] @ Linv[:, m].transpose(2, 0, 1).reshape(active.size, -1)  # L^{-1} y per h
        quad -= (z.reshape(N, H, active.size) ** 2).sum(2)
        for e in np.unique(epoch):
            sel = epoch == e
            quad[sel] += y[m][sel] @ v[:, m, e].T
    quad += const.T[epoch]
    return out - 0.5 * quad - 0.5 * logdet[None]


class Sampler:
    """Gibbs sampler of the joint model on one group's learning subsample.

    Parameters
    ----------
    data : Data
        Snippets, epochs and the refractory structure of the subsample.
    n_atoms, n_clusters : int
        Truncations K and H.
    drift : bool
        Cluster means follow a random walk across epochs (σ_drift per epoch) or stay fixed.
    drift_sd : float
        σ_drift in feature units per epoch.
    n_init_clusters : int
        k-means clusters of the SVD features that start the chain.
    rng : numpy.random.Generator
    priors : Priors
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
        priors: Priors = Priors(),
    ):
        self.data, self.K, self.H = data, n_atoms, n_clusters
        self.drift, self.q = drift, drift_sd**2
        self.rng, self.p = rng, priors
        self.state = self._initialise(n_init_clusters)

    # -- initialisation ---------------------------------------------------------------------
    def _initialise(self, n_init: int) -> State:
        """SVD of the stacked snippets for A, s and z; k-means of the features for labels."""
        x, K, H, E = self.data.x, self.K, self.H, self.data.n_epochs
        N, M, T = x.shape
        _, sv, vt = np.linalg.svd(x.reshape(N * M, T), full_matrices=False)
        A = vt[:K].T  # (T, K)
        s = np.einsum("imt,tk->imk", x, A)
        # atoms whose variance exceeds the noise's (1 per coordinate) start in use
        z = (sv[:K] ** 2 / (N * M)) > self.p.init_atom_var
        z[:2] = True
        feats = s[:, :, z].reshape(N, -1)
        k = int(min(n_init, H, max(N // 10, 1)))
        _, labels = kmeans2(feats, k, minit="++", seed=self.rng)
        self.mu0 = s.reshape(-1, K).mean(0)
        self.v0 = self.p.mean_var_scale * s.reshape(-1, K).var(0) + 1.0
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
        )
        self._sample_clusters(state)
        return state

    # -- one sweep --------------------------------------------------------------------------
    def sweep(self) -> State:
        """One Gibbs sweep in MODELS.md's order; returns the new state (log_lik set)."""
        st = self.state
        resid = self.data.x - np.einsum("tk,mk,imk->imt", st.A * st.z, st.w, st.s)
        self._sample_z(st, resid)
        self._sample_pi(st)
        self._sample_w(st, resid)
        self._sample_labels(st)
        self._sample_sticks(st)
        self._sample_clusters(st)
        self._sample_features(st)
        self._sample_atoms(st)
        self._sample_ard(st)
        self._sample_noise(st)
        return st

    def _sample_z(self, st: State, resid: np.ndarray) -> None:
        """``z_k`` from the change in Gaussian log-likelihood when atom k is switched."""
        phi = st.phi
        for k in self.rng.permutation(self.K):
            v = st.A[None, None, :, k] * (st.w[None, :, k] * st.s[:, :, k])[:, :, None]
            r_minus = resid + st.z[k] * v
            dll = np.einsum("imt,mt->", r_minus * v - 0.5 * v * v, phi)
            logit = dll + np.log(st.pi[k]) - np.log1p(-st.pi[k])
            new = self.rng.random() < 1.0 / (1.0 + np.exp(-np.clip(logit, -500, 500)))
            if new != st.z[k]:
                resid += (float(st.z[k]) - float(new)) * v
                st.z[k] = new
        if not st.z.any():  # keep one atom: the prior's mass on K = 0 is negligible
            st.z[np.argmax(np.abs(st.A).sum(0))] = True

    def _sample_pi(self, st: State) -> None:
        K, p = self.K, self.p
        st.pi = self.rng.beta(p.a / K + st.z, p.b * (K - 1) / K + 1 - st.z)

    def _sample_w(self, st: State, resid: np.ndarray) -> None:
        """Non-negative gains from their truncated-normal conditionals."""
        for k in np.flatnonzero(st.z):
            v = st.A[None, None, :, k] * st.s[:, :, k][:, :, None]  # (N, M, T)
            r_minus = resid + st.w[None, :, k, None] * v
            prec = np.einsum("imt,mt->m", v * v, st.phi) + 1.0 / self.p.gain_sd**2
            mean = np.einsum("imt,imt,mt->m", r_minus, v, st.phi) / prec
            sd = 1.0 / np.sqrt(prec)
            new = scipy.stats.truncnorm.rvs(
                (0 - mean) / sd, np.inf, loc=mean, scale=sd, random_state=self.rng
            )
            resid -= (new - st.w[:, k])[None, :, None] * v
            st.w[:, k] = new

    def _sample_labels(self, st: State) -> None:
        """Labels with the refractory mask; then each spike's dHDP component ``r_i``."""
        d = self.data
        weights, v = epoch_weights(st.omega, st.pis)
        logp = marginal_log_lik(d.x, d.epoch, st) + np.log(weights[d.epoch] + 1e-300)
        u = self.rng.random(logp.shape[0])
        labels = np.full(logp.shape[0], -1, np.int64)
        st.labels = kernels.masked_labels(logp, d.classes, d.lo, d.hi, labels, u)
        st.log_lik = float(logp[np.arange(st.labels.size), st.labels].sum())
        # r_i | c_i ∝ v_{e,j} π_{j,c}
        pr = v[d.epoch] * st.pis[:, st.labels].T  # (N, E)
        cum = np.cumsum(pr, axis=1)
        st.r = (cum < self.rng.random(pr.shape[0])[:, None] * cum[:, -1:]).sum(1)

    def _sample_sticks(self, st: State) -> None:
        """``π_j``, ``ω`` and ``β`` given labels and components (Antoniak tables for β)."""
        d, p, E, H = self.data, self.p, self.data.n_epochs, self.H
        n = np.zeros((E, H), np.int64)
        np.add.at(n, (st.r, st.labels), 1)
        st.pis = np.stack([self.rng.dirichlet(p.alpha * st.beta + n[j] + 1e-6) for j in range(E)])
        for l_ in range(1, E):
            hit = np.sum(st.r == l_)
            miss = np.sum((d.epoch >= l_) & (st.r < l_))
            st.omega[l_] = self.rng.beta(p.innovation_a + hit, p.innovation_b + miss)
        u = self.rng.random((E, H, max(int(n.max()), 1)))
        m = kernels.table_counts(n, p.alpha * st.beta, u)
        st.beta = self.rng.dirichlet(p.gamma / H + m.sum(0))

    def _sample_clusters(self, st: State) -> None:
        """``μ`` by forward filtering, backward sampling over epochs; then ``Λ`` (Wishart).

        Cluster parameters live on the atoms in use; features of unused atoms have the fixed
        prior N(0, 1) (``μ = 0``, ``Λ = I`` there).
        """
        d, H = self.data, self.H
        a = np.flatnonzero(st.z)
        Ka = a.size
        E = d.n_epochs if self.drift else 1
        epoch = d.epoch if self.drift else np.zeros_like(d.epoch)
        s = st.s[:, :, a]
        M = s.shape[1]
        counts = np.zeros((H, E))
        np.add.at(counts, (st.labels, epoch), 1)
        sums = np.zeros((H, E, M, Ka))
        np.add.at(sums, (st.labels, epoch), s)
        lam = st.lam[:, :, a][:, :, :, a]
        # clusters without spikes are drawn from the random-walk prior; the rest by FFBS
        occupied = np.flatnonzero(counts.sum(1) > 0)
        mu = self._prior_walk((H, M), E, a)  # (H, M, E, Ka)
        mu[occupied] = self._ffbs(counts[occupied], sums[occupied], lam[occupied], a)
        mu = mu if self.drift else np.repeat(mu, d.n_epochs, axis=2)
        resid = s - mu[st.labels, :, d.epoch]  # (N, M, Ka)
        nu0 = Ka + self.p.wishart_dof_extra
        S0_inv = np.eye(Ka) * (nu0 - Ka - 1) * self.p.within_cluster_var
        n_c = np.bincount(st.labels, minlength=H)
        scatter = np.zeros((H, M, Ka, Ka))
        for c in np.flatnonzero(n_c):
            r = resid[st.labels == c]
            scatter[c] = np.einsum("imk,iml->mkl", r, r)
        lam = wishart(self.rng, nu0 + n_c[:, None], np.linalg.inv(S0_inv + scatter))
        st.mu = np.zeros_like(st.mu)
        st.mu[..., a] = mu
        st.lam = np.tile(np.eye(self.K), (H, M, 1, 1))
        st.lam[:, :, a[:, None], a] = lam

    def _prior_walk(self, shape: tuple, E: int, active: np.ndarray) -> np.ndarray:
        """Means drawn from their prior: ``μ_1 ~ N(μ0, V0)``, ``μ_e = μ_{e-1} + N(0, q I)``."""
        K = active.size
        start = self.mu0[active] + np.sqrt(self.v0[active]) * self.rng.standard_normal(
            shape + (1, K)
        )
        steps = np.sqrt(self.q) * self.rng.standard_normal(shape + (E - 1, K))
        return np.cumsum(np.concatenate([start, steps], axis=-2), axis=-2)

    def _ffbs(self, counts, sums, lam, active):
        """Sample means ``μ_{c,m,1..E}`` (active atoms) given per-epoch counts and sums."""
        H, E = counts.shape
        M, K = sums.shape[2], sums.shape[3]
        V0 = np.diag(self.v0[active])
        Q = self.q * np.eye(K)
        means = np.zeros((E, H, M, K))
        covs = np.zeros((E, H, M, K, K))
        m_pred = np.broadcast_to(self.mu0[active], (H, M, K)).copy()
        P_pred = np.broadcast_to(V0, (H, M, K, K)).copy()
        for e in range(E):
            prior_info = np.linalg.inv(P_pred)
            P = np.linalg.inv(prior_info + counts[:, e, None, None, None] * lam)
            h = np.einsum("hmkl,hml->hmk", prior_info, m_pred) + np.einsum(
                "hmkl,hml->hmk", lam, sums[:, e]
            )
            means[e], covs[e] = np.einsum("hmkl,hml->hmk", P, h), _sym(P)
            m_pred, P_pred = means[e], covs[e] + Q
        out = np.zeros((E, H, M, K))
        out[E - 1] = _mvn(self.rng, means[E - 1], covs[E - 1])
        for e in range(E - 2, -1, -1):
            J = covs[e] @ np.linalg.inv(covs[e] + Q)
            m = means[e] + np.einsum("hmkl,hml->hmk", J, out[e + 1] - means[e])
            C = covs[e] - J @ covs[e]
            out[e] = _mvn(self.rng, m, _sym(C))
        return out.transpose(1, 2, 0, 3)

    def _sample_features(self, st: State) -> None:
        """``s_{i,m} ~ N(P^{-1}(Λμ + w̃A'Φx), P^{-1})``, ``P = Λ_{c,m} + w̃A'ΦAw̃`` on the atoms
        in use; the others from their N(0, 1) prior."""
        x, epoch = self.data.x, self.data.epoch
        a = np.flatnonzero(st.z)
        D = dictionary(st)  # (M, T, Ka)
        G = np.einsum("mtk,mt,mtl->mkl", D, st.phi, D)
        y = np.einsum("mtk,mt,imt->imk", D, st.phi, x)
        s = self.rng.standard_normal(st.s.shape)
        for c in np.unique(st.labels):
            idx = np.flatnonzero(st.labels == c)
            lam = st.lam[c][:, a[:, None], a]
            P_inv = np.linalg.inv(lam + G)  # (M, Ka, Ka)
            h = (
                np.einsum("mkl,iml->imk", lam, st.mu[c][:, epoch[idx]][..., a].transpose(1, 0, 2))
                + y[idx]
            )
            mean = np.einsum("mkl,iml->imk", P_inv, h)
            chol = np.linalg.cholesky(P_inv)
            s_a = mean + np.einsum("mkl,iml->imk", chol, self.rng.standard_normal(mean.shape))
            block = s[idx]
            block[:, :, a] = s_a
            s[idx] = block
        st.s = s

    def _sample_atoms(self, st: State) -> None:
        """Rows of A: ``A_t ~ N(P_t^{-1} Σ_m φ_mt U_m'x_{·mt}, P_t^{-1})`` with ``U = z∘w∘s``."""
        x = self.data.x
        active = np.flatnonzero(st.z)
        T = x.shape[2]
        U = st.s[:, :, active] * st.w[None, :, active]  # (N, M, Ka)
        UU = np.einsum("imk,iml->mkl", U, U)
        Ux = np.einsum("imk,imt->mkt", U, x)
        P = np.einsum("mt,mkl->tkl", st.phi, UU) + np.eye(active.size) * st.ard[:, None, active]
        h = np.einsum("mt,mkt->tk", st.phi, Ux)
        A = self.rng.standard_normal((T, self.K)) / np.sqrt(st.ard)
        if active.size:
            A[:, active] = _mvn_info(self.rng, P, h)
        st.A = A

    def _sample_ard(self, st: State) -> None:
        p = self.p
        st.ard = self.rng.gamma(p.ard_shape + 0.5, 1.0 / (p.ard_rate + 0.5 * st.A**2))

    def _sample_noise(self, st: State) -> None:
        p, x = self.p, self.data.x
        resid = x - np.einsum("tk,mk,imk->imt", st.A * st.z, st.w, st.s)
        st.phi = self.rng.gamma(
            p.noise_shape + 0.5 * x.shape[0], 1.0 / (p.noise_rate + 0.5 * (resid**2).sum(0))
        )


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


def _mvn(rng, mean, cov):
    """Draws from N(mean, cov) batched over leading axes (cov positive semi-definite)."""
    vals, vecs = np.linalg.eigh(cov)
    eps = rng.standard_normal(mean.shape)
    return mean + np.einsum("...kl,...l->...k", vecs, np.sqrt(np.clip(vals, 0, None)) * eps)


def _mvn_info(rng, P, h):
    """Draws from N(P^{-1} h, P^{-1}) batched over the leading axis."""
    L = np.linalg.cholesky(P)
    mean = np.linalg.solve(P, h[..., None])[..., 0]
    eps = rng.standard_normal(h.shape)
    return mean + np.stack([scipy.linalg.solve_triangular(L[t].T, eps[t]) for t in range(len(L))])
