"""A wide group's snippets held on each neighbourhood's reach only."""

from __future__ import annotations

import numpy as np
import pytest

from neurodict.sort.assign import epoch_means, residual_spread
from neurodict.sort.local import LocalSnippets
from neurodict.sort.neighbourhoods import Neighbourhoods

# three neighbourhoods in a row on five channels: 0-1, 1-2-3, 3-4; the outer two not adjacent
ROW = Neighbourhoods(
    centres=np.array([0, 2, 4]),
    channels=[np.array([0, 1]), np.array([1, 2, 3]), np.array([3, 4])],
    nearest=np.array([0, 0, 1, 2, 2]),
    adjacent=np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], bool),
)


def test_each_spike_is_held_on_its_neighbourhoods_reach():
    """A spike found on channel 0 is held on 0-3 (its neighbourhood and the middle one), one on
    channel 2 on all five, one on channel 4 on 1-4; read back on any channels of its reach as
    they were, and asking for a channel outside it is an error, not another channel's values."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5, 7)).astype(np.float32)
    found = np.array([0, 2, 4, 1, 3, 0])
    held = LocalSnippets.of(x, ROW, found)
    np.testing.assert_array_equal(held.centre, [0, 1, 2, 0, 2, 0])
    assert [r.tolist() for r in held.reach] == [[0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3, 4]]
    assert held.values.shape == (6, 5, 7)
    np.testing.assert_array_equal(held.values[0, 4], 0)  # past its reach: nothing
    rows, channels = np.array([5, 1, 4]), np.array([3, 1])
    np.testing.assert_array_equal(held.on(rows, channels), x[rows][:, channels])
    np.testing.assert_array_equal(held.on(np.array([0, 5]), np.array([2])), x[[0, 5]][:, [2]])
    with pytest.raises(ValueError, match="outside the reach"):
        held.on(np.array([1, 0]), np.array([4]))


def test_a_single_neighbourhood_holds_the_array_itself():
    x = np.zeros((3, 4, 5), np.float32)
    whole = Neighbourhoods(
        np.zeros(1, int), [np.arange(4)], np.zeros(4, int), np.ones((1, 1), bool)
    )
    assert LocalSnippets.of(x, whole, np.array([0, 3, 1])).values is x


def test_templates_and_spread_of_a_unit_across_neighbourhoods():
    """A unit's mean snippet on each channel is that of its spikes held there (zero where none
    is), and its spread is read on the channels each spike is held on: about 1 in white
    noise, as on every channel."""
    rng = np.random.default_rng(1)
    wave = rng.normal(0, 5, (5, 7))
    n = 4000
    x = (wave + rng.standard_normal((n, 5, 7))).astype(np.float32)
    found = np.where(np.arange(n) % 2 == 0, 0, 2)  # half in the first neighbourhood, half not
    held = LocalSnippets.of(x, ROW, found)
    labels = np.zeros(n, np.int64)
    epoch = np.arange(n) % 2  # epoch 0: the first neighbourhood's spikes
    means = epoch_means(held, epoch, labels, 1, 2)
    np.testing.assert_allclose(means[0, 0, :4], x[::2, :4].mean(0, dtype=float), atol=1e-6)
    np.testing.assert_allclose(
        means[0, 0, 4], x[1::2, 4].mean(0, dtype=float), atol=1e-6
    )  # none held there
    np.testing.assert_allclose(means[0, 1], x[1::2].mean(0, dtype=float), atol=1e-6)
    spread = residual_spread(held, np.arange(n), np.arange(5), means[0], epoch)
    assert 0.9 < spread < 1.1, spread
    assert residual_spread(held, np.arange(0, n, 2), np.array([4]), means[0], epoch) == np.inf
