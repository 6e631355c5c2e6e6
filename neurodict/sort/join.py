"""Joining clusters that are one neuron, by the model's evidence.

A neuron between two centres, or one that drifts from one to the next, is found by both
neighbourhoods' chains; within one chain, a neuron whose amplitude varies on every channel
together (drift, bursts) is more than one cluster to the sampler's per-channel covariances,
and one whose waveform drifts within an epoch is cut where its mean moved. Two clusters of the
same or adjacent neighbourhoods are compared on the channels of both: their snippets are
projected on the leading principal axes of the pooled spikes (one covariance over all of them),
and the Bayes factor of "one cluster" against "two clusters" is computed with the sorter's own
conjugate random-walk cluster model (:mod:`neurodict.sort.walk`), its walk stepping every
``join_epoch_s``, and the Dirichlet process prior on the partition (``Γ(n)`` against
``α Γ(n_a) Γ(n_b)``), on the ``join_axes`` leading axes. The most favoured pair joins while
its Bayes factor exceeds 1 (the more probable of the two hypotheses under the model), and the
joined cluster is then one cluster to the next comparisons.

"One neuron" allows the two clusters different spreads about the one mean: the spikes of the
second have the precision scale ``g`` relative to the first (``ε_i ~ N(0, (g Λ)^{-1})``, the
weighted cluster of :class:`neurodict.sort.walk.Stats`), ``g`` uniform a priori on
:data:`SPREAD_GRID_POINTS` values evenly spaced in log between ``1/r²`` and ``r²``
(``r = priors.join_spread_ratio_max``, the largest ratio of standard deviations), ``g = 1``
among them. A neuron's spikes that collided with another neuron's scatter several times more
widely about its mean than its clean spikes, and the sampler's Gaussian clusters give them a
cluster of their own: a single Gaussian of both is far less likely than two, but one mean with
two spreads is as likely as two clusters and simpler, so the evidence joins them; two neurons
keep their distinct means.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, logsumexp

from neurodict.sort import walk
from neurodict.sort.neighbourhoods import Neighbourhoods
from neurodict.sort.params import SortParams

SPREAD_GRID_POINTS = 13  # values of the relative precision scale g of "one neuron"


def log_bayes_factor(
    xa: np.ndarray,
    ea: np.ndarray,
    xb: np.ndarray,
    eb: np.ndarray,
    n_epochs: int,
    params: SortParams,
) -> float:
    """``log p(one neuron) / p(two clusters)`` of two sets of flattened whitened snippets
    `xa` (n_a, d) and `xb` (n_b, d) in epochs `ea`, `eb`, on the ``params.join_axes``
    leading principal axes of the pooled snippets; one neuron is one mean (walk) and one
    covariance, `xb`'s spikes scaled by ``g`` on its grid and ``g`` integrated out."""
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
    n_a, n = xa.shape[0], f.shape[0]
    a, b = (walk.Stats.of(s[sl], e[sl], prior.n_epochs) for sl in (slice(0, n_a), slice(n_a, n)))
    r2 = params.priors.join_spread_ratio_max**2
    g = np.geomspace(1.0 / r2, r2, SPREAD_GRID_POINTS)
    log_one = logsumexp(walk.log_marginal(prior, walk.Stats.scaled_union(a, b, g))) - np.log(g.size)
    log_two = float(walk.log_marginal(prior, a)[0] + walk.log_marginal(prior, b)[0])
    log_prior = gammaln(n) - np.log(params.priors.alpha) - gammaln(n_a) - gammaln(n - n_a)
    return float(log_one - log_two + log_prior)


def join_units(
    x, bins, n_bins, clusters, used, centre, nb: Neighbourhoods, params: SortParams
) -> np.ndarray:
    """The unit of each cluster in `used` (of neighbourhood `centre`): clusters of the same or
    adjacent neighbourhoods joined, one pair at a time, while the evidence favours one neuron.

    Agglomerative: the pair with the largest Bayes factor (:func:`log_bayes_factor` on the
    channels of both, the walk over `n_bins` time bins `bins` of ``join_epoch_s``) joins when
    it exceeds 1, and the joined cluster is compared again with the others as one cluster, so a
    chain of pairwise joins never carries two distinct neurons into one unit. This is the
    greedy ascent of the model's evidence over partitions of the clusters.
    """
    members = {i: np.flatnonzero(clusters == k) for i, k in enumerate(used)}
    homes = {i: {int(centre[i])} for i in range(used.size)}

    def near(i: int, j: int) -> bool:
        return any(nb.adjacent[a, b] for a in homes[i] for b in homes[j])

    def score(i: int, j: int) -> float:
        chans = np.unique(np.concatenate([nb.channels[c] for c in homes[i] | homes[j]]))
        xa = x[np.ix_(members[i], chans)].reshape(members[i].size, -1)
        xb = x[np.ix_(members[j], chans)].reshape(members[j].size, -1)
        return log_bayes_factor(xa, bins[members[i]], xb, bins[members[j]], n_bins, params)

    scores = {(i, j): score(i, j) for i in members for j in members if i < j and near(i, j)}
    unit = np.arange(used.size)
    while scores:
        (i, j), best = max(scores.items(), key=lambda kv: kv[1])
        if best <= 0:
            break
        members[i] = np.sort(np.r_[members[i], members.pop(j)])
        homes[i] |= homes.pop(j)
        unit[unit == j] = i
        scores = {k: v for k, v in scores.items() if i not in k and j not in k}
        scores |= {(min(i, k), max(i, k)): score(i, k) for k in members if k != i and near(i, k)}
    return np.unique(unit, return_inverse=True)[1]
