"""The dynamic HDP's weights given the labels: the mixing matrix, the block's draws against
the exact posterior, and how fast the block reaches an epoch where a neuron stops firing."""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats

from neurodict.sort import dhdp
from neurodict.sort.learn import _data
from neurodict.sort.model import Sampler
from neurodict.sort.params import SortParams


def test_epoch_weights_are_the_dhdp_mixture_of_the_components():
    """``v_{e,j} = ω_j Π_{l=j+1..e}(1-ω_l)``, written out, ``ω`` at 1 included."""
    rng = np.random.default_rng(0)
    omega = np.r_[1.0, rng.random(3), 1.0, rng.random(2)]
    pis = rng.dirichlet(np.ones(5), size=omega.size)
    w, v = dhdp.epoch_weights(omega, pis)
    expected = np.zeros((omega.size, omega.size))
    for e, j in itertools.product(range(omega.size), repeat=2):
        if j <= e:
            expected[e, j] = omega[j] * math.prod(1.0 - omega[j + 1 : e + 1])
    np.testing.assert_allclose(v, expected, rtol=1e-14, atol=0)
    np.testing.assert_allclose(w, expected @ pis, rtol=1e-14, atol=0)
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-14)


def _exact_from_component_0(n, alpha_beta, a, b):
    """Two epochs: the exact posterior of ``S``, the number of epoch 1's spikes that drew
    component 0, with ``π_0``, ``π_1`` integrated out (Dirichlet-multinomial) and summed
    over which spikes of each cluster drew which component. Given ``S``, ``ω_1`` is
    ``Beta(a + N_1 - S, b + S)``."""

    def log_dm(k):
        return (
            math.lgamma(alpha_beta.sum())
            - math.lgamma(alpha_beta.sum() + k.sum())
            + sum(
                math.lgamma(ab + x) - math.lgamma(ab) for ab, x in zip(alpha_beta, k, strict=True)
            )
        )

    N1 = int(n[1].sum())
    logs, sums = [], []
    for m in itertools.product(*(range(int(k) + 1) for k in n[1])):
        m = np.array(m)
        s = int(m.sum())
        choose = sum(math.log(math.comb(int(k), int(x))) for k, x in zip(n[1], m, strict=True))
        beta_fn = math.lgamma(a + N1 - s) + math.lgamma(b + s) - math.lgamma(a + b + N1)
        logs.append(choose + beta_fn + log_dm(n[0] + m) + log_dm(n[1] - m))
        sums.append(s)
    weight = np.exp(np.array(logs) - max(logs))
    weight /= weight.sum()
    return np.bincount(sums, weights=weight, minlength=N1 + 1)


def test_the_weights_block_draws_from_the_exact_posterior():
    """Two epochs, three clusters (one stops, one starts): the chain of
    :func:`dhdp.sample_weights` steps gives ``S`` (epoch 1's spikes from component 0) and
    ``ω_1`` as the exact posterior does (within 5 Monte Carlo SEs for the mean, 0.03 per
    value of ``S``)."""
    n = np.array([[5, 4, 0], [3, 0, 4]])
    alpha_beta = np.array([0.5, 0.3, 0.2])
    a, b = 1.0, 4.0
    p_s = _exact_from_component_0(n, alpha_beta + 1e-6, a, b)  # the draws add 1e-6
    N1 = n[1].sum()
    mean_omega = float(np.sum(p_s * (a + N1 - np.arange(N1 + 1)) / (a + b + N1)))
    rng = np.random.default_rng(1)
    m = np.zeros((2, 3, 2), np.int64)
    m[:, :, 0] = n  # the sampler's start: every spike from component 0
    draws_s, draws_omega = [], []
    for _ in range(40000):
        _, omega, m = dhdp.sample_weights(rng, m, alpha_beta, a, b, 1)
        draws_s.append(int(m[1, :, 0].sum()))
        draws_omega.append(omega[1])
    draws_s, draws_omega = np.array(draws_s[1000:]), np.array(draws_omega[1000:])
    freq = np.bincount(draws_s, minlength=p_s.size) / draws_s.size
    np.testing.assert_allclose(freq, p_s, atol=0.03)
    batches = draws_omega.reshape(39, -1).mean(1)  # batch means: the chain is correlated
    se = batches.std(ddof=1) / np.sqrt(batches.size)
    assert abs(draws_omega.mean() - mean_omega) < 5 * se, (draws_omega.mean(), mean_omega, se)


def test_three_sweeps_of_the_block_reach_an_epoch_where_a_neuron_stops_firing():
    """Epoch 0: neurons A and B, 60 spikes each; epoch 1: A and C. From the sampler's start
    (every spike from component 0) three sweeps' blocks (the default iterations) put ``ω_1``
    in the bulk of its exact posterior (above its 0.1 % quantile) at every seed of twenty.
    One Gibbs step of the block a sweep first passes 0.8 after 16-43 sweeps (twenty seeds),
    resting near 0.5 on the way (C's spikes from the new component, A's from the old)."""
    n = np.array([[60, 60, 0], [60, 0, 60]])
    alpha_beta = np.full(3, 1.0 / 3)
    p = SortParams()
    a, b = p.priors.innovation_a, p.priors.innovation_b
    p_s = _exact_from_component_0(n, alpha_beta + 1e-6, a, b)
    N1 = n[1].sum()
    s = np.arange(N1 + 1)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        m = np.zeros((2, 3, 2), np.int64)
        m[:, :, 0] = n
        for _ in range(3):
            _, omega, m = dhdp.sample_weights(rng, m, alpha_beta, a, b, p.dhdp_iterations)
        cdf = float(np.sum(p_s * stats.beta.cdf(omega[1], a + N1 - s, b + s)))
        assert cdf > 1e-3, (seed, omega[1], cdf)


def test_each_spike_draws_a_component_of_its_epoch_or_before():
    """The sampler's sweep: each spike's component, dealt from the block's last counts, is
    at most its epoch; every epoch's spikes after the first use more than one component
    somewhere in the chain (the counts reach the spikes, not one component for all); and
    within an epoch and cluster the components are dealt in random order, not by time."""
    rng = np.random.default_rng(2)
    N, M, T, E = 600, 2, 8, 4
    x = rng.standard_normal((N, M, T))
    x[N // 2 :] += 3.0  # two clusters
    t = np.sort(rng.integers(0, 400000, N))
    epoch = t * E // 400000
    sampler = Sampler(_data(x, t, epoch, E, 20), 6, 8, True, 0.5, 4, rng)
    used = np.zeros((E, E), bool)
    descents = 0
    for _ in range(5):
        st = sampler.sweep()
        assert np.all(st.r <= epoch), np.flatnonzero(st.r > epoch)[:5]
        used[epoch, st.r] = True
        for e, c in set(zip(epoch, st.labels, strict=True)):
            descents += np.sum(np.diff(st.r[(epoch == e) & (st.labels == c)]) < 0)
    assert used[1:].sum(1).min() > 1, used
    assert descents > 0
