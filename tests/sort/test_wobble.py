"""The overlap pass's matching: spikeinterface's wobble with its refractory period set once per
pass (:mod:`neurodict.sort.wobble`)."""

import numpy as np
import spikeinterface.core as sc
from spikeinterface.sortingcomponents.matching import find_spikes_from_templates

from neurodict.sort import wobble
from tests.sort.probes import on_linear_probe


def test_refractory_period_set_once_per_pass_finds_the_same_spikes_as_spikeinterface():
    """Three units on 6 channels in white noise, their spikes overlapping across units and
    scaled 0.7-1.6x (so a subtracted template leaves a residual that crosses the threshold
    again unless its unit is refractory there): :func:`neurodict.sort.wobble.find_spikes`
    gives spikeinterface's wobble spikes exactly, no two spikes of a unit closer than the
    refractory period, and finds each true spike (within 2 samples, of its unit)."""
    rng = np.random.default_rng(3)
    fs, n, M, T, refractory = 30000.0, 90000, 6, 60, 45
    t = np.arange(T)
    templates = np.zeros((3, T, M), np.float32)
    trains = []
    traces = rng.standard_normal((n, M)).astype(np.float32)
    for u, centre in enumerate([1.0, 2.5, 4.0]):
        shape = -np.exp(-0.5 * ((t - 20) / (2 + u)) ** 2) + 0.3 * np.exp(-0.5 * ((t - 35) / 6) ** 2)
        footprint = np.exp(-0.5 * (np.arange(M) - centre) ** 2)
        templates[u] = 12.0 * shape[:, None] * footprint[None]
        train = np.sort(rng.choice(np.arange(100, n - 100, 150), 150, replace=False)) + 7 * u
        trains.append(train)
        for s, a in zip(train, rng.uniform(0.7, 1.6, train.size), strict=True):
            traces[s - 20 : s - 20 + T] += a * templates[u]
    rec = on_linear_probe(traces, fs)
    found = sc.Templates(
        templates_array=templates,
        sampling_frequency=fs,
        nbefore=20,
        channel_ids=rec.channel_ids,
        unit_ids=np.arange(3),
        probe=rec.get_probe(),
    )
    criteria = {"threshold": 16.0, "refractory_period_frames": refractory}
    ours = wobble.find_spikes(rec, found, criteria, 1)
    theirs = find_spikes_from_templates(
        rec,
        found,
        method="wobble",
        method_kwargs={"parameters": criteria, "engine": "numpy"},
        job_kwargs={"n_jobs": 1, "chunk_duration": "1s", "progress_bar": False},
    )
    for field in ("sample_index", "cluster_index"):
        np.testing.assert_array_equal(ours[field], theirs[field])
    for u, train in enumerate(trains):
        mine = np.sort(ours["sample_index"][ours["cluster_index"] == u])
        assert np.diff(mine).min() > refractory
        assert np.abs(np.subtract.outer(train, mine)).min(axis=1).max() <= 3
