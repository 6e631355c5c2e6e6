"""What the dictionaries read: spike bins at the LFP rate, region LFPs, windows, lags; which
units take part (``lfpdict.units``); and each unit's clean home-region LFP (no spike
bleed-through, MODELS.md section 2, "Clean predictors")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import spikeinterface as si

from neurodict.common.errors import InputError
from neurodict.common.units import ms_to_samples
from neurodict.preprocess.filters import (
    CLEAN_DESPIKED,
    LFP_RATE_FILTERS,
    apply_lfp_rate_chain,
)

UNITS_CHOICES = ("single", "all")
# Unit properties that leave a unit out with ``units: single``: boolean flags, and the
# curation labels of a ``quality`` property (phy / Kilosort style).
EXCLUDING_FLAGS = ("multi_unit", "noise")
EXCLUDING_QUALITY = ("mua", "noise")
DESPIKE_HALF_WIDTH_MS = 5.0  # lags of the spike kernels removed by despike(): +-5 ms
DESPIKE_FLANK_MS = 15.0  # flanks beyond them that tell the smooth coupling kept, 5-20 ms


class LFPDictInputError(InputError):
    """The sorting and LFP given to the dictionary step do not fit together."""


def lag_bins(params: dict, fs_hz: float) -> tuple[int, int]:
    """The filters' lags before and after a spike in LFP bins: ``lag_minus_ms``, ``lag_plus_ms``."""
    return ms_to_samples(params["lag_minus_ms"], fs_hz), ms_to_samples(params["lag_plus_ms"], fs_hz)


def spike_bins_from_sorting(sorting, fs_lfp_hz: float) -> list[np.ndarray]:
    """Per unit, the LFP-rate bin of each spike: floor(t_s * fs_lfp_hz)."""
    fs = sorting.sampling_frequency
    return [
        np.floor(sorting.get_unit_spike_train(u) / fs * fs_lfp_hz).astype(np.int64)
        for u in sorting.unit_ids
    ]


def _truthy(values) -> np.ndarray:
    """A unit property as booleans: bools, numbers, or strings such as 'True' / 'false' / '1'."""
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf":
        return arr.astype(bool)
    return np.isin(np.char.lower(arr.astype(str)), ("true", "1", "yes"))


def unit_exclusions(sorting, units: str = "single") -> dict:
    """The units that ``lfpdict.units`` leaves out, ``{unit_id (str): reason}`` in unit order.

    With ``single``: units whose ``multi_unit`` or ``noise`` property is true, and units whose
    ``quality`` property is ``mua`` or ``noise``; a sorting without these properties (a
    ground-truth sorting) keeps every unit. With ``all``: none.
    """
    if units not in UNITS_CHOICES:
        raise ValueError(f"'lfpdict.units': expected one of {UNITS_CHOICES}; got {units!r}.")
    reasons = [[] for _ in sorting.unit_ids]
    if units == "single":
        keys = sorting.get_property_keys()
        for key in EXCLUDING_FLAGS:
            if key in keys:
                for i in np.flatnonzero(_truthy(sorting.get_property(key))):
                    reasons[i].append(key)
        if "quality" in keys:
            quality = np.char.lower(np.asarray(sorting.get_property("quality")).astype(str))
            for i in np.flatnonzero(np.isin(quality, EXCLUDING_QUALITY)):
                reasons[i].append(f"quality {quality[i]}")
    return {str(u): ", ".join(r) for u, r in zip(sorting.unit_ids, reasons, strict=True) if r}


def load_lfpdict_inputs(
    sorting_dir: str | Path,
    lfp_dir: str | Path,
    units: str = "single",
    return_excluded: bool = False,
):
    """Spike bins, region LFPs and region labels, checked against each other.

    Parameters
    ----------
    sorting_dir, lfp_dir : path
        A spikeinterface sorting (unit property ``region``) and the region LFPs (channel
        property ``region``).
    units : {"single", "all"}
        ``lfpdict.units``: with ``single`` the units of :func:`unit_exclusions` (multi-unit or
        noise) are left out of everything returned.
    return_excluded : bool
        Also return the units left out.

    Returns
    -------
    spike_bins : list of ndarray
    y : ndarray of shape (n_targets, n_bins), float32
    targets : list of str
        One name per LFP channel: its region (with the channel id when a region has several).
    target_regions, unit_regions : ndarray of str
    unit_ids : ndarray
        The units kept.
    fs_hz : float
    excluded : dict, only with `return_excluded`
        ``{unit_id (str): reason}`` of the units left out, in the sorting's order.

    Raises
    ------
    LFPDictInputError
        A unit without a region, or whose region has no LFP; spikes beyond the LFP's end.
    """
    sorting, lfp = si.load(sorting_dir), si.load(lfp_dir)
    if "region" not in sorting.get_property_keys():
        raise LFPDictInputError(
            f"sorting '{sorting_dir}': expected the unit property 'region'; "
            f"its units carry {sorting.get_property_keys()}."
        )
    if "region" not in lfp.get_property_keys():
        raise LFPDictInputError(f"LFP '{lfp_dir}': expected the channel property 'region'.")
    excluded = unit_exclusions(sorting, units)
    if excluded:
        sorting = sorting.select_units([u for u in sorting.unit_ids if str(u) not in excluded])
    unit_regions = np.asarray(sorting.get_property("region")).astype(str).tolist()
    target_regions = np.asarray(lfp.get_property("region")).astype(str).tolist()
    for unit, region in zip(sorting.unit_ids, unit_regions, strict=True):
        if region not in target_regions:
            raise LFPDictInputError(
                f"sorting '{sorting_dir}': unit '{unit}' has region '{region}', which is not "
                f"among the LFP's regions {sorted(map(str, set(target_regions)))} "
                f"('{lfp_dir}')."
            )
    fs = lfp.sampling_frequency
    spike_bins = spike_bins_from_sorting(sorting, fs)
    n_bins = lfp.get_num_samples()
    last = max((int(s.max()) for s in spike_bins if s.size), default=-1)
    if last >= n_bins:
        raise LFPDictInputError(
            f"sorting '{sorting_dir}' has spikes until {(last + 1) / fs:.3f} s but the LFP "
            f"'{lfp_dir}' lasts {n_bins / fs:.3f} s: expected the same recording."
        )
    counts = {r: target_regions.count(r) for r in set(target_regions)}
    targets = [
        r if counts[r] == 1 else f"{r}:{c}"
        for r, c in zip(target_regions, lfp.channel_ids, strict=True)
    ]
    y = lfp.get_traces().T.astype("float32")
    out = (
        spike_bins,
        y,
        targets,
        np.array(target_regions, dtype=str),
        np.array(unit_regions, dtype=str),
        sorting.unit_ids,
        fs,
    )
    return (*out, excluded) if return_excluded else out


def despike_args(recording, half_width_ms: float, flank_ms: float) -> tuple:
    """:func:`despike`'s lags and chain for an LFP-rate folder: half width and flanks in bins,
    and the LFP-rate filters of its ``lfp_rate_filters`` annotation (None without it)."""
    fs = recording.sampling_frequency
    chain = (
        recording.get_annotation(LFP_RATE_FILTERS)
        if LFP_RATE_FILTERS in recording.get_annotation_keys()
        else None
    )
    return ms_to_samples(half_width_ms, fs), chain, ms_to_samples(flank_ms, fs)


def despiked_targets(
    sorting_dir: str | Path,
    lfp_dir: str | Path,
    y: np.ndarray,
    target_regions,
    half_width_ms: float = DESPIKE_HALF_WIDTH_MS,
    flank_ms: float = DESPIKE_FLANK_MS,
) -> np.ndarray:
    """The dictionaries' targets: each region LFP without its own units' spike bleed-through.

    A unit's spikes leak into the LFP of its own channels, so a region's LFP (`y`, as
    :func:`load_lfpdict_inputs` gives it from `lfp_dir`) carries a kernel at every spike of
    the region's units that any model of the region from its own units would "predict". Each
    row is despiked (:func:`despike`) of every unit of its region in the sorting (those left
    out by ``lfpdict.units`` too: multi-units leak as well), through the LFP-rate filters
    recorded in the folder's ``lfp_rate_filters`` annotation. One target serves all predictor
    sets; spikes of other regions' units are not on these channels.

    Returns
    -------
    ndarray of shape y.shape, float32
    """
    sorting, lfp = si.load(sorting_dir), si.load(lfp_dir)
    fs = lfp.sampling_frequency
    args = despike_args(lfp, half_width_ms, flank_ms)
    bins = spike_bins_from_sorting(sorting, fs)
    regions = np.asarray(sorting.get_property("region")).astype(str)
    out = np.array(y, dtype="float32")
    for row, region in enumerate(np.asarray(target_regions).astype(str)):
        members = [b for b, r in zip(bins, regions, strict=True) if r == region]
        if members:
            out[row] = despike(out[row], members, *args)[0]
    return out


def despike(
    y: np.ndarray,
    spike_bins: list[np.ndarray],
    half_width_bins: int,
    chain: dict | None = None,
    flank_bins: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """`y` without what its units' spikes add to it, at lags within +-`half_width_bins`.

    The LFP-rate version of "the unit's mean waveform subtracted at its spike times before the
    low-pass". The low-pass and the decimation are linear and short: each spike of unit ``m``
    adds the same kernel ``k_m`` (its waveform's low-frequency part, a few ms long) at its
    bin. The LFP-rate filters that follow (`chain`, :func:`neurodict.preprocess.filters.
    lfp_rate_chain`: the 0.5 Hz high-pass and the mains notches) are linear too, so the
    bleed-through is ``N(sum_m u_m * k_m) = sum_m (N u_m) * k_m`` (``u_m``: spike counts per
    bin, ``N``: the chain, identity without `chain`).

    1. Filters ``h_m`` on lags ``+-(half_width_bins + flank_bins)`` are fitted jointly by least
       squares, ``y - mean(y) ~ sum_m (N u_m) * h_m``: the spike-triggered average of every
       unit at once, so overlapping spikes of several units (and bursts) are not counted
       twice. Without `chain` or flanks and for one unit whose spikes are further apart than
       the lags, ``h`` is its spike-triggered average minus the mean.
    2. ``h_m`` holds the bleed-through and any genuine coupling of the LFP to the unit. With
       `flank_bins`, the genuine part is taken as smooth over the lags: ``h_m = q_m + k_m``,
       ``q_m`` a quadratic in the lag over all of them (the flanks ``half_width_bins < |lag|
       <= half_width_bins + flank_bins`` tell it), ``k_m`` free on ``|lag| <=
       half_width_bins`` only (the kernel). (Without flanks, ``k_m = h_m``: a unit's genuine
       slow coupling is cut out as a box of the window's width around every spike, and the
       box's edges lock the unit to the beta and gamma bands; on the synthetic sessions that
       made PPCs of 0.1-0.3 out of nothing.)
    3. ``N(sum_m u_m * k_m)`` is subtracted from `y`: the kernels and the notches' ringing
       (tens of ms) and the high-pass's tail (seconds) that follow each of them.

    What it also removes: genuine LFP components locked to the spikes within the window that
    a quadratic through the flanks does not follow (gamma cycles; +-5 ms is under a quarter
    of a 40 Hz cycle): such locking is weakened, never made. What it leaves: the spread of
    the sub-bin spike timing (the kernel lives on the LFP grid, 1 ms by default), which
    averages out in the phase statistics.

    ``N`` is symmetric (zero phase), so the normal equations are ``X' N^2 X h = X'(N y)``
    (``X``: the spike counts at each lag). ``X'(N y)`` is exact: ``y`` filtered once and
    summed at the spikes. In ``X' N^2 X`` each spike's pairing with itself goes through the
    impulse response of ``N^2`` (this is where the notches take a few % of each spike's
    kernel, and ring); pairs of distinct spikes, which meet at random phases of the ringing,
    are counted as with ``N = 1`` (their cross-correlograms up to twice the lags). The chain
    is applied three times in all, whatever the number of units, and no dense design matrix
    is formed.

    Returns the cleaned signal (float32) and the kernels removed, (n_units, 2 half_width_bins
    + 1).
    """

    def filt(x: np.ndarray) -> np.ndarray:
        return x if chain is None else apply_lfp_rate_chain(x, chain)

    y64 = np.asarray(y, np.float64)
    n = y64.size
    reach = half_width_bins + flank_bins
    lags = np.arange(-reach, reach + 1)
    n_lags, n_units = lags.size, len(spike_bins)
    bins = [np.asarray(b, np.int64) for b in spike_bins]

    def gather(signal: np.ndarray, at: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """sum over spikes `at` of signal[at + offset], per offset (0 outside the signal)."""
        idx = at[None, :] + offsets[:, None]
        ok = (idx >= 0) & (idx < n)
        return np.where(ok, signal[np.clip(idx, 0, n - 1)], 0.0).sum(axis=1)

    ny = filt(y64 - y64.mean())
    rhs = np.concatenate([gather(ny, b, lags) for b in bins]) if bins else np.zeros(0)
    counts = _cross_counts(bins, 2 * reach)  # (n_units, n_units, diffs): pairs t_j - t_i = d
    # a spike's pairing with itself goes through N^2 exactly: its impulse response r(d)
    # replaces the count at d = 0; pairs of distinct spikes use N^2 ~ identity (see above)
    impulse = np.zeros(min(n, 1 << 15) if chain is None else 1 << 15)
    impulse[impulse.size // 2] = 1.0
    r = filt(filt(impulse))[impulse.size // 2 + np.arange(-2 * reach, 2 * reach + 1)]
    r[2 * reach] -= 1.0
    for a, b in enumerate(bins):
        counts[a, a] += b.size * r
    # the filters on all lags, h = basis @ params: free on the inner lags (the kernel), plus
    # with flanks a quadratic in the lag over all of them (the smooth coupling, kept)
    inner = np.abs(lags) <= half_width_bins
    basis = np.eye(n_lags)[:, inner]
    if flank_bins:
        x = lags / reach
        basis = np.column_stack([basis, np.ones(n_lags), x, x**2])
    n_par = basis.shape[1]
    # X'X[(a, tau_a), (b, tau_b)] = #{i in a, j in b: t_i + tau_a = t_j + tau_b}
    toeplitz = counts[:, :, (lags[:, None] - lags[None, :]) + 2 * reach]  # (a, b, tau_a, tau_b)
    gram = np.einsum("lp,ablm,mq->apbq", basis, toeplitz, basis, optimize=True)
    gram = gram.reshape(n_units * n_par, n_units * n_par)
    rhs = (rhs.reshape(n_units, n_lags) @ basis).ravel()
    # a ridge of 1e-9 of a spike's weight: silent units get 0, the rest is unchanged
    ridge = 1e-9 * max(float(np.mean(np.diag(gram))) if rhs.size else 1.0, 1.0)
    coef = (
        scipy.linalg.solve(gram + ridge * np.eye(rhs.size), rhs, assume_a="sym")
        if rhs.size
        else rhs
    )
    kernels = coef.reshape(n_units, n_par)[:, : int(inner.sum())]
    added = np.zeros(n)
    for b, k in zip(bins, kernels, strict=True):
        idx = (b[:, None] + lags[inner][None, :]).ravel()
        ok = (idx >= 0) & (idx < n)
        # np.add.at with 1-D index and values of the same shape (numpy 2.4 mis-broadcasts)
        np.add.at(added, idx[ok], np.tile(k, b.size)[ok])
    return (y64 - filt(added)).astype("float32"), kernels


def _cross_counts(bins: list[np.ndarray], max_lag: int) -> np.ndarray:
    """``c[a, b, d + max_lag] = #{(i, j): i a spike of unit a, j of unit b, t_j - t_i = d}`` for
    ``|d| <= max_lag`` (a spike with itself included), from the time-sorted spikes of all
    units: each spike is paired with the ones that follow it within `max_lag`."""
    n_units = len(bins)
    width = 2 * max_lag + 1
    counts = np.zeros(n_units * n_units * width, np.float64)
    if not n_units:
        return counts.reshape(0, 0, width)
    t = np.concatenate(bins)
    unit = np.repeat(np.arange(n_units), [b.size for b in bins])
    order = np.argsort(t, kind="stable")
    t, unit = t[order], unit[order]
    diag = np.bincount(unit, minlength=n_units).astype(np.float64)
    counts[(np.arange(n_units) * n_units + np.arange(n_units)) * width + max_lag] += diag
    for k in range(1, t.size):
        d = t[k:] - t[:-k]
        near = d <= max_lag
        if not near.any():
            break
        a, b, d = unit[:-k][near], unit[k:][near], d[near]
        # the pair counts once at +d for (a, b) and once at -d for (b, a)
        np.add.at(counts, (a * n_units + b) * width + max_lag + d, 1.0)
        np.add.at(counts, (b * n_units + a) * width + max_lag - d, 1.0)
    return counts.reshape(n_units, n_units, width)


@dataclass
class CleanTargets:
    """Per electrode group, its region's LFP without the group's own spikes; each unit's row.

    Attributes
    ----------
    y : ndarray (n_rows, n_bins), float32
    groups, regions, methods : ndarray of str, (n_rows,)
        The row's electrode group (``""`` for a region-wide row, see
        :func:`load_clean_targets`), region, and how its spikes were kept out:
        ``other_groups`` (the median of the region's other groups' channels) or ``despiked``
        (the group's own LFP with its units' spike kernels removed, :func:`despike`).
    unit_row : ndarray of int, (n_units,)
        The row holding each unit's clean home-region LFP.
    """

    y: np.ndarray
    groups: np.ndarray
    regions: np.ndarray
    methods: np.ndarray
    unit_row: np.ndarray

    def of_unit(self, n: int) -> np.ndarray:
        """Unit `n`'s clean home-region LFP, (n_bins,)."""
        return self.y[self.unit_row[n]]

    def method_of_unit(self, n: int) -> str:
        """How unit `n`'s home-region LFP was cleaned."""
        return str(self.methods[self.unit_row[n]])


def load_clean_targets(
    sorting_dir: str | Path,
    clean_dir: str | Path,
    unit_ids,
    lfp_dir: str | Path | None = None,
    half_width_ms: float = DESPIKE_HALF_WIDTH_MS,
    flank_ms: float = DESPIKE_FLANK_MS,
) -> CleanTargets:
    """Each unit's home-region LFP without spike bleed-through (``region_lfp_clean/``).

    Parameters
    ----------
    sorting_dir : path
        The sorting the units come from: every unit of it (those left out by ``lfpdict.units``
        too) is despiked out of its group's ``despiked`` row.
    clean_dir : path
        ``region_lfp_clean/`` of preprocessing
        (:class:`neurodict.preprocess.filters.CleanRegionLFPRecording`): one channel per
        (electrode group, region) pair, properties ``group``, ``region``, ``clean_method``.
    unit_ids : sequence
        The units wanted, in order (for example those of :func:`load_lfpdict_inputs`).
    lfp_dir : path, optional
        ``region_lfp/``; needed only for units whose group is unknown (below).
    half_width_ms, flank_ms : float
        The lags of the removed kernels and of the flanks that tell the smooth coupling kept
        (:func:`despike`).

    Returns
    -------
    CleanTargets
        A unit's group is its ``group`` property. A group whose region has other good
        channels keeps its ``other_groups`` row as saved. A ``despiked`` row (the group is the
        only one of its region) gets the spike kernels of all the group's units removed. A
        unit without a known group (a ground-truth sorting without ``group``) whose region has
        one group gets that group's row; in a region of several groups it gets a region-wide
        row (group ``""``): the median of the region's LFP channels in `lfp_dir`, despiked of
        all the region's units.

    Raises
    ------
    LFPDictInputError
        A unit's region has no clean LFP; a unit of unknown group needs `lfp_dir`, not given.
    """
    sorting, clean = si.load(sorting_dir), si.load(clean_dir)
    fs = clean.sampling_frequency
    args = despike_args(clean, half_width_ms, flank_ms)
    c_groups = np.asarray(clean.get_property("group")).astype(str)
    c_regions = np.asarray(clean.get_property("region")).astype(str)
    methods = np.asarray(clean.get_property("clean_method")).astype(str)
    y = clean.get_traces().T.astype("float32")
    all_ids = [str(u) for u in sorting.unit_ids]
    s_regions = np.asarray(sorting.get_property("region")).astype(str)
    s_groups = (
        [str(g) for g in sorting.get_property("group")]
        if "group" in sorting.get_property_keys()
        else [""] * len(all_ids)
    )
    bins_of = dict(zip(all_ids, spike_bins_from_sorting(sorting, fs), strict=True))
    # a unit's group: its own, or the only group of its region; "" when it cannot be told
    for i, (g, r) in enumerate(zip(s_groups, s_regions, strict=True)):
        if g not in c_groups:
            in_region = c_groups[c_regions == r]
            s_groups[i] = in_region[0] if in_region.size == 1 else ""
    for row, (g, method) in enumerate(zip(c_groups, methods, strict=True)):
        if method == CLEAN_DESPIKED:
            members = [u for u, gu in zip(all_ids, s_groups, strict=True) if gu == g]
            if members:
                y[row] = despike(y[row], [bins_of[u] for u in members], *args)[0]
    index = {str(u): i for i, u in enumerate(all_ids)}
    wanted = [index[str(u)] for u in unit_ids]
    row_of = {(g, r): i for i, (g, r) in enumerate(zip(c_groups, c_regions, strict=True))}
    extra_y, extra_regions, unit_row = [], [], []
    for i in wanted:
        region, group = s_regions[i], s_groups[i]
        if region not in c_regions:
            raise LFPDictInputError(
                f"sorting '{sorting_dir}': unit '{all_ids[i]}' has region '{region}', which has "
                f"no clean LFP in '{clean_dir}' (its regions: {sorted(set(c_regions))})."
            )
        if group:
            unit_row.append(row_of[group, region])
            continue
        if region not in extra_regions:
            if lfp_dir is None:
                raise LFPDictInputError(
                    f"sorting '{sorting_dir}': unit '{all_ids[i]}' has no electrode group and "
                    f"its region '{region}' has several: expected the region LFP folder "
                    "(lfp_dir) to despike the whole region's LFP."
                )
            extra_y.append(_region_despiked(lfp_dir, region, s_regions, all_ids, bins_of, args))
            extra_regions.append(region)
        unit_row.append(len(c_groups) + extra_regions.index(region))
    n_extra = len(extra_regions)
    return CleanTargets(
        y=np.concatenate([y, *(e[None] for e in extra_y)]) if n_extra else y,
        groups=np.concatenate([c_groups, np.full(n_extra, "")]).astype(str),
        regions=np.concatenate([c_regions, np.array(extra_regions, dtype=str)]).astype(str),
        methods=np.concatenate([methods, np.full(n_extra, CLEAN_DESPIKED)]).astype(str),
        unit_row=np.array(unit_row, dtype=np.int64),
    )


def _region_despiked(lfp_dir, region, s_regions, all_ids, bins_of, args) -> np.ndarray:
    """The median of `region`'s channels in `lfp_dir`, despiked of all the region's units."""
    lfp = si.load(lfp_dir)
    channels = lfp.channel_ids[np.asarray(lfp.get_property("region")).astype(str) == region]
    y = np.median(lfp.get_traces(channel_ids=channels), axis=1).astype("float32")
    members = [u for u, r in zip(all_ids, s_regions, strict=True) if r == region]
    return despike(y, [bins_of[u] for u in members], *args)[0]


def dictionary_windows(
    params: dict, session_windows: list[dict], duration_s: float, segment_starts_s=None
):
    """The time windows of the dictionary model: (names, [(start_s, end_s), ...]).

    ``windows: none`` gives one window; ``fixed`` blocks of ``window_s``; ``session`` the
    session's condition windows (samples outside every window are left out of the fit);
    ``segments`` one window per recording segment (`segment_starts_s`, on the timeline).
    """
    if params["windows"] == "session" and session_windows:
        return (
            [f"{w['condition']}@{w['start_s']:g}s" for w in session_windows],
            [(w["start_s"], w["end_s"]) for w in session_windows],
        )
    if params["windows"] in ("fixed", "segments"):
        if params["windows"] == "fixed":
            edges = list(np.arange(0.0, duration_s, params["window_s"])) + [duration_s]
            names = [f"{a:g}-{b:g}s" for a, b in zip(edges[:-1], edges[1:], strict=True)]
        else:
            edges = list(segment_starts_s or [0.0]) + [duration_s]
            names = [f"segment{i}" for i in range(len(edges) - 1)]
        return names, list(zip(edges[:-1], edges[1:], strict=True))
    return ["all"], None
