"""The sorter's settings that used to be constants: each is bounded by the schema and reaches
the step it sets (the whitening, the minimum group to learn, the neighbourhoods' spacing, the
join's Bayes factor)."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import spikeinterface.core as sc

from neurodict.config import load_schema, schema_problems
from neurodict.sort import splitmerge, walk
from neurodict.sort.join import Moments, log_bayes_factor
from neurodict.sort.neighbourhoods import neighbourhoods
from neurodict.sort.params import SortParams
from neurodict.sort.run import sort_recording_group
from tests.sort.chains import learn_chain

DETECTION = {"threshold_sigma": 8.0, "peak_sign": "neg", "dead_time_ms": 1.0, "radius_um": 100.0}


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("whiten_n_chunks", 0, "an integer >= 1 and <= 10000"),
        ("whiten_chunk_s", 0.0, "a number > 0 and <= 3600"),
        ("whiten_exclude_sigma", -1.0, "a number > 0 and <= 1000"),
        ("whiten_min_eig", 1.0, "a number > 0 and < 1"),
        ("neighbourhood_spacing", 1.5, "a number > 0 and <= 1"),
        ("min_learn_spikes", 1, "an integer >= 2 and <= 1000000000"),
        ("split_merge_two_means_iterations", -1, "an integer >= 0 and <= 1000"),
        ("split_merge_min_allocation", 0.6, "a number > 0 and <= 0.5"),
        ("join_axes", 0, "an integer >= 1 and <= 10000"),
        ("join_epoch_s", 0.0, "a number > 0 and <= 100000"),
        ("max_learn_spikes", 5, "an integer >= 10 and <= 100000000"),
    ],
)
def test_a_setting_out_of_its_range_is_refused_by_name(key, value, expected):
    problems = schema_problems(
        {"sessions": {"s": "s.yaml"}, "sorting": {key: value}}, load_schema("config"), "c.yaml"
    )
    assert problems == [f"c.yaml: 'sorting.{key}': expected {expected}; got {value}."]


def test_split_proposal_settings_reach_the_moves(monkeypatch):
    """The learner's burn-in moves get the split proposals' shape from the parameters, and
    each spike's nearest neighbours (itself left out) as many as asked."""
    seen, near = [], []

    def move(*args, neighbours, **shape):
        seen.append(shape)
        near.append(neighbours)
        return ""

    monkeypatch.setattr(splitmerge, "move", move)
    rng = np.random.default_rng(1)
    x, samples = rng.standard_normal((60, 2, 8)), np.sort(rng.choice(10**6, 60, replace=False))
    params = SortParams(
        n_burn=1,
        n_samples=1,
        n_keep=1,
        split_merge_proposals=3,
        split_merge_two_means_iterations=5,
        split_merge_min_allocation=0.25,
        split_merge_neighbours=4,
    )
    learn_chain(x, samples, np.ones(samples.size, bool), 20000.0, 60.0, params)
    assert seen == [{"two_means_iterations": 5, "min_allocation": 0.25}] * 3
    rows = np.array([near[0](i) for i in range(60)])
    assert rows.shape == (60, 4)
    assert not np.any(rows == np.arange(60)[:, None])


@pytest.mark.parametrize("max_learn_spikes, learned", [(10**6, 10 * 30), (120, 10 * 12)])
def test_learning_is_bounded_per_epoch_and_in_all(max_learn_spikes, learned):
    """Ten epochs of 50 spikes, at most 30 per epoch: 300 learned, or 12 per epoch (120 in
    all) when at most 120 in all."""
    rng = np.random.default_rng(2)
    fs, E = 20000.0, 10
    samples = (np.arange(E)[:, None] * fs + np.arange(50) * 300).ravel().astype(np.int64)
    x = rng.standard_normal((samples.size, 2, 8))
    params = SortParams(
        epoch_s=1.0,
        max_spikes_per_epoch=30,
        max_learn_spikes=max_learn_spikes,
        n_burn=1,
        n_samples=1,
        n_keep=1,
        split_merge_proposals=0,
    )
    chain = learn_chain(x, samples, np.ones(samples.size, bool), fs, float(E), params)
    assert chain.learn_size == learned


def test_the_join_sees_join_axes_principal_axes():
    """The Bayes factor on `join_axes` axes is the one on snippets already reduced to those
    axes (the cluster model is invariant to rotations of its coordinates), and not the one
    on more axes."""
    rng = np.random.default_rng(0)
    xa = rng.normal(0.0, 1.0, (30, 1, 12)) + np.linspace(0, 3, 12)
    xb = rng.normal(0.0, 1.0, (25, 1, 12)) - np.linspace(0, 3, 12)
    ea, eb = rng.integers(0, 2, 30), rng.integers(0, 2, 25)
    two = dataclasses.replace(SortParams(), join_axes=2)
    no_delay = np.eye(12)[None]
    a, b = Moments.of(xa, ea, 2), Moments.of(xb, eb, 2)
    bf = log_bayes_factor(a, b, two, no_delay)
    f = walk.principal_axes(np.r_[xa, xb][:, 0], 2)[:, None]
    fa, fb = Moments.of(f[:30], ea, 2), Moments.of(f[30:], eb, 2)
    reduced = log_bayes_factor(fa, fb, SortParams(), np.eye(2)[None])
    assert bf == pytest.approx(reduced, rel=1e-9)
    more = log_bayes_factor(a, b, SortParams(), no_delay)
    assert bf != pytest.approx(more, rel=1e-3)


def test_neighbourhood_centres_are_spacing_times_the_radius_apart():
    """Eight channels 10 um apart, equally busy, radius 30 um: centres every 30 um at the
    default spacing (1), every 20 um at spacing one half."""
    locations = np.c_[np.zeros(8), np.arange(8) * 10.0]
    peaks = np.repeat(np.arange(8), 50)
    default = neighbourhoods(locations, peaks, 30.0, 20, SortParams().neighbourhood_spacing)
    np.testing.assert_array_equal(default.centres, [0, 3, 6])
    np.testing.assert_array_equal(
        neighbourhoods(locations, peaks, 30.0, 20, 0.5).centres, [0, 2, 4, 6]
    )


def _smooth_noise(fs=20000.0, duration=5.0, seed=0):
    """Four channels of low-passed noise (a 4-sample moving average): its covariance over a
    snippet window has small eigenvalues, so whitening keeps fewer dimensions."""
    rng = np.random.default_rng(seed)
    white = rng.normal(0, 10, (int(fs * duration) + 3, 4))
    traces = (white[:-3] + white[1:-2] + white[2:-1] + white[3:]).astype(np.float32)
    rec = sc.NumpyRecording([traces], fs)
    rec.set_dummy_probe_from_locations(np.c_[np.zeros(4), np.arange(4) * 20.0])
    return rec


@pytest.mark.parametrize(
    "key, value",
    [
        ("whiten_n_chunks", 3),
        ("whiten_chunk_s", 0.3),
        ("whiten_exclude_sigma", 2.0),
        ("whiten_min_eig", 0.3),
    ],
)
def test_whitening_settings_reach_the_whitener(key, value):
    """Each whitening setting changes the group's whitening (its map back to waveforms)."""
    rec, none = _smooth_noise(), (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    base = SortParams()
    default = sort_recording_group(rec, DETECTION, base, peaks=none).unwhiten
    changed = sort_recording_group(
        rec, DETECTION, dataclasses.replace(base, **{key: value}), peaks=none
    ).unwhiten
    assert default.shape[1] < default.shape[0], "the noise should live in fewer dimensions"
    assert default.shape != changed.shape or not np.allclose(default, changed)


def _noise_with_spikes(n_spikes, fs=20000.0, duration=10.0, seed=0):
    rng = np.random.default_rng(seed)
    traces = rng.normal(0, 10, (int(fs * duration), 4)).astype(np.float32)
    shape = -np.hanning(12)[:, None] * np.array([300.0, 200.0, 150.0, 100.0])
    for s in np.linspace(fs, (duration - 1) * fs, n_spikes).astype(int):
        traces[s : s + 12] += shape.astype(np.float32)
    rec = sc.NumpyRecording([traces], fs)
    rec.set_dummy_probe_from_locations(np.c_[np.zeros(4), np.arange(4) * 20.0])
    return rec


def test_a_group_of_min_learn_spikes_learns_a_model(caplog):
    """12 spikes: one multi-unit without a model at the default (20), a learned model (its
    posterior presence defined) at min_learn_spikes 10."""
    rec = _noise_with_spikes(12)
    fast = SortParams(n_burn=2, n_samples=2, n_keep=1, template_matching=False)
    with caplog.at_level(logging.INFO, logger="neurodict.sort.run"):
        small = sort_recording_group(rec, DETECTION, fast)
    assert "no model is learned" in caplog.text
    assert np.all(np.isnan(small.sorting.presence))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="neurodict.sort.run"):
        learned = sort_recording_group(
            rec, DETECTION, dataclasses.replace(fast, min_learn_spikes=10)
        )
    assert "no model is learned" not in caplog.text
    assert learned.samples.size == 12
    assert np.all(np.isfinite(learned.sorting.presence))


def test_the_template_learning_never_draws_more_than_the_full_learning():
    """The first learning draws template_max_spikes_per_epoch spikes an epoch, at most the
    full learning's; everything else is the full learning's."""
    assert SortParams().template_learning() == SortParams(max_spikes_per_epoch=750)
    small = SortParams(max_spikes_per_epoch=100)
    assert small.template_learning() == small
