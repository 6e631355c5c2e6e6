"""A group's snippets, each held only on the channels near its neighbourhood.

On a probe shank a spike is modelled on the channels of its neighbourhood and compared, in the
join, with the clusters of the adjacent neighbourhoods on theirs (:mod:`neurodict.sort.join`):
nothing reads it farther away. So each spike is held on its neighbourhood's *reach*, the
channels of every neighbourhood adjacent to it (:meth:`Neighbourhoods.reach`), in one float32
array (n, L, T) whose L is the largest reach: about 22 of a 64-channel probe's channels and 24
of a Neuropixels shank's 384 (50 um neighbourhoods), where every channel was held before. A
tetrode's single neighbourhood reaches all its channels: its snippets are the array itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from neurodict.sort.neighbourhoods import Neighbourhoods


@dataclass
class LocalSnippets:
    """Snippets (n spikes, T coordinates per channel), spike ``i`` held on the channels
    ``held(centre[i])``, in that order, in the first entries of ``values[i]``."""

    values: np.ndarray  # (n, L, T) float32; a row's entries past its reach are zero
    centre: np.ndarray  # (n,) the neighbourhood of each spike
    reach: list[np.ndarray]  # per neighbourhood: the channels its spikes are held on, sorted
    n_channels: int  # M, the group's channels

    @classmethod
    def empty(cls, nb: Neighbourhoods, centre: np.ndarray, n_samples: int) -> LocalSnippets:
        """Room for the spikes of neighbourhoods `centre` (n,), to be filled by :meth:`put`."""
        reach = [nb.reach([c]) for c in range(nb.n_centres)]
        L = max(r.size for r in reach)
        values = np.zeros((centre.size, L, n_samples), np.float32)
        return cls(values, np.asarray(centre), reach, nb.nearest.size)

    @classmethod
    def of(cls, x: np.ndarray, nb: Neighbourhoods, channels: np.ndarray) -> LocalSnippets:
        """Snippets `x` (n, M, T) on every channel, each spike in the neighbourhood nearest
        its channel of `channels` (n,): `x` itself where every reach is the whole group."""
        held = cls.empty(nb, np.zeros(0, np.int64), x.shape[2])
        centre = nb.of_channels(channels)
        if all(r.size == x.shape[1] for r in held.reach):
            return cls(x, centre, held.reach, x.shape[1])
        held = cls.empty(nb, centre, x.shape[2])
        held.put(slice(None), x)
        return held

    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def n_samples(self) -> int:
        return self.values.shape[2]

    @property
    def n_centres(self) -> int:
        return len(self.reach)

    @cached_property
    def position(self) -> np.ndarray:
        """(C, M) int: the entry of each channel in each neighbourhood's rows, -1 where it is
        not held."""
        out = np.full((self.n_centres, self.n_channels), -1, np.int64)
        for c, r in enumerate(self.reach):
            out[c, r] = np.arange(r.size)
        return out

    def put(self, rows: slice, x: np.ndarray) -> None:
        """Hold the snippets `x` (k, M, T), on every channel, as the spikes `rows`."""
        for c in np.unique(self.centre[rows]):
            mine = np.flatnonzero(self.centre[rows] == c)
            r = self.reach[c]
            self.values[np.arange(*rows.indices(len(self)))[mine], : r.size] = x[mine][:, r]

    def on(self, rows: np.ndarray, channels: np.ndarray) -> np.ndarray:
        """The snippets of spikes `rows` (k,) on `channels` (l,), which each of them is held
        on: (k, l, T), a copy."""
        entry = self.position[self.centre[rows][:, None], np.asarray(channels)[None]]
        if np.any(entry < 0):
            raise ValueError("a channel asked for is outside the reach of some of the spikes")
        if entry.shape[0] and (entry == entry[:1]).all():  # one neighbourhood's layout
            return self.values[np.ix_(rows, entry[0])]
        return self.values[np.asarray(rows)[:, None], entry]
