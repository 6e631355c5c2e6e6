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

from dataclasses import dataclass, fields

import numpy as np
import scipy.fft

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


def spike_arrays(spike_bins: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All spikes as (bin, unit, count) arrays sorted by bin; repeated bins are merged."""
    bins = np.concatenate([np.asarray(s, dtype=np.int64) for s in spike_bins] + [np.zeros(0, int)])
    units = np.concatenate(
        [np.full(len(s), n, dtype=np.int64) for n, s in enumerate(spike_bins)] + [np.zeros(0, int)]
    )
    n_units = len(spike_bins)
    key, counts = np.unique(bins * n_units + units, return_counts=True)
    return key // n_units, key % n_units, counts.astype(np.float64)


def intercept_counts(spike_bins: list[np.ndarray], a: int, b: int, lags: np.ndarray) -> np.ndarray:
    """g[n, j] = number of spikes of unit n at s in [a, b) with s + lags[j] also in [a, b)."""
    g = np.zeros((len(spike_bins), lags.size))
    lo, hi = np.maximum(a, a - lags), np.minimum(b, b - lags)
    for n, s in enumerate(spike_bins):
        s = np.sort(np.asarray(s))
        g[n] = np.maximum(np.searchsorted(s, hi) - np.searchsorted(s, lo), 0)
    return g


def fft_length(max_lag: int, block_bins: int | None = None) -> int:
    """FFT length for anchor blocks of `block_bins` (default about 3 x the margins) and margins."""
    block_bins = block_bins or max(6 * max_lag, 256)
    return scipy.fft.next_fast_len(block_bins + 2 * max_lag, real=True)


def scatter_add(be: Backend, target, index, values) -> None:
    """``target[index] += values`` with repeated indices summed, on either backend."""
    if be.xp is np:
        np.add.at(target, index, values)
    else:
        import cupyx

        cupyx.scatter_add(target, index, values)


def _rfft0(be: Backend, x):
    """Real FFT along axis 0, with the CPU's threads on numpy."""
    if be.xp is np:
        return scipy.fft.rfft(x, axis=0, workers=_threads())
    return be.fft.rfft(x, axis=0)


def _threads() -> int:
    import os

    return int(os.environ.get("OMP_NUM_THREADS", 1) or 1)


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
    spike_bins : list of ndarray of int
        Per unit, the LFP-rate bin of each spike (repeats allowed: counts).
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
    parts = pieces(a, b, list(bounds))
    if len(parts) > 1:
        kwargs = {
            "backend": backend,
            "dtype": dtype,
            "block_bins": block_bins,
            "batch_mb": batch_mb,
        }
        return total(
            [
                segment_stats(spike_bins, y, lo, hi, lag_minus, lag_plus, **kwargs)
                for lo, hi in parts
            ]
        )
    xp = backend.xp
    n_units, n_regions = len(spike_bins), y.shape[0]
    n_lags = lag_minus + lag_plus + 1
    max_lag = n_lags - 1
    P = fft_length(max_lag, block_bins)
    B = P - 2 * max_lag
    ctype = np.result_type(dtype, np.complex64)
    bins, units, counts = spike_arrays(spike_bins)
    keep = (bins >= a) & (bins < b)
    bins, units, counts = bins[keep], units[keep], counts[keep]
    n_freq = P // 2 + 1
    acc_R = xp.zeros((n_freq, n_units, n_units), dtype=ctype)
    acc_S = xp.zeros((n_freq, n_units, n_regions), dtype=ctype)
    y_dev = backend.asarray(y[:, a:b], dtype=dtype)
    starts = np.arange(a, b, B)
    per_batch = max(1, int(batch_mb * 2**20 / (8 * (2 * n_units + n_regions) * P)))
    for first in range(0, starts.size, per_batch):
        s0 = starts[first : first + per_batch]
        index_p, index_a, w_p, w_a = [], [], [], []
        # time-major layout (P, blocks, units): the FFT runs along axis 0 and each frequency's
        # (blocks x units) matrix is contiguous for the GEMM
        Y = xp.zeros((P, s0.size, n_regions), dtype=dtype)
        for j, start in enumerate(s0):
            lo, hi = max(a, start - max_lag), min(b, start + B + max_lag)
            i0, i1 = np.searchsorted(bins, [lo, hi])
            off = bins[i0:i1] - (start - max_lag)
            index_p.append((off, np.full(i1 - i0, j), units[i0:i1]))
            w_p.append(counts[i0:i1])
            anchor = (bins[i0:i1] >= start) & (bins[i0:i1] < min(start + B, b))
            index_a.append(tuple(ix[anchor] for ix in index_p[-1]))
            w_a.append(counts[i0:i1][anchor])
            Y[lo - (start - max_lag) : hi - (start - max_lag), j, :] = y_dev[:, lo - a : hi - a].T
        U = []
        for index, w in ((index_p, w_p), (index_a, w_a)):
            dense = xp.zeros((P, s0.size, n_units), dtype=dtype)
            ix = tuple(backend.asarray(np.concatenate([i[k] for i in index])) for k in range(3))
            scatter_add(backend, dense, ix, backend.asarray(np.concatenate(w), dtype=dtype))
            U.append(_rfft0(backend, dense))
        Up, Ua = U
        Ua_h = xp.conj(Ua).transpose(0, 2, 1)  # (F, units, blocks), a view BLAS transposes
        acc_R += xp.matmul(Ua_h, Up)
        acc_S += xp.matmul(Ua_h, _rfft0(backend, Y))
    corr_R = backend.fft.irfft(acc_R, n=P, axis=0)
    corr_S = backend.fft.irfft(acc_S, n=P, axis=0)
    lags_R = np.arange(-max_lag, max_lag + 1) % P
    lags_S = np.arange(-lag_minus, lag_plus + 1) % P
    g = intercept_counts(spike_bins, a, b, np.arange(-lag_minus, lag_plus + 1))
    y_seg = y[:, a:b]  # summed in float64 without a float64 copy
    return SegmentStats(
        R=xp.ascontiguousarray(corr_R[backend.asarray(lags_R)].transpose(1, 2, 0)).astype(dtype),
        S=xp.ascontiguousarray(corr_S[backend.asarray(lags_S)].transpose(1, 2, 0)).astype(dtype),
        g=backend.asarray(g, dtype=dtype),
        ysum=backend.asarray(y_seg.sum(axis=1, dtype=np.float64), dtype=dtype),
        yy=backend.asarray(np.einsum("rt,rt->r", y_seg, y_seg, dtype=np.float64), dtype=dtype),
        n_samples=b - a,
    )
