"""The overlap pass's matching: spikeinterface's wobble with its refractory period set once per
pass (:mod:`neurodict.sort.wobble`)."""

import numpy as np
import spikeinterface.core as sc
from spikeinterface.sortingcomponents.matching import find_spikes_from_templates

from neurodict.sort import wobble
from tests.sort.probes import on_linear_probe

FS = 30000.0
CRITERIA = {"threshold": 16.0, "refractory_period_frames": 45}


def _three_units(n: int = 90000, M: int = 6, T: int = 60):
    """White noise (n, M) with three units' spikes, overlapping across units and scaled
    0.7-1.6x; their templates (3, T, M) (peak at sample 20) and trains."""
    rng = np.random.default_rng(3)
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
    return traces, templates, trains


def _templates(templates: np.ndarray, rec) -> sc.Templates:
    return sc.Templates(
        templates_array=templates,
        sampling_frequency=FS,
        nbefore=20,
        channel_ids=rec.channel_ids,
        unit_ids=np.arange(len(templates)),
        probe=rec.get_probe(),
    )


def _spikeinterfaces(rec, templates: sc.Templates) -> np.ndarray:
    """spikeinterface's own wobble's spikes."""
    return find_spikes_from_templates(
        rec,
        templates,
        method="wobble",
        method_kwargs={"parameters": CRITERIA, "engine": "numpy"},
        job_kwargs={"n_jobs": 1, "chunk_duration": "1s", "progress_bar": False},
    )


def test_refractory_period_set_once_per_pass_finds_the_same_spikes_as_spikeinterface():
    """Three units on 6 channels in white noise, their spikes overlapping across units and
    scaled 0.7-1.6x (so a subtracted template leaves a residual that crosses the threshold
    again unless its unit is refractory there): :func:`neurodict.sort.wobble.find_spikes`
    gives spikeinterface's wobble spikes exactly, no two spikes of a unit closer than the
    refractory period, and finds each true spike (within 2 samples, of its unit)."""
    traces, templates, trains = _three_units()
    rec = on_linear_probe(traces, FS)
    found = _templates(templates, rec)
    ours = wobble.find_spikes(rec, found, CRITERIA, 1)
    theirs = _spikeinterfaces(rec, found)
    for field in ("sample_index", "cluster_index"):
        np.testing.assert_array_equal(ours[field], theirs[field])
    for u, train in enumerate(trains):
        mine = np.sort(ours["sample_index"][ours["cluster_index"] == u])
        assert np.diff(mine).min() > CRITERIA["refractory_period_frames"]
        assert np.abs(np.subtract.outer(train, mine)).min(axis=1).max() <= 3


def test_the_objective_on_visible_channels_equals_spikeinterfaces_product_on_every_channel():
    """:class:`neurodict.sort.wobble.OnVisibleChannels` in spikeinterface's objective product
    ``np.matmul(spatial, traces.T[np.newaxis])``: each template's rows equal the dense product
    of its components zeroed off its visible channels (float32 rounding), and a channel no
    template sees is not read (a NaN there stays out)."""
    rng = np.random.default_rng(0)
    rank, U, M, n = 3, 4, 10, 500
    visible = rng.random((U, M)) < 0.4
    visible[:, -1] = False  # no template sees the last channel
    spatial = (rng.standard_normal((rank, U, M)) * visible[None]).astype(np.float32)
    traces = rng.standard_normal((n, M)).astype(np.float32)
    expected = np.matmul(spatial, traces.T[np.newaxis])
    traces[:, -1] = np.nan
    got = np.matmul(wobble.OnVisibleChannels(spatial, visible), traces.T[np.newaxis])
    assert got.shape == (rank, U, n) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_traces_whitened_as_they_are_read_give_spikeinterfaces_spikes_in_the_whitened_recording():
    """The three units' noise mixed across channels by A: :func:`neurodict.sort.wobble.find_spikes`
    on the mixed recording with ``W = A^{-1}`` (applied to each chunk as it is read, float32)
    finds the spikes spikeinterface's wobble finds in the recording whitened by spikeinterface
    (``x W`` in double precision) with the templates ``t A W = t``; and each unit's true
    spikes. Without the whitening (``W`` left out) the spikes differ."""
    from spikeinterface.preprocessing import whiten

    traces, templates, trains = _three_units()
    rng = np.random.default_rng(1)
    A = (np.eye(6) + 0.3 * rng.standard_normal((6, 6))).astype(np.float32)
    mixed = on_linear_probe(traces @ A, FS)
    W = np.linalg.inv(A).astype(np.float32)
    found = _templates(templates, mixed)
    ours = wobble.find_spikes(mixed, found, CRITERIA, 1, W)
    theirs = _spikeinterfaces(whiten(mixed, W=W, dtype="float32"), found)
    for field in ("sample_index", "cluster_index"):
        np.testing.assert_array_equal(ours[field], theirs[field])
    for u, train in enumerate(trains):
        mine = np.sort(ours["sample_index"][ours["cluster_index"] == u])
        assert np.abs(np.subtract.outer(train, mine)).min(axis=1).max() <= 3
    unwhitened = wobble.find_spikes(mixed, found, CRITERIA, 1)
    assert unwhitened.size != ours.size or np.any(
        unwhitened["sample_index"] != ours["sample_index"]
    )
    node = wobble.Wobble(mixed, found, CRITERIA, W)
    assert isinstance(node.template_data.compressed_templates[2], wobble.OnVisibleChannels)
