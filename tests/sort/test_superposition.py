"""Units whose spikes are two other units' spikes at once (neurodict.sort.superposition): the
delays, and the Bayes factor on spikes made as sums, as a unit of their own and as another
unit's spikes again."""

from __future__ import annotations

import numpy as np

from neurodict.sort.superposition import STEPS, delay_operators, log_bayes_factor

T, C = 40, 4  # samples and channels of a snippet; whitening: the identity
PEAK = 14  # the aligned peak's sample


def _spike(shape: tuple[float, float, float], t: np.ndarray) -> np.ndarray:
    """A biphasic spike on C channels (C, len(t)) peaking at `t` = 0: amplitude per channel
    decaying from channel `shape[1]`, a trough of width `shape[2]` samples."""
    amplitude, centre, width = shape
    gains = amplitude * np.exp(-0.5 * ((np.arange(C) - centre) / 1.2) ** 2)
    wave = -np.exp(-0.5 * (t / width) ** 2) + 0.4 * np.exp(
        -0.5 * ((t - 3 * width) / (2 * width)) ** 2
    )
    return gains[:, None] * wave[None]


def _at(shape, lag: float) -> np.ndarray:
    """The spike delayed by `lag` samples (any fraction), on the snippet's window."""
    return _spike(shape, np.arange(T) - PEAK - lag)


G, P, Q = (20.0, 1.0, 1.5), (8.0, 2.5, 1.0), (12.0, 3.0, 2.5)  # three units' spikes
DELAYS = delay_operators(np.arange(-PEAK * STEPS, (T - PEAK) * STEPS) / STEPS, np.eye(T), np.eye(T))


def _bayes_factor(spikes: np.ndarray, others) -> float:
    """``log B`` of unit f's `spikes` (n, C, T) against the pairs of `others` (shapes), f's
    template its spikes' mean."""
    templates = np.stack([_at(o, 0.0) for o in others])
    return log_bayes_factor(spikes, spikes.mean(0), templates, DELAYS, STEPS)


def test_a_delay_moves_a_spike_by_any_fraction_of_a_sample_and_nothing_wraps_around():
    """The operators delay a spike as the spike delayed would be, to a part in a thousand, by
    whole and fractional samples either way; a spike near the end delayed past it leaves no
    trace at the start (a circular delay would bring it back there)."""
    for lag in (0.25, -1.75, 3.0, 6.5):
        index = int(
            np.flatnonzero(np.isclose(np.arange(-PEAK * STEPS, (T - PEAK) * STEPS) / STEPS, lag))[0]
        )
        got = _at(G, 0.0) @ DELAYS[index].T
        np.testing.assert_allclose(got, _at(G, lag), atol=1e-3 * np.abs(_at(G, 0.0)).max())
    late = _spike(G, np.arange(T) - (T - 4))  # its trough 4 samples before the end
    moved = late @ DELAYS[-1].T  # the largest delay: the trough far past the end
    assert np.abs(moved[:, :PEAK]).max() < 1e-3 * np.abs(late).max()


def test_spikes_of_two_units_at_once_are_a_superposition_of_the_two():
    """Each of f's spikes is one of g's half a sample after the peak (off the grid of whole
    samples, as a spike aligned between samples lies) and one of p's within 2 samples either
    way, in unit noise: more probable as the pair, each spike at lags of its own, than as f's
    own mean (which blurs p over its lags). On whole-sample delays alone the pair loses
    (log B -845 against +1371: g, a sharp large spike, misplaced by half a sample)."""
    rng = np.random.default_rng(0)
    n = 40
    spikes = np.stack([_at(G, 0.5) + _at(P, b) for b in rng.uniform(-2, 2, n)])
    spikes += rng.normal(size=(n, C, T))
    assert _bayes_factor(spikes, [G, P, Q]) > 0


def test_a_unit_of_its_own_is_not_a_superposition():
    """f's spikes are a third shape (wider, on channels between g's and p's) in the same
    noise: no pair of g, p, q at any lags explains them as well as their mean."""
    rng = np.random.default_rng(1)
    n = 40
    own = (15.0, 1.8, 1.8)
    spikes = np.stack([_at(own, a) for a in rng.uniform(-0.5, 0.5, n)]) + rng.normal(size=(n, C, T))
    assert _bayes_factor(spikes, [G, P, Q]) < 0


def test_another_units_spikes_alone_are_not_a_superposition_of_it_and_a_third():
    """f's spikes are g's spikes again (a duplicate of g): g with p or q anywhere in the window
    adds a spike that is not there, so the pair loses to f's own mean."""
    rng = np.random.default_rng(2)
    n = 40
    spikes = np.stack([_at(G, a) for a in rng.uniform(-0.5, 0.5, n)]) + rng.normal(size=(n, C, T))
    assert _bayes_factor(spikes, [G, P, Q]) < 0
