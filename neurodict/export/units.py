"""What the exports say of each unit: templates and quality metrics, and its spikes' posteriors.

The templates and metrics come from a small, sparse spikeinterface SortingAnalyzer held in
memory (at most ``MAX_SPIKES_PER_UNIT`` waveforms per unit); the posterior summary from the
sorter's per-spike probabilities, when it wrote them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import spikeinterface.core as sc

MAX_SPIKES_PER_UNIT = 200
QUALITY_METRICS = ("num_spikes", "firing_rate", "presence_ratio", "snr", "isi_violation",
                   "amplitude_median")


class ExportInputError(ValueError):
    """The sorting, recording or probabilities given to an export do not fit together."""


def analyze_units(sorting, recording, n_jobs: int = 1, seed: int = 0) -> sc.SortingAnalyzer:
    """A sparse in-memory SortingAnalyzer with templates, amplitudes and quality metrics.

    Parameters
    ----------
    sorting : BaseSorting
        Spike trains at the recording's sampling rate.
    recording : BaseRecording
        The spike band (float32 microvolts) with its probe.
    n_jobs : int, default: 1
        Worker processes of spikeinterface (never -1: a cluster node is shared).
    seed : int, default: 0
        Seed of the waveform subsample.

    Raises
    ------
    ExportInputError
        When the sorting and recording have different sampling rates.
    """
    if sorting.sampling_frequency != recording.sampling_frequency:
        raise ExportInputError(
            f"the sorting is at {sorting.sampling_frequency:g} Hz but the spike band at "
            f"{recording.sampling_frequency:g} Hz: expected the same recording.")
    job = {"n_jobs": n_jobs, "chunk_duration": "10s", "progress_bar": False}
    analyzer = sc.create_sorting_analyzer(sorting, recording, format="memory", sparse=True,
                                          seed=seed, job_kwargs=job)
    analyzer.compute({"random_spikes": {"max_spikes_per_unit": MAX_SPIKES_PER_UNIT,
                                        "seed": seed},
                      "waveforms": {}, "templates": {},
                      "noise_levels": {"random_slices_kwargs": {"seed": seed}},
                      "spike_amplitudes": {},
                      "quality_metrics": {"metric_names": list(QUALITY_METRICS)}},
                     **job)
    return analyzer


def quality_metrics(analyzer: sc.SortingAnalyzer) -> dict[str, np.ndarray]:
    """Quality metrics computed by :func:`analyze_units`: name -> ndarray of shape (n_units,).

    Units in the sorting's order; a metric a unit has no value for (too few spikes) is NaN.
    """
    table = analyzer.get_extension("quality_metrics").get_data().loc[analyzer.unit_ids]
    return {name: table[name].to_numpy(dtype="float64") for name in table.columns}


def main_channel_templates(analyzer: sc.SortingAnalyzer) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's mean waveform on its largest-amplitude channel.

    Returns
    -------
    templates : ndarray of shape (n_units, n_samples), float32 microvolts
    channel_indices : ndarray of shape (n_units,), int
        The channel of each template, as an index into the recording's channels.
    """
    dense = analyzer.get_extension("templates").get_data(operator="average")
    channels = np.abs(dense).max(axis=1).argmax(axis=1)
    return dense[np.arange(len(channels)), :, channels].astype("float32"), channels


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
        raise ExportInputError(f"'{spikes_npz}': expected an array 'probability'; it holds "
                               f"{sorted(data.files)}.")
    prob = np.asarray(data["probability"], dtype="float64")
    vector = sorting.to_spike_vector()
    if prob.shape != vector.shape:
        raise ExportInputError(f"'{spikes_npz}': 'probability' has shape {prob.shape}; expected "
                               f"one value per spike of the sorting, shape {vector.shape}.")
    if "unit_index" in data and not np.array_equal(data["unit_index"], vector["unit_index"]):
        raise ExportInputError(f"'{spikes_npz}': 'unit_index' differs from the sorting's spike "
                               "order (expected sorting.to_spike_vector() order).")
    if prob.size and not (np.nanmin(prob) >= 0.0 and np.nanmax(prob) <= 1.0):
        raise ExportInputError(f"'{spikes_npz}': 'probability' must lie in [0, 1]; got values "
                               f"from {np.nanmin(prob):g} to {np.nanmax(prob):g}.")
    unit_of_spike = vector["unit_index"]
    per_unit = [prob[unit_of_spike == i] for i in range(len(sorting.unit_ids))]
    return {"posterior_mean": np.array([p.mean() if p.size else np.nan for p in per_unit]),
            "posterior_p05": np.array([np.percentile(p, 5) if p.size else np.nan
                                       for p in per_unit])}
