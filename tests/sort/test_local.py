"""Snippets held on the channels near where each spike was found."""

from __future__ import annotations

import numpy as np
import pytest
from probeinterface import generate_linear_probe

from neurodict.sort.local import LocalSnippets, held_channels
from neurodict.sort.neighbourhoods import neighbourhoods, whole_group


def _local(seed: int = 0):
    """Snippets on 6 channels, held on two stores (channels 0-3 and 2-5)."""
    rng = np.random.default_rng(seed)
    full = rng.standard_normal((12, 6, 5)).astype(np.float32)
    stores = np.array([[0, 1, 2, 3], [2, 3, 4, 5]])
    store = rng.integers(0, 2, 12)
    return full, LocalSnippets(full[np.arange(12)[:, None], stores[store]], stores, store, 6)


def test_snippets_are_read_on_the_channels_they_hold_and_nowhere_else():
    full, x = _local()
    assert x.shape == (12, 6, 5) and len(x) == 12
    rows = np.flatnonzero(x.store == 1)
    np.testing.assert_array_equal(x.take(rows, [5, 2]), full[rows][:, [5, 2]])
    np.testing.assert_array_equal(x.take(np.arange(12), [3, 2]), full[:, [3, 2]])
    np.testing.assert_array_equal(x.held(rows), [2, 3, 4, 5])
    np.testing.assert_array_equal(x.held(np.arange(12)), [2, 3])
    first = np.flatnonzero(x.store == 0)[0]
    with pytest.raises(ValueError, match=f"snippet {first} is not held on channel 4"):
        x.take(np.arange(12), [2, 4])


def test_snippets_held_whole_are_read_without_a_copy():
    full = np.random.default_rng(1).standard_normal((10, 4, 6)).astype(np.float32)
    x = LocalSnippets.full(full)
    assert x.take(np.arange(10), np.arange(4)) is full
    rows, channels = np.array([1, 4, 9]), np.array([0, 3])
    np.testing.assert_array_equal(x.take(rows, channels), full[rows][:, channels])
    np.testing.assert_array_equal(x.take(np.arange(10), np.array([3, 2, 1, 0])), full[:, ::-1])
    np.testing.assert_array_equal(x.take(np.arange(10)[::-1], np.arange(4)), full[::-1])


def test_a_neighbourhood_holds_the_channels_two_steps_of_adjacency_away_and_within_the_radius():
    """A 32-channel shank 20 um apart, neighbourhoods 50 um wide: each neighbourhood's spikes
    are held on the channels of every neighbourhood within two steps of adjacency and within
    150 um of its centre, and on no other (none 300 um away); a tetrode's on every channel."""
    locations = generate_linear_probe(num_elec=32, ypitch=20).contact_positions
    nb = neighbourhoods(locations, np.repeat(np.arange(32), 60), 50.0, 50, 1.0)
    table = held_channels(nb, locations, 150.0)
    assert table.shape[0] == nb.n_centres
    for c in range(nb.n_centres):
        held = table[c][table[c] >= 0]
        adjacent = np.flatnonzero(nb.adjacent[c])
        two_steps = np.flatnonzero(nb.adjacent[adjacent].any(axis=0))
        assert two_steps.size > adjacent.size or adjacent.size == nb.n_centres
        within = np.concatenate([nb.channels[d] for d in two_steps])
        distance = np.abs(locations[:, 1] - locations[nb.centres[c], 1])
        np.testing.assert_array_equal(held, np.union1d(within, np.flatnonzero(distance <= 150)))
        assert distance[held].max() < 300
    assert table.shape[1] < 32
    whole = held_channels(whole_group(4), np.zeros((4, 2)), 1.0)
    np.testing.assert_array_equal(whole, [[0, 1, 2, 3]])
