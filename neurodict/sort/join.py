"""Joining clusters that are one neuron, by the model's evidence.

A neuron between two centres, or one that drifts from one to the next, is found by both
neighbourhoods' chains; within one chain, a neuron whose amplitude varies on every channel
together (drift, bursts) is more than one cluster to the sampler's per-channel covariances,
and one whose waveform drifts within an epoch is cut where its mean moved. Two clusters of the
same or adjacent neighbourhoods are compared on the channels of both: their snippets are
projected on the leading principal axes of the pooled spikes (one covariance over them, from at
most :data:`AXES_ROWS` of them), and the Bayes factor of "one cluster" against "two clusters"
is computed with the sorter's own conjugate random-walk cluster model
(:mod:`neurodict.sort.walk`), its walk stepping every ``join_epoch_s``, and the Dirichlet
process prior on the partition (``Γ(n)`` against ``α Γ(n_a) Γ(n_b)``), on the ``join_axes``
leading axes. The most favoured pair joins while
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

"One neuron" also allows one cluster's spikes to be cut ``δ`` samples later than the other's
(uniform a priori on :data:`DELAY_GRID_POINTS` values evenly spaced on ``±join_max_delay_ms``,
0 among them): alignment on a broad energy peak, or on a spike that collided with another,
lands some of a neuron's spikes a fraction of a sample off, and a fraction of a sample on a
large spike is a mean of its own to the sampler. The delay is a change of variables by an
orthogonal map ``U_δ`` (:func:`neurodict.sort.snippets.delay_operators`; no Jacobian): the
delayed cluster's snippets re-cut by it join the other on the pooled principal axes, and off
those axes the snippets are the unit white noise they are under both hypotheses, which adds
``−½ Σ_i (‖P⊥(U_δ x_i − m)‖² − ‖P⊥(x_i − m)‖²)`` (``P⊥`` off the axes, ``m`` the pooled mean)
to the log evidence of that delay. Which of the two clusters is the reference (spread 1, no
delay) is itself uniform a priori, so the Bayes factor of a pair does not depend on the
order in which it is named.
"""

from __future__ import annotations

import logging
import multiprocessing
from itertools import combinations

import numpy as np
from scipy.special import gammaln, logsumexp
from tqdm.auto import tqdm

from neurodict.common.jobs import worker_pool
from neurodict.sort import walk
from neurodict.sort.neighbourhoods import Neighbourhoods
from neurodict.sort.params import SortParams

SPREAD_GRID_POINTS = 13  # values of the relative precision scale g of "one neuron"
DELAY_GRID_POINTS = 9  # values of its delay δ (odd: 0 among them)
#: Rows a pair's principal axes are estimated from: every ``s``-th spike of each cluster (``s``
#: the smallest stride that leaves at most this many), so both clusters in proportion. The axes
#: are where the evidence is computed, not the evidence: it sums over every spike on them.
AXES_ROWS = 2048

log = logging.getLogger(__name__)


def delay_grid(params: SortParams, fs_hz: float) -> np.ndarray:
    """The delays of "one neuron" in samples: :data:`DELAY_GRID_POINTS` evenly spaced on
    ``±join_max_delay_ms``."""
    most = params.join_max_delay_ms * fs_hz / 1000.0
    return np.linspace(-most, most, DELAY_GRID_POINTS)


def log_bayes_factor(
    xa: np.ndarray,
    ea: np.ndarray,
    xb: np.ndarray,
    eb: np.ndarray,
    n_epochs: int,
    params: SortParams,
    delays: np.ndarray,
) -> float:
    """``log p(one neuron) / p(two clusters)`` of two sets of whitened snippets `xa` (n_a, M,
    T) and `xb` (n_b, M, T) in epochs `ea`, `eb`, on the ``params.join_axes`` leading
    principal axes of the pooled snippets (of at most :data:`AXES_ROWS` of them, evenly
    strided in both clusters; the pooled mean of all); one neuron is one mean (walk) and one
    covariance, either cluster's spikes scaled by ``g`` on its grid and delayed by each
    orthogonal operator of `delays` (S, T, T) (:func:`neurodict.sort.snippets.delay_operators`
    of :func:`delay_grid`'s odd, symmetric grid: the identity in the middle), the reference
    cluster, ``g`` and the delay integrated out."""
    n_a, n_b = len(xa), len(xb)
    stride = -(-(n_a + n_b) // AXES_ROWS)
    rows = np.r_[xa[::stride], xb[::stride]]
    axes = walk.leading_axes(rows.reshape(len(rows), -1), params.join_axes)[1]
    sum_a, sum_b = xa.sum(0, dtype=np.float64), xb.sum(0, dtype=np.float64)  # (M, T) each
    centre = (sum_a + sum_b).ravel() / (n_a + n_b)
    # the axes pulled back through every delay: (U x)·a = x·(U'a), one GEMM per cluster
    S, (M, T), P = delays.shape[0], xa.shape[1:], axes.shape[1]
    pulled = np.tensordot(delays, axes.reshape(M, T, P), axes=(1, 1))  # (S, T, M, P): U_d'a_m
    moved_axes = pulled.transpose(2, 1, 0, 3).reshape(M * T, S * P)
    if not params.drift:
        ea, eb, n_epochs = np.zeros_like(ea), np.zeros_like(eb), 1

    def delayed(x, total):
        """(n, S, P) on the axes under every delay, in the snippets' precision (no float64 copy
        of them); (S,) Σ squared distance off the axes, up to a term of `x` alone (`total`:
        Σ_i x_i)."""
        p = (x.reshape(len(x), -1) @ moved_axes.astype(x.dtype)).reshape(len(x), S, P)
        p = p - centre @ axes
        # Σ_i ‖U x_i − m‖² = Σ_i ‖x_i‖² − 2 m·U Σ_i x_i + n ‖m‖² (U orthogonal): only the middle
        # term depends on the delay, and only differences between delays enter the evidence
        moved_total = np.einsum("dst,mt->dms", delays, total)
        return p, -2 * moved_total.reshape(S, -1) @ centre - np.einsum("idp,idp->d", p, p)

    (pa, off_a), (pb, off_b) = delayed(xa, sum_a), delayed(xb, sum_b)
    still = delays.shape[0] // 2  # the identity: the delays' grid is symmetric about 0
    a = walk.Stats.of(pa[:, still : still + 1], ea, n_epochs)
    b = walk.Stats.of(pb[:, still : still + 1], eb, n_epochs)
    prior = walk.WalkPrior.isotropic(
        np.zeros(axes.shape[1]),
        float((pa[:, still] ** 2).sum() + (pb[:, still] ** 2).sum())
        / ((n_a + n_b) * axes.shape[1]),
        params.drift_sd**2,
        n_epochs,
        params.priors,
    )
    r2 = params.priors.join_spread_ratio_max**2
    g = np.geomspace(1.0 / r2, r2, SPREAD_GRID_POINTS)
    log_one = [
        walk.log_marginal(prior, walk.Stats.scaled_union(ref, walk.Stats.of(p, e, n_epochs), g))
        - 0.5 * (off - off[still])
        for ref, p, e, off in ((a, pb, eb, off_b), (b, pa, ea, off_a))
    ]
    log_one = logsumexp(log_one) - np.log(2 * g.size * delays.shape[0])
    log_two = float(walk.log_marginal(prior, a)[0] + walk.log_marginal(prior, b)[0])
    n = n_a + n_b
    log_prior = gammaln(n) - np.log(params.priors.alpha) - gammaln(n_a) - gammaln(n - n_a)
    return float(log_one - log_two + log_prior)


def join_units(
    x,
    bins,
    n_bins,
    clusters,
    used,
    centre,
    nb: Neighbourhoods,
    params: SortParams,
    delays,
    n_jobs: int = 1,
    progress: bool = False,
) -> np.ndarray:
    """The unit of each cluster in `used` (of neighbourhood `centre`): clusters of the same or
    adjacent neighbourhoods joined, one pair at a time, while the evidence favours one neuron.

    Agglomerative: the pair with the largest Bayes factor (:func:`log_bayes_factor` on the
    channels of both, the walk over `n_bins` time bins `bins` of ``join_epoch_s``, the
    delay operators `delays` of :func:`log_bayes_factor`) joins when
    it exceeds 1, and the joined cluster is compared again with the others as one cluster, so a
    chain of pairwise joins never carries two distinct neurons into one unit. This is the
    greedy ascent of the model's evidence over partitions of the clusters, in two stages: each
    neighbourhood's clusters among themselves first (one chain's pieces of its neurons, on its
    own channels), then across adjacent neighbourhoods, the pairs of the first stage kept with
    their Bayes factors. It stops where the one-stage ascent stops, at a partition in which no
    pair of the same or adjacent neighbourhoods is favoured as one neuron; the order only
    leaves each neighbourhood's many small pairs out of the comparisons across the probe
    (on a 64-channel probe the chains hand over some 35 clusters each). The pairs' Bayes
    factors are computed in `n_jobs` processes (the same values in any number); `progress`
    shows the pairs compared and the clusters left.
    """
    members = {i: np.flatnonzero(clusters == k) for i, k in enumerate(used)}
    homes = {i: {int(centre[i])} for i in range(used.size)}

    def together(i: int, j: int) -> bool:
        return homes[i] == homes[j]

    def near(i: int, j: int) -> bool:
        return any(nb.adjacent[a, b] for a in homes[i] for b in homes[j])

    def pair(i: int, j: int):
        chans = np.unique(np.concatenate([nb.channels[c] for c in homes[i] | homes[j]]))
        return members[i], members[j], chans

    bar = tqdm(desc="join", unit="pair", disable=not progress, leave=False)
    scores, unit = {}, np.arange(used.size)
    with _Scorer(x, bins, n_bins, params, delays, n_jobs, bar) as scorer:

        def score(keys):
            scores.update(zip(keys, scorer.scores([pair(*k) for k in keys]), strict=True))

        for allowed in (together, near):
            score([k for k in combinations(members, 2) if allowed(*k) and k not in scores])
            while scores:
                (i, j), best = max(scores.items(), key=lambda kv: kv[1])
                if best <= 0:
                    break
                members[i] = np.sort(np.r_[members[i], members.pop(j)])
                homes[i] |= homes.pop(j)
                unit[unit == j] = i
                bar.set_postfix(clusters=len(members))
                scores = {k: v for k, v in scores.items() if i not in k and j not in k}
                score([(min(i, k), max(i, k)) for k in members if k != i and allowed(i, k)])
    bar.close()
    joined = np.unique(unit, return_inverse=True)[1]
    log.info(
        "join: %d clusters into %d units (%d pairs' Bayes factors)",
        used.size,
        int(joined.max(initial=-1)) + 1,
        bar.total or 0,
    )
    return joined


class _Scorer:
    """Bayes factors of pairs of clusters given as (rows of a, rows of b, channels) of `x`, in
    `n_jobs` forked processes that share `x` (read, never copied) when above one and the
    platform can fork (else in this process); each computed one ticks the progress bar
    `bar`."""

    def __init__(self, x, bins, n_bins, params: SortParams, delays, n_jobs: int, bar):
        self.n_jobs, self.bar = n_jobs, bar
        self.pool = None
        _SHARED.update(x=x, bins=bins, n_bins=n_bins, params=params, delays=delays)
        if n_jobs > 1 and "fork" in multiprocessing.get_all_start_methods():
            self.pool = worker_pool(n_jobs, fork=True)

    def scores(self, pairs: list) -> list[float]:
        self.bar.total = (self.bar.total or 0) + len(pairs)
        if self.pool is None or len(pairs) < 2:
            computed = map(_pair_score, pairs)
        else:
            chunk = max(1, len(pairs) // (4 * self.n_jobs))
            computed = self.pool.map(_pair_score, pairs, chunksize=chunk)
        out = []
        for value in computed:
            out.append(value)
            self.bar.update()
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown()
        _SHARED.clear()


_SHARED: dict = {}  # what the scoring processes read: set before they fork


def _pair_score(pair) -> float:
    rows_a, rows_b, chans = pair
    x, bins = _SHARED["x"], _SHARED["bins"]
    return log_bayes_factor(
        x[np.ix_(rows_a, chans)],
        bins[rows_a],
        x[np.ix_(rows_b, chans)],
        bins[rows_b],
        _SHARED["n_bins"],
        _SHARED["params"],
        _SHARED["delays"],
    )
