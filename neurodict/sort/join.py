"""The final join of clusters that are one neuron (adjacent neighbourhoods, drifting pieces)."""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import DisjointSet

from neurodict.sort.merges import dprime_if_mergeable
from neurodict.sort.neighbourhoods import Neighbourhoods
from neurodict.sort.params import SortParams


def join_units(
    x,
    samples,
    epoch,
    n_epochs,
    clusters,
    used,
    centre,
    nb: Neighbourhoods,
    ref: int,
    params: SortParams,
) -> np.ndarray:
    """The unit of each cluster in `used` (neighbourhood `centre`) once clusters that are one
    neuron are joined.

    The final merge, on every spike's label: a neuron between two centres, or one that
    drifts from one to the next, is found by both neighbourhoods' models, and a drifting
    neuron may leave two clusters of one model (pieces that no merge move met while learning
    on the subsample). Two clusters of one neighbourhood or of adjacent ones join when they
    pass the merge test (:func:`dprime_if_mergeable`) on the channels of both neighbourhoods
    and their joint spike train has almost no refractory violations (at most 0.2 %: two
    neurons firing independently at 10 Hz would give about 3 %). Least separated pairs first;
    joins are transitive.
    """
    units = DisjointSet(range(used.size))
    members = [np.flatnonzero(clusters == k) for k in used]
    scored = []
    for i in range(used.size):
        for j in range(i + 1, used.size):
            ci, cj = centre[i], centre[j]
            if not nb.adjacent[ci, cj]:
                continue
            chans = np.union1d(nb.channels[ci], nb.channels[cj])
            xa = x[members[i]][:, chans].reshape(members[i].size, -1)
            xb = x[members[j]][:, chans].reshape(members[j].size, -1)
            d = dprime_if_mergeable(xa, epoch[members[i]], xb, epoch[members[j]], n_epochs, params)
            if np.isfinite(d):
                scored.append((d, i, j))
    for _, i, j in sorted(scored):
        if units.connected(i, j):
            continue
        joint = units.subset(i) | units.subset(j)
        spikes = np.sort(np.concatenate([samples[members[k]] for k in joint]))
        if np.sum(np.diff(spikes) < ref) <= 0.002 * spikes.size:
            units.merge(i, j)
    roots = np.array([min(units.subset(i)) for i in range(used.size)])
    return np.unique(roots, return_inverse=True)[1]
