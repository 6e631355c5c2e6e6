"""The second spike->LFP generator (neurodict.synth_links): its data are what its truth says."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from neurodict.common.errors import InputError
from neurodict.synth import bin_spikes, spike_lfp
from neurodict.synth_links import (
    SHAPES,
    ar2_noise,
    lag_axis_s,
    link_session,
    link_shape,
    planted_links,
    power_law_noise,
    region_background,
    renewal_trains,
    spike_lfp_chunked,
)


@pytest.fixture(scope="module")
def small():
    """3 regions, 9 units, 12 s, filters of +-100 ms."""
    return link_session(3, 9, 0.2, seed=1, lag_ms=100.0)


def test_lfp_is_spikes_through_filters_plus_background(small):
    n_bins = small.lfp_uv.shape[1]
    half = small.filters.shape[2] // 2
    want = np.zeros(small.lfp_uv.shape)
    for n, s in enumerate(small.spike_bins):
        u = np.zeros(n_bins)
        u[s] = 1.0
        for r in range(len(small.regions)):
            want[r] += np.convolve(u, small.filters[n, r])[half : half + n_bins]
    assert np.abs(want).max() > 10.0  # some link drives the LFP
    np.testing.assert_allclose(small.lfp_uv, want + small.background_uv, atol=1e-3)
    # the background is the third stream's, and nothing else
    background_rng = np.random.default_rng(np.random.SeedSequence(1).spawn(3)[2])
    np.testing.assert_array_equal(small.background_uv, region_background(3, n_bins, background_rng))


def test_chunked_equals_whole():
    rng = np.random.default_rng(0)
    n_bins = 5000
    spikes = [np.sort(rng.choice(n_bins, size=200, replace=False)) for _ in range(4)]
    filters = rng.standard_normal((4, 3, 61))
    whole = spike_lfp(bin_spikes(spikes, 1.0, 1.0, n_bins), filters)
    chunked = spike_lfp_chunked(spikes, filters, n_bins, chunk_bins=997, n_workers=2)
    np.testing.assert_allclose(chunked, whole, atol=1e-4)


def test_links_one_direction_sparse_with_silent_regions():
    truth = link_session(6, 60, 0.01, seed=2)
    reach, F = truth.reach, truth.filters
    assert np.all(F[~reach] == 0.0)  # empty links exactly zero
    assert np.all(np.abs(F[reach]).max(axis=1) > 0.0)
    assert np.array_equal(truth.shapes != "", reach)
    assert set(truth.shapes[reach]) == set(SHAPES)
    assert reach.mean() < 0.5  # most unit-region pairs empty
    assert truth.silent.any() and not reach[:, truth.silent].any()
    home = np.array([truth.regions.index(r) for r in truth.unit_regions])
    sends = np.zeros((6, 6), dtype=bool)  # sends[a, b]: a unit of a reaches b
    for n, r in zip(*np.nonzero(reach), strict=True):
        sends[home[n], r] = True
    cross = sends & ~np.eye(6, dtype=bool)
    assert cross.any() and not (cross & cross.T).any()
    # no shared families: two links of one kind differ beyond a gain
    flat = F[reach]
    corr = np.corrcoef(flat)[np.triu_indices(len(flat), k=1)]
    assert np.abs(corr).max() < 0.999


@pytest.mark.parametrize("kind", SHAPES)
def test_link_shapes(kind):
    rng = np.random.default_rng(3)
    tau_s = lag_axis_s(200.0, 1000.0)
    sides = set()
    for _ in range(40):
        h = link_shape(kind, tau_s, rng)
        assert np.isclose(np.abs(h).max(), 1.0)
        assert abs(h[0]) < 0.05 and abs(h[-1]) < 0.05  # decayed within the window
        if kind != "oscillation":  # one-sided: zero before (causal) or after (anti-causal) lag 0
            assert np.all(h[tau_s < 0] == 0) or np.all(h[tau_s > 0] == 0)
            sides.add(bool(np.all(h[tau_s < 0] == 0)))
        signs = {np.sign(v) for v in h[np.abs(h) > 0.2]}
        if kind == "exponentials":
            assert len(signs) == 1
        elif kind == "biphasic":
            assert len(signs) == 2
    if kind != "oscillation":
        assert sides == {True, False}


def test_trains_respect_refractory_period_and_rates():
    rng = np.random.default_rng(4)
    trains, rates_hz = renewal_trains(40, 120.0, rng, refractory_ms=3.0)
    assert np.all((rates_hz >= 1.0) & (rates_hz <= 30.0))
    isi_min = min(int(np.diff(s).min()) for s in trains)
    assert 3 <= isi_min <= 4  # the refractory period binds and is respected
    assert all(s[0] >= 0 and s[-1] < 120_000 for s in trains)
    fast = rates_hz >= 5.0
    observed = np.array([len(s) / 120.0 for s in trains])
    np.testing.assert_allclose(observed[fast], rates_hz[fast], rtol=0.25)
    cv = np.array([np.std(np.diff(s)) / np.mean(np.diff(s)) for s in trains])
    assert (cv > 1.2).any() and (cv < 0.8).any()  # bursty and regular units


def test_trains_refuse_rates_beyond_the_refractory_period():
    with pytest.raises(InputError, match="rate_hz"):
        renewal_trains(2, 1.0, np.random.default_rng(0), rate_hz=(1.0, 300.0), refractory_ms=3.0)


def test_background_spectra():
    rng = np.random.default_rng(5)
    freqs, p = scipy.signal.welch(ar2_noise(200_000, rng, 1000.0, 20.0, 0.99), 1000.0, nperseg=2000)
    assert abs(freqs[np.argmax(p)] - 20.0) <= 2.0
    freqs, p = scipy.signal.welch(power_law_noise(200_000, rng, 1000.0, 1.6), 1000.0, nperseg=2000)
    band = (freqs >= 2) & (freqs <= 100)
    slope = np.polyfit(np.log(freqs[band]), np.log(p[band]), 1)[0]
    assert abs(slope + 1.6) < 0.2


def test_seeded_shapes_and_the_planted_tuple():
    spikes, y, F, unit_regions, regions = planted_links(3, 9, 0.1, seed=7)
    again = planted_links(3, 9, 0.1, seed=7)
    other = planted_links(3, 9, 0.1, seed=8)
    assert y.dtype == np.float32 and y.shape == (3, 6000)
    assert F.shape == (9, 3, 401)
    assert regions == ["R0", "R1", "R2"] and unit_regions == regions * 3
    assert all(s.dtype == np.int64 and np.all(np.diff(s) > 0) for s in spikes)
    np.testing.assert_array_equal(y, again[1])
    np.testing.assert_array_equal(F, again[2])
    assert all(np.array_equal(a, b) for a, b in zip(spikes, again[0], strict=True))
    assert not np.array_equal(y, other[1])


@pytest.mark.parametrize(
    "kwargs, match", [({"minutes": 0.0}, "minutes"), ({"lag_ms": 20.0}, "lag_ms")]
)
def test_bad_sizes_are_named(kwargs, match):
    args = {"n_regions": 2, "n_units": 3, "minutes": 0.1} | kwargs
    with pytest.raises(InputError, match=match):
        link_session(**args)
