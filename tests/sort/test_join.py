"""Clusters joined by the model's evidence: one pair at a time, the joined cluster compared
again, within a neighbourhood and across adjacent ones, and the walk's time step."""

from __future__ import annotations

import dataclasses

import numpy as np

from neurodict.sort.join import join_units, log_bayes_factor
from neurodict.sort.neighbourhoods import whole_group
from neurodict.sort.params import Priors, SortParams

M, T = 2, 6


def _blob(rng, mean, n):
    return mean + rng.normal(size=(n, M, T))


def _join(parts, bins=None, n_bins=1, params=None):
    """The units of clusters made of the snippet sets `parts`, all in one neighbourhood."""
    x = np.concatenate(parts)
    clusters = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    used = np.arange(len(parts))
    bins = np.zeros(len(x), np.int64) if bins is None else bins
    params = params or SortParams()
    return join_units(
        x, bins, n_bins, clusters, used, np.zeros(len(parts), np.int64), whole_group(M), params
    )


def test_two_halves_of_one_neuron_in_one_neighbourhood_are_one_unit():
    rng = np.random.default_rng(0)
    mean = rng.normal(0, 4, (M, T))
    units = _join([_blob(rng, mean, 150), _blob(rng, mean, 120), _blob(rng, -mean, 150)])
    assert units[0] == units[1] != units[2]


def test_a_small_cluster_between_two_neurons_does_not_chain_them():
    """A few spikes halfway between two neurons are favoured in one with either alone; once
    they joined one, the two neurons stay two (pairwise joins made transitive would make all
    three one unit)."""
    rng = np.random.default_rng(1)
    a, b = np.zeros((M, T)), np.full((M, T), 1.5)
    parts = [_blob(rng, a, 200), _blob(rng, 0.5 * b, 6), _blob(rng, b, 200)]
    x = [p.reshape(len(p), -1) for p in parts]
    zeros = [np.zeros(len(p), np.int64) for p in parts]
    bf = {
        (i, j): log_bayes_factor(x[i], zeros[i], x[j], zeros[j], 1, SortParams())
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


def test_a_neurons_collided_spikes_join_it_and_a_smaller_neuron_stays_apart():
    """A neuron's clean spikes, its spikes collided with another neuron's at random lags
    (one mean, several times the spread: a cluster of their own to a Gaussian mixture) and a
    neuron of the same footprint at half the amplitude: the collided spikes are the first
    neuron (one mean, two spreads), the smaller neuron is not; one spread for both (ratio 1)
    leaves the collided spikes apart."""
    rng = np.random.default_rng(3)
    t = np.arange(30)
    mean, other = _spike(t, [8, 5, 3, 1]), _spike(t, [2, 4, 7, 5])
    clean = mean + rng.normal(size=(400, 4, 30))
    lags = rng.integers(-12, 13, 60)
    collided = np.stack([mean + np.roll(other, lag, axis=1) for lag in lags])
    collided += rng.normal(size=collided.shape)
    smaller = mean * 0.5 * (1 + 0.2 * rng.normal(size=(200, 1, 1))) + rng.normal(size=(200, 4, 30))
    parts = [p.reshape(len(p), -1) for p in (clean, collided, smaller)]
    x = np.concatenate(parts)[:, None]
    clusters = np.repeat(np.arange(3), [len(p) for p in parts])
    zeros = np.zeros(len(x), np.int64)

    def units(params):
        return join_units(
            x, zeros, 1, clusters, np.arange(3), np.zeros(3, np.int64), whole_group(1), params
        )

    joined = units(SortParams())
    assert joined[0] == joined[1] != joined[2]
    one_spread = dataclasses.replace(SortParams(), priors=Priors(join_spread_ratio_max=1.0))
    apart = units(one_spread)
    assert apart[0] != apart[1] and apart[0] != apart[2]
