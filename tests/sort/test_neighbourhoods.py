"""Channel neighbourhoods of a wide group and which of them are adjacent."""

from __future__ import annotations

import numpy as np

from neurodict.sort.neighbourhoods import neighbourhoods
from tests.sort.probes import staggered_positions


def test_neighbourhoods_are_adjacent_where_spikes_were_found_close_on_both_sides():
    """On a Neuropixels 1.0 layout (:func:`staggered_positions`), neighbourhoods 50 um wide
    centred on the busiest contacts, (16, 40) and (32, 140), share
    no contact. Spikes also found on (16, 80) and (32, 100), 26 um apart on either side of
    the boundary (a neuron between the centres), make them adjacent: the join compares their
    clusters. Found only under the centres (nothing between them), they are not."""
    locations = staggered_positions(10)
    a, b, near_a, near_b = 4, 15, 8, 11  # (16, 40), (32, 140), (16, 80), (32, 100)
    under = np.repeat([a, b], 100)
    between = np.r_[under, np.repeat([near_a, near_b], 30)]
    nb = neighbourhoods(locations, between, 50.0, 20, 1.0)
    np.testing.assert_array_equal(nb.centres, [a, b])
    assert np.intersect1d(nb.channels[0], nb.channels[1]).size == 0
    np.testing.assert_array_equal(nb.of_channels(np.array([near_a, near_b])), [0, 1])
    assert nb.adjacent.all()
    apart = neighbourhoods(locations, under, 50.0, 20, 1.0)
    np.testing.assert_array_equal(apart.centres, [a, b])
    np.testing.assert_array_equal(apart.adjacent, np.eye(2, dtype=bool))


def test_neighbourhoods_sharing_a_contact_with_spikes_close_across_it_are_adjacent():
    """A line of 8 contacts 20 um apart, every one busy, neighbourhoods 50 um wide: centres
    every 60 um (0, 3, 6), the neighbours adjacent, the two ends (120 um apart) not."""
    locations = np.c_[np.zeros(8), np.arange(8) * 20.0]
    nb = neighbourhoods(locations, np.repeat(np.arange(8), 40), 50.0, 20, 1.0)
    np.testing.assert_array_equal(nb.centres, [0, 3, 6])
    np.testing.assert_array_equal(nb.adjacent, [[1, 1, 0], [1, 1, 1], [0, 1, 1]])
