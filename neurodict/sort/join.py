"""Joining clusters that are one neuron, by the model's evidence.

A neuron between two centres, or one that drifts from one to the next, is found by both
neighbourhoods' chains; within one chain, a neuron whose amplitude varies on every channel
together (drift, bursts) is more than one cluster to the sampler's per-channel covariances,
and one whose waveform drifts within an epoch is cut where its mean moved. Two clusters of the
same or adjacent neighbourhoods are compared on the channels of both (those near both, for a
cluster already joined across several neighbourhoods): their snippets are projected on the
``join_axes`` leading principal axes of the pooled spikes, and the Bayes factor of "one
neuron" against "two clusters" is computed with the sorter's random-walk cluster means
(:mod:`neurodict.sort.walk`), the walk stepping every ``join_epoch_s``, and the Dirichlet
process prior on the partition (``Γ(n)`` against ``α Γ(n_a) Γ(n_b)``). The most favoured
pair joins while its Bayes factor exceeds 1 (the more probable of the two hypotheses under the
model), and the joined cluster is then one cluster to the next comparisons. Every statistic
the Bayes factor reads is a linear or quadratic form of the snippets, so it is computed from
each cluster's first and second moments on the pair's channels (:class:`Moments`), read once
per cluster: a pair's cost does not grow with its spikes.

The two hypotheses differ in the means only: each cluster keeps its own spread under both
(the posterior mean of its covariance, from its scatter over the recording). A neuron's
spikes that collided with another neuron's scatter several times more widely about its mean
than its clean spikes, and a drifting neuron's waveform moves; the sampler's Gaussian
clusters give such spikes clusters of their own, and one mean explains them. Two neurons'
means differ by more than the means' uncertainty, which shrinks with their spikes, however
broad either cluster's spread: one covariance learned from both clusters would turn their
difference into spread (its cost grows only with the logarithm of the difference, the
partition prior's with the spikes), and a cluster of broad spread, one of several neurons
above all, would absorb every cluster near its mean, and then the neurons near those.

"One neuron" also allows one cluster's spikes to be cut ``δ`` samples later than the other's
(:data:`DELAY_GRID_POINTS` values evenly spaced on ``±join_max_delay_ms``, 0 among them):
alignment on a broad energy peak, or on a spike that collided with another, lands some of a
neuron's spikes a fraction of a sample off, and a fraction of a sample on a large spike is a
mean of its own to the sampler. The delay is a change of variables by an orthogonal map
``U_δ`` (:func:`neurodict.sort.snippets.delay_operators`; no Jacobian, and whitened noise
stays white) under which "two clusters" is unchanged; the smaller cluster is re-cut by the
delay that brings its mean nearest the other's before the pair is projected, so the axes
carry the difference that is left.
"""

from __future__ import annotations

import logging
import multiprocessing
from dataclasses import dataclass
from functools import cached_property, reduce
from itertools import combinations, groupby
from operator import itemgetter

import numpy as np
from scipy import linalg
from scipy.special import gammaln
from tqdm.auto import tqdm

from neurodict.common.jobs import worker_pool
from neurodict.sort import walk
from neurodict.sort.disk import DiskArrays
from neurodict.sort.local import LocalSnippets
from neurodict.sort.neighbourhoods import Neighbourhoods
from neurodict.sort.params import SortParams

#: Values of its delay δ (odd: 0 among them): 0.19 samples apart at 30 kHz. With 9 (0.38
#: apart), a neuron's spikes that the matching placed a sample early were 0.13 samples from
#: the nearest delay, which cost a 200 uV spike tens of noise variances and kept them a unit
#: of their own (docs/benchmarks.md, "Synchronous spikes").
DELAY_GRID_POINTS = 17
#: Snippets whose products are summed in their own precision before the scatter adds them in
#: double (:meth:`Moments.of`): rounding, and the centred block's memory.
MOMENT_ROWS = 4096
#: Snippets of one cluster read in one process when its moments are read across
#: neighbourhoods (a large joined cluster's in pieces, in parallel, their moments joined).
READ_ROWS = 8192

log = logging.getLogger(__name__)


def delay_grid(params: SortParams, fs_hz: float) -> np.ndarray:
    """The delays of "one neuron" in samples: :data:`DELAY_GRID_POINTS` evenly spaced on
    ``±join_max_delay_ms``."""
    most = params.join_max_delay_ms * fs_hz / 1000.0
    return np.linspace(-most, most, DELAY_GRID_POINTS)


@dataclass(frozen=True)
class Moments:
    """What a cluster's Bayes factors read of its whitened snippets ``x_i`` on some channels
    (``D`` = channels x samples, flattened): its spikes per time bin ``n_e`` (E,), their sums
    per bin ``Σ_{i∈e} x_i`` (E, D) and their scatter about their mean ``Σ_i (x_i − x̄)(x_i −
    x̄)'`` (D, D), in double precision (the scatter in single where held: :meth:`single`). Two
    clusters' moments give their union's exactly
    (:meth:`union`): a joined cluster is summarised without reading its snippets again, and a
    pair's cost does not grow with its spikes."""

    counts: np.ndarray
    sums: np.ndarray
    scatter: np.ndarray

    @property
    def n(self) -> float:
        return float(self.counts.sum())

    @cached_property
    def total(self) -> np.ndarray:
        """``Σ_i x_i`` (D,): read several times by every Bayes factor, summed once."""
        return self.sums.sum(0)

    @classmethod
    def of(cls, x: np.ndarray, bins: np.ndarray, n_bins: int) -> Moments:
        """Of snippets `x` (n, M, T) in time bins `bins` (n,) of `n_bins`. Sums and products
        in the snippets' precision, of :data:`MOMENT_ROWS` rows at a time about the mean of
        the first ones (values of the noise's size: no cancellation), added in double; the
        scatter's upper triangle (a symmetric rank-k update)."""
        f = x.reshape(len(x), -1)
        if np.any(np.diff(bins) < 0):  # snippets in time order are in bin order already
            order = np.argsort(bins, kind="stable")
            f, bins = f[order], bins[order]
        D = f.shape[1]
        counts = np.bincount(bins, minlength=n_bins).astype(float)
        ref = f[:MOMENT_ROWS].mean(0, dtype=float).astype(f.dtype)
        sums, upper = np.zeros((n_bins, D)), np.zeros((D, D))
        syrk = linalg.blas.get_blas_funcs("syrk", (f,))
        for i in range(0, len(f), MOMENT_ROWS):
            centred, b = f[i : i + MOMENT_ROWS] - ref, bins[i : i + MOMENT_ROWS]
            present = np.unique(b)
            sums[present] += np.add.reduceat(centred, np.searchsorted(b, present), axis=0)
            upper += syrk(1.0, centred.T)  # centred' centred, upper triangle
        scatter = upper + np.triu(upper, 1).T
        shift = sums.sum(0) / max(len(f), 1)  # the mean less `ref`
        scatter -= len(f) * np.outer(shift, shift)
        return cls(counts, sums + counts[:, None] * ref, scatter)

    @classmethod
    def union(cls, a: Moments, b: Moments) -> Moments:
        """Of the spikes of `a` and `b` together (the same channels and bins)."""
        d = a.total / a.n - b.total / b.n
        between = (a.n * b.n / (a.n + b.n)) * np.outer(d, d)
        return cls(a.counts + b.counts, a.sums + b.sums, a.scatter + b.scatter + between)

    def on(self, channels: np.ndarray, n_samples: int) -> Moments:
        """The same spikes on some of the channels: `channels` (positions among these
        moments' channels of `n_samples` samples each)."""
        E, M, T, c = self.counts.size, self.scatter.shape[0] // n_samples, n_samples, channels
        sums = self.sums.reshape(E, M, T)[:, c].reshape(E, -1)
        scatter = self.scatter.reshape(M, T, M, T)[c][:, :, c].reshape(c.size * T, -1)
        return Moments(self.counts, sums, scatter)

    def delayed(self, U: np.ndarray) -> Moments:
        """The same spikes re-cut by the orthogonal delay operator `U` (T, T) on every
        channel (:func:`neurodict.sort.snippets.delay_operators`)."""
        T = U.shape[0]
        E, M = self.counts.size, self.scatter.shape[0] // T
        sums = np.einsum("ut,emt->emu", U, self.sums.reshape(E, M, T)).reshape(E, -1)
        scatter = (U @ self.scatter.reshape(M, T, M * T)).reshape(M * T, M, T) @ U.T
        return Moments(self.counts, sums, scatter.reshape(M * T, -1))

    def single(self) -> Moments:
        """The same moments with the scatter in single precision (about the cluster's own mean:
        values of the noise's size): what the join holds of every cluster across
        neighbourhoods, half the memory; Bayes factors add them up in double."""
        return Moments(self.counts, self.sums, self.scatter.astype(np.float32))

    def one_bin(self) -> Moments:
        """The same spikes in one time bin."""
        return Moments(
            self.counts.sum(keepdims=True), self.sums.sum(0, keepdims=True), self.scatter
        )


def log_bayes_factor(a: Moments, b: Moments, params: SortParams, delays: np.ndarray) -> float:
    """``log p(one neuron) / p(two clusters)`` of two clusters of whitened snippets (M channels
    x T samples) given by their moments `a` and `b` (:class:`Moments`), on the
    ``params.join_axes`` leading principal axes of the pooled snippets.

    Each cluster keeps its own spread under both hypotheses: the covariance of its spikes,
    the posterior mean of the sorter's inverse-Wishart prior given its scatter about its mean
    over the recording (a neuron's collided spikes scatter several times more widely than
    its clean ones; a drifting neuron cut in two by where its waveform was leaves its drift's
    spread in both pieces).
    The hypotheses differ in the means only: two clusters are two walks, one neuron is one
    walk that both clusters' spikes follow. So a difference of means is weighed against the
    uncertainty of the means, which shrinks with the spikes, not against the spikes' spread:
    a cluster of broad spread does not absorb another neuron's cluster near its mean, as one
    covariance learned from both (their difference becomes spread) would let it. The walks'
    prior is the sorter's (:meth:`neurodict.sort.walk.WalkPrior.isotropic`; steps of
    ``drift_sd`` in units of both clusters' pooled spread). With the covariances given, each
    hypothesis' evidence is a Gaussian integral over the walk (:func:`_walk_evidence`), the
    spikes' own terms common to both; ``Γ(n)`` against ``α Γ(n_a) Γ(n_b)`` is the Dirichlet
    process prior on the partition.

    The smaller cluster (the one of fewer spikes, or of smaller sum when as many) is first
    re-cut by the orthogonal operator of `delays` (S, T, T)
    (:func:`neurodict.sort.snippets.delay_operators` of :func:`delay_grid`) that brings its
    mean nearest the other's: in whitened coordinates the distance of the means is their
    likelihood under the noise, and under "two clusters" the delay changes nothing (a
    cluster's mean is its own), so the evidence is read at the delay it peaks near, on the
    axes of the delayed pair; neither the delay nor the axes depend on the order in which the
    pair is named. ``O(D² (T + P))`` for ``D = M T`` and ``P`` axes, whatever the clusters'
    sizes."""
    if not params.drift:
        a, b = a.one_bin(), b.one_bin()
    a, b = sorted((a, b), key=lambda m: (m.n, float(m.total.sum())), reverse=True)
    T = delays.shape[1]
    M = a.scatter.shape[0] // T
    mean_a, mean_b = (m.total.reshape(M, T) / m.n for m in (a, b))
    nearest = np.argmax(np.einsum("mt,stu,mu->s", mean_a, delays, mean_b))  # least ‖m_a − U m_b‖
    b = b.delayed(delays[nearest])
    n_a, n_b = a.n, b.n
    n = n_a + n_b
    centre = (a.total + b.total) / n
    pooled = np.add(a.scatter, b.scatter, dtype=float)
    for m in (a, b):
        d = m.total / m.n - centre
        pooled += m.n * np.outer(d, d)
    axes = walk.gram_axes(pooled, params.join_axes)
    P = axes.shape[1]
    spread = float(np.vdot(axes, pooled @ axes)) / (n * P)  # about the centre
    prior = walk.WalkPrior.isotropic(
        np.zeros(P), spread, params.drift_sd**2, a.counts.size, params.priors
    )
    extra = prior.nu0 - P - 1  # the inverse-Wishart mean's degrees of freedom beyond the data's

    def on_axes(m: Moments) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`m`'s sums per bin about the centre (E, P), its covariance and its scatter about its
        mean (P, P) on the axes."""
        sums = m.sums @ axes - m.counts[:, None] * (centre @ axes)
        within = axes.T @ m.scatter @ axes
        return sums, (prior.W0_inv + within) / (m.n - 1 + extra), within

    (sums_a, cov_a, within_a), (sums_b, cov_b, within_b) = on_axes(a), on_axes(b)
    cov_walk = (prior.W0_inv + within_a + within_b) / (n - 2 + extra)
    inv_a, inv_b = np.linalg.inv(cov_a), np.linalg.inv(cov_b)
    # each cluster's information about its walk per bin: counts·Σ⁻¹ and Σ⁻¹·sums
    info_a, info_b = a.counts[:, None, None] * inv_a, b.counts[:, None, None] * inv_b
    pull_a, pull_b = sums_a @ inv_a, sums_b @ inv_b
    apart, apart_b, one = _walk_evidence(
        np.stack([info_a, info_b, info_a + info_b]),
        np.stack([pull_a, pull_b, pull_a + pull_b]),
        cov_walk,
        prior,
    )
    log_prior = gammaln(n) - np.log(params.priors.alpha) - gammaln(n_a) - gammaln(n - n_a)
    return float(one - apart - apart_b + log_prior)


def _walk_evidence(info, pull, cov_walk, prior: walk.WalkPrior) -> np.ndarray:
    """``log ∫ Π_e exp(−½ μ_e'J_e μ_e + h_e'μ_e) p(μ) dμ`` of a batch of walks ``μ_e`` (P,)
    over E bins: the likelihood's information `info` ``J_e`` (K, E, P, P) and `pull` ``h_e``
    (K, E, P) given, the walk's prior ``μ_1 ~ N(0, Σ/κ_0)``, ``μ_e − μ_{e−1} ~ N(0, q Σ)`` with
    `cov_walk` ``Σ`` (P, P) and ``κ_0``, ``q`` of `prior`: (K,). A Kalman filter over the bins
    with spikes (the steps across empty bins added up)."""
    K, E, P = pull.shape
    mean, cov = np.zeros((K, P)), np.broadcast_to(cov_walk / prior.kappa0, (K, P, P))
    total = np.zeros(K)
    last = 0
    for e in np.flatnonzero(info.any(axis=(0, 2, 3))):
        cov = cov + (e - last) * prior.q * cov_walk
        last = e
        cov_inv = np.linalg.inv(cov)
        precision = cov_inv + info[:, e]
        shift = np.einsum("kpq,kq->kp", cov_inv, mean) + pull[:, e]
        new_cov = np.linalg.inv(precision)
        new_mean = np.einsum("kpq,kq->kp", new_cov, shift)
        total += 0.5 * (
            np.einsum("kp,kp->k", shift, new_mean) - np.einsum("kp,kp->k", mean, shift - pull[:, e])
        )
        total -= 0.5 * (np.linalg.slogdet(precision)[1] + np.linalg.slogdet(cov)[1])
        mean, cov = new_mean, new_cov
    return total


def join_units(
    x: LocalSnippets,
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
    own channels: each cluster's moments read once, a joined cluster's their union), then
    across adjacent neighbourhoods. It stops where the one-stage ascent stops, at a partition
    in which no pair of the same or adjacent neighbourhoods is favoured as one neuron; the
    order only leaves each neighbourhood's many small pairs out of the comparisons across the
    probe (on a 64-channel probe the chains hand over some 40 clusters each). The
    neighbourhoods of the first stage, and the pairs of the second on the channels they share,
    are computed in `n_jobs` processes (the same values in any number); `progress` shows the
    pairs compared and the clusters left. A pair is compared on the channels near both only
    when all its snippets `x` hold them (:meth:`_Partition.channels`); otherwise it stays
    apart.
    """
    rows = {i: np.flatnonzero(clusters == k) for i, k in enumerate(used)}
    part = _Partition(rows, {i: {int(centre[i])} for i in range(used.size)}, x)
    bar = tqdm(desc="join", unit="pair", disable=not progress, leave=False)
    with _Scorer(x, bins, n_bins, params, delays, n_jobs) as scorer:
        within = [
            (nb.channels[c], {i: rows[i] for i in part.rows if centre[i] == c})
            for c in np.unique(centre)
        ]
        for groups, n_pairs in scorer.map(_join_within, within):
            for group in groups:
                for j in group[1:]:
                    part.join(group[0], j)
            bar.total = (bar.total or 0) + n_pairs
            bar.update(n_pairs)
            bar.set_postfix(clusters=len(part.rows))

        reach_moments = _FiledMoments()  # cluster -> its moments on its reach

        def score(keys: list) -> list[float]:
            """Bayes factors of `keys` from each cluster's moments on its reach (read once,
            in the processes), cut to each pair's channels; the pairs on the same channels
            computed together, two sets of channels per process at a time (the cut moments'
            memory)."""
            on = {}
            for k in keys:
                on.setdefault(tuple(part.channels(nb, *k)), []).append(k)
            values = dict.fromkeys(on.pop((), []), -np.inf)  # not comparable: apart
            new = sorted(
                {i for pairs in on.values() for k in pairs for i in k} - reach_moments.keys()
            )
            pieces = [
                (i, piece)
                for i in new
                for piece in np.array_split(part.rows[i], -(-part.rows[i].size // READ_ROWS))
            ]
            tasks = [(piece, part.reach(nb, i)) for i, piece in pieces]
            read = zip((i for i, _ in pieces), scorer.map(_moments_of, tasks), strict=True)
            for i, parts in groupby(read, key=itemgetter(0)):  # each cluster's pieces in turn
                # held in single precision as it is read: every cluster's double scatter at
                # once (a 384-channel shank's ten minutes) was 1.7 GB
                reach_moments[i] = reduce(Moments.union, (m for _, m in parts)).single()
            sets, at_once = list(on.items()), 2 * n_jobs
            for b in range(0, len(sets), at_once):
                batch = sets[b : b + at_once]
                needed = {i for _, pairs in batch for k in pairs for i in k}
                filed = {i: reach_moments[i] for i in needed}  # each read from its file once
                tasks = [
                    (
                        chans,
                        pairs,
                        {
                            i: _cut(part.reach(nb, i), filed[i], chans, x.shape[2])
                            for i in {i for k in pairs for i in k}
                        },
                    )
                    for chans, pairs in batch
                ]
                del filed
                for (_, pairs, _), scores in zip(tasks, scorer.map(_scores_of, tasks), strict=True):
                    values.update(zip(pairs, scores, strict=True))
            bar.total = (bar.total or 0) + len(keys)
            bar.update(len(keys))
            bar.set_postfix(clusters=len(part.rows))
            return [values[k] for k in keys]

        def forget(i: int, j: int) -> None:  # the joined cluster's reach is both of theirs
            del reach_moments[i], reach_moments[j]

        def near(i: int, j: int) -> bool:
            return any(nb.adjacent[a, b] for a in part.homes[i] for b in part.homes[j])

        across = [
            k
            for k in combinations(part.rows, 2)
            if near(*k) and part.homes[k[0]] != part.homes[k[1]]
        ]
        part.ascend(dict(zip(across, score(across), strict=True)), near, score, forget)
    bar.close()
    joined = np.unique([part.unit[i] for i in range(used.size)], return_inverse=True)[1]
    log.info(
        "join: %d clusters into %d units (%d pairs' Bayes factors)",
        used.size,
        int(joined.max(initial=-1)) + 1,
        bar.total or 0,
    )
    return joined


class _FiledMoments:
    """Clusters' :class:`Moments` by key, each scatter (D, D) in a file
    (:class:`neurodict.sort.disk.DiskArrays`), read back as a cluster's moments are asked
    for; counts and sums in memory. Across the neighbourhoods of a 384-channel shank's ten
    minutes the join held 0.7 GB of scatters at once."""

    def __init__(self):
        self._scatters, self._rest = DiskArrays(), {}

    def __setitem__(self, i, moments: Moments) -> None:
        self._scatters[i] = moments.scatter
        self._rest[i] = moments.counts, moments.sums

    def __getitem__(self, i) -> Moments:
        return Moments(*self._rest[i], self._scatters[i])

    def __delitem__(self, i) -> None:
        del self._scatters[i], self._rest[i]

    def keys(self):
        return self._rest.keys()


class _Partition:
    """Clusters joined so far: the snippet rows of each (keyed by its first cluster) and the
    neighbourhoods it came from; `unit` maps every cluster to its key. `x`: the snippets
    (:class:`neurodict.sort.local.LocalSnippets`), read on the channels they hold."""

    def __init__(self, rows: dict, homes: dict, x: LocalSnippets):
        self.rows, self.homes, self.x = rows, homes, x
        self.unit = {i: i for i in rows}
        self.members = {i: [i] for i in rows}
        self.reaches: dict = {}  # cluster -> its reach, until it joins

    def nearby(self, nb: Neighbourhoods, i: int) -> np.ndarray:
        """The channels near a cluster: those of the neighbourhoods it came from and of every
        neighbourhood adjacent to one of them."""
        return self._reach(nb, i)[0]

    def reach(self, nb: Neighbourhoods, i: int) -> np.ndarray:
        """The channels near a cluster that all its snippets hold: what its moments are read
        on (all of them unless it was joined across neighbourhoods further apart than its
        snippets reach)."""
        return self._reach(nb, i)[1]

    def _reach(self, nb: Neighbourhoods, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in self.reaches:
            near = np.flatnonzero(nb.adjacent[sorted(self.homes[i])].any(0))
            channels = np.unique(np.concatenate([nb.channels[c] for c in near]))
            self.reaches[i] = channels, np.intersect1d(channels, self.x.held(self.rows[i]))
        return self.reaches[i]

    def channels(self, nb: Neighbourhoods, i: int, j: int) -> np.ndarray:
        """The channels of a pair: those of every neighbourhood either came from that are near
        both (a cluster joined across several neighbourhoods is compared with a cluster at
        one end of them where that cluster has its spikes); none when some snippet of the
        pair does not hold them all (a pair that cannot be compared where both clusters'
        spikes are stays apart)."""
        homes = np.unique(np.concatenate([nb.channels[c] for c in self.homes[i] | self.homes[j]]))
        wanted = np.intersect1d(homes, np.intersect1d(self.nearby(nb, i), self.nearby(nb, j)))
        held = np.intersect1d(self.reach(nb, i), self.reach(nb, j))
        return wanted if np.isin(wanted, held).all() else wanted[:0]

    def join(self, i: int, j: int) -> None:
        self.rows[i] = np.sort(np.r_[self.rows[i], self.rows.pop(j)])
        self.homes[i] |= self.homes.pop(j)
        self.reaches.pop(i, None)
        self.reaches.pop(j, None)
        for k in self.members[j]:
            self.unit[k] = i
        self.members[i] += self.members.pop(j)

    def ascend(self, scores: dict, allowed, score, joined=None) -> None:
        """Join the pair of largest score while it is positive, then score the joined cluster
        against every other one `allowed` (``allowed(i, j)``) by ``score(pairs)``; `joined`
        (``joined(i, j)``), if given, is told of each join before it happens."""
        while scores:
            (i, j), best = max(scores.items(), key=lambda kv: kv[1])
            if best <= 0:
                return
            if joined is not None:
                joined(i, j)
            self.join(i, j)
            scores = {k: v for k, v in scores.items() if i not in k and j not in k}
            pairs = [(min(i, k), max(i, k)) for k in self.rows if k != i and allowed(i, k)]
            scores.update(zip(pairs, score(pairs), strict=True))


class _Scorer:
    """Runs the join's tasks on clusters of `x` in `n_jobs` forked processes that share `x`
    (read, never copied) when above one and the platform can fork (else in this process)."""

    def __init__(self, x, bins, n_bins, params: SortParams, delays, n_jobs: int):
        self.pool = None
        _SHARED.update(x=x, bins=bins, n_bins=n_bins, params=params, delays=delays)
        if n_jobs > 1 and "fork" in multiprocessing.get_all_start_methods():
            self.pool = worker_pool(n_jobs, fork=True)

    def map(self, task, items: list):
        """``task(item)`` for each of `items`, in order, as they complete in order."""
        if self.pool is None or len(items) < 2:
            return map(task, items)
        return self.pool.map(task, items)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown()
        _SHARED.clear()


_SHARED: dict = {}  # what the scoring processes read: set before they fork


def _moments(rows: dict, chans: np.ndarray) -> dict:
    """The :class:`Moments` of each cluster's snippet rows `rows` (key -> rows) on `chans`:
    read :data:`MOMENT_ROWS` rows at a time, their moments united (a cluster's snippets are
    never copied whole)."""
    x, bins, n_bins = _SHARED["x"], _SHARED["bins"], _SHARED["n_bins"]

    def of(r: np.ndarray) -> Moments:
        parts = (r[i : i + MOMENT_ROWS] for i in range(0, r.size, MOMENT_ROWS))
        return reduce(Moments.union, (Moments.of(x.take(p, chans), bins[p], n_bins) for p in parts))

    return {i: of(r) for i, r in rows.items()}


def _bayes_factors(moments: dict, pairs: list) -> list[float]:
    params, delays = _SHARED["params"], _SHARED["delays"]
    return [log_bayes_factor(moments[i], moments[j], params, delays) for i, j in pairs]


def _join_within(task) -> tuple[list[list[int]], int]:
    """The first stage in one neighbourhood (its channels, its clusters' rows): the groups of
    clusters joined (each led by its first) and the number of pairs compared."""
    chans, rows = task
    moments = _moments(rows, chans)
    n_pairs = 0

    def score(pairs):
        nonlocal n_pairs
        n_pairs += len(pairs)
        return _bayes_factors(moments, pairs)

    def joined(i, j):
        moments[i] = Moments.union(moments[i], moments.pop(j))

    part = _Partition(dict(rows), {i: {0} for i in rows}, _SHARED["x"])
    pairs = list(combinations(sorted(rows), 2))
    part.ascend(dict(zip(pairs, score(pairs), strict=True)), lambda i, j: True, score, joined)
    groups = {}
    for i, leader in sorted(part.unit.items()):
        groups.setdefault(leader, []).append(i)
    return list(groups.values()), n_pairs


def _moments_of(task) -> Moments:
    """The :class:`Moments` of one cluster's snippet rows on some channels: (rows, channels)."""
    rows, chans = task
    return _moments({0: rows}, chans)[0]


def _cut(reach: np.ndarray, moments: Moments, chans: np.ndarray, n_samples: int) -> Moments:
    """`moments` on `reach` cut to `chans` (among them)."""
    return moments.on(np.searchsorted(reach, chans), n_samples)


def _scores_of(task) -> list[float]:
    """Bayes factors of pairs of clusters given their moments on the pairs' channels:
    (channels, pairs, moments)."""
    _, pairs, moments = task
    return _bayes_factors(moments, pairs)
