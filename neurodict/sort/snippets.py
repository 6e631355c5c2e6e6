"""Aligned snippets of one electrode group, read from the spike band chunk by chunk.

Each detected peak gives a window of ``T`` samples on the group's channels, re-centred on the
maximum of the channel-summed energy ``Σ_m x_m(t)²`` within ``align_ms`` of the detected sample
(MODELS.md §1), and divided by each channel's noise level so that the noise has unit variance.
The maximum is located to a fraction of a sample (a parabola through the three samples around
it) and the window is resampled there with a windowed-sinc interpolator: whole-sample alignment
alone leaves a jitter that splits large units into shifted copies.
"""

from __future__ import annotations

import numpy as np
import spikeinterface.core as sc
from scipy.spatial.distance import cdist
from tqdm.auto import tqdm

from neurodict.common.units import ms_to_samples
from neurodict.sort import kernels


def window_samples(fs_hz: float, ms_before: float, ms_after: float) -> tuple[int, int]:
    """Samples before and after the aligned peak."""
    return ms_to_samples(ms_before, fs_hz), ms_to_samples(ms_after, fs_hz)


def extract(
    rec: sc.BaseRecording,
    samples: np.ndarray,
    ms_before: float,
    ms_after: float,
    align_ms: float,
    noise_levels: np.ndarray,
    chunk_s: float = 30.0,
    progress: bool = False,
    neighbours: np.ndarray | None = None,
    channels: np.ndarray | None = None,
    read: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned snippets at `samples` of a single-segment recording.

    Parameters
    ----------
    rec : BaseRecording
        The group's channels (spike band, microvolts).
    samples : ndarray (n,)
        Detected peak samples, sorted.
    ms_before, ms_after : float
        Window around the aligned peak.
    align_ms : float
        Largest shift of the peak when aligning on the energy maximum.
    noise_levels : ndarray (M,)
        Per-channel noise SD in microvolts; snippets are divided by it.
    chunk_s : float
        Traces are read in chunks of at most this length and :data:`CHUNK_VALUES` values
        (memory is bounded by the chunk, whatever the number of channels), each only over the
        span of its spikes (so a few spikes, a batch, read only their own stretch).
    neighbours : ndarray (M, M) bool, optional
        The channels whose energy aligns a spike that is largest on each channel at its
        detected sample (those within the detection radius: on a long probe, the channels
        far from the spike carry only noise and other neurons' spikes, which would move its
        alignment); by default every channel of the group.
    channels : ndarray (n,), optional
        The channel each spike is largest on (where detection found it), whose `neighbours`
        align it; by default the channel of largest absolute value at its detected sample.
    read : ndarray (n, R) int, optional
        The channels each snippet is cut on, in that order (a channel may repeat); by default
        every channel of the group (R = M). The traces are read on every channel: a chunk's
        spikes lie anywhere on the probe.

    Returns
    -------
    snippets : ndarray (n, R, T) float32
        In noise units.
    aligned : ndarray (n,) int64
        The aligned peak samples (spikes too close to an edge keep their detected sample and
        are clipped to the recording).
    """
    fs = rec.sampling_frequency
    before, after = window_samples(fs, ms_before, ms_after)
    shift = ms_to_samples(align_ms, fs)
    n_total = rec.get_num_samples()
    pad_before, pad_after = before + shift, after + shift
    M = rec.get_num_channels()
    out = np.zeros((samples.size, M if read is None else read.shape[1], before + after), np.float32)
    aligned = samples.astype(np.int64).copy()
    chunk = max(1, min(int(chunk_s * fs), CHUNK_VALUES // max(M, 1)))
    of_chunk = samples // chunk
    # only the chunks holding spikes (sorted): a batch of a few spikes visits one or two
    spans = np.split(np.arange(samples.size), np.flatnonzero(np.diff(of_chunk)) + 1)
    for sel in tqdm(
        spans if samples.size else [], desc="snippets", disable=not progress, leave=False
    ):
        start = int(of_chunk[sel[0]]) * chunk
        stop = min(start + chunk, n_total)
        # the span read: the chunk's spikes and the interpolation's taps beside them
        first = max(int(samples[sel[0]]) - TAPS - 1, start)
        last = min(int(samples[sel[-1]]) + TAPS + 2, stop)
        lo, hi = max(first - pad_before, 0), min(last + pad_after, n_total)
        traces = rec.get_traces(start_frame=lo, end_frame=hi, return_in_uV=True)
        traces = np.pad(traces, ((pad_before - (first - lo), pad_after - (hi - last)), (0, 0)))
        base = first - pad_before  # sample of traces[0]
        centre = samples[sel] - base
        energy = _energy(traces, centre, neighbours, None if channels is None else channels[sel])
        offsets = np.arange(-shift, shift + 1)
        best = np.argmax(energy(centre[:, None] + offsets), axis=1) - shift
        peak = np.clip(centre + best, before + TAPS, traces.shape[0] - after - TAPS)
        e0, em, ep = energy(peak[:, None] + np.array([0, -1, 1])).T
        curve = em - 2 * e0 + ep
        frac = np.clip(
            np.where(curve < 0, 0.5 * (em - ep) / np.where(curve < 0, curve, -1), 0), -0.5, 0.5
        )
        aligned[sel] = peak + base
        out[sel] = kernels.resampled_windows(
            traces,
            peak,
            sinc_weights(frac),
            before,
            after,
            noise_levels,
            None if read is None else read[sel],
        )
    return out, np.clip(aligned, 0, n_total - 1)


def alignment_channels(rec: sc.BaseRecording, radius_um: float) -> np.ndarray | None:
    """(M, M) bool: the channels within `radius_um` (the detection radius) of each channel,
    over which a spike largest there is aligned (:func:`extract`'s `neighbours`); None when
    every channel is within it of every other (a tetrode: all of them)."""
    locations = rec.get_channel_locations()
    near = cdist(locations, locations) <= radius_um
    return None if near.all() else near


def _energy(
    traces: np.ndarray,
    centre: np.ndarray,
    neighbours: np.ndarray | None,
    channels: np.ndarray | None,
):
    """``rows (n, k) -> Σ_m x_m(t)²`` at those rows of `traces` for each spike (rows of spike
    i in row i), summed over the channels `neighbours` gives the spike's channel (`channels`,
    else the one where the spike at `centre` is largest), or over all channels (then computed
    once for the whole chunk, :data:`ENERGY_ROWS` rows at a time)."""
    if neighbours is None:
        total = np.concatenate(
            [
                (traces[i : i + ENERGY_ROWS].astype(np.float64) ** 2).sum(1)
                for i in range(0, traces.shape[0], ENERGY_ROWS)
            ]
        )
        return lambda rows: total[rows]
    if channels is None:
        channels = np.abs(traces[centre]).argmax(1)
    local = neighbours[channels].astype(np.float64)  # (n, M)

    def at(rows):  # GATHER_VALUES at a time: the gathered rows' memory
        out = np.empty(rows.shape)
        step = max(GATHER_VALUES // (rows.shape[1] * traces.shape[1]), 1)
        for s in range(0, rows.shape[0], step):
            block = traces[rows[s : s + step]].astype(np.float64) ** 2
            out[s : s + step] = np.einsum("nkm,nm->nk", block, local[s : s + step])
        return out

    return at


TAPS = 4
# samples x channels of one chunk of traces: 4 MB in float32, and each float64 copy the
# spike-band filter makes of it (about four) 8 MB (2**22 held 58 MB more at the peak of
# cutting probe32's snippets; the filter's margins make the chunks' edges differ by rounding)
CHUNK_VALUES = 2**20
ENERGY_ROWS = 2**16  # rows of the float64 energy computed at once
GATHER_VALUES = 2**21  # values of trace rows gathered at once (the energies' snippets x rows x M)


def sinc_weights(frac: np.ndarray) -> np.ndarray:
    """Hann-windowed sinc weights of the ``2 TAPS`` samples ``j = -TAPS+1..TAPS`` about each
    sample for the value ``frac`` (n,) of a sample later: (n, 2 TAPS), each row summing to 1."""
    j = np.arange(-TAPS + 1, TAPS + 1)
    weights = np.sinc(j[None] - frac[:, None]) * np.hanning(2 * TAPS + 2)[1:-1][None]
    return weights / weights.sum(1, keepdims=True)


def delay_operators(delays: np.ndarray, whiten: np.ndarray, unwhiten: np.ndarray) -> np.ndarray:
    """``U_δ`` (n, T', T') for each delay δ of `delays` (n,) in samples: a whitened snippet
    (T' coordinates, ``W`` (T', T) from :func:`noise_whitener`, ``W⁺`` its inverse (T, T'))
    re-cut ``δ`` samples later, as the orthogonal map nearest ``W S_δ W⁺`` (its polar factor),
    so that whitened noise stays unit white noise. ``S_δ`` (T, T) is the circular delay (each
    frequency's phase turned by ``2π f δ``; the Nyquist frequency of an even window left as it
    is): a spike's tails, near zero, wrap around harmlessly, but the noise's do not, and
    ``W S_δ W⁺`` alone shrinks it by the part that leaves the noise's band. ``U_0`` is the
    identity."""
    T = unwhiten.shape[0]
    f = np.fft.rfftfreq(T)
    turn = np.exp(2j * np.pi * f[None] * np.asarray(delays, float)[:, None])  # (n, F)
    if T % 2 == 0:
        turn[:, -1] = 1.0
    S = np.fft.irfft(np.fft.rfft(np.eye(T), axis=0)[None] * turn[:, :, None], n=T, axis=1)
    left, _, right = np.linalg.svd(whiten @ S @ unwhiten)
    return left @ right


def noise_whitener(
    rec: sc.BaseRecording,
    n_samples: int,
    noise_levels: np.ndarray,
    *,
    n_chunks: int,
    chunk_s: float,
    exclude_sigma: float,
    min_eig: float,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Whitening of the noise over a snippet window, pooled over the group's channels.

    ``C`` is the covariance of windows (in noise units) cut from `n_chunks` stretches of
    `chunk_s` seconds drawn at random over the recording (`seed`), leaving out windows that
    reach `exclude_sigma` noise SDs (spikes). The band-passed noise lives in fewer than
    `n_samples` dimensions: eigenvectors of ``C`` whose eigenvalue is not above `min_eig` times
    the largest are dropped. Returns ``W`` (T', T), which maps a snippet to T' coordinates of
    unit white noise, and its inverse on that subspace (T, T'), which maps features back to
    waveforms (both the identity when fewer than ``2 n_samples`` windows are left). The
    ``sorting.whiten_*`` parameters.
    """
    rng = np.random.default_rng(seed)
    n_total = rec.get_num_samples()
    length = min(int(chunk_s * rec.sampling_frequency), n_total)
    starts = np.unique(rng.integers(0, max(n_total - length, 1), n_chunks))
    n, total, outer = 0, np.zeros(n_samples), np.zeros((n_samples, n_samples))
    for start in starts:  # the windows' sums, a stretch at a time (all of them: ~1 GB, 384 ch)
        traces = (
            rec.get_traces(start_frame=int(start), end_frame=int(start) + length, return_in_uV=True)
            / noise_levels
        )
        cut = traces[: (length // n_samples) * n_samples].T.reshape(-1, n_samples)
        w = cut[np.abs(cut).max(1) < exclude_sigma].astype(np.float64)
        n, total, outer = n + w.shape[0], total + w.sum(0), outer + w.T @ w
    if n < 2 * n_samples:
        return np.eye(n_samples), np.eye(n_samples)
    mean = total / n
    vals, vecs = np.linalg.eigh((outer - n * np.outer(mean, mean)) / (n - 1))
    keep = vals > min_eig * vals.max()
    vals, vecs = vals[keep], vecs[:, keep]
    return (vecs / np.sqrt(vals)).T, vecs * np.sqrt(vals)
