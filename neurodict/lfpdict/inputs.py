"""What the dictionaries read: spike bins at the LFP rate, region LFPs, windows, lags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import spikeinterface as si

from neurodict.common.errors import InputError
from neurodict.common.units import ms_to_samples


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


def load_lfpdict_inputs(sorting_dir: str | Path, lfp_dir: str | Path):
    """Spike bins, region LFPs and region labels, checked against each other.

    Returns
    -------
    spike_bins : list of ndarray
    y : ndarray of shape (n_targets, n_bins), float32
    targets : list of str
        One name per LFP channel: its region (with the channel id when a region has several).
    target_regions, unit_regions : ndarray of str
    unit_ids : ndarray
    fs_hz : float

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
    return (
        spike_bins,
        y,
        targets,
        np.array(target_regions),
        np.array(unit_regions),
        sorting.unit_ids,
        fs,
    )


def dictionary_windows(params: dict, session_windows: list[dict], duration_s: float):
    """The time windows of the dictionary model: (names, [(start_s, end_s), ...]).

    ``windows: none`` gives one window; ``fixed`` blocks of ``window_s``; ``session`` the
    session's condition windows (samples outside every window are left out of the fit).
    """
    if params["windows"] == "session" and session_windows:
        return (
            [f"{w['condition']}@{w['start_s']:g}s" for w in session_windows],
            [(w["start_s"], w["end_s"]) for w in session_windows],
        )
    if params["windows"] == "fixed":
        edges = list(np.arange(0.0, duration_s, params["window_s"])) + [duration_s]
        return (
            [f"{a:g}-{b:g}s" for a, b in zip(edges[:-1], edges[1:], strict=True)],
            list(zip(edges[:-1], edges[1:], strict=True)),
        )
    return ["all"], None
