"""Stability of the unit clusters across the two halves of a recording, without leakage.

Each half is fitted on its own, as if it were the whole recording: a fresh
:class:`~neurodict.lfpdict.estimator.SpikeLFPDictionary` with the session's ``lfpdict``
settings, started from the initial wavelet atoms, choosing its own penalty by its own
cross-validation within the half, on that half's spikes and LFP only. Nothing learned on the
other half (atoms, penalty, coefficients) enters. Each half's filters give signatures, the
signatures are clustered with the session's ``clusters`` settings, and the adjusted Rand index
compares the two clusterings on the units linked in both halves.

Each half has one coefficient window (the session's behavioural windows, if any, are not split
across halves) and the filters span the same lags as the full fit.
"""

from __future__ import annotations

import inspect

import numpy as np
from sklearn.metrics import adjusted_rand_score

from neurodict.clusters import mixture as cl
from neurodict.common.errors import InputError
from neurodict.lfpdict.estimator import SpikeLFPDictionary

# Constructor arguments that a half sets itself rather than from the ``lfpdict`` settings.
_OWN = {"fs_hz", "windows_s", "segment_starts_s", "random_state", "progress"}


def estimator_params(dict_params: dict) -> dict:
    """The ``lfpdict`` settings that SpikeLFPDictionary's constructor takes (one window)."""
    accepted = set(inspect.signature(SpikeLFPDictionary).parameters) - _OWN
    return {k: v for k, v in dict_params.items() if k in accepted}


def half_bounds(n_bins: int) -> list[tuple[int, int]]:
    """The two halves ``[a, b)`` of a recording of `n_bins` bins."""
    return [(0, n_bins // 2), (n_bins // 2, n_bins)]


def fit_half(
    spike_bins: list[np.ndarray],
    y: np.ndarray,
    fs: float,
    unit_regions,
    target_regions,
    dict_params: dict,
    bounds: tuple[int, int],
    segment_starts_s=None,
    progress: bool = False,
) -> np.ndarray:
    """Filters (n_units, n_regions, n_lags) fitted on the bins ``[a, b)`` of the recording alone.

    Only ``y[:, a:b]`` and the spikes in ``[a, b)`` (re-timed from ``a``) reach the fit; the
    recording's segments (`segment_starts_s`) inside the half stay apart; `progress` shows the
    fit's progress bars.
    """
    a, b = bounds
    spikes = [np.asarray(s)[(s >= a) & (s < b)] - a for s in spike_bins]
    starts = [0.0] + [t - a / fs for t in segment_starts_s or [] if a < t * fs < b]
    est = SpikeLFPDictionary(
        fs,
        **estimator_params(dict_params),
        segment_starts_s=starts,
        random_state=int(dict_params.get("seed", 0)),
        progress=progress,
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        est.fit(spikes, np.ascontiguousarray(y[:, a:b]), unit_regions, target_regions)
    return est.filters_


def half_split_ari(
    spike_bins: list[np.ndarray],
    y: np.ndarray,
    fs: float,
    unit_regions,
    target_regions,
    dict_params: dict,
    seed: int,
    cluster_kw: dict,
    segment_starts_s=None,
    progress: bool = False,
) -> float:
    """ARI between the clusterings of dictionaries fitted on each half of the recording alone.

    Parameters
    ----------
    spike_bins : list of ndarray of int
        Per unit, the LFP bin of each spike.
    y : ndarray of shape (n_regions, n_bins)
    fs : float
    unit_regions, target_regions : sequences of str
        Home region of each unit; region of each LFP row.
    dict_params : dict
        The ``lfpdict`` settings.
    seed : int
        Seed of the clusterings.
    cluster_kw : dict
        :func:`neurodict.clusters.mixture.cluster_kwargs` of the ``clusters`` settings.
    segment_starts_s : sequence of float, optional
        The recording's segments on the timeline.
    progress : bool
        Show each half's fit's progress bars.

    Returns
    -------
    float
        nan when fewer than 3 units are linked in both halves, or when a half is too short for
        the cross-validation folds.
    """
    sigs = []
    for bounds in half_bounds(y.shape[1]):
        try:
            filters = fit_half(
                spike_bins,
                y,
                fs,
                unit_regions,
                target_regions,
                dict_params,
                bounds,
                segment_starts_s,
                progress,
            )
        except InputError:
            return float("nan")
        sigs.append(cl.signatures(filters, fs)[0])
    both = np.all([np.linalg.norm(s, axis=1) > 0 for s in sigs], axis=0)
    if both.sum() < 3:
        return float("nan")
    labels = [cl.cluster(s[both], seed=seed, **cluster_kw).labels for s in sigs]
    return float(adjusted_rand_score(*labels))
