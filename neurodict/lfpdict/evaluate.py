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
import scipy.signal

from neurodict.backend import Backend
from neurodict.lfpdict.stats import SegmentStats, Trains, block_batches, fft_length, scatter_add


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
    be: Backend,
    spike_bins: list[np.ndarray],
    F,
    c,
    a: int,
    b: int,
    lag_minus: int,
    batch_mb: float = 256.0,
):
    """c_r + sum_n (u_n * f_{n,r})(t) for t in [a, b), using every spike, shape (R, b - a), on
    `be`'s device.

    FFT overlap-add: the spikes from ``a - lag_plus`` on, cut into blocks of ``P - L + 1``
    bins, each block's dense trains transformed at length P, times the filters' spectra (one
    batched matrix product per frequency bin over a batch of blocks), transformed back and
    added into place; batches of blocks bounded by `batch_mb` (the dense trains and their
    spectra), all on the device.
    """
    xp = be.xp
    N, R, L = F.shape
    lag_plus = L - 1 - lag_minus
    P = fft_length(L - 1)
    step = P - L + 1  # a block's length; its output reaches L - 1 bins into the next block
    Ff = be.fft.rfft(F, n=P, axis=-1).transpose(2, 1, 0)  # (F, R, N)
    first = a - lag_plus  # u on [a - lag_plus, b + lag_minus) reaches every t in [a, b)
    n_blocks = -(-(b + lag_minus - first) // step)
    per_batch = max(1, int(batch_mb * 2**20 / (3 * 4 * N * P)))
    bins, units = Trains.of(spike_bins).within(be, first, first + n_blocks * step)
    block, offset = (bins - first) // step, (bins - first) % step
    order, bounds = block_batches(be, block, n_blocks, per_batch)
    block, offset, units = block[order], offset[order], units[order]
    # canvas position p is time t = first - lag_minus + p
    out = xp.zeros((R, (n_blocks + 1) * step), dtype=F.dtype)
    for i, j0 in enumerate(range(0, n_blocks, per_batch)):
        nb = min(per_batch, n_blocks - j0)
        i0, i1 = bounds[i], bounds[i + 1]
        u = xp.zeros((nb, N, P), dtype=F.dtype)
        index = (block[i0:i1] - j0, units[i0:i1], offset[i0:i1])
        scatter_add(be, u, index, xp.ones(int(i1 - i0), F.dtype))
        uf = be.fft.rfft(u, axis=-1).transpose(2, 1, 0)  # (F, N, blocks)
        blocks = be.fft.irfft(xp.matmul(Ff, uf), n=P, axis=0)  # (P, R, blocks)
        head = blocks[:step].transpose(1, 2, 0).reshape(R, nb * step)
        tail = xp.zeros((R, nb, step), dtype=F.dtype)
        tail[:, :, : L - 1] = blocks[step:].transpose(1, 2, 0)
        lo = j0 * step
        out[:, lo : lo + nb * step] += head
        out[:, lo + step : lo + (nb + 1) * step] += tail.reshape(R, nb * step)
    return out[:, L - 1 : L - 1 + b - a] + c[:, None]


def coherence(be: Backend, x, y, nperseg: int, batch_segments: int = 256):
    """Magnitude-squared coherence of x (R, n) with each row set of y (..., R, n) along time,
    on `be`'s device: Welch's estimate as ``scipy.signal.coherence`` computes it by default
    (Hann window, half-overlapping segments, each segment's mean removed), segments summed in
    batches.

    Returns
    -------
    freqs : ndarray of shape (nperseg // 2 + 1,)
        In cycles per sample.
    C : array of shape (..., R, nperseg // 2 + 1)
    """
    xp = be.xp
    hop = nperseg - nperseg // 2
    starts = np.arange(0, x.shape[-1] - nperseg + 1, hop)
    window = be.asarray(scipy.signal.get_window("hann", nperseg), dtype=x.dtype)
    sxx = syy = sxy = 0
    for k in range(0, starts.size, batch_segments):
        idx = be.asarray(starts[k : k + batch_segments, None] + np.arange(nperseg))
        fx, fy = (
            be.fft.rfft(window * (s - s.mean(axis=-1, keepdims=True)), axis=-1)
            for s in (x[..., idx], y[..., idx])
        )
        sxx = sxx + (fx.real**2 + fx.imag**2).sum(axis=-2)
        syy = syy + (fy.real**2 + fy.imag**2).sum(axis=-2)
        sxy = sxy + (xp.conj(fx) * fy).sum(axis=-2)
    return np.fft.rfftfreq(nperseg), (sxy.real**2 + sxy.imag**2) / (sxx * syy)
