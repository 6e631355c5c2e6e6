"""The session's SortingAnalyzer: templates, amplitudes and quality metrics of every unit.

A small, sparse spikeinterface SortingAnalyzer held in memory (at most ``MAX_SPIKES_PER_UNIT``
waveforms per unit); the sort stage's tables and the exports both read it.
"""

from __future__ import annotations

import numpy as np
import spikeinterface.core as sc

from neurodict.common.errors import InputError
from neurodict.common.jobs import job_kwargs

MAX_SPIKES_PER_UNIT = 200
QUALITY_METRICS = (
    "num_spikes",
    "firing_rate",
    "presence_ratio",
    "snr",
    "isi_violation",
    "amplitude_median",
)


class AnalyzerInputError(InputError):
    """The sorting and recording given to the analyzer do not fit together."""


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
    AnalyzerInputError
        When the sorting and recording have different sampling rates.
    """
    if sorting.sampling_frequency != recording.sampling_frequency:
        raise AnalyzerInputError(
            f"the sorting is at {sorting.sampling_frequency:g} Hz but the spike band at "
            f"{recording.sampling_frequency:g} Hz: expected the same recording."
        )
    job = job_kwargs(recording, n_jobs)
    analyzer = sc.create_sorting_analyzer(
        sorting, recording, format="memory", sparse=True, seed=seed, job_kwargs=job
    )
    analyzer.compute(
        {
            "random_spikes": {"max_spikes_per_unit": MAX_SPIKES_PER_UNIT, "seed": seed},
            "waveforms": {},
            "templates": {},
            "noise_levels": {"random_slices_kwargs": {"seed": seed}},
            "spike_amplitudes": {},
            "quality_metrics": {"metric_names": list(QUALITY_METRICS)},
        },
        **job,
    )
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
