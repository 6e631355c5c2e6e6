"""Clusters joined by the model's evidence: one pair at a time, the joined cluster compared
again, within a neighbourhood and across adjacent ones, and the walk's time step."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import linalg
from scipy.special import gammaln

from neurodict.sort import join, walk
from neurodict.sort.join import Moments, delay_grid, join_units, log_bayes_factor
from neurodict.sort.local import LocalSnippets, held_channels
from neurodict.sort.neighbourhoods import Neighbourhoods, whole_group
from neurodict.sort.params import SortParams
from neurodict.sort.snippets import delay_operators

M, T = 2, 6
FS = 25000.0


def _delays(params: SortParams, n_samples: int) -> np.ndarray:
    return delay_operators(delay_grid(params, FS), np.eye(n_samples), np.eye(n_samples))


def _blob(rng, mean, n):
    return mean + rng.normal(size=(n, M, T))


def _bayes_factor(xa, ea, xb, eb, n_bins, params, delays) -> float:
    """The log Bayes factor of two clusters' snippets `xa`, `xb` in time bins `ea`, `eb`."""
    return log_bayes_factor(Moments.of(xa, ea, n_bins), Moments.of(xb, eb, n_bins), params, delays)


def _join(parts, bins=None, n_bins=1, params=None, n_jobs=1):
    """The units of clusters made of the snippet sets `parts`, all in one neighbourhood (the
    Bayes factors computed in `n_jobs` processes)."""
    x = np.concatenate(parts)
    clusters = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    used = np.arange(len(parts))
    bins = np.zeros(len(x), np.int64) if bins is None else bins
    params = params or SortParams()
    centre = np.zeros(len(parts), np.int64)
    delays = _delays(params, T)
    return join_units(
        LocalSnippets.full(x),
        bins,
        n_bins,
        clusters,
        used,
        centre,
        whole_group(M),
        params,
        delays,
        n_jobs,
    )


def test_two_halves_of_one_neuron_in_one_neighbourhood_are_one_unit():
    rng = np.random.default_rng(0)
    mean = rng.normal(0, 4, (M, T))
    units = _join([_blob(rng, mean, 150), _blob(rng, mean, 120), _blob(rng, -mean, 150)])
    assert units[0] == units[1] != units[2]


def test_the_join_in_two_processes_equals_the_join_in_one():
    """Three neurons, each cut in two clusters: the Bayes factors computed in two forked
    processes (the first pairs and each joined cluster's) give the units of one process."""
    rng = np.random.default_rng(5)
    means = [rng.normal(0, 4, (M, T)) for _ in range(3)]
    parts = [_blob(rng, mean, n) for mean in means for n in (120, 80)]
    one = _join(parts)
    np.testing.assert_array_equal(one, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(_join(parts, n_jobs=2), one)


def test_the_join_without_fork_scores_in_this_process(monkeypatch):
    """Where the platform cannot fork, the pairs are scored here: no pool, the same units."""
    monkeypatch.setattr(join.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    rng = np.random.default_rng(5)
    x = rng.normal(size=(10, M, T))
    params = SortParams()
    with join._Scorer(x, np.zeros(10, np.int64), 1, params, _delays(params, T), 2) as s:
        assert s.pool is None
    means = [rng.normal(0, 4, (M, T)) for _ in range(2)]
    parts = [_blob(rng, mean, n) for mean in means for n in (120, 80)]
    np.testing.assert_array_equal(_join(parts, n_jobs=2), [0, 0, 1, 1])


def test_a_small_cluster_between_two_neurons_does_not_chain_them():
    """Twenty spikes halfway between two neurons are favoured in one with either alone; once
    they joined one, the two neurons stay two (pairwise joins made transitive would make all
    three one unit)."""
    rng = np.random.default_rng(1)
    a, b = np.zeros((M, T)), np.full((M, T), 1.0)
    parts = [_blob(rng, a, 200), _blob(rng, 0.5 * b, 20), _blob(rng, b, 200)]
    zeros = [np.zeros(len(p), np.int64) for p in parts]
    delays = _delays(SortParams(), T)
    bf = {
        (i, j): _bayes_factor(parts[i], zeros[i], parts[j], zeros[j], 1, SortParams(), delays)
        for i, j in [(0, 1), (1, 2), (0, 2)]
    }
    assert bf[0, 1] > 0 and bf[1, 2] > 0 and bf[0, 2] < 0, bf
    units = _join(parts)
    assert units[0] != units[2]
    assert units[1] in (units[0], units[2])


def test_a_neuron_drifting_within_an_epoch_joins_at_the_walks_time_step():
    """A neuron holds still for 6 bins, then its mean moves steadily for 6 (as a probe drifts
    halfway through an epoch); cut where it had moved half way, the walk stepping every bin
    joins the two pieces, one step for the whole stretch does not."""
    rng = np.random.default_rng(2)
    n_bins, per_bin = 12, 40
    direction = rng.normal(0, 1, (M, T))
    direction *= 20.0 / np.linalg.norm(direction)
    moved = np.clip(np.arange(n_bins) - n_bins // 2, 0, None) / (n_bins // 2)
    bins = np.repeat(np.arange(n_bins), per_bin)
    x = np.concatenate([_blob(rng, direction * m, per_bin) for m in moved])
    cut = 9 * per_bin
    fine = _join([x[:cut], x[cut:]], bins, n_bins)
    coarse = _join([x[:cut], x[cut:]], np.zeros(len(x), np.int64), 1)
    assert fine[0] == fine[1]
    assert coarse[0] != coarse[1]


def _spike(t: np.ndarray, amplitudes) -> np.ndarray:
    """A spike peaking at sample 10 on each channel with the given amplitudes: (M, T)."""
    shape = -np.exp(-0.5 * ((t - 10) / 1.5) ** 2) + 0.4 * np.exp(-0.5 * ((t - 15) / 3) ** 2)
    return np.asarray(amplitudes, float)[:, None] * shape


def _units(parts, params, n_channels):
    """The units of clusters made of the snippet sets `parts` (n, n_channels, T) of one
    neighbourhood, in one time bin."""
    x = np.concatenate(parts)
    clusters = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    centre, zeros = np.zeros(len(parts), np.int64), np.zeros(len(x), np.int64)
    delays = _delays(params, x.shape[2])
    return join_units(
        LocalSnippets.full(x),
        zeros,
        1,
        clusters,
        np.arange(len(parts)),
        centre,
        whole_group(n_channels),
        params,
        delays,
    )


def test_a_neurons_collided_spikes_join_it_and_a_smaller_neuron_stays_apart():
    """A neuron's clean spikes, its spikes collided with another neuron's at random lags
    (one mean, several times the spread: a cluster of their own to a Gaussian mixture) and a
    neuron of the same footprint at half the amplitude: the collided spikes are the first
    neuron (one mean, each cluster its own spread), the smaller neuron is not."""
    rng = np.random.default_rng(3)
    t = np.arange(30)
    mean, other = _spike(t, [8, 5, 3, 1]), _spike(t, [2, 4, 7, 5])
    clean = mean + rng.normal(size=(400, 4, 30))
    lags = rng.integers(-12, 13, 60)
    collided = np.stack([mean + np.roll(other, lag, axis=1) for lag in lags])
    collided += rng.normal(size=collided.shape)
    smaller = mean * 0.5 * (1 + 0.2 * rng.normal(size=(200, 1, 1))) + rng.normal(size=(200, 4, 30))
    joined = _units([clean, collided, smaller], SortParams(), 4)
    assert joined[0] == joined[1] != joined[2]


def test_a_cluster_of_broad_spread_does_not_absorb_another_neuron_near_its_mean():
    """A neuron's spikes in noise of 2.5 SDs (a cluster of broad spread, as a neuron's
    collided spikes or a cluster of several neurons are) and as many of a neuron of another
    footprint in unit noise, their means a few noise SDs apart: the means' difference is
    weighed against the means' uncertainty, not the spikes' spread, so the second neuron stays
    apart (one covariance learned from both makes their difference spread and joins them),
    while the broad neuron's two halves are one."""
    rng = np.random.default_rng(6)
    t = np.arange(30)
    broad = _spike(t, [10, 6, 3, 1]) + 2.5 * rng.normal(size=(2700, 4, 30))
    near = _spike(t, [10, 9, 5, 2]) + rng.normal(size=(2300, 4, 30))
    units = _units([broad[:1350], broad[1350:], near], SortParams(), 4)
    assert units[0] == units[1] != units[2]


def _late_spikes():
    """A neuron's spikes (400), a tenth as many cut 0.6 samples later, and 300 of a neuron of
    another footprint at the same place: (n, 4, 30) each."""
    rng = np.random.default_rng(4)
    t = np.arange(30)
    footprint = [20, 12, 6, 2]
    return [
        _spike(t, footprint) + rng.normal(size=(400, 4, 30)),
        _spike(t + 0.6, footprint) + rng.normal(size=(40, 4, 30)),
        _spike(t, [6, 9, 6, 2]) + rng.normal(size=(300, 4, 30)),
    ]


def test_a_neurons_spikes_cut_a_fraction_of_a_sample_late_join_it():
    """A neuron's spikes and a tenth as many cut 0.6 samples later (a mean of their own: the
    spike's slope is several noise SDs per sample) are one unit; a neuron of another footprint
    at the same place is not; with no delay allowed (``join_max_delay_ms`` 0) the late spikes
    stay apart."""
    parts = _late_spikes()
    joined = _units(parts, SortParams(), 4)
    assert joined[0] == joined[1] != joined[2]
    apart = _units(parts, dataclasses.replace(SortParams(), join_max_delay_ms=0.0), 4)
    assert apart[0] != apart[1] and apart[0] != apart[2]


@pytest.mark.parametrize("late", [0.47, 0.78, 1.09])
def test_a_neurons_spikes_cut_between_the_delays_of_a_coarser_grid_join_it(late):
    """A neuron's spikes and a tenth as many cut 0.47, 0.78 or 1.09 samples later (at 25 kHz,
    about 0.16 samples from the nearest of 9 delays on ±0.05 ms, 0.31 apart) are one unit with
    the grid's 17 delays; with 9 each stayed apart (a neuron's spikes that the matching placed
    a sample early made a unit of their own: docs/benchmarks.md, "Synchronous spikes")."""
    rng = np.random.default_rng(4)
    t = np.arange(30)
    footprint = [20, 12, 6, 2]
    parts = [
        _spike(t, footprint) + rng.normal(size=(400, 4, 30)),
        _spike(t + late, footprint) + rng.normal(size=(40, 4, 30)),
    ]
    joined = _units(parts, SortParams(), 4)
    assert joined[0] == joined[1]


def test_a_pairs_bayes_factor_does_not_depend_on_which_is_named_first():
    """A large cluster and a small one of broader spread, a little late: the evidence is the
    same whichever is the first argument (the reference cluster is integrated out)."""
    rng = np.random.default_rng(5)
    t = np.arange(30)
    big = _spike(t, [12, 7, 3, 1]) + rng.normal(size=(300, 4, 30))
    small = _spike(t + 0.4, [12, 7, 3, 1]) + 2.0 * rng.normal(size=(25, 4, 30))
    e_big, e_small = rng.integers(0, 3, 300), rng.integers(0, 3, 25)
    delays = _delays(SortParams(), 30)
    forward = _bayes_factor(big, e_big, small, e_small, 3, SortParams(), delays)
    backward = _bayes_factor(small, e_small, big, e_big, 3, SortParams(), delays)
    assert forward == pytest.approx(backward, rel=1e-9)


def _bayes_factor_of_projections(xa, ea, xb, eb, n_epochs, params, delays) -> float:
    """The reference: the smaller cluster's spikes each re-cut by the delay that brings its
    mean nearest the other's, every spike projected on the pooled snippets' principal axes,
    each cluster's covariance from its projections about their mean, and each
    hypothesis' walk integrated as one Gaussian over all bins at once (no filter)."""
    (xa, ea), (xb, eb) = sorted(((xa, ea), (xb, eb)), key=lambda c: (len(c[0]), c[0].sum()))[::-1]
    late = [np.einsum("tu,imu->imt", U, xb) for U in delays]
    xb = late[np.argmin([np.linalg.norm(xa.mean(0) - x.mean(0)) for x in late])]
    n_a, n_b = len(xa), len(xb)
    n = n_a + n_b
    centre, axes = walk.leading_axes(np.r_[xa, xb].reshape(n, -1), params.join_axes)
    P = axes.shape[1]
    pa, pb = ((x.reshape(len(x), -1) - centre) @ axes for x in (xa, xb))
    spread = ((pa**2).sum() + (pb**2).sum()) / (n * P)
    prior = walk.WalkPrior.isotropic(
        np.zeros(P), spread, params.drift_sd**2, n_epochs, params.priors
    )

    def within(p):
        return (p - p.mean(0)).T @ (p - p.mean(0))

    def evidence(parts, cov_walk):
        """log ∫ Π_i N(p_i; μ_{e_i}, Σ_i) p(μ) dμ less the terms of the spikes alone."""
        J, h = np.zeros((n_epochs, P, P)), np.zeros((n_epochs, P))
        for p, e, cov in parts:
            inv = np.linalg.inv(cov)
            np.add.at(J, e, inv)
            np.add.at(h, e, p @ inv)
        K = np.kron(prior.B(), cov_walk)
        Jd = linalg.block_diag(*J)
        post = np.linalg.inv(np.linalg.inv(K) + Jd)
        log_det = np.linalg.slogdet(np.eye(len(K)) + K @ Jd)[1]
        return 0.5 * h.ravel() @ post @ h.ravel() - 0.5 * log_det

    extra = prior.nu0 - P - 1
    wa, wb = within(pa), within(pb)
    cov_a = (prior.W0_inv + wa) / (n_a - 1 + extra)
    cov_b = (prior.W0_inv + wb) / (n_b - 1 + extra)
    cov_walk = (prior.W0_inv + wa + wb) / (n - 2 + extra)
    A, B = (pa, ea, cov_a), (pb, eb, cov_b)
    log_one = evidence([A, B], cov_walk) - evidence([A], cov_walk) - evidence([B], cov_walk)
    log_prior = gammaln(n) - np.log(params.priors.alpha) - gammaln(n_a) - gammaln(n_b)
    return float(log_one + log_prior)


@pytest.mark.parametrize("n_channels", [4, 10])
def test_a_pairs_bayes_factor_from_moments_is_the_one_from_its_projected_snippets(n_channels):
    """A neuron's spikes against its late spikes and against another neuron, in three time
    bins, on 4 channels (120 dimensions: exact axes) and 10 (300: subspace iteration): the
    Bayes factor read from the clusters' moments is the one from every spike projected on the
    delayed axes; the moments of two clusters' union are those of their snippets together, and
    their moments on two of the channels those read on those channels."""
    on_time, late, other = (np.tile(x, (1, 3, 1))[:, :n_channels] for x in _late_spikes())
    rng = np.random.default_rng(7)
    bins = {id(x): rng.integers(0, 3, len(x)) for x in (on_time, late, other)}
    params, delays = SortParams(), _delays(SortParams(), 30)
    for xb in (late, other):
        args = (on_time, bins[id(on_time)], xb, bins[id(xb)], 3, params, delays)
        assert _bayes_factor(*args) == pytest.approx(_bayes_factor_of_projections(*args), rel=1e-8)
    union = Moments.union(
        Moments.of(on_time, bins[id(on_time)], 3), Moments.of(late, bins[id(late)], 3)
    )
    whole = Moments.of(np.r_[on_time, late], np.r_[bins[id(on_time)], bins[id(late)]], 3)
    for field in ("counts", "sums", "scatter"):
        np.testing.assert_allclose(
            getattr(union, field), getattr(whole, field), rtol=1e-6, atol=1e-6
        )
    some = np.array([1, 3])
    restricted = whole.on(some, 30)
    read = Moments.of(np.r_[on_time, late][:, some], np.r_[bins[id(on_time)], bins[id(late)]], 3)
    for field in ("counts", "sums", "scatter"):
        np.testing.assert_allclose(
            getattr(restricted, field), getattr(read, field), rtol=1e-6, atol=1e-6
        )


def test_each_neighbourhoods_clusters_join_among_themselves_before_across(caplog):
    """Two adjacent neighbourhoods (channels 0-1 and 1-2): neuron A cut in two clusters in the
    first and found whole in the second, neuron B cut in two in the second, neuron C whole in
    the first. A's three clusters are one unit, B's two another, C its own. The pairs compared:
    3 + 3 within each neighbourhood, 1 + 1 after A's and B's halves join, 4 across, 2 after A
    joins across: 14 (24 for one stage over every pair)."""
    rng = np.random.default_rng(6)
    t = np.arange(30)
    a, b, c = _spike(t, [8, 5, 0]), _spike(t, [0, 4, 8]), _spike(t, [6, 1, 0])
    parts = [a, a, c, a, b, b]
    x = np.concatenate([m + rng.normal(size=(150, 3, 30)) for m in parts])
    clusters = np.repeat(np.arange(6), 150)
    nb = Neighbourhoods(
        centres=np.array([0, 2]),
        channels=[np.array([0, 1]), np.array([1, 2])],
        nearest=np.array([0, 0, 1]),
        adjacent=np.ones((2, 2), bool),
    )
    zeros = np.zeros(len(x), np.int64)
    delays = _delays(SortParams(), 30)
    with caplog.at_level("INFO", logger="neurodict.sort.join"):
        units = join_units(
            LocalSnippets.full(x),
            zeros,
            1,
            clusters,
            np.arange(6),
            np.repeat([0, 1], 3),
            nb,
            SortParams(),
            delays,
        )
    assert units[0] == units[1] == units[3] and units[4] == units[5]
    assert len({units[0], units[2], units[4]}) == 3
    assert "join: 6 clusters into 3 units (14 pairs' Bayes factors)" in caplog.messages


def _three_in_a_row():
    """Three neighbourhoods in a row (channels 0-1, 1-2, 2-3; the outer two not adjacent):
    neuron B, on channels 1-2, found in each; neuron A on channel 0 in the first, C on
    channel 3 in the last. Snippets (750, 4, 30), their clusters (A, B, B, B, C; 150 spikes
    each), the neighbourhoods and each cluster's."""
    rng = np.random.default_rng(8)
    t = np.arange(30)
    a, b, c = _spike(t, [8, 2, 0, 0]), _spike(t, [1, 7, 7, 1]), _spike(t, [0, 0, 2, 8])
    x = np.concatenate([m + rng.normal(size=(150, 4, 30)) for m in [a, b, b, b, c]])
    nb = Neighbourhoods(
        centres=np.array([0, 1, 3]),
        channels=[np.array([0, 1]), np.array([1, 2]), np.array([2, 3])],
        nearest=np.array([0, 1, 1, 2]),
        adjacent=np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], bool),
    )
    return x, np.repeat(np.arange(5), 150), nb, np.array([0, 0, 1, 2, 2])


@pytest.mark.parametrize("read_rows", [join.READ_ROWS, 64])
def test_a_cluster_across_neighbourhoods_is_read_once_on_its_reach_and_cut_to_each_pair(
    monkeypatch, read_rows
):
    """Three neighbourhoods in a row (:func:`_three_in_a_row`). Across neighbourhoods each
    cluster is read once, on the channels
    of its neighbourhood and the adjacent ones (the middle B on 0-3), and its moments cut to
    each pair's channels (0-2 with the first's clusters, 1-3 with the last's) are those read
    there, whether a cluster is read whole or in pieces of `read_rows` spikes (150 a
    cluster: three of 64). B's three clusters are one unit, A and C their own, in one
    process or two."""
    monkeypatch.setattr(join, "READ_ROWS", read_rows)
    pieces = -(-150 // read_rows)
    x, clusters, nb, home = _three_in_a_row()
    zeros = np.zeros(len(x), np.int64)
    delays = _delays(SortParams(), 30)

    def units(n_jobs):
        return join_units(
            LocalSnippets.full(x),
            zeros,
            1,
            clusters,
            np.arange(5),
            home,
            nb,
            SortParams(),
            delays,
            n_jobs,
        )

    two = units(2)  # before the spies below: the processes cannot run them
    read, given = [], []
    moments_of, scores_of = join._moments_of, join._scores_of
    monkeypatch.setattr(join, "_moments_of", lambda t: read.append(tuple(t[1])) or moments_of(t))
    monkeypatch.setattr(join, "_scores_of", lambda t: given.append(t) or scores_of(t))
    one = units(1)
    assert one[1] == one[2] == one[3]
    assert len({one[0], one[1], one[4]}) == 3
    np.testing.assert_array_equal(two, one)
    reaches = [(0, 1, 2), (0, 1, 2), (0, 1, 2, 3), (1, 2, 3), (1, 2, 3)]
    assert read[: 5 * pieces] == [r for r in reaches for _ in range(pieces)]
    assert {tuple(chans) for chans, _, _ in given} == {(0, 1, 2), (1, 2, 3)}
    for chans, _, moments in given:
        for i, m in moments.items():
            spikes = slice(150 * i, 150 * i + int(m.n))  # joined clusters are runs of them
            direct = Moments.of(x[spikes][:, chans], zeros[spikes], 1)
            np.testing.assert_allclose(m.scatter, direct.scatter, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(m.sums, direct.sums, rtol=1e-6, atol=1e-6)


def test_a_joined_cluster_is_compared_only_where_all_its_snippets_hold_the_pair_channels():
    """Three neighbourhoods in a row (:func:`_three_in_a_row`). Each spike held on the channels of
    its own neighbourhood and the adjacent ones (0-2, 0-3, 1-3): once two of B's clusters
    are joined across two neighbourhoods, the third is near channels (0 or 3) that the
    joined cluster's snippets do not all hold, so that pair stays apart, and B is two units
    where with every snippet on every channel it is one; A and C their own either way. Held
    as :func:`neurodict.sort.local.held_channels` holds them (two steps of adjacency: here
    every channel), the units are those of every snippet on every channel."""
    full, clusters, nb, home = _three_in_a_row()
    zeros = np.zeros(len(full), np.int64)
    delays = _delays(SortParams(), 30)

    def units(stores):
        store = home[clusters]
        values = full[np.arange(len(full))[:, None], np.maximum(stores[store], 0)]
        x = LocalSnippets(values, stores, store, 4)
        return join_units(x, zeros, 1, clusters, np.arange(5), home, nb, SortParams(), delays)

    one_step = units(np.array([[0, 1, 2, -1], [0, 1, 2, 3], [1, 2, 3, -1]]))
    assert len({one_step[1], one_step[2], one_step[3]}) == 2
    assert len(set(one_step)) == 4 and one_step[0] not in one_step[1:]
    whole = join_units(
        LocalSnippets.full(full), zeros, 1, clusters, np.arange(5), home, nb, SortParams(), delays
    )
    assert whole[1] == whole[2] == whole[3] and len(set(whole)) == 3
    held = held_channels(nb, np.c_[np.zeros(4), 20.0 * np.arange(4)], 0.0)
    np.testing.assert_array_equal(units(held), whole)


def test_a_pair_whose_snippets_share_no_held_channel_stays_apart(caplog):
    """One neuron found in two neighbourhoods taken as adjacent, of channel 0 and channel 2,
    each spike held on its own: no channel near both holds both clusters, so they are not
    compared (two units) and nothing is read on a channel they lack."""
    rng = np.random.default_rng(9)
    wave = _spike(np.arange(30), [6, 6, 6])
    full = wave + rng.normal(size=(300, 3, 30))
    clusters = np.repeat([0, 1], 150)
    nb = Neighbourhoods(
        centres=np.array([0, 2]),
        channels=[np.array([0]), np.array([2])],
        nearest=np.array([0, 0, 1]),
        adjacent=np.ones((2, 2), bool),
    )
    stores = np.array([[0], [2]])
    x = LocalSnippets(full[np.arange(300)[:, None], stores[clusters]], stores, clusters, 3)
    zeros = np.zeros(300, np.int64)
    with caplog.at_level("INFO", logger="neurodict.sort.join"):
        units = join_units(
            x,
            zeros,
            1,
            clusters,
            np.arange(2),
            np.array([0, 1]),
            nb,
            SortParams(),
            _delays(SortParams(), 30),
        )
    assert units[0] != units[1]
    assert "join: 2 clusters into 2 units (1 pairs' Bayes factors)" in caplog.messages


def test_a_clusters_moments_are_read_a_block_of_snippets_at_a_time(monkeypatch):
    """A cluster of 150 snippets in two time bins read 64 at a time (three blocks, none
    larger): its moments are those of all its snippets read at once."""
    rng = np.random.default_rng(9)
    x = (_spike(np.arange(30), [6, 3, 1, 0]) + rng.normal(size=(400, 4, 30))).astype(np.float32)
    bins = np.repeat([0, 1], 200)
    rows, chans = np.sort(rng.choice(400, 150, replace=False)), np.array([0, 1, 3])
    read = []

    class Spy:
        def take(self, r, c):
            read.append(r.size)
            return LocalSnippets.full(x).take(r, c)

    monkeypatch.setattr(join, "MOMENT_ROWS", 64)
    monkeypatch.setattr(join, "_SHARED", {"x": Spy(), "bins": bins, "n_bins": 2})
    got = join._moments({7: rows}, chans)[7]
    assert read == [64, 64, 22]
    whole = Moments.of(x[rows][:, chans], bins[rows], 2)
    np.testing.assert_array_equal(got.counts, whole.counts)
    for field in ("sums", "scatter"):
        np.testing.assert_allclose(getattr(got, field), getattr(whole, field), rtol=1e-6, atol=1e-4)
