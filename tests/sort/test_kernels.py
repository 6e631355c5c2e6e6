"""The sorter's numba kernels against their numpy twins, and the sampler's exact pieces."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from scipy.stats import multivariate_normal, multivariate_t

from neurodict.sort import kernels, local
from neurodict.sort.disk import DiskArray
from neurodict.sort.epoch_sums import EpochSums
from neurodict.sort.learn import _data
from neurodict.sort.local import LocalSnippets
from neurodict.sort.model import Sampler, marginal_log_lik, positive_normal, wishart


def _close_spikes(rng, n=400, ref=15):
    """Sorted spike times with many pairs and triples closer than the refractory period."""
    gaps = np.where(rng.random(n) < 0.4, rng.integers(1, ref, n), rng.integers(ref, 400, n))
    return np.cumsum(gaps)


def test_colour_classes_never_hold_two_close_spikes():
    rng = np.random.default_rng(0)
    t = _close_spikes(rng)
    classes = kernels.colour_classes(t, 15)
    assert sorted(np.concatenate(classes)) == list(range(t.size))
    assert len(classes) >= 2
    for cls in classes:
        assert np.all(np.diff(t[cls]) >= 15)


@pytest.mark.parametrize("sampled", [True, False])
def test_masked_labels_kernel_equals_numpy_twin_and_respects_refractory(sampled):
    rng = np.random.default_rng(1)
    t = _close_spikes(rng)
    logp = rng.normal(size=(t.size, 5)) * 3
    lo, hi = kernels.refractory_neighbours(t, 15)
    classes = kernels.colour_classes(t, 15)
    u = rng.random(t.size) if sampled else None
    a = kernels.masked_labels(logp, classes, lo, hi, np.full(t.size, -1), u)
    b = kernels.masked_labels_numpy(logp, classes, lo, hi, np.full(t.size, -1), u)
    np.testing.assert_array_equal(a, b)
    for c in range(5):
        assert np.all(np.diff(t[a == c]) >= 15)
    if not sampled:  # greedy: an unblocked spike takes its best label
        alone = (hi - lo) == 1
        np.testing.assert_array_equal(a[alone], logp[alone].argmax(1))


def test_table_counts_kernel_equals_numpy_twin():
    rng = np.random.default_rng(2)
    n = rng.integers(0, 30, size=(4, 6))
    conc = rng.random(6) * 2
    u = rng.random((4, 6, 30))
    np.testing.assert_array_equal(
        kernels.table_counts(n, conc, u), kernels.table_counts_numpy(n, conc, u)
    )
    m = kernels.table_counts(n, conc, u)
    assert np.all((m <= n) & ((m >= 1) | (n == 0)))  # the first customer always opens a table


def test_cluster_products_kernel_equals_numpy_twin_and_direct_sums():
    """Per-cluster weighted products of a column with chosen feature columns, an empty
    cluster among them: kernel, twin and sums over each cluster's spikes agree."""
    rng = np.random.default_rng(3)
    N, M, K, H = 200, 3, 7, 5
    col, s = rng.normal(size=(N, M)), rng.normal(size=(N, M, K))
    cluster = rng.choice([0, 1, 3, 4], N)  # cluster 2 empty
    weight, columns = rng.gamma(2.0, 0.5, N), np.array([5, 0, 3])
    by_atom = np.ascontiguousarray(s.transpose(2, 0, 1))
    got = kernels.cluster_products(col, by_atom, columns, cluster, weight, H)
    np.testing.assert_allclose(
        got, kernels.cluster_products_numpy(col, by_atom, columns, cluster, weight, H)
    )
    for h in range(H):
        rows = cluster == h
        want = np.einsum("i,im,imj->mj", weight[rows], col[rows], s[rows][:, :, columns])
        np.testing.assert_allclose(got[h], want, atol=1e-12)


def test_pair_products_kernel_equals_numpy_twin_and_the_outer_products():
    """Each row's products of coordinates with 1 appended, upper triangle row by row: kernel,
    twin and the outer product's upper triangle agree."""
    a = np.random.default_rng(5).normal(size=(9, 4))
    got = kernels.pair_products(a)
    np.testing.assert_array_equal(got, kernels.pair_products_numpy(a))
    b = np.c_[a, np.ones(9)]
    rows, cols = np.triu_indices(5)
    np.testing.assert_allclose(got, np.einsum("ij,ik->ijk", b, b)[:, rows, cols])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_resampled_windows_kernel_equals_numpy_twin_and_shifts_a_sampled_sine(dtype):
    """Windows interpolated a fraction of a sample off their peak: kernel and twin agree
    (float32 and float64 traces, the twin in blocks of three snippets); a slow sine sampled
    on integers, windowed about peak + frac, is the sine at those shifted times (within the
    windowed sinc's error); a zero fraction gives the samples themselves."""
    from neurodict.sort.snippets import sinc_weights

    rng = np.random.default_rng(8)
    M, before, after = 5, 6, 9
    traces = rng.standard_normal((300, M)).astype(dtype)
    peak = rng.integers(20, 280, 11)
    frac = np.r_[0.0, rng.uniform(-0.5, 0.5, 10)]
    noise = rng.uniform(1, 3, M)
    w = sinc_weights(frac)
    got = kernels.resampled_windows(traces, peak, w, before, after, noise)
    blocks_of_three = 3 * (before + after) * w.shape[1] * M
    twin = kernels.resampled_windows_numpy(
        traces, peak, w, before, after, noise, gather=blocks_of_three
    )
    np.testing.assert_allclose(got, twin, rtol=1e-6, atol=1e-6)
    # on some channels of each snippet (in any order, one twice): those rows of the windows
    read = np.c_[rng.integers(0, M, (peak.size, 2)), np.full(peak.size, M - 1)]
    np.testing.assert_array_equal(
        kernels.resampled_windows(traces, peak, w, before, after, noise, read),
        got[np.arange(peak.size)[:, None], read],
    )
    np.testing.assert_allclose(
        kernels.resampled_windows_numpy(traces, peak, w, before, after, noise, read, gather=99),
        got[np.arange(peak.size)[:, None], read],
        rtol=1e-6,
        atol=1e-6,
    )
    k = np.arange(-before, after)
    np.testing.assert_allclose(got[0], (traces[peak[0] + k] / noise).T, rtol=1e-6)
    period = 40.0
    sine = np.sin(2 * np.pi * np.arange(300) / period)[:, None] * np.ones(M)
    shifted = kernels.resampled_windows(sine, peak, w, before, after, np.ones(M))
    want = np.sin(2 * np.pi * (peak[:, None] + frac[:, None] + k[None]) / period)
    np.testing.assert_allclose(shifted, np.repeat(want[:, None], M, axis=1), atol=5e-3)


def test_cluster_moments_kernel_equals_numpy_twin_and_direct_sums():
    """Per-cluster, per-epoch weighted sums and per-cluster scatter of chosen feature
    columns (out of order), an empty cluster and an empty epoch of another among them:
    kernel, twin and sums over each cluster's spikes agree."""
    rng = np.random.default_rng(4)
    N, M, K, H, E = 250, 3, 7, 5, 3
    s = rng.normal(size=(N, M, K))
    cluster, epoch = rng.choice([0, 1, 3, 4], N), rng.integers(0, E, N)  # cluster 2 empty
    epoch[(cluster == 1) & (epoch == 2)] = 0
    weight, columns = rng.gamma(2.0, 0.5, N), np.array([5, 0, 3, 6])
    sums, scatter = kernels.cluster_moments(s, columns, cluster, epoch, weight, H, E)
    twin = kernels.cluster_moments_numpy(s, columns, cluster, epoch, weight, H, E)
    np.testing.assert_allclose(sums, twin[0], atol=1e-12)
    np.testing.assert_allclose(scatter, twin[1], atol=1e-12)
    v = s[:, :, columns]
    for h in range(H):
        rows = cluster == h
        want = np.einsum("i,imj,imk->mjk", weight[rows], v[rows], v[rows])
        np.testing.assert_allclose(scatter[h], want, atol=1e-12)
        for e in range(E):
            at = rows & (epoch == e)
            np.testing.assert_allclose(sums[h, :, e], np.einsum("i,imj->mj", weight[at], v[at]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_epoch_sums_kernel_equals_numpy_twin_and_direct_sums(dtype, monkeypatch):
    """Snippets held on two stores of channels (one padded) summed per unit and epoch, in two
    calls: spikes in no unit (-1) left out, a unit with no spikes in one epoch, each channel's
    count that of the unit's snippets holding it, each unit's sums kept on the channels of its
    snippets' stores only (unit 0 on those of the first store); kernel, twin and direct sums
    of the snippets on every channel; the kernel's sums of the snippets in a file, 13 at a
    time, are its sums of them in memory; a snippet on a channel its unit does not keep is
    an error."""
    rng = np.random.default_rng(6)
    U, E, n, M, T = 4, 3, 300, 5, 7
    full = rng.normal(size=(n, M, T)).astype(dtype)
    stores = np.array([[0, 1, 2, 3], [2, 3, 4, -1]])
    epoch, labels = rng.integers(0, E, n), rng.integers(-1, U, n)
    labels[(labels == 2) & (epoch == 1)] = 3
    store = np.where(labels == 0, 0, rng.integers(0, 2, n))
    values = full[np.arange(n)[:, None], np.maximum(stores[store], 0)]
    on = np.zeros((n, M), bool)
    for s, channels in enumerate(stores):
        on[np.ix_(store == s, channels[channels >= 0])] = True

    def summed(add, values, halves=2):
        sums = EpochSums.zeros(stores, store, labels, U, E, M, T)
        for part in np.array_split(np.arange(n), halves):
            x = LocalSnippets(values[part], stores, store[part], M)
            add(sums, x, epoch[part], labels[part])
        return sums

    got = summed(kernels.add_epoch_sums, values)
    twin = summed(kernels.add_epoch_sums_numpy, values)
    np.testing.assert_array_equal(got.counts, twin.counts)
    np.testing.assert_array_equal(got.held, twin.held)
    np.testing.assert_allclose(got.sums, twin.sums, rtol=1e-12)
    disk = DiskArray(values.shape, dtype)  # in a file, read a few snippets at a time
    disk[...] = values
    monkeypatch.setattr(local, "READ_VALUES", 13 * 4 * T)
    filed = summed(kernels.add_epoch_sums, disk, halves=1)
    np.testing.assert_allclose(filed.sums, got.sums, rtol=1e-12)
    np.testing.assert_array_equal(got.on[0], [True, True, True, True, False])
    assert got.sums.size == E * T * got.on.sum() < U * E * M * T
    for k, e in np.ndindex(U, E):
        rows = (labels == k) & (epoch == e)
        assert got.counts[k, e] == rows.sum()
        np.testing.assert_array_equal(got.held[k, e], on[rows].sum(0))
        held_sum = (full[rows] * on[rows][:, :, None]).sum(0, dtype=float)
        np.testing.assert_allclose(got.unit(k)[e], held_sum[got.on[k]], rtol=1e-12)
        assert not held_sum[~got.on[k]].any()
    assert got.counts[2, 1] == 0
    assert on[:, [2, 3]].all() and not on[:, [0, 1, 4]].all(axis=0).any()  # some held by all
    stray = np.flatnonzero(labels == 0)[:1]  # unit 0's snippet held on the second store
    x = LocalSnippets(values[stray], stores, np.ones(1, np.int64), M)
    with pytest.raises(ValueError, match="a channel its unit's sums do not keep"):
        kernels.add_epoch_sums(got, x, epoch[stray], labels[stray])


def test_means_are_each_held_channels_mean_over_the_snippets_holding_it():
    """Each unit's mean per epoch on each channel its snippets hold (its mean over all epochs
    where none does in an epoch, zero on channels none ever holds), float32: the means of
    sums kept on each unit's channels equal those of the same sums on every channel, and
    those sums take a unit's share of the channels (40 of 384 here), not all of them."""
    rng = np.random.default_rng(3)
    U, E, M, T, S = 40, 10, 384, 48, 3
    stores = np.array([np.arange(8 * s, 8 * s + 40) for s in range(U)])
    store = np.repeat(np.arange(U), S)
    labels, epoch = store.copy(), rng.integers(0, E, U * S)
    values = rng.normal(size=(U * S, 40, T))
    sums = EpochSums.zeros(stores, store, labels, U, E, M, T)
    kernels.add_epoch_sums(sums, LocalSnippets(values, stores, store, M), epoch, labels)
    means = sums.means()
    assert sums.sums.nbytes == U * E * 40 * T * 8
    dense, held = np.zeros((U, E, M, T)), np.zeros((U, E, M))
    for i, (k, e) in enumerate(zip(labels, epoch, strict=True)):
        dense[k, e, stores[k]] += values[i]
        held[k, e, stores[k]] += 1
    overall = dense.sum(1) / np.maximum(held.sum(1), 1)[..., None]
    each = dense / np.maximum(held, 1)[..., None]
    expected = np.where(held[..., None] > 0, each, overall[:, None])
    assert means.dtype == np.float32
    np.testing.assert_allclose(means, expected, rtol=1e-6, atol=1e-7)
    assert (held[0] == 0).any(axis=0)[:40].all()  # three spikes: epochs without them
    assert (means[:, :, 352:] == 0).all() and (means[0, :, 40:] == 0).all()


@pytest.mark.parametrize("alive", [False, True])
def test_birth_death_terms_kernel_equals_numpy_twin_and_the_densities(alive):
    """A birth's proposed features and a death's kept ones with their likelihood terms:
    kernel and twin agree, and the terms are the Gaussian likelihood gain of the features
    less ``log q`` (``q = N(h/P, 1/P)``) written out with scipy's normal density."""
    rng = np.random.default_rng(9)
    N, M = 50, 3
    projected, s = rng.normal(size=(N, M)), rng.normal(size=(N, 8, M))[:, 2]  # strided
    aa, u, normals = rng.gamma(2.0, 1.0, M), rng.gamma(3.0, 0.3, N), rng.normal(size=(N, M))
    s_k = s if alive else None
    born, terms = kernels.birth_death_terms(projected, s_k, aa, u, None if alive else normals)
    twin = kernels.birth_death_terms_numpy(projected, s_k, aa, u, None if alive else normals)
    np.testing.assert_allclose(born, twin[0], rtol=1e-12)
    assert terms == pytest.approx(twin[1], rel=1e-10)
    h = (projected + (s * aa if alive else 0.0)) * u[:, None]
    P = u[:, None] * aa + 1.0
    np.testing.assert_allclose(born, s if alive else h / P + normals / np.sqrt(P), rtol=1e-12)
    log_q = scipy.stats.norm(h / P, 1 / np.sqrt(P)).logpdf(born).sum()
    assert terms == pytest.approx((h * born - 0.5 * (P - 1) * born**2).sum() - log_q, rel=1e-10)


def test_consider_evidence_kernel_equals_numpy_twin_and_the_per_spike_evidence():
    """Each cluster's evidence for considering an atom (strided feature columns as the
    sampler passes them): kernel and twin agree, and each is the sum over the cluster's
    spikes of :func:`neurodict.sort.kbp.consider_log_odds` with the features' conditional
    mean written out from the cluster's precision."""
    from neurodict.sort.kbp import consider_log_odds

    rng = np.random.default_rng(11)
    N, M, K, H, j = 60, 3, 4, 5, 2
    labels = rng.integers(0, H - 1, N)  # the last cluster empty
    lam = np.einsum("hmkl,hmjl->hmkj", *[rng.normal(size=(H, M, K, K))] * 2) + np.eye(K)
    mean, s = rng.normal(size=(N, M, K)), rng.normal(size=(N, M, K))
    dev = s - mean
    pull = np.einsum("imkl,iml->imk", lam[labels], dev)
    projected, g = rng.normal(size=(N, M)), rng.gamma(2.0, 1.0, M)
    was, u = (rng.random(N) < 0.5).astype(float), rng.gamma(3.0, 0.3, N)
    args = (projected, s[:, :, j], was, g, lam[:, :, j, j], mean[:, :, j], pull[:, :, j])
    got = kernels.consider_evidence(*args, dev[:, :, j], u, labels, H)
    twin = kernels.consider_evidence_numpy(*args, dev[:, :, j], u, labels, H)
    np.testing.assert_allclose(got, twin, rtol=1e-10)
    h = projected + was[:, None] * s[:, :, j] * g
    L = lam[labels, :, j, j]
    others = np.arange(K) != j
    cond = (
        mean[:, :, j]
        - np.einsum("imk,imk->im", lam[labels][:, :, j, others], dev[:, :, others]) / L
    )
    expected = np.bincount(labels, consider_log_odds(h, g, u, cond, L), minlength=H)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert got[-1] == 0.0


@pytest.mark.parametrize("iterations", [0, 1, 3])
def test_allocation_kernel_equals_numpy_twin(iterations):
    """Two overlapping groups in 16 coordinates, the pair drawn from one of them: the kernel's
    split probabilities are the twin's, the floor and the pair's 1 and 0 included."""
    rng = np.random.default_rng(5)
    f = np.r_[rng.normal(0, 1, (300, 16)), rng.normal(1.5, 1, (200, 16))]
    shape = {"two_means_iterations": iterations, "min_allocation": 0.01}
    got = kernels.allocation(f, 7, 42, **shape)
    want = kernels.allocation_numpy(f, 7, 42, **shape)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert got[7] == 1 and got[42] == 0 and got.min() == 0
    assert np.sort(got)[1] == 0.01 and np.sort(got)[-2] == 0.99


@pytest.mark.parametrize("nu", [np.inf, 3.0])
def test_marginal_log_lik_equals_the_density_it_integrates(nu):
    """Features integrated out: per channel a Gaussian; with a precision scale shared by the
    channels and integrated out too (Student-t clusters, ν finite): the multivariate t of all
    channels at once with the same block-diagonal shape."""
    rng = np.random.default_rng(3)
    N, M, T = 40, 2, 8
    x = rng.standard_normal((N, M, T)) * 2
    t = np.sort(rng.integers(0, 100000, N))
    epoch = t * 3 // 100000
    sampler = Sampler(_data(x, t, epoch, 3, 20), 6, 4, True, 0.5, 3, rng)
    st = sampler.state
    st.z[:] = [1, 1, 0, 1, 0, 1]
    st.w = rng.random((M, 6)) + 0.5
    st.phi = rng.random((M, T)) + 0.5
    st.nu = nu
    sampler._sample_clusters(st)  # cluster parameters on the atoms in use
    ll = marginal_log_lik(x, epoch, st)
    for i, c in [(0, 0), (7, 2), (31, 3)]:
        means, covs = [], []
        for m in range(M):
            D = st.A * (st.w[m] * st.z)
            covs.append(D @ np.linalg.inv(st.lam[c, m]) @ D.T + np.diag(1 / st.phi[m]))
            means.append(D @ st.mu[c, m, epoch[i]])
        if np.isinf(nu):
            direct = sum(
                multivariate_normal(mean, S).logpdf(x[i, m])
                for m, (mean, S) in enumerate(zip(means, covs, strict=True))
            )
        else:
            shape = scipy.linalg.block_diag(*covs)
            direct = multivariate_t(np.concatenate(means), shape, df=nu).logpdf(x[i].ravel())
        assert ll[i, c] == pytest.approx(direct, rel=1e-9)


def test_batched_wishart_has_the_wishart_mean():
    rng = np.random.default_rng(4)
    scale = np.array([[2.0, 0.5], [0.5, 1.0]])
    draws = wishart(rng, 7, np.broadcast_to(scale, (40000, 2, 2)))
    np.testing.assert_allclose(draws.mean(0), 7 * scale, rtol=0.03)
    assert np.all(np.linalg.eigvalsh(draws) > 0)


def test_positive_normal_draws_are_scipy_truncnorm_s_from_the_same_uniforms():
    """The gains' truncated normals, means far below, at and far above the bound (both tails
    of the inverse CDF), equal scipy's ``truncnorm.rvs`` drawn from the same generator state,
    and are never negative; their mean matches the truncated normal's."""
    mean = np.array([-40.0, -3.0, -0.5, 0.0, 0.7, 5.0, 60.0])
    sd = np.array([1.0, 2.0, 1.0, 1.0, 0.3, 1.0, 2.0])
    got = positive_normal(np.random.default_rng(1), mean, sd)
    want = scipy.stats.truncnorm.rvs(
        -mean / sd, np.inf, loc=mean, scale=sd, random_state=np.random.default_rng(1)
    )
    np.testing.assert_allclose(got, want, rtol=1e-12)
    many = positive_normal(np.random.default_rng(2), np.full(200000, -1.0), np.ones(200000))
    assert many.min() >= 0
    assert many.mean() == pytest.approx(scipy.stats.truncnorm(1.0, np.inf, -1.0).mean(), rel=0.01)
