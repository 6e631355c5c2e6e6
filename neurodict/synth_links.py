"""A second spike->LFP ground truth, made unlike :mod:`neurodict.synth`'s prototype families.

Per region ``r``, at ``fs_hz``::

    y_r(t) = sum_n (u_n * f_{n,r})(t) + a_r(t) + p_r(t) + e_r(t)

- Links ``f_{n,r}`` are drawn per unit and target region independently (no families, no
  sharing): a damped oscillation (2-80 Hz, random phase and decay, one- or two-sided), a
  difference of exponentials or a biphasic pair of alpha functions, each causal (the
  LFP follows the spike) or anti-causal (it precedes it), after a random latency, with a random
  sign and a log-normal gain per link.
- Links exist in one direction only. Every pair of regions is oriented at random: units of ``a``
  may reach ``b`` or units of ``b`` may reach ``a``, never both. Some regions are reached by
  nobody (silent); a unit reaches its own region and the regions its region points to, each
  with a probability, so most unit-region pairs are empty (exactly zero filters).
- Trains ``u_n`` are gamma-renewal processes with an absolute refractory period (shape below 1:
  bursty; above 1: regular), log-uniform rates in 1-30 Hz, thinned by a slow oscillation shared
  by all units (each with its own depth and preferred phase), which keeps the refractory period.
- The background is region-specific: an AR(2) resonance ``a_r`` (its own peak frequency and
  sharpness), aperiodic ``1/f^beta`` noise ``p_r`` (its own exponent) and white noise ``e_r``;
  none of it depends on the spikes.

Three independent random streams (``numpy.random.SeedSequence(seed).spawn(3)``) draw the links,
the trains and the background, so each part is reproducible on its own.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.signal

from neurodict.common.errors import InputError
from neurodict.synth import bin_spikes, spike_lfp

SHAPES = ("oscillation", "exponentials", "biphasic")


@dataclass
class LinkTruth:
    """Data and truth of one :func:`link_session`.

    Attributes
    ----------
    spike_bins : list of ndarray of int64
        Per unit, the sorted, distinct bins (at ``fs_hz``) of its spikes.
    lfp_uv : ndarray of shape (n_regions, n_bins), float32
        ``spike_lfp_uv + background_uv``.
    background_uv : ndarray of shape (n_regions, n_bins), float32
        The part of the LFP not driven by the units.
    filters : ndarray of shape (n_units, n_regions, n_lags)
        ``f_{n,r}`` in microvolts per spike, lag 0 in the middle; exactly zero where not ``reach``.
    reach : ndarray of bool, shape (n_units, n_regions)
        Which links exist.
    shapes : ndarray of str, shape (n_units, n_regions)
        The kind of each link (one of ``SHAPES``), ``""`` where none.
    unit_regions : list of str, length n_units
    regions : list of str, length n_regions
    silent : ndarray of bool, shape (n_regions,)
        Regions no unit may reach.
    rates_hz : ndarray of shape (n_units,)
        Each unit's mean firing rate.
    refractory_ms : float
    fs_hz : float
    """

    spike_bins: list
    lfp_uv: np.ndarray
    background_uv: np.ndarray
    filters: np.ndarray
    reach: np.ndarray
    shapes: np.ndarray
    unit_regions: list
    regions: list
    silent: np.ndarray
    rates_hz: np.ndarray
    refractory_ms: float
    fs_hz: float


def lag_axis_s(lag_ms: float, fs_hz: float) -> np.ndarray:
    """Filter lags in seconds, shape (2 L + 1,), ``L = round(lag_ms fs_hz / 1000)``."""
    half = int(round(lag_ms * fs_hz / 1000.0))
    return np.arange(-half, half + 1) / fs_hz


def _exponentials(x_s: np.ndarray, rise_s: float, decay_s: float) -> np.ndarray:
    """``exp(-x/decay) - exp(-x/rise)`` for x >= 0, else 0 (an alpha function when equal)."""
    x = np.maximum(x_s, 0.0)
    if np.isclose(rise_s, decay_s):
        k = x / decay_s * np.exp(-x / decay_s)
    else:
        k = np.exp(-x / decay_s) - np.exp(-x / rise_s)
    return np.where(x_s >= 0, k, 0.0)


def _alpha(x_s: np.ndarray, tau_s: float) -> np.ndarray:
    """Alpha function ``(x/tau) exp(1 - x/tau)`` for x >= 0 (peak 1 at tau), else 0."""
    x = np.maximum(x_s, 0.0) / tau_s
    return x * np.exp(1.0 - x)


def link_shape(kind: str, tau_s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One link's waveform with peak magnitude 1, shape (n_lags,).

    Parameters
    ----------
    kind : {"oscillation", "exponentials", "biphasic"}
        Damped oscillation (frequency log-uniform in 2-80 Hz, phase uniform, 0.5-3 cycles of
        decay, one-sided with a 2 ms rise or two-sided); difference of exponentials (rise 1-10 ms,
        decay 1.5-8 times longer); biphasic (an alpha function peaking at 2-8 ms minus one 1-2
        times slower, 3-5 first peaks later, at 0.6-1.2 times its height). Time constants are
        capped at a quarter of the window after the latency.
    tau_s : ndarray of shape (n_lags,)
        Lags in seconds (positive: the LFP after the spike).
    rng : numpy.random.Generator
        Draws the direction (causal or anti-causal), a latency of 0-30 ms and the parameters.
    """
    max_s = max((float(tau_s[-1]) - 0.03) / 4, 0.005)  # decayed within the window
    direction = rng.choice([-1.0, 1.0])
    x = direction * tau_s - rng.uniform(0.0, 0.03)  # time since onset, in the link's direction
    if kind == "oscillation":
        freq_hz = float(np.exp(rng.uniform(np.log(2.0), np.log(80.0))))
        decay_s = float(np.clip(rng.uniform(0.5, 3.0) / freq_hz, 0.005, max_s))
        if rng.random() < 0.5:
            envelope = np.exp(-np.abs(x) / decay_s)
        else:
            envelope = np.where(x >= 0, (1 - np.exp(-x / 0.002)) * np.exp(-x / decay_s), 0.0)
        h = envelope * np.cos(2 * np.pi * freq_hz * x + rng.uniform(0, 2 * np.pi))
    elif kind == "exponentials":
        rise_s = rng.uniform(0.001, 0.01)
        h = _exponentials(x, rise_s, min(rise_s * rng.uniform(1.5, 8.0), max_s))
    elif kind == "biphasic":
        first_s = min(rng.uniform(0.002, 0.008), max_s)
        second_s = first_s * rng.uniform(1.0, 2.0)
        delay_s = first_s * rng.uniform(3.0, 5.0)
        h = _alpha(x, first_s) - rng.uniform(0.6, 1.2) * _alpha(x - delay_s, second_s)
    else:
        raise InputError(f"'kind': expected one of {SHAPES}; got {kind!r}.")
    return rng.choice([-1.0, 1.0]) * h / np.abs(h).max()


def link_graph(
    home: np.ndarray,
    n_regions: int,
    rng: np.random.Generator,
    *,
    n_silent: int | None = None,
    home_probability: float = 0.6,
    reach_probability: float = 0.3,
) -> tuple[np.ndarray, np.ndarray]:
    """Which unit reaches which region: one direction per region pair, silent regions.

    Parameters
    ----------
    home : ndarray of int, shape (n_units,)
        Each unit's region.
    n_regions : int
    rng : numpy.random.Generator
    n_silent : int, optional
        Regions reached by nobody; default ``max(1, n_regions // 4)`` when ``n_regions > 1``,
        else 0.
    home_probability, reach_probability : float
        Probability that a unit reaches its own region, and each region its region points to.

    Returns
    -------
    reach : ndarray of bool, shape (n_units, n_regions)
    silent : ndarray of bool, shape (n_regions,)
    """
    if n_silent is None:
        n_silent = max(1, n_regions // 4) if n_regions > 1 else 0
    silent = np.zeros(n_regions, dtype=bool)
    silent[rng.choice(n_regions, size=n_silent, replace=False)] = True
    # points[a, b]: units of a may reach b; exactly one of (a, b), (b, a) for a != b
    upper = np.triu(rng.random((n_regions, n_regions)) < 0.5, k=1)
    points = upper | np.triu(~upper, k=1).T
    points |= np.eye(n_regions, dtype=bool)
    points[:, silent] = False
    probability = np.where(np.eye(n_regions, dtype=bool), home_probability, reach_probability)
    reach = points[home] & (rng.random((home.size, n_regions)) < probability[home])
    return reach, silent


def link_filters(
    reach: np.ndarray,
    rng: np.random.Generator,
    *,
    fs_hz: float = 1000.0,
    lag_ms: float = 200.0,
    filter_peak_uv: float = 20.0,
    gain_log_sd: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Independent filters for the links in `reach`, zero elsewhere.

    Parameters
    ----------
    reach : ndarray of bool, shape (n_units, n_regions)
    rng : numpy.random.Generator
    fs_hz, lag_ms : float
        Filters span ``-lag_ms .. +lag_ms`` at ``fs_hz``.
    filter_peak_uv : float
        Median peak magnitude of a link in microvolts per spike.
    gain_log_sd : float
        Each link's peak is ``filter_peak_uv * exp(N(0, gain_log_sd^2))``.

    Returns
    -------
    filters : ndarray of shape (n_units, n_regions, n_lags)
    shapes : ndarray of str, shape (n_units, n_regions)
        ``""`` where no link.
    """
    tau_s = lag_axis_s(lag_ms, fs_hz)
    filters = np.zeros(reach.shape + (tau_s.size,))
    shapes = np.full(reach.shape, "", dtype=object)
    for n, r in zip(*np.nonzero(reach), strict=True):
        kind = SHAPES[rng.integers(len(SHAPES))]
        gain_uv = filter_peak_uv * np.exp(rng.normal(0.0, gain_log_sd))
        filters[n, r] = gain_uv * link_shape(kind, tau_s, rng)
        shapes[n, r] = kind
    return filters, shapes.astype(str)


def renewal_trains(
    n_units: int,
    duration_s: float,
    rng: np.random.Generator,
    *,
    fs_hz: float = 1000.0,
    rate_hz: tuple[float, float] = (1.0, 30.0),
    refractory_ms: float = 2.5,
    shape: tuple[float, float] = (0.3, 4.0),
    modulation_depth: tuple[float, float] = (0.0, 0.8),
    modulation_hz: tuple[float, float] = (0.2, 1.0),
) -> tuple[list[np.ndarray], np.ndarray]:
    """Gamma-renewal spike trains with a refractory period, modulated by a shared slow rhythm.

    Each unit draws a rate log-uniform in `rate_hz`, a gamma shape log-uniform in `shape`, a
    depth uniform in `modulation_depth` and a preferred phase. Its train is renewal at
    ``rate (1 + depth)`` with intervals ``refractory + Gamma(shape)``, then thinned with
    probability of keeping ``(1 + depth cos(2 pi f t + phase)) / (1 + depth)``, ``f`` one
    frequency (uniform in `modulation_hz`) for all units: the mean rate stays ``rate`` and no
    interval gets shorter than the refractory period.

    Parameters
    ----------
    n_units : int
    duration_s : float
    rng : numpy.random.Generator
    fs_hz : float
        Rate of the bins returned.
    rate_hz, shape, modulation_depth, modulation_hz : tuple of float
        Ranges (low, high); ``modulation_depth=(0, 0)`` turns the modulation off.
    refractory_ms : float
        Absolute refractory period; consecutive bins differ by at least
        ``floor(refractory_ms fs_hz / 1000)``.

    Returns
    -------
    spike_bins : list of ndarray of int64
        Per unit, sorted distinct bins in ``[0, duration_s fs_hz)``.
    rates_hz : ndarray of shape (n_units,)

    Raises
    ------
    InputError
        When the fastest unit's renewal rate leaves no time beyond the refractory period.
    """
    top_hz = rate_hz[1] * (1 + modulation_depth[1])
    if top_hz * refractory_ms / 1000.0 >= 1.0:
        raise InputError(
            f"'rate_hz': expected rate_hz[1] (1 + modulation_depth[1]) below "
            f"1000 / refractory_ms = {1000.0 / refractory_ms:g} Hz; got {top_hz:g} Hz."
        )
    refractory_s = refractory_ms / 1000.0
    rates_hz = np.exp(rng.uniform(np.log(rate_hz[0]), np.log(rate_hz[1]), n_units))
    freq_hz = rng.uniform(*modulation_hz)
    n_bins = int(duration_s * fs_hz)
    trains = []
    for rate in rates_hz:
        k = np.exp(rng.uniform(np.log(shape[0]), np.log(shape[1])))
        depth = rng.uniform(*modulation_depth)
        phase = rng.uniform(0, 2 * np.pi)
        base_hz = rate * (1 + depth)
        scale_s = (1.0 / base_hz - refractory_s) / k
        times = np.empty(0)
        start_s = rng.exponential(1.0 / base_hz)  # the first spike
        while start_s < duration_s:
            n = int((duration_s - start_s) * base_hz * 1.1) + 20
            isi = refractory_s + rng.gamma(k, scale_s, n)
            new = start_s + np.concatenate([[0.0], np.cumsum(isi[:-1])])
            times = np.concatenate([times, new])
            start_s = new[-1] + isi[-1]
        times = times[times < duration_s]
        keep = (1 + depth * np.cos(2 * np.pi * freq_hz * times + phase)) / (1 + depth)
        times = times[rng.random(times.size) < keep]
        trains.append(np.unique(np.minimum((times * fs_hz).astype(np.int64), n_bins - 1)))
    return trains, rates_hz


def power_law_noise(
    n_bins: int, rng: np.random.Generator, fs_hz: float, exponent: float, min_hz: float = 0.5
) -> np.ndarray:
    """Unit-variance noise with power ``1/f^exponent`` above `min_hz`, shape (n_bins,)."""
    freqs = np.fft.rfftfreq(n_bins, 1.0 / fs_hz)
    amp = np.maximum(freqs, min_hz) ** (-exponent / 2)
    x = np.fft.irfft(
        amp * (rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size)), n_bins
    )
    return x / x.std()


def ar2_noise(
    n_bins: int, rng: np.random.Generator, fs_hz: float, peak_hz: float, radius: float
) -> np.ndarray:
    """Unit-variance AR(2) noise resonant at `peak_hz`, shape (n_bins,).

    ``x_t = 2 radius cos(2 pi peak_hz / fs_hz) x_{t-1} - radius^2 x_{t-2} + e_t``; a radius
    closer to 1 gives a sharper peak. The first 5000 samples are dropped (burn-in).
    """
    a1 = 2 * radius * np.cos(2 * np.pi * peak_hz / fs_hz)
    burn = 5000
    x = scipy.signal.lfilter([1.0], [1.0, -a1, radius**2], rng.standard_normal(n_bins + burn))
    x = x[burn:]
    return x / x.std()


def region_background(
    n_regions: int,
    n_bins: int,
    rng: np.random.Generator,
    *,
    fs_hz: float = 1000.0,
    peak_hz: tuple[float, float] = (2.0, 60.0),
    radius: tuple[float, float] = (0.97, 0.995),
    exponent: tuple[float, float] = (0.8, 2.2),
    ar_uv: tuple[float, float] = (10.0, 40.0),
    aperiodic_uv: tuple[float, float] = (15.0, 40.0),
    white_uv: float = 3.0,
) -> np.ndarray:
    """Region-specific background, shape (n_regions, n_bins), float32 microvolts.

    Per region: AR(2) noise (:func:`ar2_noise`, peak log-uniform in `peak_hz`, radius uniform in
    `radius`, standard deviation uniform in `ar_uv`), plus ``1/f^beta`` noise (beta uniform in
    `exponent`, standard deviation uniform in `aperiodic_uv`), plus white noise of `white_uv`.
    """
    out = np.empty((n_regions, n_bins), dtype="float32")
    for r in range(n_regions):
        peak = np.exp(rng.uniform(*np.log(peak_hz)))
        ar = ar2_noise(n_bins, rng, fs_hz, peak, rng.uniform(*radius))
        aperiodic = power_law_noise(n_bins, rng, fs_hz, rng.uniform(*exponent))
        out[r] = (
            rng.uniform(*ar_uv) * ar
            + rng.uniform(*aperiodic_uv) * aperiodic
            + white_uv * rng.standard_normal(n_bins)
        )
    return out


def spike_lfp_chunked(
    spike_bins: list[np.ndarray],
    filters: np.ndarray,
    n_bins: int,
    *,
    chunk_bins: int = 600_000,
    n_workers: int = 1,
) -> np.ndarray:
    """``sum_n (u_n * f_{n,r})(t)`` chunk by chunk, exact, shape (n_regions, n_bins), float32.

    Each chunk sees the spikes within half a filter of it on both sides, so the result equals
    :func:`neurodict.synth.spike_lfp` on the whole binned trains while the dense trains stay
    ``chunk_bins`` long.

    Parameters
    ----------
    spike_bins : list of ndarray of int
        Per unit, spike bins in ``[0, n_bins)``.
    filters : ndarray of shape (n_units, n_regions, n_lags), n_lags odd, lag 0 in the middle
    n_bins : int
    chunk_bins : int
    n_workers : int
        Threads computing chunks at once.
    """
    half = filters.shape[2] // 2
    out = np.empty((filters.shape[1], n_bins), dtype="float32")

    def block(a: int) -> np.ndarray:
        lo, hi = a - half, min(n_bins, a + chunk_bins) + half
        part = [s[(s >= lo) & (s < hi)] - lo for s in spike_bins]
        lfp = spike_lfp(bin_spikes(part, 1.0, 1.0, hi - lo), filters)
        return lfp[:, half : hi - lo - half]

    starts = range(0, n_bins, chunk_bins)
    with ThreadPoolExecutor(max(1, n_workers)) as pool:
        for a, part in zip(starts, pool.map(block, starts), strict=True):
            out[:, a : a + part.shape[1]] = part
    return out


def link_session(
    n_regions: int,
    n_units: int,
    minutes: float,
    seed: int = 0,
    *,
    fs_hz: float = 1000.0,
    lag_ms: float = 200.0,
    refractory_ms: float = 2.5,
    n_workers: int = 1,
) -> LinkTruth:
    """Spikes, region LFPs and their truth, generated as the module docstring says.

    Parameters
    ----------
    n_regions, n_units : int
        Unit ``n`` lives in region ``n % n_regions``; regions are named R0, R1, ...
    minutes : float
        Recording length.
    seed : int
    fs_hz : float
        Rate of the bins and of the LFP.
    lag_ms : float
        Filters span ``-lag_ms .. +lag_ms``.
    refractory_ms : float
        Absolute refractory period of every unit.
    n_workers : int
        Threads for the spike-driven LFP.

    Returns
    -------
    LinkTruth

    Raises
    ------
    InputError
        When a size is not positive or `lag_ms` is under 50 ms.
    """
    for name, value in (("n_regions", n_regions), ("n_units", n_units), ("minutes", minutes)):
        if not value > 0:
            raise InputError(f"'{name}': expected a positive number; got {value!r}.")
    if lag_ms < 50.0:  # room for a 30 ms latency and the kernel after it
        raise InputError(f"'lag_ms': expected at least 50 ms; got {lag_ms!r}.")
    links_rng, trains_rng, background_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    n_bins = int(round(minutes * 60.0 * fs_hz))
    regions = [f"R{i}" for i in range(n_regions)]
    home = np.arange(n_units) % n_regions
    reach, silent = link_graph(home, n_regions, links_rng)
    filters, shapes = link_filters(reach, links_rng, fs_hz=fs_hz, lag_ms=lag_ms)
    spike_bins, rates_hz = renewal_trains(
        n_units, n_bins / fs_hz, trains_rng, fs_hz=fs_hz, refractory_ms=refractory_ms
    )
    background = region_background(n_regions, n_bins, background_rng, fs_hz=fs_hz)
    lfp = spike_lfp_chunked(spike_bins, filters, n_bins, n_workers=n_workers)
    lfp += background
    return LinkTruth(
        spike_bins=spike_bins,
        lfp_uv=lfp,
        background_uv=background,
        filters=filters,
        reach=reach,
        shapes=shapes,
        unit_regions=[regions[h] for h in home],
        regions=regions,
        silent=silent,
        rates_hz=rates_hz,
        refractory_ms=refractory_ms,
        fs_hz=fs_hz,
    )


def planted_links(
    n_regions: int,
    n_units: int,
    minutes: float,
    seed: int = 0,
    fs_hz: float = 1000.0,
    lag_ms: float = 200.0,
    n_workers: int = 1,
):
    """:func:`link_session` as ``benchmarks/lfpdict.py``'s ``planted`` returns its data.

    Returns
    -------
    spike_bins : list of ndarray of int64, length n_units
    y : ndarray of shape (n_regions, n_bins), float32
    filters : ndarray of shape (n_units, n_regions, n_lags)
    unit_regions : list of str, length n_units
    regions : list of str, length n_regions
    """
    truth = link_session(
        n_regions, n_units, minutes, seed, fs_hz=fs_hz, lag_ms=lag_ms, n_workers=n_workers
    )
    return truth.spike_bins, truth.lfp_uv, truth.filters, truth.unit_regions, truth.regions
