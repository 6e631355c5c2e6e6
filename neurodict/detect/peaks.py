"""Spike detection per electrode group with spikeinterface's peak detection.

Threshold crossings at ``threshold_sigma`` robust standard deviations (sigma = median(|x|) /
0.6745, spikeinterface's MAD noise levels), one peak per event within ``radius_um`` and
``dead_time_ms`` ("locally_exclusive"). The noise levels are estimated on randomly drawn chunks
with a fixed seed, so every run finds the same peaks.
"""

from __future__ import annotations

import numpy as np
import spikeinterface.core as sc
from spikeinterface.sortingcomponents.peak_detection import detect_peaks, locally_exclusive

# spikeinterface's detection kernel is jitted without numba's disk cache, so every worker
# process of every detection compiled it again (about 2 s each; 4.7 s of a 32-channel minute's
# detection, 0.9 s with the cache)
locally_exclusive.detect_peaks_numba_locally_exclusive_on_chunk.enable_caching()

NOISE_SEED = 0  # seed of the chunks the noise levels are estimated on
PEAK_DTYPE = [
    ("sample_index", "int64"),
    ("channel_index", "int64"),
    ("amplitude_uv", "float32"),
    ("group_index", "int64"),
]


def detect_group_peaks(rec: sc.BaseRecording, params: dict, n_jobs: int = 1) -> np.ndarray:
    """Peaks of every electrode group of a spike-band recording.

    Parameters
    ----------
    rec : BaseRecording
        Spike band, channel property ``group``.
    params : dict
        The ``detection`` section: ``threshold_sigma``, ``peak_sign``, ``dead_time_ms``,
        ``radius_um``.
    n_jobs : int
        Worker processes (the rule's threads).

    Returns
    -------
    ndarray of PEAK_DTYPE, shape (n_peaks,)
        Sorted by sample; ``channel_index`` indexes `rec`'s channels, ``group_index`` the groups
        in order of first appearance.
    """
    groups = rec.get_property("group")
    names = list(dict.fromkeys(groups))
    out = []
    for g, name in enumerate(names):
        index = np.flatnonzero(groups == name)
        sub = rec.select_channels(rec.channel_ids[index])
        peaks = detect_peaks(
            sub,
            method="locally_exclusive",
            method_kwargs={
                "peak_sign": params["peak_sign"],
                "detect_threshold": params["threshold_sigma"],
                "exclude_sweep_ms": params["dead_time_ms"],
                "radius_um": params["radius_um"],
                "random_slices_kwargs": {"seed": NOISE_SEED},
            },
            job_kwargs={"n_jobs": n_jobs, "chunk_duration": "1s", "progress_bar": False},
        )
        group_peaks = np.empty(peaks.size, dtype=PEAK_DTYPE)
        group_peaks["sample_index"] = peaks["sample_index"]
        group_peaks["channel_index"] = index[peaks["channel_index"]]
        group_peaks["amplitude_uv"] = peaks["amplitude"]
        group_peaks["group_index"] = g
        out.append(group_peaks)
    peaks = np.concatenate(out)
    return peaks[np.argsort(peaks["sample_index"], kind="stable")]


def peak_counts(rec: sc.BaseRecording, peaks: np.ndarray) -> list[dict]:
    """Per group: name, region, channel count, detected peaks and their rate in Hz."""
    groups, regions = rec.get_property("group"), rec.get_property("region")
    names = list(dict.fromkeys(groups))
    duration_s = rec.get_total_duration()
    counts = np.bincount(peaks["group_index"], minlength=len(names))
    return [
        {
            "group": name,
            "region": ", ".join(dict.fromkeys(regions[groups == name])),
            "n_channels": int((groups == name).sum()),
            "n_peaks": int(counts[g]),
            "rate_hz": round(float(counts[g]) / duration_s, 3),
        }
        for g, name in enumerate(names)
    ]
