"""Each unit's per-spike posterior probabilities, summarised for the exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurodict.common.errors import InputError


class ExportInputError(InputError):
    """The sorting and probabilities given to an export do not fit together."""


def posterior_summary(sorting, spikes_npz: str | Path) -> dict[str, np.ndarray]:
    """Mean and 5th percentile of each unit's per-spike posterior probabilities.

    Parameters
    ----------
    sorting : BaseSorting
    spikes_npz : path
        An npz with ``probability``, ndarray of shape (n_spikes,), one value in [0, 1] per spike
        in the order of ``sorting.to_spike_vector()`` (by sample, then unit); an optional
        ``unit_index`` of the same shape is checked against that order.

    Returns
    -------
    dict
        ``posterior_mean`` and ``posterior_p05``, each an ndarray of shape (n_units,) in the
        sorting's unit order (NaN for a unit without spikes).

    Raises
    ------
    ExportInputError
        Probabilities that do not match the sorting's spikes, or lie outside [0, 1].
    """
    data = np.load(spikes_npz)
    if "probability" not in data:
        raise ExportInputError(
            f"'{spikes_npz}': expected an array 'probability'; it holds {sorted(data.files)}."
        )
    prob = np.asarray(data["probability"], dtype="float64")
    vector = sorting.to_spike_vector()
    if prob.shape != vector.shape:
        raise ExportInputError(
            f"'{spikes_npz}': 'probability' has shape {prob.shape}; expected "
            f"one value per spike of the sorting, shape {vector.shape}."
        )
    if "unit_index" in data and not np.array_equal(data["unit_index"], vector["unit_index"]):
        raise ExportInputError(
            f"'{spikes_npz}': 'unit_index' differs from the sorting's spike "
            "order (expected sorting.to_spike_vector() order)."
        )
    if prob.size and not (np.nanmin(prob) >= 0.0 and np.nanmax(prob) <= 1.0):
        raise ExportInputError(
            f"'{spikes_npz}': 'probability' must lie in [0, 1]; got values "
            f"from {np.nanmin(prob):g} to {np.nanmax(prob):g}."
        )
    unit_of_spike = vector["unit_index"]
    per_unit = [prob[unit_of_spike == i] for i in range(len(sorting.unit_ids))]
    return {
        "posterior_mean": np.array([p.mean() if p.size else np.nan for p in per_unit]),
        "posterior_p05": np.array([np.percentile(p, 5) if p.size else np.nan for p in per_unit]),
    }
