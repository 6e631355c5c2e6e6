"""The kernel beta process over probe position (MODELS.md §1b): its evidence, its masks in the
clusters' marginals, its grid draws, and where atoms sit on a 32-channel line."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from neurodict.sort import kbp, kernels
from neurodict.sort.model import State, quadratic_forms
from neurodict.sort.neighbourhoods import neighbourhoods
from neurodict.sort.params import SortParams
from tests.sort.chains import learn_chain

FS = 30000.0


def test_consider_log_odds_is_the_atom_s_evidence_with_its_features_integrated_out():
    """Per channel ``r ~ N(a s, (uΦ)^{-1})`` with ``s ~ N(m, 1/(uΛ))`` against ``r ~ N(0,
    (uΦ)^{-1})``, from the dense Gaussians."""
    rng = np.random.default_rng(0)
    N, M, T = 5, 3, 7
    a = rng.standard_normal((M, T))
    phi = rng.uniform(0.5, 2.0, (M, T))
    r = 2 * rng.standard_normal((N, M, T))
    u = rng.uniform(0.3, 3.0, N)
    m = rng.standard_normal((N, M))
    lam = rng.uniform(0.2, 5.0, (N, M))
    h = np.einsum("mt,mt,imt->im", a, phi, r)
    g = np.einsum("mt,mt,mt->m", a, phi, a)
    got = kbp.consider_log_odds(h, g, u, m, lam)
    expected = np.zeros(N)
    for i in range(N):
        for c in range(M):
            noise = np.diag(1 / (u[i] * phi[c]))
            on = multivariate_normal(
                a[c] * m[i, c], noise + np.outer(a[c], a[c]) / (u[i] * lam[i, c])
            )
            off = multivariate_normal(np.zeros(T), noise)
            expected[i] += on.logpdf(r[i, c]) - off.logpdf(r[i, c])
    np.testing.assert_allclose(got, expected, rtol=1e-9)


@pytest.mark.parametrize("g_scale", [1.0, 1e12, 1e21])
def test_consider_log_odds_holds_for_an_atom_of_any_scale(g_scale):
    """``Σ_m m u h − ½ m² u g + ½ u (h − m g)²/(Λ_kk + g) − ½ log(1 + g/Λ_kk)`` in exact
    rational arithmetic, for an atom whose ``g = a'Φa`` is up to 1e21 while its features'
    conditional mean stays O(1): an atom that no cluster considers has no data and its scale
    wanders under its ARD prior to such sizes (the 10-minute np384), where this expanded form
    in floating point is the difference of terms of that size. The kernel and its twin agree
    with the per-spike sum."""
    rng = np.random.default_rng(5)
    N, M, H = 30, 4, 3
    g = rng.gamma(2.0, 1.0, M) * g_scale
    h = rng.normal(size=(N, M)) * np.sqrt(g)  # the residual's coordinate along the atom: O(1)
    m, lam = rng.normal(size=(N, M)), rng.uniform(0.5, 5.0, (N, M))
    u = rng.gamma(3.0, 0.3, N)
    got = kbp.consider_log_odds(h, g, u, m, lam)
    exact = np.zeros(N)
    for i, j in np.ndindex(N, M):
        hf, gf, mf, lf, uf = (Fraction(float(v)) for v in (h[i, j], g[j], m[i, j], lam[i, j], u[i]))
        quadratic = uf * (mf * hf - mf * mf * gf / 2 + (hf - mf * gf) ** 2 / (2 * (lf + gf)))
        exact[i] += float(quadratic) - 0.5 * np.log1p(g[j] / lam[i, j])
    np.testing.assert_allclose(got, exact, rtol=1e-9)
    labels = rng.integers(0, H, N)
    lam_h = lam[:H]  # Λ_kk per cluster and channel
    expected = np.bincount(labels, kbp.consider_log_odds(h, g, u, m, lam_h[labels]), minlength=H)
    zero = np.zeros((N, M))  # no feature of the atom (was 0) and no pull: the mean is m
    for evidence in (kernels.consider_evidence, kernels.consider_evidence_numpy):
        got = evidence(h, zero, np.zeros(N), g, lam_h, m, zero, zero, u, labels, H)
        np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_a_cluster_s_marginal_without_an_atom_it_does_not_consider_is_the_dictionary_without_it():
    """:func:`quadratic_forms` with consider indicators: each cluster's distances and log
    determinant are those of the same state with the atoms it does not consider out of use
    and its features' covariance on the others their marginal's (the features of the atoms
    it does not consider integrated out)."""
    rng = np.random.default_rng(1)
    N, M, T, K, H, E = 12, 3, 8, 4, 3, 2
    lam = np.einsum("hmkl,hmjl->hmkj", *[rng.standard_normal((H, M, K, K))] * 2) + np.eye(K)
    state = State(
        A=rng.standard_normal((T, K)), z=np.ones(K, bool), pi=np.ones(K),
        w=rng.uniform(0.5, 2.0, (M, K)), s=np.zeros((N, M, K)), ard=np.ones((T, K)),
        phi=rng.uniform(0.5, 2.0, (M, T)), labels=np.zeros(N, np.int64),
        r=np.zeros(N, np.int64), beta=np.ones(H), pis=np.ones((E, H)) / H, omega=np.ones(E),
        mu=3 * rng.standard_normal((H, M, E, K)), lam=lam, u=np.ones(N), nu=np.inf,
    )  # fmt: skip
    consider = np.array([[1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 1]], bool)
    x, epoch = 3 * rng.standard_normal((N, M, T)), rng.integers(0, E, N)
    delta, logdet = quadratic_forms(x, epoch, dataclasses.replace(state, consider=consider))
    for h in range(H):
        on = np.ix_(consider[h], consider[h])
        marginal = lam.copy()
        for m in range(M):
            marginal[h, m][on] = np.linalg.inv(np.linalg.inv(lam[h, m])[on])
        alone = dataclasses.replace(state, z=consider[h], lam=marginal)
        d_h, l_h = quadratic_forms(x, epoch, alone)
        np.testing.assert_allclose(delta[:, h], d_h[:, h], rtol=1e-9)
        np.testing.assert_allclose(logdet[h], l_h[h], rtol=1e-9)


def _line(M: int, pitch_um: float = 20.0) -> np.ndarray:
    return np.c_[np.zeros(M), pitch_um * np.arange(M)]


def test_an_atom_is_placed_where_the_clusters_that_need_it_are():
    """:meth:`kbp.Kernel.sample`: clusters every 20 um on a line; an atom that the three about
    300 um need (evidence +50) and the others would rather not consider (-5) is placed among
    those three with a finite width, and they consider it (the others seldom: at odds of
    ``e^{-5}`` times the kernel's); an atom every cluster needs has
    the infinite width (the beta–Bernoulli process); one with no evidence is drawn from the
    prior (every place)."""
    kernel = kbp.Kernel.of_chain(_line(32), (12.5, 25.0, 50.0))
    where = _line(32)[1:31]  # the clusters' positions
    log_on, log_off = kernel.log_kernel(where)
    local = np.where(np.abs(where[:, 1] - 300) <= 20, 50.0, -5.0)
    rng = np.random.default_rng(2)
    draws = [kernel.sample(rng, log_on, log_off, local) for _ in range(200)]
    places = kernel.places_um[[p for p, _, _ in draws], 1]
    assert np.all(np.abs(places - 300) <= 20), np.unique(places)
    assert np.all(np.isfinite(kernel.widths_um[[w for _, w, _ in draws]]))
    considered = np.array([on for _, _, on in draws])
    assert considered[:, local > 0].all() and considered[:, local < 0].mean() < 0.02
    shared = [kernel.sample(rng, log_on, log_off, np.full(30, 50.0)) for _ in range(200)]
    assert all(np.isinf(kernel.widths_um[w]) and on.all() for _, w, on in shared)
    prior = {p for p, _, _ in (kernel.sample(rng, log_on, log_off) for _ in range(2000))}
    assert prior == set(range(32))


def test_a_chain_narrower_than_every_width_is_the_beta_bernoulli_process():
    """The grid holds the widths below the chain's span and infinity; none below it (a
    tetrode's 20 um square with widths of 25 um and more): no kernel. A group held by one
    neighbourhood gives its chain no positions, whatever the widths."""
    tetrode = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [20.0, 20.0]])
    assert kbp.Kernel.of_chain(tetrode, (30.0, 50.0)) is None
    grid = kbp.Kernel.of_chain(tetrode, (12.5, 25.0, 50.0))
    np.testing.assert_array_equal(grid.widths_um, [12.5, 25.0, np.inf])
    whole = neighbourhoods(tetrode, np.zeros(10, np.int64), 50.0, 1, 1.0)
    assert whole.n_centres == 1 and whole.locations_um is None
    wide = neighbourhoods(_line(16), np.arange(16), 50.0, 1, 1.0)
    np.testing.assert_array_equal(wide.locations_um, _line(16))


def test_spike_positions_are_where_their_energy_is():
    """A spike on channels 10-12 of a 32-channel line with noise on the rest: its position is
    within 4 um of its energy's centre, 1 um on average (the noise's excess weighed by itself,
    not its square, pulls the average over 5 um towards the middle)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 32, 22))
    x[:, 10:13, 8] += np.array([10.0, 20.0, 10.0])
    positions = kbp.spike_positions(x, _line(32))
    np.testing.assert_allclose(positions[:, 1], 220.0, atol=4.0)
    assert abs(positions[:, 1].mean() - 220.0) < 1.0
    excess = np.maximum(np.einsum("imt,imt->im", x, x) - 22, 0)  # weighed by the excess itself
    assert (excess @ _line(32))[:, 1].sum() / excess.sum() - 220.0 > 5.0


def _shank_snippets(seed: int):
    """Four units 150 um apart on a 32-channel line (20 um pitch), each its own temporal shape
    (orthonormal) decaying over 25 um, 200 spikes each in unit noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(22)
    shapes = np.linalg.qr(
        np.stack(
            [
                -np.exp(-((t - 6) ** 2) / 3),
                np.sin(t / 1.5) * np.exp(-((t - 10) ** 2) / 10),
                np.exp(-((t - 15) ** 2) / 6),
                np.cos(t / 1.2) * np.exp(-((t - 9) ** 2) / 8),
            ],
            1,
        )
    )[0]
    channels = _line(32)
    depth = np.array([80.0, 230.0, 380.0, 530.0])
    lab = np.repeat(np.arange(4), 200)
    spatial = 14 * np.exp(-np.abs(channels[:, 1][None] - depth[:, None]) / 25)
    x = np.einsum("tu,um->umt", shapes, spatial)[lab] * rng.uniform(0.8, 1.2, (lab.size, 1, 1))
    x += rng.standard_normal(x.shape)
    samples = np.zeros(lab.size, np.int64)
    for u in range(4):  # spikes of one unit at least 100 samples apart
        idx = np.flatnonzero(lab == u)
        grid = rng.choice(int(60 * FS) // 100, idx.size, replace=False)
        samples[idx] = np.sort(grid) * 100 + rng.integers(0, 40, idx.size)
    order = np.argsort(samples)
    return x[order], samples[order], lab[order], channels


@pytest.mark.parametrize("seed", [0, 1])
def test_on_a_32_channel_line_the_atoms_sit_near_the_units_that_use_them(seed):
    """One chain over four units along a 32-channel line: each unit is one cluster, and every
    atom in use of finite width is placed within its width of the positions of the clusters
    that consider it (between the nearest and the farthest); at least one atom is local.
    The default burn-in (40 sweeps): with 20 a unit was cut in two (158-176 of its 200
    spikes in one cluster) at 2 of 8 seeds under either ARD prior (10⁻³ and the default),
    with 40 at none of 10 under either."""
    x, samples, lab, channels = _shank_snippets(seed)
    params = SortParams(
        max_atoms=10, n_samples=5, n_keep=3, epoch_s=20.0, kernel_widths_um=[12.5, 25.0, 50.0]
    )
    chain = learn_chain(x, samples, np.ones(lab.size, bool), FS, 60.0, params, channels)
    best = chain.best
    for u in range(4):
        assert np.bincount(best.labels[lab == u]).max() >= 190
    kernel = kbp.Kernel.of_chain(channels, params.kernel_widths_um)
    where = kbp.spike_positions(x, channels)
    clusters = np.unique(best.labels)
    position = np.array([where[best.labels == c].mean(0) for c in clusters])
    local = 0
    for k in range(best.z.size):
        width = kernel.widths_um[best.width[k]]
        if np.isinf(width):
            continue
        local += 1
        users = best.consider[clusters, k]
        depth = position[users, 1]
        place = kernel.places_um[best.place[k], 1]
        assert depth.min() - 2 * width <= place <= depth.max() + 2 * width, (place, width, depth)
    assert local >= 1


def test_a_wide_group_s_chains_get_the_kernel_and_a_tetrode_s_does_not():
    """:func:`neurodict.sort.learn.learn`: on the 32-channel line's four units (50 um
    neighbourhoods: several) every chain's samples carry consider indicators over its
    clusters and atoms, with places among its own channels; the same snippets as one
    neighbourhood (the group's channels within the radius: a tetrode's case) carry none."""
    from neurodict.sort.learn import learn
    from neurodict.sort.local import LocalSnippets
    from neurodict.sort.neighbourhoods import peak_channels

    x, samples, _, channels = _shank_snippets(0)
    params = SortParams(
        max_atoms=6, n_burn=2, n_samples=2, n_keep=1, epoch_s=20.0, min_learn_spikes=20,
        kernel_widths_um=[12.5, 25.0, 50.0],
    )  # fmt: skip
    peaks = peak_channels(x)
    for radius_um, wide in ((50.0, True), (1000.0, False)):
        nb = neighbourhoods(channels, peaks, radius_um, 20, 1.0)
        assert (nb.n_centres > 1) == wide
        model = learn(LocalSnippets.full(x), samples, peaks, FS, 60.0, params, nb)
        for c, chain in enumerate(model.chains):
            if not wide:
                assert chain.best.consider is None
                continue
            assert chain.best.consider.shape == (params.max_clusters, chain.best.z.size)
            assert np.all(chain.best.place < nb.channels[c].size)
