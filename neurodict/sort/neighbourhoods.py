"""Channel neighbourhoods: on a wide group the model is fitted per neighbourhood.

A tetrode or a bundle of wires (every channel within ``radius_um`` of every other) is one
neighbourhood holding all its channels. On a probe shank the sorter fits one model per
neighbourhood so that its cost follows the spikes, not the channel count: centres are chosen
among the channels where spikes peak, busiest first, no two closer than ``spacing · radius_um``
(``sorting.neighbourhood_spacing``, default 1: every busy channel lies within ``radius_um`` of
a centre, and the neighbourhoods overlap least, so each neuron is learned by as few chains as
its spikes' channels allow; the join puts together what neighbouring chains learned of one);
each spike goes to the centre nearest its peak channel and is modelled on the channels within
``radius_um`` of that centre (MODELS.md §1).

Two neighbourhoods are adjacent when spikes were found on channels within ``radius_um`` of
each other that fall to one and to the other: a neuron between the two centres is found on
channels of both sides of the boundary, and its two neighbourhoods' chains each learn a
cluster of it that the join (:mod:`neurodict.sort.join`) compares. Sharing a channel is not
enough to say so: centres ``radius_um`` apart or more need share none (on a Neuropixels 1.0
shank, neighbourhoods 50 um wide, 8 of 67 shared a channel with none, centres 77-124 um apart
shared none, and three neurons between two such centres were two units each).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import cdist


@dataclass(frozen=True)
class Neighbourhoods:
    """The centres of one group and the channels each centre's model sees."""

    centres: np.ndarray  # (C,) channel index of each centre
    channels: list[np.ndarray]  # per centre: the channel indices within radius_um
    nearest: np.ndarray  # (M,) the centre nearest each channel
    adjacent: np.ndarray  # (C, C) bool: neighbourhoods one neuron's spikes can fall to
    # (M, 2) the channels' positions where the group has several neighbourhoods (the kernel
    # beta process places atoms among them); None for a group held by one
    locations_um: np.ndarray | None = None

    @property
    def n_centres(self) -> int:
        return self.centres.size

    def of_channels(self, channels: np.ndarray) -> np.ndarray:
        """The centre of each spike found on a channel of `channels` (n,): the one nearest
        it."""
        return self.nearest[channels]

    def of_spikes(self, x: np.ndarray) -> np.ndarray:
        """The centre of each snippet or template (n, M, T): the one nearest its peak
        channel."""
        return self.of_channels(peak_channels(x))


def whole_group(n_channels: int) -> Neighbourhoods:
    """One neighbourhood holding every channel (a tetrode, wires)."""
    return Neighbourhoods(
        centres=np.zeros(1, np.int64),
        channels=[np.arange(n_channels)],
        nearest=np.zeros(n_channels, np.int64),
        adjacent=np.ones((1, 1), bool),
    )


def peak_channels(x: np.ndarray) -> np.ndarray:
    """The channel of largest energy ``Σ_t x_m(t)²`` of each snippet (n, M, T)."""
    return np.einsum("imt,imt->im", x, x).argmax(axis=1) if len(x) else np.zeros(0, np.int64)


def neighbourhoods(
    locations_um: np.ndarray, peaks: np.ndarray, radius_um: float, min_spikes: int, spacing: float
) -> Neighbourhoods:
    """Centres and neighbourhoods of a group.

    Parameters
    ----------
    locations_um : ndarray (M, 2)
        Channel positions.
    peaks : ndarray (n,)
        The peak channel of each spike: where spikes are busiest (the centres) and where any
        were found (which neighbourhoods are adjacent).
    radius_um : float
        A neighbourhood holds the channels this close to its centre.
    min_spikes : int
        A channel becomes a centre only where at least this many spikes peak (the busiest
        channel is a centre regardless).
    spacing : float
        No two centres are closer than ``spacing · radius_um``.
    """
    dist = cdist(locations_um, locations_um)
    if dist.max() <= radius_um:
        return whole_group(dist.shape[0])
    counts = np.bincount(peaks, minlength=dist.shape[0])
    centres: list[int] = []
    for m in np.argsort(-counts, kind="stable"):
        if centres and counts[m] < min_spikes:
            break
        if all(dist[m, c] >= spacing * radius_um for c in centres):
            centres.append(int(m))
    c = np.array(centres)
    nearest = dist[:, c].argmin(axis=1)
    found = counts > 0
    cell = np.eye(c.size, dtype=int)[nearest[found]]  # (channels with spikes, C)
    close = (dist[np.ix_(found, found)] <= radius_um).astype(int)
    return Neighbourhoods(
        centres=c,
        channels=[np.flatnonzero(row) for row in dist[c] <= radius_um],
        nearest=nearest,
        adjacent=(cell.T @ close @ cell) > 0,
        locations_um=np.asarray(locations_um, float),
    )
