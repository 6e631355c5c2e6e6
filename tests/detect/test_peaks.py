"""Spike detection finds the planted spikes of the synthetic session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import spikeinterface as si

from neurodict.common.files import read_tsv
from neurodict.common.layout import group_recording
from neurodict.detect import step as detect_step
from neurodict.detect.peaks import detect_group_peaks
from neurodict.ingest import step as ingest_step
from neurodict.preprocess import step as preprocess_step


def test_detection_finds_planted_spikes(tiny_session, tmp_path):
    ingest_step.run(tmp_path, tiny_session)
    preprocess_step.run(tmp_path)
    peaks = detect_step.run(tmp_path)
    truth = si.load(Path(tiny_session).parent / "truth_sorting")
    groups = list(dict.fromkeys(truth.get_property("group")))
    tol = int(1e-3 * truth.sampling_frequency)  # 1 ms
    hit_rates, false_fraction = [], []
    for g, group in enumerate(groups):
        detected = np.sort(peaks["sample_index"][peaks["group_index"] == g])
        units = truth.unit_ids[truth.get_property("group") == group]
        true = np.sort(np.concatenate([truth.get_unit_spike_train(u) for u in units]))

        def near(a, b):
            i = np.clip(np.searchsorted(b, a), 1, len(b) - 1)
            return np.minimum(np.abs(b[i] - a), np.abs(b[i - 1] - a)) <= tol

        for u in units:
            hit_rates.append(near(truth.get_unit_spike_train(u), detected).mean())
        false_fraction.append(1 - near(detected, true).mean())
    # the generator draws some units too small to cross 4 SD; the others are found whole
    assert np.mean(np.array(hit_rates) > 0.95) >= 0.5, hit_rates
    assert max(false_fraction) < 0.1, false_fraction
    rows = read_tsv(tmp_path / "detection.tsv")
    assert [r["group"] for r in rows] == groups
    spikeband = si.load(tmp_path / "spikeband")
    for g, group in enumerate(groups):  # a group's peaks on its own channels, as sorting reads
        mine = detect_step.group_peaks(tmp_path, spikeband, group)
        on = group_recording(spikeband, group).channel_ids[mine["channel_index"]]
        found = peaks["channel_index"][peaks["group_index"] == g]
        assert mine.size > 0 and np.array_equal(on, spikeband.channel_ids[found])
    assert sum(int(r["n_peaks"]) for r in rows) == peaks.size


def test_detection_is_the_same_on_every_run(tiny_session, tmp_path):
    """Noise levels come from seeded random chunks: reruns (and resumed runs) agree exactly."""
    ingest_step.run(tmp_path, tiny_session)
    preprocess_step.run(tmp_path)
    rec = si.load(tmp_path / "spikeband")
    params = {"threshold_sigma": 4.0, "peak_sign": "neg", "dead_time_ms": 1.0, "radius_um": 100.0}
    first = detect_group_peaks(rec, params)
    assert first.size > 0
    for n_jobs in (1, 2):
        assert np.array_equal(detect_group_peaks(rec, params, n_jobs=n_jobs), first)


def test_detection_kernel_compiled_once_for_every_process():
    """spikeinterface's jitted detection kernel is cached on disk once the detection module is
    imported, so worker processes load it instead of compiling it again."""
    from numba.core.caching import FunctionCache
    from spikeinterface.sortingcomponents.peak_detection import locally_exclusive

    import neurodict.detect.peaks  # noqa: F401

    kernel = locally_exclusive.detect_peaks_numba_locally_exclusive_on_chunk
    assert isinstance(kernel._cache, FunctionCache)
