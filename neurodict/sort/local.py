"""Snippets held on the channels near where each spike was found.

A wide group's snippets are read on a few channels each: the chain of the spike's
neighbourhood and its labelling read that neighbourhood's channels, the join reads a pair of
clusters on the channels near both, and a unit's mean snippet is its template wherever the
overlap pass matches it (``match_radius_um`` about its largest channel). Held on every
channel of a 384-channel probe, the snippets were nearly all of the sorter's memory and most
of what it copied; :class:`LocalSnippets` holds each on its neighbourhood's channels
(:func:`held_channels`) and says which channels a set of snippets holds, so that every reader
asks for those only and a request for any other channel is an error, never a silent zero.
The values may lie in a file (:class:`neurodict.sort.disk.DiskArray`, as the sorter cuts them):
every reader copies out the rows it asks for, so nothing reads them all at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.spatial.distance import cdist

from neurodict.sort.disk import DiskArray
from neurodict.sort.neighbourhoods import Neighbourhoods

READ_VALUES = 2**24  # values of the snippets a pass over all of them reads at once (64 MB)


@dataclass(frozen=True)
class LocalSnippets:
    """Snippets (n, M, T) each held on the channels of its store.

    Attributes
    ----------
    values : ndarray or DiskArray (n, C, T)
        Snippet i on channels ``stores[store[i]]``, in that order (columns past a store's
        channels are padding, never read).
    stores : ndarray (S, C) of int
        The channels of each store, ascending, padded with -1.
    store : ndarray (n,) of int
        The store of each snippet.
    n_channels : int
        M, the group's channels.
    """

    values: np.ndarray | DiskArray
    stores: np.ndarray
    store: np.ndarray
    n_channels: int

    @classmethod
    def full(cls, x: np.ndarray) -> LocalSnippets:
        """Snippets `x` (n, M, T) held on every channel."""
        n, M, _ = x.shape
        return cls(x, np.arange(M)[None], np.zeros(n, np.int64), M)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n, M, T): the snippets' shape as if held on every channel."""
        return self.values.shape[0], self.n_channels, self.values.shape[2]

    def __len__(self) -> int:
        return self.values.shape[0]

    @cached_property
    def _position(self) -> np.ndarray:
        """(S, M): each channel's column in each store, -1 where not held."""
        position = np.full((self.stores.shape[0], self.n_channels), -1, np.int64)
        s, column = np.nonzero(self.stores >= 0)
        position[s, self.stores[s, column]] = column
        return position

    def take(self, rows: np.ndarray, channels: np.ndarray) -> np.ndarray:
        """The snippets `rows` on `channels` (len(rows), len(channels), T), one copy (the
        held array itself when that is all of it and in memory). Every snippet must hold every
        channel."""
        rows, channels = np.asarray(rows), np.asarray(channels)
        column = self._position[:, channels][self.store[rows]]  # (rows, channels)
        if (column < 0).any():
            i, m = np.argwhere(column < 0)[0]
            raise ValueError(f"snippet {rows[i]} is not held on channel {channels[m]}")
        whole = rows.size == len(self) and channels.size == self.values.shape[1]
        if (
            whole
            and isinstance(self.values, np.ndarray)
            and np.array_equal(rows, np.arange(rows.size))
            and np.array_equal(column, np.broadcast_to(np.arange(channels.size), column.shape))
        ):
            return self.values
        return self.values[rows[:, None], column]

    def batches(self):
        """``(rows, values)``: slices of consecutive snippets and their values (a copy in
        memory), :data:`READ_VALUES` values at a time, in order."""
        per = max(1, READ_VALUES // max(1, int(np.prod(self.values.shape[1:]))))
        for start in range(0, len(self), per):
            rows = slice(start, start + per)
            yield rows, self.values[rows]

    def held(self, rows: np.ndarray) -> np.ndarray:
        """The channels every one of the snippets `rows` holds, ascending."""
        present = np.unique(self.store[rows])
        return np.flatnonzero((self._position[present] >= 0).all(axis=0))


def held_channels(nb: Neighbourhoods, locations_um: np.ndarray, radius_um: float) -> np.ndarray:
    """The channels a spike of each neighbourhood is held on: (C, width), ascending, padded with
    -1. Those of every neighbourhood within two steps of adjacency of its own, and those within
    `radius_um` (``match_radius_um``) of its centre, where its units' templates are matched.
    The join compares two clusters of adjacent neighbourhoods on the channels near both, and a
    cluster joined across two adjacent neighbourhoods on the channels near either: all held, so
    those comparisons are what they would be with every snippet on every channel. A cluster
    joined across neighbourhoods further apart is compared only where all its spikes hold
    the pair's channels (:meth:`neurodict.sort.join._Partition.channels`). One
    neighbourhood: every channel."""
    if nb.n_centres == 1:
        return np.arange(locations_um.shape[0])[None]
    near = cdist(locations_um[nb.centres], locations_um) <= radius_um
    adjacent = nb.adjacent.astype(int)
    two_steps = (adjacent @ adjacent) > 0
    held = [
        np.union1d(
            np.concatenate([nb.channels[d] for d in np.flatnonzero(two_steps[c])]),
            np.flatnonzero(near[c]),
        )
        for c in range(nb.n_centres)
    ]
    return padded(held, -1)


def padded(rows: list[np.ndarray], fill) -> np.ndarray:
    """(len(rows), widest) int64: each row's values, then `fill` (a scalar or one per row)."""
    width = max(r.size for r in rows)
    table = np.repeat(np.broadcast_to(np.asarray(fill, np.int64), (len(rows),))[:, None], width, 1)
    for i, r in enumerate(rows):
        table[i, : r.size] = r
    return table
