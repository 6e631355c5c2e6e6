"""The sorter's model of each unit (``sorter.npz``), summarised per unit of the session's sorting.

``sorter.npz`` holds per electrode group ``g`` (units numbered as ``spikes.npz``'s
``units_<g>``): ``{g}/presence`` (U, E), the posterior probability that each unit is present
in each epoch (NaN where no model was learned); ``{g}/counts`` (U, E), its spikes per epoch;
``{g}/drift_uv`` and ``{g}/drift_sd_uv`` (U, E, M, T), the posterior mean and SD of its mean
waveform per epoch (NaN on channels its model did not see); ``{g}/templates_uv`` (U, E, M, T),
its empirical mean snippet per epoch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurodict.common.errors import InputError


def peak_point(templates_uv: np.ndarray, drift_uv: np.ndarray) -> tuple[int, int] | None:
    """The channel and sample of a unit's peak: the largest absolute value of its mean snippet
    over epochs, on the channels where the model's drift posterior is defined.

    Parameters
    ----------
    templates_uv, drift_uv : ndarray of shape (E, M, T)
        One unit's empirical mean snippet and posterior mean waveform per epoch.

    Returns
    -------
    tuple or None
        ``(channel, sample)`` indices, or None when the drift is NaN on every channel.
    """
    seen = np.isfinite(drift_uv).any(axis=(0, 2))
    if not seen.any():
        return None
    peak = np.abs(templates_uv.mean(axis=0))
    peak[~seen] = -np.inf
    m, t = np.unravel_index(int(np.argmax(peak)), peak.shape)
    return int(m), int(t)


def peak_drift(
    templates_uv: np.ndarray, drift_uv: np.ndarray, drift_sd_uv: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The posterior mean and SD (microvolts) of one unit's waveform at its peak
    (:func:`peak_point`), per epoch: two ndarrays of shape (E,), NaN where undefined."""
    point = peak_point(templates_uv, drift_uv)
    if point is None:
        nan = np.full(drift_uv.shape[0], np.nan)
        return nan, nan.copy()
    m, t = point
    return drift_uv[:, m, t].astype(float), drift_sd_uv[:, m, t].astype(float)


def unit_model(
    sorter_npz: str | Path, spikes_npz: str | Path, groups: list[str], n_units: int
) -> dict[str, np.ndarray]:
    """Per unit of the session's sorting (rows in unit-index order): ``presence``,
    ``drift_peak_uv`` and ``drift_peak_sd_uv``, each of shape (n_units, E).

    A unit the model does not describe (a group's unit of spikes left in no unit by a
    refractory conflict) gets NaN rows; so does every unit of a group without a model.
    """
    model = np.load(sorter_npz)
    spikes = np.load(spikes_npz)
    E = max(
        (model[f"{g}/presence"].shape[1] for g in groups if f"{g}/presence" in model), default=0
    )
    out = {
        k: np.full((n_units, E), np.nan) for k in ("presence", "drift_peak_uv", "drift_peak_sd_uv")
    }
    for g in groups:
        if f"units_{g}" not in spikes or f"{g}/presence" not in model:
            continue
        presence = model[f"{g}/presence"]
        templates, drift, sd = (
            model[f"{g}/{k}"] for k in ("templates_uv", "drift_uv", "drift_sd_uv")
        )
        units = spikes[f"units_{g}"]
        if units.size != presence.shape[0] or (
            units.size and not 0 <= units.min() <= units.max() < n_units
        ):
            raise InputError(
                f"'{spikes_npz}': 'units_{g}' ({', '.join(map(str, units))}) does not fit "
                f"a sorting of {n_units} units and the {presence.shape[0]} units of group "
                f"{g} in '{sorter_npz}'."
            )
        for k, u in enumerate(units):
            e = presence.shape[1]
            out["presence"][u, :e] = presence[k]
            mean, spread = peak_drift(templates[k], drift[k], sd[k])
            out["drift_peak_uv"][u, :e] = mean
            out["drift_peak_sd_uv"][u, :e] = spread
    return out


def descriptions(epoch_s: float) -> dict[str, str]:
    """What the NWB units table's columns of :func:`unit_model` hold."""
    epochs = f"one value per epoch of {epoch_s:g} s, in time order"
    undescribed = (
        "NaN for a unit the model does not describe (a group's spikes left in no unit by a "
        "refractory conflict, or a group without a model)"
    )
    return {
        "presence": "The sorter's posterior probability that the unit is present (fires) in "
        f"each epoch, from 0 to 1; {epochs}; {undescribed}.",
        "drift_peak_uv": "The posterior mean of the unit's mean waveform (microvolts) at its "
        "peak (the channel and sample where its mean snippet is largest in absolute value), "
        f"from the sorter's random walk of the waveform across epochs; {epochs}; "
        f"{undescribed}, or where the model did not see the channel.",
        "drift_peak_sd_uv": "The posterior SD (microvolts) of the value in drift_peak_uv; "
        f"{epochs}; NaN where drift_peak_uv is.",
    }
