"""The split–merge moves and the conjugate random-walk clusters they integrate out."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import scipy.stats

from neurodict.sort import kernels, splitmerge, walk
from neurodict.sort.params import SortParams

SHAPE = {
    "two_means_iterations": SortParams().split_merge_two_means_iterations,
    "min_allocation": SortParams().split_merge_min_allocation,
}


def _prior(K=2, E=3, q=0.3):
    return walk.WalkPrior(
        mu0=np.array([0.5, -0.2])[:K],
        kappa0=0.2,
        q=q,
        nu0=K + 3.0,
        W0_inv=np.eye(K) * 1.5,
        n_epochs=E,
    )


@pytest.mark.parametrize("q", [0.3, 0.0])
@pytest.mark.parametrize("scaled", [False, True])
def test_walk_marginal_is_the_likelihood_times_prior_over_the_posterior(scaled, q):
    """Chib's identity at an arbitrary Λ: p(S) = p(S | Λ) p(Λ) / p(Λ | S), with p(S | Λ) the
    Gaussian of the stacked spikes (covariance C ⊗ Λ^{-1}, ``C = I + Z B Z'`` formed densely)
    and both Wisharts from scipy; with precision scales ``u_i`` (Student-t clusters given u),
    ``C = diag(1/u) + Z B Z'``; a walk without steps (q = 0) is one mean."""
    rng = np.random.default_rng(0)
    prior = _prior(q=q)
    n, K = 7, 2
    epoch = np.array([0, 0, 1, 1, 1, 2, 2])
    s = rng.normal(size=(n, 1, K)) + 0.4
    u = rng.gamma(2.0, 0.5, n) if scaled else None
    stats = walk.Stats.of(s, epoch, prior.n_epochs, u)
    Z = np.eye(prior.n_epochs)[epoch]
    C = np.diag(1 / u if scaled else np.ones(n)) + Z @ prior.B() @ Z.T
    lam = np.array([[1.3, 0.2], [0.2, 0.8]])
    # vec(S') ordered spike by spike: Cov = C ⊗ Λ^{-1}
    lik = scipy.stats.multivariate_normal(
        np.tile(prior.mu0, n), np.kron(C, np.linalg.inv(lam))
    ).logpdf(s[:, 0].ravel())
    p_lam = scipy.stats.wishart(prior.nu0, np.linalg.inv(prior.W0_inv)).logpdf(lam)
    _, _, RCR, _ = walk.posterior(prior, stats)
    post = scipy.stats.wishart(prior.nu0 + n, np.linalg.inv(prior.W0_inv + RCR[0])).logpdf(lam)
    np.testing.assert_allclose(walk.log_marginal(prior, stats)[0], lik + p_lam - post, rtol=1e-9)


@pytest.mark.parametrize("q", [1.0, 0.0])
def test_walk_draws_have_the_posterior_mean(q):
    """The mean of many draws of μ_{1..E} | S is the Gaussian conditional mean
    ``μ_0 + B Z' C^{-1} (S − 1μ_0')`` (computed directly here), which a drifting cluster
    follows epoch by epoch (and a walk without steps holds at the mean of all)."""
    rng = np.random.default_rng(1)
    prior = _prior(q=q)
    epoch = np.repeat(np.arange(3), 40)
    truth = np.array([[0.0, 0.0], [2.0, 1.0], [4.0, 2.0]])
    s = (truth[epoch] + 0.3 * rng.normal(size=(120, 2)))[:, None]
    stats = walk.Stats.of(s, epoch, 3)
    batch = walk.Stats(
        np.repeat(stats.counts, 4000, 0),
        np.repeat(stats.sums, 4000, 0),
        np.repeat(stats.scatter, 4000, 0),
    )
    from neurodict.sort.model import wishart

    mu, _ = walk.sample(rng, prior, batch, wishart)
    Z = np.eye(3)[epoch]
    C = np.eye(120) + Z @ prior.B() @ Z.T
    expected = prior.mu0 + prior.B() @ Z.T @ np.linalg.solve(C, s[:, 0] - prior.mu0)
    np.testing.assert_allclose(mu.mean(0), expected, atol=0.02)
    np.testing.assert_allclose(
        expected, truth if q else np.broadcast_to(truth.mean(0), truth.shape), atol=0.15
    )


def _tiny_target(rng, n=5, H=3):
    samples = np.array([0, 100, 130, 400, 1000])[:n]  # spikes 1 and 2 closer than Δ_ref
    return splitmerge.Target(
        s=np.r_[rng.normal(0, 1, (3, 1, 2)), rng.normal(2.5, 1, (n - 3, 1, 2))],
        epoch=np.array([0, 0, 1, 1, 1])[:n],
        r=np.array([0, 0, 0, 1, 1])[:n],
        alpha_beta=np.array([0.5, 0.3, 0.1, 0.1])[:H],
        n_components=2,
        prior=_prior(E=2),
        samples=samples,
        refractory_samples=45,
    )


@pytest.mark.parametrize("scaled", [False, True])
def test_clusters_factors_in_one_batch_equal_them_one_by_one(scaled):
    """:meth:`Target.log_clusters` (a split's two sides in one marginal) gives each part the
    factor :meth:`Target.log_cluster` gives it alone, an empty part (its prior only) among
    them; with and without precision scales."""
    rng = np.random.default_rng(8)
    n, K = 40, 2
    target = splitmerge.Target(
        s=rng.normal(size=(n, 1, K)),
        epoch=rng.integers(0, 3, n),
        r=rng.integers(0, 2, n),
        alpha_beta=np.array([0.5, 0.3, 0.1]),
        n_components=2,
        prior=_prior(E=3),
        samples=np.arange(n) * 100,
        refractory_samples=45,
        u=rng.gamma(2.0, 0.5, n) if scaled else None,
    )
    parts, hs = [np.arange(0, 25), np.arange(0), np.arange(25, 40)], [0, 1, 2]
    want = [target.log_cluster(idx, h) for idx, h in zip(parts, hs, strict=True)]
    np.testing.assert_allclose(target.log_clusters(parts, hs), want, rtol=1e-12)
    assert len(set(want)) == 3


@pytest.mark.parametrize(
    "near, n_steps, tolerance",
    [pytest.param(False, 100000, 0.06, marks=pytest.mark.slow), (True, 60000, 0.07)],
)
def test_split_merge_moves_sample_the_enumerated_posterior(near, n_steps, tolerance):
    """On 4 spikes and 4 cluster slots, the chain of split–merge moves alone visits every
    labelling as often as the exact posterior (enumerated over all 4^4) says (total variation
    0.044 at 100 000 moves; 0.18 without the proposal's choice among empty slots); labellings
    with the two close spikes together have probability 0 and are never visited. The same
    with half the pairs drawn among each spike's nearest neighbours, the other half uniform
    (0.054 at 60 000 moves; 0.086 when the neighbour pair is redrawn whenever it shares a
    cluster, a choice that looks at labels). The uniform chain alone is the slow variant."""
    rng = np.random.default_rng(2)
    H, n = 4, 4
    target = _tiny_target(rng, n, H)
    neighbours = np.array([[2], [3], [1], [1]]).__getitem__ if near else None
    labellings = np.array(list(itertools.product(range(H), repeat=n)))
    logp = np.array([target.log_target(c) for c in labellings])
    exact = np.exp(logp - logp.max())
    exact /= exact.sum()
    labels = np.zeros(n, np.int64)
    labels[2] = 1
    counts = np.zeros(len(labellings))
    code = H ** np.arange(n)[::-1]
    for _ in range(n_steps):
        splitmerge.move(rng, target, labels, H, **SHAPE, neighbours=neighbours)
        counts[labels @ code] += 1
    visited = counts / n_steps
    assert np.all(visited[exact == 0] == 0)
    assert 0.5 * np.abs(visited - exact).sum() < tolerance, 0.5 * np.abs(visited - exact).sum()


def test_a_spike_drawn_as_its_own_neighbour_proposes_nothing():
    """Spikes with identical features can list a spike among its own nearest neighbours: the
    pair (i, i) proposes no move (a split of one spike from itself would allocate from an
    empty side) and warns of nothing, while uniform pairs still move."""
    rng = np.random.default_rng(5)
    target = _tiny_target(rng)
    labels = np.array([0, 1, 0, 0, 1])
    own = np.arange(5)[:, None].__getitem__
    moved = set()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(300):
            moved.add(splitmerge.move(rng, target, labels, 3, **SHAPE, neighbours=own))
    assert "split" in moved or "merge" in moved


def test_allocation_follows_the_nearer_of_two_groups():
    rng = np.random.default_rng(3)
    f = np.r_[rng.normal(0, 0.3, (20, 2)), rng.normal(3, 0.3, (20, 2))]
    p = kernels.allocation(f, 0, 39, **SHAPE)
    assert p[0] == 1 and p[39] == 0
    assert np.all(p[:20] > 0.9) and np.all(p[20:] < 0.1)


def test_allocation_is_shaped_by_its_iterations_and_floor():
    """Spikes a and b both in the left group (at -0.5 and 0.5), a second group at 3: without
    two-means iterations each spike follows the nearer of the pair, so the left group is cut
    at 0; with them the means move to the groups and the whole left group follows a. The
    floor keeps every other spike's probability in [floor, 1 - floor] and is reached."""
    rng = np.random.default_rng(4)
    f = np.r_[[[-0.5], [0.5]], rng.normal(0, 0.25, (30, 1)), rng.normal(3, 0.25, (30, 1))]
    nearer_a = np.abs(f[:, 0] + 0.5) < np.abs(f[:, 0] - 0.5)
    left = np.r_[True, True, np.ones(30, bool), np.zeros(30, bool)]
    p0 = kernels.allocation(f, 0, 1, two_means_iterations=0, min_allocation=0.001)
    np.testing.assert_array_equal((p0 > 0.5)[2:], nearer_a[2:])
    p3 = kernels.allocation(f, 0, 1, two_means_iterations=3, min_allocation=0.001)
    np.testing.assert_array_equal((p3 > 0.5)[2:], left[2:])
    p = kernels.allocation(f, 0, 1, two_means_iterations=3, min_allocation=0.2)
    assert p[0] == 1 and p[1] == 0
    assert np.all((p[2:] >= 0.2) & (p[2:] <= 0.8))
    assert p[2:].max() == 0.8 and p[2:].min() == pytest.approx(0.2)
