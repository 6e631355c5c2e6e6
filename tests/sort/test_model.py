"""The sampler's model decisions on snippets made from known atoms: atom usage inferred,
clusters split and merged by the model's evidence, labels from the posterior."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import norm, truncnorm

from neurodict.sort import dbksvd
from neurodict.sort.learn import _data, _start, epochs_of
from neurodict.sort.local import LocalSnippets
from neurodict.sort.model import Residual, Sampler, reconstruction
from neurodict.sort.params import Priors, SortParams
from tests.sort.chains import learn_chain

FS = 30000.0


def _atoms(T=30):
    t = np.arange(T)
    atoms = np.stack(
        [
            -np.exp(-((t - 10) ** 2) / 8),
            np.sin(t / 3) * np.exp(-((t - 12) ** 2) / 30),
            np.exp(-((t - 15) ** 2) / 20),
        ],
        1,
    )
    return atoms / np.linalg.norm(atoms, axis=0)


def _snippets(coef, n_per_unit, seed, M=4):
    """Snippets of len(coef) units built from the three atoms, unit noise, refractory trains."""
    rng = np.random.default_rng(seed)
    U = len(coef)
    lab = np.repeat(np.arange(U), n_per_unit)
    gain = rng.uniform(0.5, 1.5, (U, M))
    x = np.einsum("tk,ik,im->imt", _atoms(), np.asarray(coef, float)[lab], gain[lab])
    x += rng.standard_normal(x.shape)
    samples = np.zeros(lab.size, np.int64)
    for u in range(U):  # spikes of one unit at least 60 samples (2 ms) apart
        idx = np.flatnonzero(lab == u)
        grid = rng.choice(int(60 * FS) // 100, idx.size, replace=False)
        samples[idx] = np.sort(grid) * 100 + rng.integers(0, 40, idx.size)
    order = np.argsort(samples)
    return x[order], samples[order], lab[order]


def test_unused_atoms_switch_off():
    """600 snippets made from 3 atoms, truncation 20: every atom starts in use and the
    posterior keeps at most 5 (the chain's count falls from 20)."""
    x, samples, _ = _snippets([[8, 2, 0], [0, 7, 3], [3, 0, 8]], 200, seed=0)
    params = SortParams(max_atoms=20, n_burn=20, n_samples=5, n_keep=3, epoch_s=20.0)
    chain = learn_chain(x, samples, np.ones(samples.size, bool), FS, 60.0, params)
    assert chain.n_atoms[0] == 20
    assert chain.n_atoms[-1] <= 5, chain.n_atoms


def test_an_atom_without_data_keeps_the_scale_of_its_prior():
    """An atom switched off has no data: the chain draws it and its ARD precisions from their
    prior, whose scale the default ``Gamma(ard_shape, ard_rate)`` holds. The median norm of
    the switched-off atoms at the chain's end lies between the 10th and 90th percentiles of
    the prior's norm (100 000 draws), so a new use of the atom starts from unit scale."""
    x, samples, truth = _snippets([[8, 2, 0], [0, 7, 3], [3, 0, 8]], 200, seed=0)
    params = SortParams(max_atoms=20)
    sampler = _sampler(x, samples, truth, params)
    for _ in range(50):
        st = sampler.sweep()
    off = np.linalg.norm(st.A[:, ~st.z], axis=0)
    assert off.size >= 10, st.z
    p, T = params.priors, x.shape[2]
    ard = np.random.default_rng(1).gamma(p.ard_shape, 1.0 / p.ard_rate, (100_000, T))
    draws = np.random.default_rng(2).standard_normal(ard.shape) / np.sqrt(ard)
    prior = np.linalg.norm(draws, axis=1)
    low, high = np.quantile(prior, [0.1, 0.9])
    assert low < np.median(off) < high, (np.median(off), low, high)


def test_a_chain_learns_from_the_learnable_spikes_only():
    """The subsample is drawn from the spikes marked learnable (the overlap pass's: those
    with no spike-sized neighbour peeled), every one of them here; with fewer learnable than
    ``min_learn_spikes``, from all."""
    x, samples, truth = _snippets([[8, 2, 0], [0, 7, 3], [3, 0, 8]], 100, seed=0)
    params = SortParams(max_atoms=10, n_burn=3, n_samples=2, n_keep=1, epoch_s=20.0)
    learnable = truth != 2
    chain = learn_chain(x, samples, learnable, FS, 60.0, params)
    assert chain.learn_size == 200
    # the learned features reconstruct the learnable spikes' snippets to the noise
    fitted = np.einsum("mtk,imk->imt", chain.best.A[None] * chain.best.w[:, None], chain.best.s)
    assert np.mean((x[learnable] - fitted) ** 2) < 1.5
    few = np.zeros(samples.size, bool)
    few[: params.min_learn_spikes - 1] = True
    assert learn_chain(x, samples, few, FS, 60.0, params).learn_size == samples.size


def _sampler(x, samples, labels, params, seed=0, start=None):
    epoch, E = epochs_of(samples, FS, 60.0, params.epoch_s)
    data = _data(x, samples, epoch, E, params.refractory_samples(FS))
    sampler = Sampler(
        data,
        params.max_atoms,
        params.max_clusters,
        params.drift,
        params.drift_sd,
        2,
        np.random.default_rng(seed),
        params.priors,
        params.split_merge_axes,
        params.split_merge_two_means_iterations,
        params.split_merge_min_allocation,
        params.split_merge_neighbours,
        start,
    )
    sampler.state.labels = labels.copy()
    sampler._sample_clusters(sampler.state)
    return sampler


def _clusters_of(labels, truth):
    """For each true unit, the number of clusters holding at least 10 % of its spikes."""
    return [
        int(np.sum(np.bincount(labels[truth == u]) >= 0.1 * np.sum(truth == u)))
        for u in np.unique(truth)
    ]


def test_the_residual_keeps_its_projections_on_every_atom():
    """The birth–death moves read ``a_j'Φr`` from the residual's kept projections: after
    atoms switch on and off they equal the projections of the residual computed afresh."""
    rng = np.random.default_rng(0)
    N, M, T, K = 40, 3, 8, 5
    x = rng.normal(size=(N, M, T))
    atoms, phi = rng.normal(size=(M, T, K)), rng.gamma(2.0, size=(M, T))
    res = Residual(x.copy(), atoms, phi)
    added = np.zeros((N, M, T))
    for k in (1, 3, 1, 0):
        s_k = rng.normal(size=(N, M))
        res.add(k, s_k)
        added += atoms[None, :, :, k] * s_k[:, :, None]
    np.testing.assert_allclose(res.r, x + added, atol=1e-12)
    direct = np.einsum("imt,mt,mtk->imk", x + added, phi, atoms)
    np.testing.assert_allclose(res.projected, direct.transpose(2, 0, 1), atol=1e-10)


def test_a_sweep_starts_from_the_residual_the_last_noise_step_left():
    """Nothing changes the atoms, gains, features or usage between sweeps, so each sweep
    starts from the residual the last one's noise step computed: the chain is the one that
    recomputes it at every sweep's start, to the last bit."""
    x, samples, truth = _snippets([[8, 2, 0], [0, 7, 3], [3, 0, 8]], 60, seed=2)
    params = SortParams(max_atoms=10, max_clusters=10, epoch_s=20.0)
    carried, afresh = (_sampler(x, samples, truth, params, seed=4) for _ in range(2))
    for sweep in range(6):
        afresh._resid = None  # the residual recomputed from the state
        a = carried.sweep(params.split_merge_proposals if sweep < 3 else 0)
        b = afresh.sweep(params.split_merge_proposals if sweep < 3 else 0)
        assert a.log_lik == b.log_lik
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.A, b.A)
    np.testing.assert_array_equal(carried._resid, x - reconstruction(carried.state))


def test_gains_are_drawn_from_their_conditional_and_the_residual_follows():
    """Snippets made from two atoms with known features, gains, noise precisions and
    precision scales: the gains drawn given everything else equal the conditional's mean in
    closed form (checked by brute force on the snippets, to the draws' spread), recover the
    planted gains, and the residual kept beside them stays ``x − Σ_k w_k A_k s_k``."""
    rng = np.random.default_rng(1)
    N, M, T = 400, 3, 30
    A = _atoms(T)[:, :2]
    s = rng.normal(0, 4, (N, M, 2))
    w_true = rng.uniform(0.5, 2.0, (M, 2))
    phi = rng.uniform(0.5, 2.0, (M, T))
    u = rng.gamma(4.0, 0.25, N)
    x = np.einsum("tk,mk,imk->imt", A, w_true, s)
    x += rng.standard_normal(x.shape) / np.sqrt(u[:, None, None] * phi)
    params = SortParams(max_atoms=2)
    sampler = _sampler(x, np.arange(N) * 100, np.zeros(N, np.int64), params)
    st = sampler.state
    st.A, st.s, st.phi, st.u, st.z = A, s, phi, u, np.ones(2, bool)
    draws = []
    for _ in range(200):
        st.w = np.ones((M, 2))
        resid = x - np.einsum("tk,mk,imk->imt", A, st.w, s)
        sampler._sample_w(st, resid)
        np.testing.assert_allclose(resid, x - np.einsum("tk,mk,imk->imt", A, st.w, s), atol=1e-9)
        draws.append(st.w.copy())
    draws = np.array(draws)
    # the last atom's conditional given the first's final gains, by brute force
    k, w0 = 1, draws[:, :, 0]
    v = A[None, None, :, k] * s[:, :, k][:, :, None]
    prec = np.einsum("i,imt,mt->m", u, v * v, phi) + 1.0 / params.priors.gain_sd**2
    r = x[None] - np.einsum("t,jm,im->jimt", A[:, 0], w0, s[:, :, 0])  # per draw
    mean = np.einsum("jimt,imt,i,mt->jm", r, v, u, phi) / prec
    assert np.all(np.abs(draws[:, :, k].mean(0) - mean.mean(0)) < 4 / np.sqrt(prec * 200))
    np.testing.assert_allclose(draws.mean(0), w_true, rtol=0.05)


def test_gains_with_little_data_follow_their_prior():
    """Five spikes with features near zero: the gains' conditional is mostly the prior's
    ``N(0, σ_w²)`` cut at zero, and the draws' mean and spread equal that truncated normal's
    (from the data's precision and mean by brute force, plus the prior's precision)."""
    rng = np.random.default_rng(2)
    N, M, T = 5, 2, 30
    A = _atoms(T)[:, :1]
    s = rng.normal(0, 0.1, (N, M, 1))
    x = rng.standard_normal((N, M, T))
    params = SortParams(max_atoms=1, priors=Priors(gain_sd=0.5))
    sampler = _sampler(x, np.arange(N) * 100, np.zeros(N, np.int64), params)
    st = sampler.state
    st.A, st.s, st.phi, st.u, st.z = A, s, np.ones((M, T)), np.ones(N), np.ones(1, bool)
    draws = []
    for _ in range(4000):
        st.w = np.ones((M, 1))
        sampler._sample_w(st, x - np.einsum("tk,mk,imk->imt", A, st.w, s))
        draws.append(st.w[:, 0].copy())
    draws = np.array(draws)
    v = A[None, None, :, 0] * s  # (N, M, T)
    prec = np.einsum("imt,imt->m", v, v) + 1.0 / 0.5**2
    mean = np.einsum("imt,imt->m", x, v) / prec
    sd = 1.0 / np.sqrt(prec)
    expected = truncnorm((0 - mean) / sd, np.inf, loc=mean, scale=sd)
    np.testing.assert_allclose(draws.mean(0), expected.mean(), rtol=0.05)
    np.testing.assert_allclose(draws.std(0), expected.std(), rtol=0.05)


def test_a_unit_cut_in_two_is_rejoined_and_close_units_stay_two():
    """Three units, two of them close (their waveforms differ by 2.5 noise SDs on the largest
    atom); the chain starts with the first unit cut in two at random and the two close units
    in one cluster. Split–merge moves give one cluster per unit within 30 sweeps (at 15,
    about one chain in twelve still holds a unit in two clusters: 3 of 36 seeds)."""
    x, samples, truth = _snippets([[8, 2, 0], [0, 7, 3], [0, 7, 5.5]], 150, seed=1)
    params = SortParams(max_atoms=10, epoch_s=20.0)
    rng = np.random.default_rng(0)
    start = np.where(truth == 0, rng.integers(0, 2, truth.size), 2)
    sampler = _sampler(x, samples, start, params)
    assert _clusters_of(sampler.state.labels, truth) == [2, 1, 1]
    for _ in range(30):
        sampler.sweep(params.split_merge_proposals)
    assert _clusters_of(sampler.state.labels, truth) == [1, 1, 1]
    purity = [np.bincount(sampler.state.labels[truth == u]).max() / 150 for u in range(3)]
    assert min(purity) > 0.95, purity


def test_student_t_clusters_learn_each_spike_s_scale_and_the_tails():
    """Two units, 10 % of the spikes with five times the noise variance: the sampler gives
    those spikes precision scales near 1/5 and the others near 1, and draws ν small (heavy
    tails); on the same units without them, ν goes to the Gaussian end of its grid."""
    params = SortParams(max_atoms=10, epoch_s=20.0)
    for fraction in (0.1, 0.0):
        x, samples, truth = _snippets([[8, 2, 0], [0, 7, 3]], 300, seed=0)
        rng = np.random.default_rng(0)
        wide = rng.random(truth.size) < fraction
        x[wide] += 2.0 * rng.standard_normal(x[wide].shape)
        sampler = _sampler(x, samples, truth, params)
        for _ in range(10):
            st = sampler.sweep()
        if fraction:
            assert 0.1 < np.median(st.u[wide]) < 0.35, np.median(st.u[wide])
            assert 0.9 < np.median(st.u[~wide]) < 1.1, np.median(st.u[~wide])
            assert st.nu < 30, st.nu
        else:
            assert st.nu > 100, st.nu


def test_dbksvd_start_spans_the_planted_atoms_and_the_sampler_starts_from_it():
    """``init_dictionary: dbksvd``: the atoms learned from every spike span the three planted
    atoms, the sampler starts from exactly them and the subsample's sparse codes, and the
    posterior switches idle atoms off, though fewer than from the SVD start (10 of 20 stay on,
    against at most 5: K-SVD atoms all carry some of the signal)."""
    x, samples, _ = _snippets([[8, 2, 0], [0, 7, 3], [3, 0, 8]], 200, seed=0)
    params = SortParams(
        max_atoms=20, n_burn=20, n_samples=5, n_keep=3, epoch_s=20.0, init_dictionary="dbksvd"
    )
    subset = np.arange(0, x.shape[0], 2)
    atoms, s = _start(x, x[subset], 20, params)
    fit = atoms @ np.linalg.lstsq(atoms, _atoms(), rcond=None)[0]
    assert np.linalg.norm(fit - _atoms(), axis=0).max() < 0.05
    assert s.shape == (subset.size, 4, 20) and (s != 0).sum(2).max() == params.dbksvd_nonzero
    sampler = _sampler(
        x[subset], samples[subset], np.zeros(subset.size, np.int64), params, start=(atoms, s)
    )
    np.testing.assert_array_equal(sampler.state.A, atoms)
    chain = learn_chain(x, samples, np.ones(samples.size, bool), FS, 60.0, params)
    assert chain.n_atoms[-1] <= 10, chain.n_atoms
    assert _start(None, x[subset], 20, SortParams()) is None  # svd: the sampler's own start


def test_dbksvd_settings_reach_the_learner(monkeypatch):
    """``dbksvd_nonzero``, ``dbksvd_iterations`` and ``dbksvd_atom_batch`` are what the
    learner gets (codes at the same sparsity)."""
    seen = {}
    real = dbksvd.learn

    def spy(chunks, n_atoms, n_nonzero, n_iterations, atom_batch, **kw):
        seen.update(n_atoms=n_atoms, nonzero=n_nonzero, iterations=n_iterations, batch=atom_batch)
        return real(chunks, n_atoms, n_nonzero, n_iterations, atom_batch, **kw)

    monkeypatch.setattr(dbksvd, "learn", spy)
    x, _, _ = _snippets([[8, 2, 0], [0, 7, 3]], 50, seed=1)
    params = SortParams(
        init_dictionary="dbksvd", dbksvd_nonzero=2, dbksvd_iterations=3, dbksvd_atom_batch=5
    )
    _, s = _start(x, x[:20], 6, params)
    assert seen == {"n_atoms": 6, "nonzero": 2, "iterations": 3, "batch": 5}
    assert (s != 0).sum(2).max() == 2


def test_likelihood_batches_change_nothing(monkeypatch):
    """The marginal likelihood in batches of spikes equals it in one batch, with atoms in use
    and with none (a state with every atom off), and with the spikes shuffled (each batch's
    epochs out of order) it is the shuffled likelihood."""
    from neurodict.sort import model

    x, samples, truth = _snippets([[8, 2, 0], [0, 7, 3]], 150, seed=2)
    params = SortParams(max_atoms=10, epoch_s=20.0)
    st = _sampler(x, samples, truth, params).state
    epoch = epochs_of(samples, FS, 60.0, params.epoch_s)[0]
    st.nu = 5.0  # Student-t clusters
    off = dataclasses.replace(st, z=np.zeros_like(st.z), nu=np.inf)  # Gaussian: the noise alone
    whole = [model.marginal_log_lik(x, epoch, s) for s in (st, off)]
    monkeypatch.setattr(model, "LIK_BATCH", 7)
    for s, expected in zip((st, off), whole, strict=True):
        np.testing.assert_allclose(model.marginal_log_lik(x, epoch, s), expected, rtol=1e-12)
    shuffle = np.random.default_rng(3).permutation(len(x))  # a batch's epochs out of order
    got = model.marginal_log_lik(x[shuffle], epoch[shuffle], st)
    np.testing.assert_allclose(got, whole[0][shuffle], rtol=1e-12)
    assert np.ptp(whole[0], axis=1).min() > 0  # the clusters' likelihoods differ
    noise = norm.logpdf(x, 0, 1 / np.sqrt(off.phi)).sum((1, 2))  # no atoms: the noise alone
    np.testing.assert_allclose(whole[1], np.repeat(noise[:, None], whole[1].shape[1], 1))


def test_posterior_probabilities_of_a_neighbourhood_gathered_by_batch():
    """A neighbourhood's spikes and channels gathered batch by batch give the probabilities of
    the same spikes copied out whole."""
    from neurodict.sort.assign import posterior_probabilities

    x, samples, _ = _snippets([[8, 2, 0], [0, 7, 3], [3, 0, 8]], 100, seed=4)
    params = SortParams(max_atoms=10, n_burn=5, n_samples=3, n_keep=2, epoch_s=20.0)
    channels = np.array([0, 2, 3])
    chain = learn_chain(x[:, channels], samples, np.ones(samples.size, bool), FS, 60.0, params)
    epoch = epochs_of(samples, FS, 60.0, params.epoch_s)[0]
    idx = np.flatnonzero(np.arange(samples.size) % 3 != 1)  # the neighbourhood's spikes
    copied = posterior_probabilities(
        chain,
        LocalSnippets.full(x[idx][:, channels]),
        np.arange(idx.size),
        np.arange(3),
        epoch[idx],
        10**9,
    )
    np.testing.assert_allclose(
        posterior_probabilities(chain, LocalSnippets.full(x), idx, channels, epoch, batch_spikes=7),
        copied,
        rtol=1e-12,
        atol=1e-300,  # subnormal probabilities round apart
    )
    assert copied.max(axis=1).mean() > 0.8  # not uniform: the clusters are told apart


def test_unit_probabilities_sum_joined_clusters_on_each_spike_s_units():
    """Each spike's probability of a unit is the sum of its neighbourhood's clusters that are
    the unit, normalised over its units; a spike whose clusters are in no unit has none. Held
    sparse: a spike's entries are its neighbourhood's units, the same values as dense."""
    from neurodict.sort.assign import unit_probabilities
    from neurodict.sort.disk import DiskArray

    rng = np.random.default_rng(6)
    n, H = 40, 4
    centre = rng.integers(0, 3, n)
    # neighbourhood 0: clusters 0 and 2 one unit (0), cluster 3 in none; 1: units 1, 2 and
    # the multi-unit 3; 2: no cluster in a unit
    cluster_units = np.array([[0, 1, 0, -1], [1, 2, 3, 3], [-1, -1, -1, -1]])
    probs, dense = [], np.zeros((n, 4), np.float32)
    for c in range(3):
        idx = np.flatnonzero(centre == c)
        prob = rng.dirichlet(np.ones(H), idx.size).astype(np.float32)
        held = DiskArray(prob.shape)
        held[...] = prob
        probs.append((idx, held))
        for h in np.flatnonzero(cluster_units[c] >= 0):
            dense[idx, cluster_units[c, h]] += prob[:, h]
    dense /= np.maximum(dense.sum(1, keepdims=True), np.finfo(np.float32).tiny)
    got = unit_probabilities(probs, cluster_units, n, 4)
    np.testing.assert_allclose(got.toarray(), dense, rtol=1e-6)
    assert got.nnz == 2 * np.sum(centre == 0) + 3 * np.sum(centre == 1)
    np.testing.assert_allclose(got.sum(axis=1)[centre < 2], 1.0, rtol=1e-6)


def test_residual_spread_of_a_unit_by_batch(monkeypatch):
    """About 1 for one unit in white noise, more for two units taken as one; the same in
    batches of spikes."""
    from neurodict.sort import assign

    rng = np.random.default_rng(5)
    wave = 30 * _atoms()[:, :2].T  # two units' waveforms (2, T), on 4 channels below
    lab = rng.integers(0, 2, 3000)
    gains = np.array([[1, 0.5, 0.2, 0.1], [0.1, 0.2, 0.5, 1]])
    x = (wave[lab][:, None, :] * gains[lab][:, :, None]).astype(np.float32)
    x += rng.standard_normal(x.shape).astype(np.float32)
    epoch = rng.integers(0, 3, lab.size)
    one = np.flatnonzero(lab == 0)
    both = np.arange(lab.size)

    def spread(idx):
        means = np.stack([x[idx][epoch[idx] == e].mean(0) for e in range(3)])
        return assign.residual_spread(LocalSnippets.full(x), idx, np.array([0, 1, 2]), means, epoch)

    single, mixed = spread(one), spread(both)
    assert 0.9 < single < 1.1 and mixed > 1.5, (single, mixed)
    monkeypatch.setattr(assign, "BATCH_SPIKES", 7)
    assert spread(one) == single and spread(both) == mixed


def test_residual_spread_of_spikes_held_on_two_stores_of_channels():
    """A unit's spikes held on channels 0-2 or 1-3: each spike's residual is read on the
    unit's channels it holds (0-2 or 1-2), the median over all of them; a spike that holds
    none of them counts as not the unit's (infinite)."""
    from neurodict.sort import assign

    rng = np.random.default_rng(7)
    wave = 30 * _atoms()[:, 0]
    full = (wave[None, None, :] * np.array([1, 0.5, 0.2, 0.1])[None, :, None]).repeat(400, 0)
    full = (full + rng.standard_normal(full.shape)).astype(np.float32)
    store = rng.integers(0, 2, 400)
    stores = np.array([[0, 1, 2], [1, 2, 3]])
    x = LocalSnippets(full[np.arange(400)[:, None], stores[store]], stores, store, 4)
    epoch = np.zeros(400, np.int64)
    means = full.mean(0)[None]
    channels = np.array([0, 1, 2])
    per_spike = np.empty(400)
    for i in range(400):
        on = np.intersect1d(channels, stores[store[i]])
        f, m = full[i, on].ravel(), means[0, on].ravel()
        per_spike[i] = ((f - (f @ m) / (m @ m) * m) ** 2).mean()
    got = assign.residual_spread(x, np.arange(400), channels, means, epoch)
    assert got == pytest.approx(np.median(per_spike), rel=1e-5) and 0.9 < got < 1.1
    far = np.flatnonzero(store == 1)
    assert assign.residual_spread(x, far, np.array([0]), means, epoch) == np.inf


def test_neighbourhoods_learned_in_processes_as_here():
    """Two neighbourhoods: chains run in worker processes (the larger started first) equal
    those run here, in the neighbourhoods' order (each is seeded by its neighbourhood), and
    each sees only its spikes (by the channels they were found on, whatever else their
    windows hold) and its channels."""
    from neurodict.sort.learn import learn
    from neurodict.sort.neighbourhoods import Neighbourhoods

    x, samples, _ = _snippets([[8, 2, 0], [0, 7, 3]], 100, seed=6)
    x[::2, 2:] *= 0.1  # every other spike peaks on channels 0-1, the rest on 2-3
    x[1::2, :2] *= 0.1
    channels = np.tile([0, 3], 100)
    x[:40:2, 2:] *= 30.0  # a larger spike of a far neuron in some windows
    nb = Neighbourhoods(  # the second the larger: the workers start it first
        centres=np.array([0, 2]),
        channels=[np.array([0, 1]), np.array([1, 2, 3])],
        nearest=np.array([0, 0, 1, 1]),
        adjacent=np.ones((2, 2), dtype=bool),
    )
    params = SortParams(max_atoms=6, n_burn=3, n_samples=2, n_keep=1, epoch_s=20.0)
    here = learn(LocalSnippets.full(x), samples, channels, FS, 60.0, params, nb, n_jobs=1)
    there = learn(LocalSnippets.full(x), samples, channels, FS, 60.0, params, nb, n_jobs=2)
    for c, (a, b) in enumerate(zip(here.chains, there.chains, strict=True)):
        assert a.learn_size == b.learn_size == 100
        assert a.best.s.shape[1] == b.best.s.shape[1] == nb.channels[c].size
        np.testing.assert_array_equal(a.trace, b.trace)


def test_quadratic_forms_are_the_dense_mahalanobis_distances_when_ill_conditioned():
    """``δ_{i,c}`` equals ``(x − Dμ)'(Φ^{-1} + DΛ^{-1}D')^{-1}(x − Dμ)`` summed over channels,
    computed densely, also where an atom's scale has run far from its features' (a norm of
    2e8, as a birth from a vague ARD prior gives; clusters drawn from the prior) and where a
    channel gives an atom no gain: no squared distance below zero, and ``log|Σ_c|`` is the
    dense log-determinant."""
    from neurodict.sort.model import State, quadratic_forms

    rng = np.random.default_rng(3)
    N, M, T, K, H, E = 8, 2, 6, 3, 2, 2
    A = rng.standard_normal((T, K))
    A[:, 0] *= 2e8
    w = rng.uniform(0.5, 2.0, (M, K))
    w[1, 2] = 0.0  # channel 1 does not use atom 2
    lam = np.stack([np.stack([np.eye(K)] * M)] * H) * rng.uniform(0.3, 3.0, (H, M, 1, 1))
    mu = 3 * rng.standard_normal((H, M, E, K))
    phi = rng.uniform(0.5, 2.0, (M, T))
    D = A[None] * w[:, None]  # (M, T, K)
    epoch = rng.integers(0, E, N)
    x = 4 * rng.standard_normal((N, M, T))
    state = State(
        A=A, z=np.ones(K, bool), pi=np.ones(K), w=w, s=np.zeros((N, M, K)), ard=np.ones((T, K)),
        phi=phi, labels=np.zeros(N, np.int64), r=np.zeros(N, np.int64), beta=np.ones(H),
        pis=np.ones((E, H)) / H, omega=np.ones(E), mu=mu, lam=lam, u=np.ones(N), nu=np.inf,
    )  # fmt: skip
    delta, logdet = quadratic_forms(x, epoch, state)
    # densely, in exact rational arithmetic (in floats the covariance's condition, 1e17,
    # leaves nothing of the distances)
    exact = np.vectorize(Fraction, otypes=[object])
    dense, dense_logdet = np.zeros((N, H)), np.zeros(H)
    for h in range(H):
        for m in range(M):
            Dm, lam_inv = exact(D[m]), _exact_inverse(exact(lam[h, m]))
            cov = np.diag(1 / exact(phi[m])) + Dm @ lam_inv @ Dm.T
            cov_inv = _exact_inverse(cov)
            r = exact(x[:, m]) - exact(mu[h, m, epoch]) @ Dm.T
            dense[:, h] += [float(v @ cov_inv @ v) for v in r]
            dense_logdet[h] += math.log(_exact_det(cov))
    assert delta.min() >= 0
    np.testing.assert_allclose(delta, dense, rtol=1e-6)
    np.testing.assert_allclose(logdet, dense_logdet, rtol=1e-6)


def _exact_inverse(a: np.ndarray) -> np.ndarray:
    """The inverse of a square matrix of Fractions by Gauss-Jordan elimination."""
    n = a.shape[0]
    work = np.concatenate([a.copy(), np.vectorize(Fraction, otypes=[object])(np.eye(n))], 1)
    for c in range(n):
        pivot = next(r for r in range(c, n) if work[r, c] != 0)
        work[[c, pivot]] = work[[pivot, c]]
        work[c] = work[c] / work[c, c]
        for r in range(n):
            if r != c:
                work[r] = work[r] - work[r, c] * work[c]
    return work[:, n:]


def _exact_det(a: np.ndarray) -> Fraction:
    """The determinant of a square matrix of Fractions by elimination."""
    work, det = a.copy(), Fraction(1)
    for c in range(a.shape[0]):
        pivot = next(r for r in range(c, a.shape[0]) if work[r, c] != 0)
        if pivot != c:
            work[[c, pivot]], det = work[[pivot, c]], -det
        det *= work[c, c]
        work[c + 1 :] = work[c + 1 :] - np.outer(work[c + 1 :, c] / work[c, c], work[c])
    return det


def test_learning_features_are_each_chains_features_on_its_atoms_padded_to_the_widest():
    """Each chain's features on its atoms in use, zero on an atom a spike's cluster does not
    consider (the kernel beta process), zero-padded to the widest chain's."""
    from types import SimpleNamespace

    from neurodict.sort.assign import learning_features

    rng = np.random.default_rng(0)
    chains = []
    for n, M, z in [(5, 3, [1, 0, 1, 1]), (4, 2, [0, 1, 0, 0]), (3, 4, [1, 1, 0, 1])]:
        z = np.array(z, bool)
        best = SimpleNamespace(s=rng.standard_normal((n, M, 4)), z=z, consider=None)
        chains.append(SimpleNamespace(best=best, learn_size=n))
    # the last chain's with the kernel beta process: cluster 0 does not consider atom 3
    chains[2].best.consider = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    chains[2].best.labels = np.array([1, 0, 1])
    out = learning_features(chains)
    assert out.dtype == np.float32 and out.shape == (12, 12)
    f32 = [ch.best.s.astype(np.float32) for ch in chains]
    np.testing.assert_array_equal(out[:5, :9], f32[0][:, :, [0, 2, 3]].reshape(5, 9))
    np.testing.assert_array_equal(out[:5, 9:], 0)
    np.testing.assert_array_equal(out[5:9, :2], f32[1][:, :, 1])
    np.testing.assert_array_equal(out[5:9, 2:], 0)
    f32[2][1, :, 3] = 0  # the second spike's cluster does not consider atom 3
    np.testing.assert_array_equal(out[9:], f32[2][:, :, [0, 1, 3]].reshape(3, 12))
