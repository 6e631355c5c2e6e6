"""Held-out error of any set of filters, from segment statistics, and time-domain prediction.

For filters f of shape (N, R, L) and a test segment, the squared error of the prediction
``c_r + sum_n u_n * f_{n,r}`` (intercept c from the training segments) is

    SSE_r = yy - 2 c ysum + c^2 n - 2 <f_r, S_r - c g> + f_r^T G f_r,

exact under the segment convention of :mod:`neurodict.lfpdict.stats`; ``G f`` is a block-Toeplitz
product computed by FFT. R^2 = 1 - SSE / SST with SST the test LFP's variance times n.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from neurodict.backend import Backend
from neurodict.lfpdict.stats import SegmentStats, fft_length, spike_arrays


class ToeplitzGram:
    """The design's Gram matrix G of one set of statistics as an operator on filters (N, R, L)."""

    def __init__(self, be: Backend, stats: SegmentStats):
        self.be, self.stats = be, stats
        n_delta = stats.R.shape[2]
        self.L = (n_delta + 1) // 2
        self.P = scipy.fft.next_fast_len(3 * self.L - 2, real=True)
        # (F, N, N), contiguous: each frequency's matrix is one GEMM operand (3x faster)
        self.Rf = be.xp.ascontiguousarray(
            be.fft.rfft(stats.R, n=self.P, axis=-1).transpose(2, 0, 1)
        )

    def __matmul__(self, F):
        be, L = self.be, self.L
        Ff = be.fft.rfft(F, n=self.P, axis=-1).transpose(2, 0, 1)  # (F, N, R)
        out = be.fft.irfft(be.xp.matmul(self.Rf, Ff), n=self.P, axis=0)  # (P, N, R)
        return out[L - 1 : 2 * L - 1].transpose(1, 2, 0).astype(F.dtype)


def intercept(be: Backend, train: SegmentStats, F):
    """Least-squares intercept of filters F on the training statistics, shape (R,)."""
    return (train.ysum - be.xp.einsum("nrl,nl->r", F, train.g)) / max(train.n_samples, 1)


def sse(be: Backend, test: SegmentStats, F, c, gram: ToeplitzGram | None = None):
    """Squared error per region of filters F with intercept c on the test statistics, (R,)."""
    gram = gram or ToeplitzGram(be, test)
    GF = gram @ F
    linear = (F * (test.S - c[None, :, None] * test.g[:, None, :])).sum(axis=(0, 2))
    quad = (F * GF).sum(axis=(0, 2))
    return test.yy - 2 * c * test.ysum + c * c * test.n_samples - 2 * linear + quad


def sst(test: SegmentStats):
    """Total sum of squares of each region's LFP about its mean in the test segment, (R,)."""
    return test.yy - test.ysum**2 / test.n_samples


def predict(
    be: Backend, spike_bins: list[np.ndarray], F, c, a: int, b: int, lag_minus: int
) -> np.ndarray:
    """c_r + sum_n (u_n * f_{n,r})(t) for t in [a, b), using every spike, shape (R, b - a).

    Blocked FFT convolution: spike blocks (with the filters' reach on both sides) times the
    filters' spectra, one batched matrix product per frequency bin, overlap-added.
    """
    xp = be.xp
    N, R, L = F.shape
    lag_plus = L - 1 - lag_minus
    P = fft_length(L - 1)
    B = P - L + 1
    Ff = be.fft.rfft(F, n=P, axis=-1).transpose(2, 1, 0)  # (F, R, N)
    bins, units, counts = spike_arrays(spike_bins)
    out = np.zeros((R, b - a))
    # u on [a - lag_plus, b + lag_minus) reaches every output sample in [a, b)
    for start in range(a - lag_plus, b + lag_minus, B):
        i0, i1 = np.searchsorted(bins, [start, start + B])
        u = np.zeros((N, P))
        np.add.at(u, (units[i0:i1], bins[i0:i1] - start), counts[i0:i1])
        uf = be.fft.rfft(be.asarray(u, dtype=F.dtype), axis=-1).T[:, :, None]  # (F, N, 1)
        block = be.to_numpy(be.fft.irfft(xp.matmul(Ff, uf)[:, :, 0], n=P, axis=0)).T
        # output index t = start + j - lag_minus for block column j
        t0 = start - lag_minus
        lo, hi = max(a, t0), min(b, t0 + P)
        if hi > lo:
            out[:, lo - a : hi - a] += block[:, lo - t0 : hi - t0]
    return out + be.to_numpy(c)[:, None]
