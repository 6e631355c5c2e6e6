"""Split–merge Metropolis–Hastings moves on the sampler's labels (MODELS.md §1, "The model
decides").

The target is the labels' conditional with the cluster parameters and the dHDP component
weights integrated out, given the features ``s`` (atoms in use), the components ``r`` and the
global weights ``β``::

    p(c | s, r, β) ∝ Π_j Π_h Γ(αβ_h + n_jh) / Γ(αβ_h) · Π_h Π_m p(S_{h,m})

(``n_jh`` spikes of component ``j`` in cluster ``h``; ``p(S_{h,m})`` the matrix-t marginal of
:mod:`neurodict.sort.walk`), and zero for labels under which two spikes closer than ``Δ_ref``
share a cluster. A move picks an ordered pair of spikes ``(i, j)`` at random. If they share a
cluster, it proposes to split it: ``j`` moves to an empty cluster drawn uniformly, and every
other spike of the cluster follows ``i`` with probability ``p_k`` (below), independently. If they
do not, it proposes to merge ``j``'s cluster into ``i``'s; the reverse split must draw ``j``'s
cluster among the empty ones and the present partition, which gives the proposal ratio. The
allocation probabilities ``p_k`` depend only on the merged set and the pair (two-means started
at ``s_i`` and ``s_j`` and run ``two_means_iterations`` times, then a logistic of the squared
distances over the pooled within-side variance, kept in ``[min_allocation, 1 − min_allocation]``
so that every split can be proposed), so a split and the merge that undoes it see the same ones.
These two settings (``sorting.split_merge_two_means_iterations`` and
``sorting.split_merge_min_allocation``) shape the proposals only: the moves keep the same target
whatever their values. The sampler then draws
the cluster parameters and weights again from their conditionals (a partially collapsed Gibbs
step), so the chain keeps the joint posterior.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammaln

from neurodict.sort import kernels, walk


@dataclass
class Target:
    """What the labels are conditioned on: features `s` (n, M, K) of the atoms in use, epochs
    (n,) of the walk (zeros when the means do not drift), dHDP components `r` (n,), ``αβ``
    (H,), spike samples (n,) sorted, ``Δ_ref`` in samples, and the spikes' precision scales
    `u` (n,) of Student-t clusters (None: Gaussian). `current` keeps :meth:`log_cluster`
    of the clusters of the labels that :func:`move` changes (those labels must change only
    through it while the target is used)."""

    s: np.ndarray
    epoch: np.ndarray
    r: np.ndarray
    alpha_beta: np.ndarray
    n_components: int
    prior: walk.WalkPrior
    samples: np.ndarray
    refractory_samples: int
    u: np.ndarray | None = None
    current: dict[int, float] = field(default_factory=dict, repr=False)

    def log_current(self, labels: np.ndarray, h: int) -> float:
        """:meth:`log_cluster` of cluster `h` of `labels`, computed once until a move changes it."""
        if h not in self.current:
            self.current[h] = self.log_cluster(np.flatnonzero(labels == h), h)
        return self.current[h]

    def log_cluster(self, idx: np.ndarray, h: int) -> float:
        """The factor of the target for cluster `h` holding spikes `idx`."""
        return self.log_clusters([idx], [h])[0]

    def log_clusters(self, parts: list[np.ndarray], hs: list[int]) -> list[float]:
        """:meth:`log_cluster` of each set of spikes ``parts[j]`` as cluster ``hs[j]``, the
        marginals of those holding spikes in one batch."""
        logs = []
        for idx, h in zip(parts, hs, strict=True):
            n_j = np.bincount(self.r[idx], minlength=self.n_components)
            ab = self.alpha_beta[h]
            logs.append(float(np.sum(gammaln(ab + n_j) - gammaln(ab))))
        held = [j for j, idx in enumerate(parts) if idx.size]
        if held:
            u = self.u
            stats = walk.Stats.stacked(
                [
                    walk.Stats.of(
                        self.s[parts[j]],
                        self.epoch[parts[j]],
                        self.prior.n_epochs,
                        None if u is None else u[parts[j]],
                    )
                    for j in held
                ]
            )
            for j, m in zip(held, walk.log_marginal(self.prior, stats).sum(-1), strict=True):
                logs[j] += float(m)
        return logs

    def log_target(self, labels: np.ndarray) -> float:
        """``log p(c | s, r, β)`` up to a constant (``-inf`` under a refractory conflict)."""
        if any(self.conflict(np.flatnonzero(labels == h)) for h in np.unique(labels)):
            return -np.inf
        return sum(
            self.log_cluster(np.flatnonzero(labels == h), h) for h in range(self.alpha_beta.size)
        )

    def conflict(self, idx: np.ndarray) -> bool:
        """Whether two of the spikes `idx` lie closer than ``Δ_ref``."""
        t = np.sort(self.samples[idx])
        return bool(np.any(np.diff(t) < self.refractory_samples))


def _log_q(p: np.ndarray, with_a: np.ndarray, a: int, b: int) -> float:
    """Log probability of the split `with_a` under allocation `p` (the pair excluded)."""
    chosen = np.where(with_a, p, 1 - p)
    chosen[[a, b]] = 1.0
    return float(np.log(chosen).sum())


def move(
    rng: np.random.Generator,
    target: Target,
    labels: np.ndarray,
    n_clusters: int,
    *,
    two_means_iterations: int,
    min_allocation: float,
    neighbours: Callable[[int], np.ndarray] | None = None,
) -> str:
    """One split or merge proposal on `labels` (updated in place when accepted), its
    allocation shaped by `two_means_iterations` and `min_allocation` (:func:`allocation`).
    Returns ``"split"``, ``"merge"`` or ``""`` (rejected, or nothing to propose).

    The pair is drawn uniformly, or, with probability 1/2 when `neighbours` is given
    (``neighbours(i)``: spike i's `k` nearest neighbours, (k,)), as a spike ``i`` and one of
    them, ``j`` (in the features, whatever the labels): a small cluster beside a large one is
    then proposed for merging as often as its spikes are drawn, not once in many thousand
    uniform pairs. The pair's probability depends on the data only, so it is the same for a
    split and the merge that undoes it and leaves the acceptance ratio as it is.
    """
    shape = {"two_means_iterations": two_means_iterations, "min_allocation": min_allocation}
    n = labels.size
    if n < 2:
        return ""
    if neighbours is not None and rng.random() < 0.5:
        i = int(rng.integers(n))
        near = neighbours(i)
        j = int(near[rng.integers(near.size)])
        if j == i:  # a spike among its own neighbours (duplicate rows): no pair, no move
            return ""
    else:
        i, j = rng.choice(n, 2, replace=False)
    ci, cj = labels[i], labels[j]
    occupied = np.bincount(labels, minlength=n_clusters) > 0
    if ci == cj:
        empty = np.flatnonzero(~occupied)
        if empty.size == 0:
            return ""
        idx = np.flatnonzero(labels == ci)
        a, b = np.searchsorted(idx, i), np.searchsorted(idx, j)
        p = kernels.allocation(target.s[idx].reshape(idx.size, -1), a, b, **shape)
        with_a = rng.random(idx.size) < p
        with_a[[a, b]] = True, False
        new = int(rng.choice(empty))
        log_q = _log_q(p, with_a, a, b) - np.log(empty.size)
        log_a, log_b = target.log_clusters([idx[with_a], idx[~with_a]], [ci, new])
        log_accept = (
            log_a
            + log_b
            - target.log_current(labels, ci)
            - target.log_cluster(idx[:0], new)
            - log_q
        )
        if np.log(rng.random()) < log_accept:
            labels[idx[~with_a]] = new
            target.current |= {int(ci): log_a, int(new): log_b}
            return "split"
        return ""
    idx = np.flatnonzero((labels == ci) | (labels == cj))
    if target.conflict(idx):
        return ""
    a, b = np.searchsorted(idx, i), np.searchsorted(idx, j)
    p = kernels.allocation(target.s[idx].reshape(idx.size, -1), a, b, **shape)
    with_a = labels[idx] == ci
    log_q = _log_q(p, with_a, a, b) - np.log(np.sum(~occupied) + 1)
    log_merged, log_empty = target.log_cluster(idx, ci), target.log_cluster(idx[:0], cj)
    log_accept = (
        log_merged
        + log_empty
        - target.log_current(labels, ci)
        - target.log_current(labels, cj)
        + log_q
    )
    if np.log(rng.random()) < log_accept:
        labels[idx] = ci
        target.current |= {int(ci): log_merged, int(cj): log_empty}
        return "merge"
    return ""
