"""Sufficient statistics of the spike->LFP regression, in one blocked FFT pass per segment.

Within a time segment ``[a, b)`` the model is the full convolution of the segment's spike trains
with the filters, compared with the segment's LFP, both taken as zero outside the segment::

    y_r(t) ~ c_r 1_seg(t) + sum_n sum_tau u_n(t - tau) f_{n,r}(tau),    t in Z.

Its least-squares objective depends on the data only through (exactly, not approximately)

    R[n, m, delta] = sum_s u_n(s) u_m(s + delta),  delta in [-(L-1), L-1]  (cross-correlograms)
    S[n, r, tau]   = sum_s u_n(s) y_r(s + tau),    tau in [-L_minus, L_plus] (spike-triggered)
    g[n, tau]      = sum_{s, s + tau in seg} u_n(s)                         (intercept column)
    ysum[r], yy[r], n_samples

with all sums inside the segment. The design's Gram matrix is block Toeplitz,
``G[(n, tau), (m, tau')] = R[n, m, tau - tau']``. Statistics of disjoint segments add, so blocked
cross-validation combines per-fold statistics without another pass over the data.

R and S are computed block by block: anchors in blocks of B bins, partners in the block extended
by L-1 bins each side, FFT length P >= B + 2(L-1) (no wrap-around), and the products summed over
blocks as one batched matrix product per frequency bin (GEMM-shaped, on numpy or cupy).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields

import numpy as np
import scipy.fft
from threadpoolctl import threadpool_info, threadpool_limits

from neurodict.backend import CPU, Backend
from neurodict.common.timeline import pieces


@dataclass
class SegmentStats:
    """Sufficient statistics of one segment (or a sum of segments).

    Attributes
    ----------
    R : array of shape (n_units, n_units, 2 * n_lags - 1)
    S : array of shape (n_units, n_regions, n_lags)
    g : array of shape (n_units, n_lags)
    ysum, yy : array of shape (n_regions,)
    n_samples : int
    """

    R: object
    S: object
    g: object
    ysum: object
    yy: object
    n_samples: int

    def __add__(self, other: SegmentStats) -> SegmentStats:
        return SegmentStats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: SegmentStats) -> SegmentStats:
        return SegmentStats(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    def tile_regions(self, xp, n: int) -> SegmentStats:
        """The same statistics with the regions repeated `n` times (S, ysum, yy).

        Fits of several predictor sets share the spikes' Gram matrix: stacked as extra region
        columns (each with its own mask and penalty), they run as one problem."""
        return SegmentStats(
            self.R,
            xp.concatenate([self.S] * n, axis=1),
            self.g,
            xp.concatenate([self.ysum] * n),
            xp.concatenate([self.yy] * n),
            self.n_samples,
        )


def total(stats: list[SegmentStats]) -> SegmentStats:
    """The statistics of the union of disjoint segments."""
    return sum(stats[1:], start=stats[0])


@dataclass(frozen=True)
class Trains:
    """Every unit's spike bins end to end: unit n's, sorted, are ``bins[start[n]:start[n + 1]]``
    (a repeated bin is a count).

    Built once per set of trains (:meth:`of`), then cut into segments without sorting again."""

    bins: np.ndarray
    start: np.ndarray
    _device: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, spike_bins) -> Trains:
        """`spike_bins` (per unit, bins in any order; or a Trains, returned as it is)."""
        if isinstance(spike_bins, Trains):
            return spike_bins
        trains = [np.asarray(s, dtype=np.int64) for s in spike_bins]
        trains = [s if (s[1:] >= s[:-1]).all() else np.sort(s) for s in trains]
        start = np.concatenate([[0], np.cumsum([s.size for s in trains], dtype=np.int64)])
        return cls(np.concatenate(trains + [np.zeros(0, np.int64)]), start)

    @property
    def n_units(self) -> int:
        return self.start.size - 1

    def unit(self, n: int) -> np.ndarray:
        """Unit n's bins, sorted."""
        return self.bins[self.start[n] : self.start[n + 1]]

    def on(self, be: Backend) -> tuple:
        """(bins, units) of every spike on `be`'s device, transferred once per backend."""
        if be.name not in self._device:
            units = np.repeat(np.arange(self.n_units), np.diff(self.start))
            self._device[be.name] = (be.asarray(self.bins), be.asarray(units))
        return self._device[be.name]

    def within(self, be: Backend, a: int, b: int) -> tuple:
        """(bins, units) of the spikes in ``[a, b)``, on `be`'s device."""
        bins, units = self.on(be)
        keep = (bins >= a) & (bins < b)
        return bins[keep], units[keep]

    def shifted(self, offsets: np.ndarray, n_bins: int) -> Trains:
        """Each unit's train shifted circularly by its offset in ``[0, n_bins)`` (bins in
        ``[0, n_bins)``): the part that wraps moves to the front, so no sort is needed."""
        parts = []
        for n, shift in enumerate(offsets):
            s = self.unit(n)
            k = np.searchsorted(s, n_bins - shift)
            parts.append(np.concatenate([s[k:] + (shift - n_bins), s[:k] + shift]))
        return Trains(np.concatenate(parts + [np.zeros(0, np.int64)]), self.start)


def block_batches(be: Backend, block, n_blocks: int, per_batch: int) -> tuple:
    """Spikes grouped by block for batches of `per_batch` consecutive blocks: the order that
    sorts `block` (a device array) and, on the host, where each batch's spikes start and end
    in that order (``bounds[i]:bounds[i + 1]`` for batch i)."""
    order = be.xp.argsort(block)
    edges = be.asarray(np.append(np.arange(0, n_blocks, per_batch), n_blocks))
    return order, be.to_numpy(be.xp.searchsorted(block[order], edges))


def intercept_counts(trains: Trains, a: int, b: int, lags: np.ndarray) -> np.ndarray:
    """g[n, j] = number of spikes of unit n at s in [a, b) with s + lags[j] also in [a, b)."""
    lo, hi = np.maximum(a, a - lags), np.minimum(b, b - lags)
    g = np.zeros((trains.n_units, lags.size))
    for n in range(trains.n_units):
        s = trains.unit(n)
        g[n] = np.maximum(np.searchsorted(s, hi) - np.searchsorted(s, lo), 0)
    return g


def fft_length(max_lag: int, block_bins: int | None = None) -> int:
    """FFT length for anchor blocks of `block_bins` (default about 3 x the margins; at least both
    margins, so that a spike is a partner of at most two blocks) and margins."""
    block_bins = max(block_bins, 2 * max_lag) if block_bins else max(6 * max_lag, 256)
    return scipy.fft.next_fast_len(block_bins + 2 * max_lag, real=True)


def scatter_add(be: Backend, target, index, values) -> None:
    """``target[index] += values`` with repeated indices summed, on either backend."""
    if be.xp is np:
        np.add.at(target, index, values)
    else:
        import cupyx

        cupyx.scatter_add(target, index, values)


def _fft0(be: Backend, transform: str, x, threads: int, **kwargs):
    """``rfft`` or ``irfft`` along axis 0, on `threads` CPU threads on numpy."""
    if be.xp is np:
        return getattr(scipy.fft, transform)(x, axis=0, workers=threads, **kwargs)
    return getattr(be.fft, transform)(x, axis=0, **kwargs)


def _threads() -> int:
    """The threads the CPU's BLAS runs on (as OMP_NUM_THREADS, OPENBLAS_NUM_THREADS or the
    cores set it; 1 where no BLAS is found)."""
    return max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=1)


def _products(be: Backend, A, B, out, threads: int):
    """``out[f] = A[f] @ B[f]`` for every f. On the CPU the f are split over `threads` threads,
    each product on one BLAS thread: a product this small (the blocks of a batch inside) loses
    more to BLAS's own threads than they give."""
    k = min(threads, len(A)) if be.xp is np else 1
    if k == 1:
        return be.xp.matmul(A, B, out=out)
    edges = np.linspace(0, len(A), k + 1).astype(int)
    parts = [slice(lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    with threadpool_limits(1), ThreadPoolExecutor(k) as pool:
        list(pool.map(lambda f: np.matmul(A[f], B[f], out=out[f]), parts))
    return out


def segment_stats(
    spike_bins: list[np.ndarray],
    y: np.ndarray,
    a: int,
    b: int,
    lag_minus: int,
    lag_plus: int,
    *,
    backend: Backend = CPU,
    dtype="float32",
    block_bins: int | None = None,
    batch_mb: float = 256.0,
    bounds=(),
) -> SegmentStats:
    """Sufficient statistics of the segment ``[a, b)`` (see the module docstring).

    Cut at the recording's segment starts `bounds`, it is the sum of its pieces' statistics:
    no spike's filter reaches across a pause between recording segments.

    Parameters
    ----------
    spike_bins : list of ndarray of int, or Trains
        Per unit, the LFP-rate bin of each spike (repeats allowed: counts); a
        :class:`Trains` where several segments are cut from the same trains.
    y : ndarray of shape (n_regions, n_bins)
        Region LFPs at the same rate.
    a, b : int
        Segment bounds in bins.
    lag_minus, lag_plus : int
        Filter lags run from -lag_minus to +lag_plus bins.
    backend : Backend
    dtype : {"float32", "float64"}
    block_bins : int, optional
        Anchor block length.
    batch_mb : float
        Memory for one batch of blocks' dense spike arrays.
    bounds : sequence of int
        Starts of the recording's segments on the timeline, in bins
        (:mod:`neurodict.common.timeline`).

    Returns
    -------
    SegmentStats
        Arrays on `backend`'s device, in `dtype`.
    """
    trains = Trains.of(spike_bins)  # sorted once for all the pieces
    parts = pieces(a, b, list(bounds))
    if len(parts) > 1:
        kwargs = {
            "backend": backend,
            "dtype": dtype,
            "block_bins": block_bins,
            "batch_mb": batch_mb,
        }
        return total(
            [segment_stats(trains, y, lo, hi, lag_minus, lag_plus, **kwargs) for lo, hi in parts]
        )
    xp = backend.xp
    threads = _threads() if xp is np else 1  # the CPU's; a GPU's products are one call
    n_units, n_regions = trains.n_units, y.shape[0]
    n_lags = lag_minus + lag_plus + 1
    max_lag = n_lags - 1
    P = fft_length(max_lag, block_bins)
    B = P - 2 * max_lag
    n_blocks = -(-(b - a) // B)
    ctype = np.result_type(dtype, np.complex64)
    # each spike is an anchor of its block j (anchors in [a + j B, a + (j + 1) B)) at position
    # pos of the block's partner window (the block and max_lag bins each side, within [a, b)),
    # and a partner of block j and of the neighbour whose window reaches it (B >= 2 max_lag)
    bins, units = trains.within(backend, a, b)
    j = (bins - a) // B
    pos = bins - a - j * B + max_lag
    before = (pos < 2 * max_lag) & (j > 0)
    after = (pos >= B) & (j < n_blocks - 1)
    per_batch = max(1, int(batch_mb * 2**20 / (8 * (2 * n_units + n_regions) * P)))
    entries = []
    for ix in (
        (
            xp.concatenate([pos, pos[before] + B, pos[after] - B]),
            xp.concatenate([j, j[before] - 1, j[after] + 1]),
            xp.concatenate([units, units[before], units[after]]),
        ),
        (pos, j, units),
    ):  # partners, anchors
        order, bounds = block_batches(backend, ix[1], n_blocks, per_batch)
        entries.append((tuple(e[order] for e in ix), bounds))
    n_freq = P // 2 + 1
    acc_R = xp.zeros((n_freq, n_units, n_units), dtype=ctype)
    acc_S = xp.zeros((n_freq, n_units, n_regions), dtype=ctype)
    product_R, product_S = xp.empty_like(acc_R), xp.empty_like(acc_S)
    # the LFP in [a, b), zero max_lag bins before and to the last window's end, time-major
    y_pad = xp.zeros((n_blocks * B + 2 * max_lag, n_regions), dtype=dtype)
    y_seg = backend.asarray(y[:, a:b])  # in its own precision: summed in float64 below
    y_pad[max_lag : max_lag + b - a] = y_seg.T
    for i, first in enumerate(range(0, n_blocks, per_batch)):
        nb = min(per_batch, n_blocks - first)
        # time-major layout (P, blocks, units): the FFT runs along axis 0 and each frequency's
        # (blocks x units) matrix is contiguous for the GEMM
        U = []
        for (pos_, j_, units_), bounds in entries:
            lo, hi = bounds[i], bounds[i + 1]
            dense = xp.zeros((P, nb, n_units), dtype=dtype)
            ix = (pos_[lo:hi], j_[lo:hi] - first, units_[lo:hi])
            scatter_add(backend, dense, ix, xp.ones(int(hi - lo), dtype))
            U.append(_fft0(backend, "rfft", dense, threads))
        Up, Ua = U
        Y = y_pad[xp.arange(P)[:, None] + (first + xp.arange(nb)) * B]  # (P, blocks, regions)
        Ua_h = xp.conj(Ua).transpose(0, 2, 1)  # (F, units, blocks), a view BLAS transposes
        # each product into one buffer, added: no fresh (F, units, units) array per batch
        acc_R += _products(backend, Ua_h, Up, product_R, threads)
        acc_S += _products(backend, Ua_h, _fft0(backend, "rfft", Y, threads), product_S, threads)
    del product_R, product_S  # before the inverse transforms' outputs
    corr_R = _fft0(backend, "irfft", acc_R, threads, n=P)
    corr_S = _fft0(backend, "irfft", acc_S, threads, n=P)
    lags_R = np.arange(-max_lag, max_lag + 1) % P
    lags_S = np.arange(-lag_minus, lag_plus + 1) % P
    g = intercept_counts(trains, a, b, np.arange(-lag_minus, lag_plus + 1))
    return SegmentStats(
        R=xp.ascontiguousarray(corr_R[backend.asarray(lags_R)].transpose(1, 2, 0), dtype=dtype),
        S=xp.ascontiguousarray(corr_S[backend.asarray(lags_S)].transpose(1, 2, 0), dtype=dtype),
        g=backend.asarray(g, dtype=dtype),
        ysum=y_seg.sum(axis=1, dtype=np.float64).astype(dtype),
        yy=(y_seg * y_seg).sum(axis=1, dtype=np.float64).astype(dtype),
        n_samples=b - a,
    )
