"""Joining clusters of adjacent neighbourhoods that are one neuron, by the model's evidence.

A neuron between two centres, or one that drifts from one to the next, is found by both
neighbourhoods' chains. Two clusters of adjacent neighbourhoods are compared on the channels of
both: their snippets are projected on the leading principal axes of the pooled spikes, and the
Bayes factor of "one cluster" against "two clusters" is computed with the sorter's own conjugate
random-walk cluster model (:mod:`neurodict.sort.walk`: drift across epochs included) and the
Dirichlet process prior on the partition (``Γ(n)`` against ``α Γ(n_a) Γ(n_b)``), on the
``join_axes`` leading axes. Pairs with a Bayes factor over 1 (the more probable of the two
hypotheses under the model) join, most favoured first; joins are transitive.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import DisjointSet
from scipy.special import gammaln

from neurodict.sort import walk
from neurodict.sort.neighbourhoods import Neighbourhoods
from neurodict.sort.params import SortParams


def log_bayes_factor(
    xa: np.ndarray,
    ea: np.ndarray,
    xb: np.ndarray,
    eb: np.ndarray,
    n_epochs: int,
    params: SortParams,
) -> float:
    """``log p(one cluster) / p(two clusters)`` of two sets of flattened whitened snippets
    `xa` (n_a, d) and `xb` (n_b, d) in epochs `ea`, `eb`, on the ``params.join_axes``
    leading principal axes of the pooled snippets."""
    f = np.r_[xa, xb]
    s = walk.principal_axes(f, params.join_axes)[:, None]  # (n, 1, P)
    e = np.r_[ea, eb] if params.drift else np.zeros(f.shape[0], np.int64)
    prior = walk.WalkPrior.isotropic(
        np.zeros(s.shape[2]),
        float(s.var(0).mean()),
        params.drift_sd**2,
        n_epochs if params.drift else 1,
        params.priors,
    )
    n_a = xa.shape[0]

    def marginal(sl):
        return float(walk.log_marginal(prior, walk.Stats.of(s[sl], e[sl], prior.n_epochs))[0])

    n = f.shape[0]
    log_prior = gammaln(n) - np.log(params.priors.alpha) - gammaln(n_a) - gammaln(n - n_a)
    return marginal(slice(None)) - marginal(slice(0, n_a)) - marginal(slice(n_a, None)) + log_prior


def join_units(
    x, epoch, n_epochs, clusters, used, centre, nb: Neighbourhoods, params: SortParams
) -> np.ndarray:
    """The unit of each cluster in `used` (of neighbourhood `centre`), clusters of adjacent
    neighbourhoods joined when the evidence favours one neuron (:func:`log_bayes_factor` on the
    channels of both)."""
    units = DisjointSet(range(used.size))
    members = [np.flatnonzero(clusters == k) for k in used]
    scored = []
    for i in range(used.size):
        for j in range(i + 1, used.size):
            ci, cj = centre[i], centre[j]
            if ci == cj or not nb.adjacent[ci, cj]:
                continue
            chans = np.union1d(nb.channels[ci], nb.channels[cj])
            xa = x[members[i]][:, chans].reshape(members[i].size, -1)
            xb = x[members[j]][:, chans].reshape(members[j].size, -1)
            bf = log_bayes_factor(xa, epoch[members[i]], xb, epoch[members[j]], n_epochs, params)
            if bf > 0:
                scored.append((-bf, i, j))
    for _, i, j in sorted(scored):
        units.merge(i, j)
    roots = np.array([min(units.subset(i)) for i in range(used.size)])
    return np.unique(roots, return_inverse=True)[1]
