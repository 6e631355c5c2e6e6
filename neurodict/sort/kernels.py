"""The sorter's sequential inner loops: numba kernels, each with a plain-numpy twin.

Labels under the refractory constraint are updated in *colour classes*: spikes of one group are
sorted by time, a run is a maximal chain whose consecutive gaps are under ``Δ_ref``, and a spike's
colour is its position in its run modulo ``q`` (the largest number of spikes inside one ``Δ_ref``
window). Two spikes of one colour are always ``Δ_ref`` or more apart, so a whole class can be
updated at once given the others: the classes are swept in order, and within a class the kernel
walks spikes in time order while the twin updates them as one array operation. Both see the same
uniform draws and give the same labels (tests/test_sorter_kernels.py).

Masked labels: a spike may not take the label of any neighbour closer than ``Δ_ref`` that already
holds one (label ``-1`` means none yet). A spike blocked from its best cluster goes to the next
best; greedy mode (no uniforms) takes the best unblocked cluster.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.special import expit

from neurodict.sort.epoch_sums import EpochSums
from neurodict.sort.kbp import consider_log_odds
from neurodict.sort.local import LocalSnippets


def refractory_neighbours(
    times: np.ndarray, refractory_samples: int
) -> tuple[np.ndarray, np.ndarray]:
    """For time-sorted `times`, the index range ``[lo, hi)`` of spikes closer than Δ_ref."""
    lo = np.searchsorted(times, times - refractory_samples, side="right")
    hi = np.searchsorted(times, times + refractory_samples, side="left")
    return lo, hi


def colour_classes(times: np.ndarray, refractory_samples: int) -> list[np.ndarray]:
    """Indices of time-sorted `times` split into classes with no two spikes closer than Δ_ref."""
    n = times.size
    if n == 0:
        return []
    lo, hi = refractory_neighbours(times, refractory_samples)
    q = int((hi - np.arange(n)).max())
    new_run = np.r_[True, np.diff(times) >= refractory_samples]
    run_start = np.maximum.accumulate(np.where(new_run, np.arange(n), 0))
    colour = (np.arange(n) - run_start) % max(q, 1)
    return [np.flatnonzero(colour == k) for k in range(max(q, 1)) if np.any(colour == k)]


@numba.njit(cache=True)
def _labels_nb(logp, u, labels, lo, hi, order, starts):
    n_classes = starts.size - 1
    h = logp.shape[1]
    p = np.empty(h)
    for k in range(n_classes):
        for idx in range(starts[k], starts[k + 1]):
            i = order[idx]
            top = -np.inf
            for c in range(h):
                p[c] = logp[i, c]
            for j in range(lo[i], hi[i]):
                if j != i and labels[j] >= 0:
                    p[labels[j]] = -np.inf
            for c in range(h):
                if p[c] > top:
                    top = p[c]
            if top == -np.inf:
                labels[i] = -1
                continue
            if u.size == 0:
                for c in range(h):
                    if p[c] == top:
                        labels[i] = c
                        break
                continue
            total = 0.0
            for c in range(h):
                p[c] = np.exp(p[c] - top)
                total += p[c]
            target = u[i] * total
            acc = 0.0
            labels[i] = h - 1
            for c in range(h):
                acc += p[c]
                if acc > target:
                    labels[i] = c
                    break
    return labels


def masked_labels(
    logp: np.ndarray,
    classes: list[np.ndarray],
    lo: np.ndarray,
    hi: np.ndarray,
    labels: np.ndarray,
    u: np.ndarray | None = None,
) -> np.ndarray:
    """Labels drawn (or, with ``u=None``, chosen greedily) under the refractory mask (numba).

    Parameters
    ----------
    logp : ndarray (n, H)
        Unnormalised log probability of each label for each spike (greedy: any increasing
        function of it, such as the probability itself; float32 or float64).
    classes : list of ndarray
        :func:`colour_classes`, swept in order.
    lo, hi : ndarray (n,)
        :func:`refractory_neighbours`.
    labels : ndarray (n,) int64
        Current labels (``-1``: none yet); updated in place and returned.
    u : ndarray (n,), optional
        Uniform draws in [0, 1); greedy choice when omitted.
    """
    order = np.concatenate(classes) if classes else np.zeros(0, np.int64)
    starts = np.r_[0, np.cumsum([c.size for c in classes])].astype(np.int64)
    u = np.zeros(0) if u is None else np.asarray(u, np.float64)
    return _labels_nb(np.ascontiguousarray(logp), u, labels, lo, hi, order.astype(np.int64), starts)


def masked_labels_numpy(logp, classes, lo, hi, labels, u=None):
    """The numpy twin of :func:`masked_labels` (one array operation per colour class)."""
    n, h = logp.shape
    span = int((hi - lo).max()) if n else 0
    for cls in classes:
        p = logp[cls].astype(np.float64, copy=True)
        for d in range(span):
            j = lo[cls] + d
            ok = j < hi[cls]
            j = np.where(ok, j, 0)
            neighbour = labels[j]
            ok &= (j != cls) & (neighbour >= 0)
            p[np.flatnonzero(ok), neighbour[ok]] = -np.inf
        top = p.max(axis=1)
        blocked = top == -np.inf
        if u is None:
            choice = np.argmax(p, axis=1)
        else:
            w = np.exp(p - np.where(blocked, 0.0, top)[:, None])
            cum = np.cumsum(w, axis=1)
            target = u[cls] * cum[:, -1]
            choice = np.minimum((cum <= target[:, None]).sum(axis=1), h - 1)
        labels[cls] = np.where(blocked, -1, choice)
    return labels


@numba.njit(cache=True)
def _tables_nb(n, concentration, u):
    m = np.zeros(n.shape, np.int64)
    for j in range(n.shape[0]):
        for c in range(n.shape[1]):
            for t in range(n[j, c]):
                if u[j, c, t] < concentration[c] / (concentration[c] + t):
                    m[j, c] += 1
    return m


def table_counts(n: np.ndarray, concentration: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Antoniak auxiliary table counts ``m_jc = Σ_t 1[u_jct < αβ_c / (αβ_c + t)]`` (numba).

    `n` (J, H) counts of spikes per dHDP component and cluster, `concentration` (H,) ``α β``,
    `u` (J, H, max n) uniforms.
    """
    return _tables_nb(n.astype(np.int64), concentration.astype(np.float64), u)


def table_counts_numpy(n, concentration, u):
    """The numpy twin of :func:`table_counts`."""
    t = np.arange(u.shape[2])
    accept = u < concentration[None, :, None] / (concentration[None, :, None] + t)
    return (accept & (t < n[:, :, None])).sum(axis=2)


@numba.njit(cache=True)
def _cluster_products_nb(col, by_atom, columns, cluster, weight, n_clusters):
    N, M = col.shape
    out = np.zeros((n_clusters, M, columns.size))
    for j in range(columns.size):
        s_j = by_atom[columns[j]]  # (N, M), contiguous: each column read once
        for i in range(N):
            h, w = cluster[i], weight[i]
            for m in range(M):
                out[h, m, j] += w * col[i, m] * s_j[i, m]
    return out


def cluster_products(
    col: np.ndarray,
    by_atom: np.ndarray,
    columns: np.ndarray,
    cluster: np.ndarray,
    weight: np.ndarray,
    n_clusters: int,
) -> np.ndarray:
    """``Σ_{i: cluster_i = h} weight_i col_{i,m} s_{i,m,columns_j}`` (numba): the products of a
    feature column `col` (N, M) with the feature columns `columns` of ``s``, given atom-major
    (`by_atom` (K, N, M), ``s`` transposed: a column's values contiguous, so a call reads the
    columns it uses and no others), summed per cluster (`cluster` (N,) in
    ``0..n_clusters-1``, `weight` (N,)): (n_clusters, M, J), with no (N, M, J) array."""
    return _cluster_products_nb(
        np.ascontiguousarray(col, np.float64),
        np.ascontiguousarray(by_atom, np.float64),
        np.asarray(columns, np.int64),
        np.asarray(cluster, np.int64),
        np.asarray(weight, np.float64),
        n_clusters,
    )


def cluster_products_numpy(col, by_atom, columns, cluster, weight, n_clusters):
    """The numpy twin of :func:`cluster_products`."""
    out = np.zeros((n_clusters,) + col.shape[1:] + (len(columns),))
    s = by_atom[columns].transpose(1, 2, 0)  # (N, M, J)
    np.add.at(out, cluster, (weight[:, None] * col)[:, :, None] * s)
    return out


@numba.njit(cache=True)
def _cluster_moments_nb(s, columns, cluster, epoch, weight, n_clusters, n_epochs):
    N, M = s.shape[:2]
    J = columns.size
    sums = np.zeros((n_clusters, M, n_epochs, J))
    scatter = np.zeros((n_clusters, M, J, J))
    v = np.empty(J)
    for i in range(N):
        h, e, w = cluster[i], epoch[i], weight[i]
        for m in range(M):
            for j in range(J):
                v[j] = s[i, m, columns[j]]
            for j in range(J):
                c = w * v[j]
                sums[h, m, e, j] += c
                for k in range(j + 1):
                    scatter[h, m, j, k] += c * v[k]
    for h in range(n_clusters):
        for m in range(M):
            for j in range(J):
                for k in range(j):
                    scatter[h, m, k, j] = scatter[h, m, j, k]
    return sums, scatter


def cluster_moments(
    s: np.ndarray,
    columns: np.ndarray,
    cluster: np.ndarray,
    epoch: np.ndarray,
    weight: np.ndarray,
    n_clusters: int,
    n_epochs: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The weighted sums per cluster, channel and epoch, (n_clusters, M, n_epochs, J), and
    scatter per cluster and channel, ``Σ_{i: cluster_i = h} weight_i v_{i,m} v_{i,m}'``
    (n_clusters, M, J, J), of the feature columns `columns` (J,) of `s` (N, M, K), ``v`` those
    columns (numba): one pass over the spikes (`cluster`, `epoch`, `weight` (N,)), no copy of
    the columns, each product once (the lower triangle, mirrored)."""
    return _cluster_moments_nb(
        np.ascontiguousarray(s, np.float64),
        np.asarray(columns, np.int64),
        np.asarray(cluster, np.int64),
        np.asarray(epoch, np.int64),
        np.asarray(weight, np.float64),
        n_clusters,
        n_epochs,
    )


def cluster_moments_numpy(s, columns, cluster, epoch, weight, n_clusters, n_epochs):
    """The numpy twin of :func:`cluster_moments`: sums by one product with the weighted
    indicator of (cluster, epoch), scatter by one batched product per cluster."""
    N, M = s.shape[:2]
    v = s[:, :, columns]
    by_segment = np.zeros((n_clusters * n_epochs, N))
    by_segment[cluster * n_epochs + epoch, np.arange(N)] = weight
    sums = (by_segment @ v.reshape(N, -1)).reshape(n_clusters, n_epochs, M, -1)
    scatter = np.zeros((n_clusters, M, columns.size, columns.size))
    order = np.argsort(cluster, kind="stable")
    bounds = np.searchsorted(cluster[order], np.arange(n_clusters + 1))
    for h in np.flatnonzero(np.diff(bounds)):
        rows = order[bounds[h] : bounds[h + 1]]
        vh = v[rows].transpose(1, 0, 2)  # (M, n_h, J)
        scatter[h] = np.swapaxes(vh * weight[rows, None], 1, 2) @ vh
    return sums.transpose(0, 2, 1, 3), scatter


@numba.njit(cache=True)
def _pair_products_nb(a):
    n, K = a.shape
    out = np.empty((n, (K + 1) * (K + 2) // 2))
    v = np.empty(K + 1)
    v[K] = 1.0
    for i in range(n):
        v[:K] = a[i]
        col = 0
        for j in range(K + 1):
            for k in range(j, K + 1):
                out[i, col] = v[j] * v[k]
                col += 1
    return out


def pair_products(a: np.ndarray) -> np.ndarray:
    """The products ``b_j b_k`` (j ≤ k, in the order of ``np.triu_indices(K + 1)``) of each
    row of `a` (n, K) with 1 appended, ``b = [a_i; 1]`` (numba): (n, (K+1)(K+2)/2)."""
    return _pair_products_nb(np.ascontiguousarray(a, np.float64))


def pair_products_numpy(a):
    """The numpy twin of :func:`pair_products`."""
    b = np.concatenate([a, np.ones((len(a), 1))], axis=1)
    rows, cols = np.triu_indices(b.shape[1])
    return b[:, rows] * b[:, cols]


@numba.njit(cache=True)
def _nearer_a_nb(f, m_a, m_b, a, b, with_a):
    n, d = f.shape
    for i in range(n):
        to_a = 0.0
        to_b = 0.0
        for j in range(d):
            to_a += (f[i, j] - m_a[j]) ** 2
            to_b += (f[i, j] - m_b[j]) ** 2
        with_a[i] = to_b > to_a
    with_a[a] = True
    with_a[b] = False


@numba.njit(cache=True)
def _allocation_nb(f, a, b, iterations, min_allocation):
    n, d = f.shape
    m_a, m_b = f[a].copy(), f[b].copy()
    with_a = np.empty(n, np.bool_)
    _nearer_a_nb(f, m_a, m_b, a, b, with_a)
    for _ in range(iterations):
        _nearer_a_nb(f, m_a, m_b, a, b, with_a)
        m_a[:] = 0.0
        m_b[:] = 0.0
        n_a = 0
        for i in range(n):
            if with_a[i]:
                m_a += f[i]
                n_a += 1
            else:
                m_b += f[i]
        m_a /= n_a
        m_b /= n - n_a
    to_a, to_b = np.zeros(n), np.zeros(n)
    var = 0.0
    for i in range(n):
        for j in range(d):
            to_a[i] += (f[i, j] - m_a[j]) ** 2
            to_b[i] += (f[i, j] - m_b[j]) ** 2
        var += to_a[i] if with_a[i] else to_b[i]
    var = max(var / (n * d), 1e-12)
    p = np.empty(n)
    for i in range(n):
        p[i] = 1.0 / (1.0 + np.exp(-0.5 * (to_b[i] - to_a[i]) / var))
        p[i] = min(max(p[i], min_allocation), 1.0 - min_allocation)
    p[a] = 1.0
    p[b] = 0.0
    return p


def allocation(
    f: np.ndarray, a: int, b: int, *, two_means_iterations: int, min_allocation: float
) -> np.ndarray:
    """Probability that each row of `f` (n, d) goes with row `a` rather than row `b` in a split
    proposal (1 for `a`, 0 for `b`, the others in ``[min_allocation, 1 − min_allocation]``):
    a two-means started at the pair and run `two_means_iterations` times, then a logistic of
    the squared distances to the two means over the pooled within-side variance (numba, one
    pass over `f` per iteration)."""
    f = np.ascontiguousarray(f, np.float64)
    return _allocation_nb(f, int(a), int(b), int(two_means_iterations), float(min_allocation))


def allocation_numpy(f, a, b, *, two_means_iterations, min_allocation):
    """The numpy twin of :func:`allocation`."""
    m_a, m_b = f[a], f[b]
    with_a = _nearer_a(f, m_a, m_b, a, b)  # the sides when there are no iterations
    for _ in range(two_means_iterations):
        with_a = _nearer_a(f, m_a, m_b, a, b)
        m_a, m_b = f[with_a].mean(0), f[~with_a].mean(0)
    resid = np.where(with_a[:, None], f - m_a, f - m_b)
    var = max(float((resid**2).mean()), 1e-12)
    log_odds = 0.5 * (((f - m_b) ** 2).sum(1) - ((f - m_a) ** 2).sum(1)) / var
    p = np.clip(expit(log_odds), min_allocation, 1 - min_allocation)
    p[[a, b]] = 1.0, 0.0
    return p


def _nearer_a(f: np.ndarray, m_a: np.ndarray, m_b: np.ndarray, a: int, b: int) -> np.ndarray:
    """Rows of `f` nearer `m_a` than `m_b` (row `a` always, row `b` never)."""
    with_a = ((f - m_b) ** 2).sum(1) > ((f - m_a) ** 2).sum(1)
    with_a[[a, b]] = True, False
    return with_a


@numba.njit(cache=True)
def _epoch_sums_nb(sums, counts, held, base, width, slot, values, stores, store, epoch, labels):
    _, C, T = values.shape
    for i in range(labels.size):
        k, e = labels[i], epoch[i]
        if k >= 0:
            for c in range(C):
                m = stores[store[i], c]
                if m >= 0:
                    if slot[k, m] < 0:
                        raise ValueError("a snippet on a channel its unit's sums do not keep")
                    held[k, e, m] += 1
                    at = base[k] + (e * width[k] + slot[k, m]) * T
                    for t in range(T):
                        sums[at + t] += values[i, c, t]
            counts[k, e] += 1


def add_epoch_sums(sums: EpochSums, x: LocalSnippets, epoch: np.ndarray, labels: np.ndarray):
    """Add the snippets `x` (n, M, T) of each unit per epoch to `sums`: their sums on each
    channel each holds, their number and per channel the number of them that hold it, in place
    (numba: one pass over `x`, a batch of it at a time); spikes of label -1 (in no unit) are
    left out."""
    epoch, labels = np.asarray(epoch, np.int64), np.asarray(labels, np.int64)
    slot, width = sums.slot, sums.on.sum(1)
    for rows, values in x.batches():
        _epoch_sums_nb(
            sums.sums,
            sums.counts,
            sums.held,
            sums.base,
            width,
            slot,
            values,
            x.stores,
            x.store[rows],
            epoch[rows],
            labels[rows],
        )


def add_epoch_sums_numpy(sums: EpochSums, x: LocalSnippets, epoch, labels):
    """The numpy twin of :func:`add_epoch_sums`."""
    slot = sums.slot
    for k in range(sums.counts.shape[0]):
        for s, on in enumerate(x.stores):
            idx = np.flatnonzero((labels == k) & (x.store == s))
            columns = np.flatnonzero(on >= 0)
            for e, i in zip(epoch[idx], idx, strict=True):
                sums.unit(k)[e, slot[k, on[columns]]] += x.values[i, columns]
                sums.held[k, e, on[columns]] += 1
        sums.counts[k] += np.bincount(epoch[labels == k], minlength=sums.counts.shape[1])


@numba.njit(cache=True, nogil=True)  # run from the snippets' threads
def _neighbour_waves_nb(t, own, t_match, which, waves, T, lo, hi, read, out):
    T_w = waves.shape[2]
    for i in range(t.size):
        for j in range(lo[i], hi[i]):
            if j == own[i]:
                continue
            shift = t[i] - t_match[j]  # our sample k is the neighbour's k + shift
            for r in range(read.shape[1]):
                m = read[i, r]
                for k in range(max(0, -shift), min(T, T_w - shift)):
                    out[i, r, k] += waves[which[j], m, k + shift]


def neighbour_waves(
    t: np.ndarray,
    own: np.ndarray,
    t_match: np.ndarray,
    which: np.ndarray,
    waves: np.ndarray,
    T: int,
    read: np.ndarray | None = None,
) -> np.ndarray:
    """Sum, in the window of `T` samples of each spike at `t` (n,), of the waveforms
    ``waves[which]`` ((k, M, T_w): `waves` holds each template once) of the matched spikes at
    `t_match` (k,, sorted) that reach into it, other than the spike's own (`own` (n,): its
    index in `t_match`, -1 for a detection no matched spike covers), on the channels `read`
    (n, R) of each spike (by default all M): (n, R, T). Two neurons' spikes matched at the
    same sample are two spikes, each peeled of the other. Both windows start ``ms_before``
    before their peak. Numba: one pass over the pairs that overlap."""
    read = _channels_read(read, t.size, waves.shape[1])
    out = np.zeros((t.size, read.shape[1], T), np.float32)
    lo = np.searchsorted(t_match, t - waves.shape[2] + 1)
    hi = np.searchsorted(t_match, t + T)
    _neighbour_waves_nb(
        np.asarray(t, np.int64),
        np.asarray(own, np.int64),
        np.asarray(t_match, np.int64),
        np.asarray(which, np.int64),
        np.ascontiguousarray(waves, np.float32),
        int(T),
        lo,
        hi,
        read,
        out,
    )
    return out


def neighbour_waves_numpy(t, own, t_match, which, waves, T, read=None):
    """The numpy twin of :func:`neighbour_waves`."""
    T_w = waves.shape[2]
    read = _channels_read(read, t.size, waves.shape[1])
    out = np.zeros((t.size, read.shape[1], T), np.float32)
    lo = np.searchsorted(t_match, t - T_w + 1)
    hi = np.searchsorted(t_match, t + T)
    k = np.arange(T)
    for d in range(int((hi - lo).max(initial=0))):
        j = lo + d
        ok = j < hi
        j = np.where(ok, j, 0)
        ok &= j != own
        src = k[None] - (t_match[j] - t)[:, None]  # the neighbour's sample at each of ours
        valid = ok[:, None] & (src >= 0) & (src < T_w)
        # only the T samples each snippet needs: (n, R, T), not the waveforms' (n, M, T_w)
        picked = waves[
            which[j][:, None, None], read[:, :, None], np.clip(src, 0, T_w - 1)[:, None, :]
        ]
        picked *= valid[:, None, :]
        out += picked
    return out


def _channels_read(read: np.ndarray | None, n: int, n_channels: int) -> np.ndarray:
    """`read` (n, R) as contiguous int64, or every channel for each of `n` spikes."""
    if read is None:
        return np.tile(np.arange(n_channels, dtype=np.int64), (n, 1))
    return np.ascontiguousarray(read, np.int64)


@numba.njit(cache=True)
def _birth_death_nb(projected, s_k, aa, u, normals, alive):
    N, M = projected.shape
    born = np.empty((N, M))
    total = 0.0
    for i in range(N):
        for m in range(M):
            own = s_k[i, m] * aa[m] if alive else 0.0
            h = (projected[i, m] + own) * u[i]
            P = u[i] * aa[m] + 1.0
            b = s_k[i, m] if alive else h / P + normals[i, m] / np.sqrt(P)
            born[i, m] = b
            total += h * b - 0.5 * (P - 1.0) * b * b
            total -= 0.5 * np.log(P / (2 * np.pi)) - 0.5 * P * (b - h / P) ** 2
    return born, total


def birth_death_terms(
    projected: np.ndarray,
    s_k: np.ndarray | None,
    aa: np.ndarray,
    u: np.ndarray,
    normals: np.ndarray | None,
) -> tuple[np.ndarray, float]:
    """The features and likelihood terms of a birth–death move on one atom (numba, one pass):
    with ``h = u (a'Φr)`` for the residual without the atom (`projected` (N, M) its
    projection with the atom's part, ``+ s_k a'Φa`` when it is in use, `s_k` (N, M)) and
    ``P = u a'Φa + 1`` (`aa` (M,), `u` (N,)), the atom's features — `s_k`, or for a birth
    ``h/P + normals/√P`` — and ``Σ h s − (P−1)s²/2 − log q(s)``, ``q = N(h/P, 1/P)``."""
    alive = s_k is not None
    return _birth_death_nb(  # `projected` stands in for whichever of s_k, normals is unread
        projected,
        s_k if alive else projected,
        np.ascontiguousarray(aa, np.float64),
        u,
        projected if normals is None else normals,
        alive,
    )


def birth_death_terms_numpy(projected, s_k, aa, u, normals):
    """The numpy twin of :func:`birth_death_terms`."""
    alive = s_k is not None
    h = (projected + s_k * aa if alive else projected) * u[:, None]
    P = u[:, None] * aa + 1.0
    born = s_k.copy() if alive else h / P + normals / np.sqrt(P)
    gain = np.sum(h * born - 0.5 * (P - 1.0) * born**2)
    return born, float(gain - np.sum(0.5 * np.log(P / (2 * np.pi)) - 0.5 * P * (born - h / P) ** 2))


@numba.njit(cache=True)
def _consider_evidence_nb(projected, s, was, g, lam, mean, pull, dev, u, labels, n_clusters):
    N, M = projected.shape
    inv, shrink = 1.0 / lam, lam / (lam + g)  # per cluster and channel
    root = np.sqrt(g)
    out, count = np.zeros(n_clusters), np.zeros(n_clusters)
    for i in range(N):
        c = labels[i]
        count[c] += 1
        total = 0.0
        for m in range(M):
            if g[m] == 0.0:
                continue
            h = projected[i, m] + was[i] * s[i, m] * g[m]
            cond = mean[i, m] - (pull[i, m] - lam[c, m] * dev[i, m]) * inv[c, m]
            q = h / root[m]
            off = q - cond * root[m]
            total += 0.5 * q * q - 0.5 * off * off * shrink[c, m]
        out[c] += u[i] * total
    # −½ log(1 + g/Λ_kk) per spike and channel, a cluster's the same for each of its spikes
    return out - 0.5 * np.log1p(g * inv).sum(axis=1) * count


def consider_evidence(projected, s, was, g, lam, mean, pull, dev, u, labels, n_clusters):
    """Each cluster's evidence for considering one atom (:mod:`neurodict.sort.kbp`), (H,):
    the sum over its spikes of :func:`neurodict.sort.kbp.consider_log_odds` (numba, one pass,
    nothing gathered). Per spike and channel: ``h`` the projection of the residual without
    the atom (`projected` (N, M), the residual's, plus ``was · s · g`` where the spike's
    cluster considers it: `was` (N,), its features `s` (N, M), ``g = a'Φa`` (M,)); the
    features' conditional mean ``m − (Λ(s − μ))_k − Λ_kk (s − μ)_k) / Λ_kk`` (`mean` μ,
    `pull` Λ(s − μ) and `dev` s − μ of the atom (N, M); `lam` ``Λ_kk`` per cluster and
    channel (H, M)); `u` (N,) the precision scales; `labels` (N,)."""
    return _consider_evidence_nb(
        projected, s, np.asarray(was, np.float64), g, np.ascontiguousarray(lam), mean, pull,
        dev, u, labels, n_clusters,
    )  # fmt: skip


def consider_evidence_numpy(projected, s, was, g, lam, mean, pull, dev, u, labels, n_clusters):
    """The numpy twin of :func:`consider_evidence`."""
    h = projected + was[:, None] * s * g
    L = lam[labels]
    cond = mean - (pull - L * dev) / L
    return np.bincount(labels, consider_log_odds(h, g, u, cond, L), minlength=n_clusters)


@numba.njit(cache=True, nogil=True)  # run from the snippets' threads
def _resampled_windows_nb(traces, peak, weights, before, noise_levels, read, out):
    n, R, T = out.shape
    taps = weights.shape[1]
    acc = np.empty(R)
    for i in range(n):
        for t in range(T):
            acc[:] = 0.0
            first = peak[i] - before + t - taps // 2 + 1  # the row of tap 0
            for j in range(taps):
                w = weights[i, j]
                for r in range(R):
                    acc[r] += w * traces[first + j, read[i, r]]
            for r in range(R):
                out[i, r, t] = acc[r] / noise_levels[read[i, r]]


def resampled_windows(
    traces: np.ndarray,
    peak: np.ndarray,
    weights: np.ndarray,
    before: int,
    after: int,
    noise_levels: np.ndarray,
    read: np.ndarray | None = None,
) -> np.ndarray:
    """Windows ``Σ_j w_ij x(peak_i + k + j) / noise``, ``k = -before..after-1``, ``j =
    -taps/2+1..taps/2``, of `traces` (rows, M) about each `peak` (n,) with its interpolation
    `weights` (n, taps) (:func:`neurodict.sort.snippets.sinc_weights`) on the channels `read`
    (n, R) of each (by default all M): (n, R, T) float32, in double precision. Numba: each
    row of taps read once per output sample, nothing gathered."""
    read = _channels_read(read, peak.size, traces.shape[1])
    out = np.empty((peak.size, read.shape[1], before + after), np.float32)
    _resampled_windows_nb(
        np.ascontiguousarray(traces),
        np.asarray(peak, np.int64),
        np.asarray(weights, np.float64),
        int(before),
        np.asarray(noise_levels, np.float64),
        read,
        out,
    )
    return out


def resampled_windows_numpy(
    traces, peak, weights, before, after, noise_levels, read=None, gather=2**21
):
    """The numpy twin of :func:`resampled_windows`: the taps of a block of snippets gathered,
    (n, T, taps, R), at most `gather` values at a time."""
    read = _channels_read(read, peak.size, traces.shape[1])
    taps = weights.shape[1]
    j = np.arange(-taps // 2 + 1, taps // 2 + 1)
    k = np.arange(-before, after)
    out = np.empty((peak.size, read.shape[1], k.size), np.float32)
    step = max(gather // (k.size * taps * read.shape[1]), 1)
    for s in range(0, peak.size, step):
        p, on = peak[s : s + step], read[s : s + step]
        idx = p[:, None, None] + k[None, :, None] + j[None, None, :]  # (n, T, taps)
        taps_read = traces[idx[..., None], on[:, None, None, :]]  # (n, T, taps, R)
        windows = np.einsum("ntjr,nj->nrt", taps_read, weights[s : s + p.size])
        out[s : s + p.size] = windows / noise_levels[on][:, :, None]
    return out
