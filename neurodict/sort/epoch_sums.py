"""Each unit's snippets summed per epoch on the channels its snippets hold, and their means.

A unit's template in an epoch is the mean of its snippets there, on each channel the mean of
those that hold it (:class:`neurodict.sort.local.LocalSnippets`). Summed on every channel of a
384-channel shank, a first learning's units over ten epochs were some 0.9 GB of sums in double
precision, beside their means; a unit's snippets hold a tenth of the channels or so, and
:class:`EpochSums` holds each unit's sums on those only (one buffer, each unit's (E, its
channels, T) in turn). The means are the same values: sums in the same order, divided alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class EpochSums:
    """Sums, counts and per-channel counts of each unit's snippets per epoch.

    Attributes
    ----------
    on : ndarray (U, M) of bool
        The channels held by some snippet of each unit: where its sums are kept.
    sums : ndarray of float64
        Every unit's sums (E, its channels, T), one after the other (:meth:`unit`).
    counts : ndarray (U, E) of int
        Snippets summed per unit and epoch.
    held : ndarray (U, E, M) of int
        Of those, the snippets that hold each channel.
    n_samples : int
        T, the snippets' samples.
    """

    on: np.ndarray
    sums: np.ndarray
    counts: np.ndarray
    held: np.ndarray
    n_samples: int

    @classmethod
    def zeros(
        cls,
        stores: np.ndarray,
        store: np.ndarray,
        labels: np.ndarray,
        n_units: int,
        n_epochs: int,
        n_channels: int,
        n_samples: int,
    ) -> EpochSums:
        """Empty sums for snippets held on `stores` (S, C; padded with -1), snippet i on
        ``stores[store[i]]`` and of unit ``labels[i]`` (-1: in none, not summed): each unit's
        kept on the channels of the stores its snippets have."""
        labels, store = np.asarray(labels), np.asarray(store)
        mine = labels >= 0
        pairs = np.unique(np.c_[labels[mine], store[mine]], axis=0)  # (unit, store) present
        channels = stores[pairs[:, 1]]
        unit = np.broadcast_to(pairs[:, :1], channels.shape)
        on = np.zeros((n_units, n_channels), bool)
        on[unit[channels >= 0], channels[channels >= 0]] = True
        return cls(
            on=on,
            sums=np.zeros(n_epochs * int(on.sum()) * n_samples),
            counts=np.zeros((n_units, n_epochs), np.int64),
            held=np.zeros((n_units, n_epochs, n_channels), np.int64),
            n_samples=int(n_samples),
        )

    @property
    def slot(self) -> np.ndarray:
        """(U, M): each channel's place among its unit's kept channels, -1 where not kept."""
        return np.where(self.on, np.cumsum(self.on, axis=1) - 1, -1)

    @property
    def base(self) -> np.ndarray:
        """(U,): where each unit's sums start in `sums`."""
        sizes = self.counts.shape[1] * self.on.sum(1) * self.n_samples
        return np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)

    def unit(self, k: int) -> np.ndarray:
        """Unit `k`'s sums (E, its channels, T): a view, added to in place."""
        start = self.base[k]
        E, w = self.counts.shape[1], int(self.on[k].sum())
        return self.sums[start : start + E * w * self.n_samples].reshape(E, w, self.n_samples)

    def mean(self, k: int) -> np.ndarray:
        """Unit `k`'s means per epoch and channel, float32 (E, M, T): on each channel the mean
        of its snippets that hold it in the epoch; its mean over all epochs on a channel where
        none does in an epoch; zero where none of its snippets ever holds the channel (far
        from where its spikes were found)."""
        _, E, M = self.held.shape
        mean = np.zeros((E, M, self.n_samples), np.float32)
        on = np.flatnonzero(self.on[k])
        s, n = self.unit(k), self.held[k][:, on]
        overall = s.sum(0) / np.maximum(n.sum(0), 1)[:, None]
        each = s / np.maximum(n, 1)[..., None]
        np.copyto(each, overall[None], where=(n == 0)[..., None])
        mean[:, on] = each
        return mean

    def means(self) -> np.ndarray:
        """Every unit's :meth:`mean`, float32 (U, E, M, T)."""
        means = np.empty((*self.held.shape, self.n_samples), np.float32)
        for k in range(len(means)):
            means[k] = self.mean(k)
        return means
