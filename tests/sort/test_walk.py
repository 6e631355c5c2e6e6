"""The walk model's sufficient statistics: per-cluster sums and scatter by direct sums, and
the column swap of the z moves equal to recomputing them."""

from __future__ import annotations

import numpy as np
import pytest

from neurodict.sort import walk
from neurodict.sort.params import Priors


def _direct(s, labels, H, epoch, E, u=None):
    """Counts (H, M, E), sums (H, M, E, K), scatter (H, M, K, K) by loops over spikes, each
    weighted by its precision scale `u` when given."""
    N, M, K = s.shape
    u = np.ones(N) if u is None else u
    counts, sums, scatter = np.zeros((H, M, E)), np.zeros((H, M, E, K)), np.zeros((H, M, K, K))
    for i in range(N):
        counts[labels[i], :, epoch[i]] += u[i]
        sums[labels[i], :, epoch[i]] += u[i] * s[i]
        scatter[labels[i]] += u[i] * np.einsum("mk,ml->mkl", s[i], s[i])
    return counts, sums, scatter


def _data(seed=0, N=300, M=3, K=6, H=5, E=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, M, K)), rng.integers(0, H, N), H, rng.integers(0, E, N), E


def _assert_stats(got: walk.Stats, want):
    for a, b in zip((got.counts, got.sums, got.scatter), want, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-10)


def test_cluster_statistics_equal_direct_sums():
    s, labels, H, epoch, E = _data()
    _assert_stats(walk.Stats.of_labels(s, labels, H, epoch, E), _direct(s, labels, H, epoch, E))


def test_weighted_cluster_statistics_equal_direct_sums():
    """With precision scales: weighted counts, sums and scatter, the spike counts and
    ``Σ log u`` of each cluster, and the same from the column swap."""
    s, labels, H, epoch, E = _data(seed=3)
    u = np.random.default_rng(4).gamma(2.0, 0.5, labels.size)
    want = _direct(s, labels, H, epoch, E, u)
    got = walk.Stats.of_labels(s, labels, H, epoch, E, u)
    _assert_stats(got, want)
    np.testing.assert_array_equal(got.spikes[:, 0], np.bincount(labels, minlength=H))
    np.testing.assert_allclose(got.log_weight[:, 0], np.bincount(labels, np.log(u), minlength=H))
    swap = walk.ColumnSwap(s, np.ones(6, bool), labels, H, epoch, E, u)
    col = np.random.default_rng(5).normal(size=s.shape[:2])
    replaced = s.copy()
    replaced[:, :, 2] = col
    _assert_stats(swap.stats(np.arange(6), 2, col), _direct(replaced, labels, H, epoch, E, u))
    np.testing.assert_array_equal(swap.stats(np.arange(6), 2, col).spikes, got.spikes)


@pytest.mark.parametrize("weighted", [False, True])
def test_one_cluster_statistics_equal_direct_sums(weighted):
    """:meth:`Stats.of` of one set of spikes (an epoch left empty): the direct sums, the spike
    count and ``Σ log u`` with precision scales."""
    s, _, _, epoch, E = _data(seed=6, E=4)
    epoch[epoch == 2] = 3
    u = np.random.default_rng(7).gamma(2.0, 0.5, epoch.size) if weighted else None
    got = walk.Stats.of(s, epoch, E, u)
    counts, sums, scatter = _direct(s, np.zeros(epoch.size, int), 1, epoch, E, u)
    _assert_stats(got, (counts[0], sums[0], scatter[0]))
    assert got.spikes[0] == epoch.size
    if weighted:
        assert got.log_weight[0] == pytest.approx(np.log(u).sum())


@pytest.mark.parametrize(
    "q, E, weighted", [(0.3, 3, False), (0.3, 3, True), (0.0, 3, True), (0.2, 1, False)]
)
def test_marginal_kernel_equals_numpy_twin(q, E, weighted):
    """:func:`walk.log_marginal` (numba) and its numpy twin on every cluster and channel of a
    batch (H, M), an empty cluster among them: a drifting walk, one mean over several epochs
    (q = 0: the epochs pooled), one epoch; with and without precision scales."""
    s, labels, H, epoch, _ = _data(seed=11, E=E)
    labels[labels == 3] = 4  # cluster 3 empty
    u = np.random.default_rng(12).gamma(2.0, 0.5, labels.size) if weighted else None
    stats = walk.Stats.of_labels(s, labels, H, epoch, E, u)
    prior = walk.WalkPrior.isotropic(
        np.random.default_rng(13).normal(size=s.shape[2]), 2.5, q, E, Priors()
    )
    got = walk.log_marginal(prior, stats)
    assert got.shape == (H, s.shape[1])
    np.testing.assert_allclose(got, walk.log_marginal_numpy(prior, stats), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(got[3], 0.0, atol=1e-9)  # no spikes: p(S) = 1


def test_column_swap_equals_recomputing_with_the_column_replaced():
    """A proposed column (k among the atoms in use or not), a column set after a move, and
    the columns in use after a death and a birth: the statistics of the atoms in use, kept
    only among them, equal those recomputed."""
    s, labels, H, epoch, E = _data(seed=1)
    z = np.array([True, False, True, True, False, True])
    swap = walk.ColumnSwap(s, z, labels, H, epoch, E)
    col = np.random.default_rng(2).normal(size=s.shape[:2])
    active = np.flatnonzero(z)
    replaced = s.copy()
    replaced[:, :, 3] = col
    want = _direct(replaced[:, :, active], labels, H, epoch, E)
    _assert_stats(swap.stats(active, 3, col), want)
    _assert_stats(swap.stats(active, 1, col), _direct(s[:, :, active], labels, H, epoch, E))
    s[:, :, 3] = col  # the sampler's move, then the swap told
    swap.set(3)
    _assert_stats(swap.stats(active, 3, None), want)
    z[2], s[:, :, 2] = False, 7.0  # a death: its column redrawn, no longer read
    swap.set(2)
    z[4], s[:, :, 4] = True, col + 1.0  # a birth: its products with those in use made
    swap.set(4)
    active = np.flatnonzero(z)
    _assert_stats(swap.stats(active, -1, None), _direct(s[:, :, active], labels, H, epoch, E))


def test_principal_axes_equal_the_projections_on_the_top_singular_vectors():
    """With more rows than columns and with fewer (the small Gram's eigenvectors scaled by
    the singular values), as the SVD of the centred rows gives them, up to each axis' sign."""
    rng = np.random.default_rng(7)
    for n, d in [(200, 30), (30, 200)]:
        f = rng.normal(size=(n, d)) * np.linspace(3.0, 0.5, d)
        u, sv, _ = np.linalg.svd(f - f.mean(0), full_matrices=False)
        want = u[:, :4] * sv[:4]
        got = walk.principal_axes(f, 4)
        np.testing.assert_allclose(got * np.sign(got[0] / want[0]), want, atol=1e-9)
        _, axes = walk.leading_axes(f, 4)  # orthonormal in both cases
        np.testing.assert_allclose(axes.T @ axes, np.eye(4), atol=1e-9)


def test_leading_axes_of_a_large_matrix_span_the_top_singular_vectors():
    """Above ``EXACT_GRAM_SIZE`` the axes come from subspace iteration: on rows with six
    directions of large spread over a floor of unit noise they span the SVD's top six, in
    its order, orthonormal."""
    rng = np.random.default_rng(3)
    n, d, k = 1200, 400, 6
    assert min(n, d) > walk.EXACT_GRAM_SIZE
    directions = np.linalg.qr(rng.normal(size=(d, k)))[0]
    spread = np.array([12.0, 9.0, 7.0, 5.0, 4.0, 3.0])
    f = rng.normal(size=(n, k)) * spread @ directions.T + rng.normal(size=(n, d)) + 2.0
    _, _, vt = np.linalg.svd(f - f.mean(0), full_matrices=False)
    centre, axes = walk.leading_axes(f, k)
    np.testing.assert_allclose(centre, f.mean(0))
    np.testing.assert_allclose(axes.T @ axes, np.eye(k), atol=1e-9)
    cosines = np.abs(np.einsum("dk,kd->k", axes, vt[:k]))
    assert cosines.min() > 0.99, cosines


def test_bordered_marginal_equals_the_marginal_with_an_atom_added_or_removed():
    """The birth–death moves' ``log M`` with atom k put in (its column `col`) or taken out
    of the atoms in use, from the bordered ``S^{-1}``, equals :func:`walk.log_marginal`
    recomputed on the new atoms: with drifting means, one mean (no steps) and precision
    scales."""
    s, labels, H, epoch, E = _data(seed=6, K=7)
    u = np.random.default_rng(7).gamma(2.0, 0.5, labels.size)
    col = np.random.default_rng(8).normal(1.0, 2.0, size=s.shape[:2])
    mu0 = np.random.default_rng(9).normal(size=7)
    active, k = np.array([0, 2, 3, 5]), 4
    priors = Priors(wishart_dof_extra=3.0, within_cluster_var=0.7)
    for q, scales in [(0.3, None), (0.0, None), (0.3, u)]:
        swap = walk.ColumnSwap(s, np.isin(np.arange(7), active), labels, H, epoch, E, scales)

        def prior(a):
            return walk.WalkPrior.isotropic(mu0[a], 2.5, q, E, priors)  # noqa: B023

        def direct(a, col=None):
            return walk.log_marginal(prior(a), swap.stats(a, k, col)).sum()  # noqa: B023

        bordered = walk.BorderedMarginal(prior(active), swap.stats(active, -1, None))
        np.testing.assert_allclose(bordered.total, direct(active), rtol=1e-10)
        with_k = np.sort(np.r_[active, k])
        sums, cross = swap.column(k, col, np.r_[active, k])
        got = bordered.adding(mu0[k], sums, cross[..., :-1], cross[..., -1])
        np.testing.assert_allclose(got, direct(with_k, col), rtol=1e-10)
        for p in range(active.size):
            want = direct(np.delete(active, p))
            np.testing.assert_allclose(bordered.removing(p), want, rtol=1e-10)
