"""Merge moves: two clusters whose spikes the model cannot tell apart become one.

Separation is the ``d'`` of the spikes' log-likelihood ratios, with a spread and a dip test
(drift-aware: each cluster's epoch means are removed first).
"""

from __future__ import annotations

import numpy as np

from neurodict.sort.model import Data, Sampler
from neurodict.sort.params import SortParams


def separation(
    xa: np.ndarray, xb: np.ndarray, ra: np.ndarray, rb: np.ndarray
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """How distinct two sets of whitened snippets are along the line joining their means.

    Returns ``d'`` (distance of the projected means over their pooled SD), the ratio of the
    larger SD of the projected residuals `ra`, `rb` (each snippet less its epoch's mean, so
    that drift does not count as spread) to the smaller, and the two projections (for
    :func:`dip`).
    """
    u = xa.mean(0) - xb.mean(0)
    u /= np.linalg.norm(u) + 1e-12
    pa, pb = xa @ u, xb @ u
    sa, sb = pa.std() + 1e-12, pb.std() + 1e-12
    dprime = float((pa.mean() - pb.mean()) / np.sqrt(0.5 * (sa**2 + sb**2)))
    qa, qb = (ra @ u).std() + 1e-12, (rb @ u).std() + 1e-12
    return dprime, float(max(qa, qb) / min(qa, qb)), pa, pb


def _less_epoch_means(x: np.ndarray, epoch: np.ndarray) -> np.ndarray:
    """Each row of `x` less the mean of its epoch's rows."""
    _, inverse, counts = np.unique(epoch, return_inverse=True, return_counts=True)
    sums = np.zeros((counts.size, x.shape[1]))
    np.add.at(sums, inverse, x)
    return x - sums[inverse] / counts[inverse, None]


def dip(pa: np.ndarray, pb: np.ndarray, n_grid: int = 64) -> float:
    """The lowest density of two projections between their medians over the lower of the two
    side peaks (about 1 for one unimodal cloud split in two, near 0 for two units).

    The density is a Gaussian kernel estimate (Silverman's bandwidth), which stays smooth for
    the few tens of spikes a cluster may hold in one epoch, where a histogram shows empty bins.
    """
    both = np.r_[pa, pb]
    grid = np.linspace(*np.percentile(both, [1, 99]), n_grid)
    bandwidth = 1.06 * both.std() * both.size**-0.2 + 1e-12
    density = np.exp(-0.5 * ((grid[:, None] - both[None]) / bandwidth) ** 2).sum(1)
    lo, hi = sorted((np.median(pa), np.median(pb)))
    between = (grid >= lo) & (grid <= hi)
    left, right = grid <= lo, grid >= hi
    if not (between.any() and left.any() and right.any()):
        return 1.0
    return float(
        density[between].min() / max(min(density[left].max(), density[right].max()), 1e-12)
    )


def dprime_if_mergeable(xa, ea, xb, eb, n_epochs: int, params: SortParams) -> float:
    """The smallest ``d'`` at which two sets of flattened snippets (epochs `ea`, `eb`) pass the
    merge test, over the whole recording or within two adjacent epochs (where the pieces of a
    unit whose waveform drifted meet); ``inf`` when they never pass.

    The test: projected means under ``merge_dprime`` pooled SDs apart, similar spreads about
    their epoch means (SD ratio under ``merge_spread_ratio``: a broad cluster of overlapping
    spikes or noise never absorbs a unit, while a drifting unit's pieces qualify) and no dip
    between them (ratio over ``merge_dip``)."""
    best = np.inf
    ra, rb = _less_epoch_means(xa, ea), _less_epoch_means(xb, eb)
    windows = [None] + [(e, e + 1) for e in range(n_epochs - 1)]
    for w in windows:
        ia = np.ones(ea.size, bool) if w is None else np.isin(ea, w)
        ib = np.ones(eb.size, bool) if w is None else np.isin(eb, w)
        if ia.sum() < 5 or ib.sum() < 5:
            continue
        dprime, ratio, pa, pb = separation(xa[ia], xb[ib], ra[ia], rb[ib])
        if (
            dprime < min(params.merge_dprime, best)
            and ratio < params.merge_spread_ratio
            and dip(pa, pb) > params.merge_dip
        ):
            best = dprime
    return best


def merge_move(sampler: Sampler, data: Data, params: SortParams) -> int:
    """Merge pairs of clusters the data cannot tell apart (:func:`dprime_if_mergeable`),
    least separated first; each cluster merges at most once per move. Returns the number of
    merges."""
    st = sampler.state
    x = data.x.reshape(data.x.shape[0], -1)
    occupied = np.flatnonzero(np.bincount(st.labels, minlength=sampler.H) >= 5)
    scored = []
    for i, a in enumerate(occupied):
        for b in occupied[i + 1 :]:
            ia, ib = st.labels == a, st.labels == b
            d = dprime_if_mergeable(
                x[ia], data.epoch[ia], x[ib], data.epoch[ib], data.n_epochs, params
            )
            if np.isfinite(d):
                scored.append((d, a, b))
    done: set = set()
    merged = 0
    for _, a, b in sorted(scored):
        if a in done or b in done:
            continue
        st.labels[st.labels == b] = a
        done |= {a, b}
        merged += 1
    if merged:
        sampler._sample_clusters(st)
    return merged


def residual_spread(x: np.ndarray, means: np.ndarray) -> float:
    """Median over spikes of the mean squared residual per whitened coordinate about the
    spike's epoch mean (`means`, one row per snippet) scaled to its amplitude: about 1 for a
    single unit in white noise, however it drifts and whatever its amplitude jitter, and for
    a unit with a minority of overlapping spikes; a mixture of units gives more."""
    if len(x) < 2:
        return np.inf
    x, means = x.reshape(len(x), -1), means.reshape(len(x), -1)
    scale = np.einsum("id,id->i", x, means) / np.maximum(np.einsum("id,id->i", means, means), 1e-12)
    return float(np.median(((x - scale[:, None] * means) ** 2).mean(1)))
