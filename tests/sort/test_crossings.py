"""The test that tells a unit from noise crossings of the detection threshold."""

import numpy as np
import pytest
import spikeinterface.core as sc
from scipy import stats
from spikeinterface.preprocessing import bandpass_filter

from neurodict.detect.peaks import detect_group_peaks
from neurodict.sort.crossings import excess, noise_p_values
from neurodict.sort.run import sort_recording_group
from tests.sort.probes import on_linear_probe
from tests.sort.test_sorter import DETECTION, FAST


def _noise(seconds: float, channels: int, band_hz: tuple[float, float], seed: int):
    """Gaussian white noise band-passed to `band_hz` on a linear probe (group 0)."""
    rng = np.random.default_rng(seed)
    raw = on_linear_probe(rng.normal(0.0, 10.0, (int(30000 * seconds), channels)), 30000.0)
    rec = bandpass_filter(raw, freq_min=band_hz[0], freq_max=band_hz[1])
    rec.set_property("group", np.zeros(channels, int))
    return rec


@pytest.mark.parametrize("band_hz", [(300.0, 6000.0), (500.0, 800.0)])
def test_noise_crossings_excess_is_at_most_exponential(band_hz):
    """The detection's peaks of Gaussian noise, broad-band (the spike band) and narrow-band
    (the Rayleigh limit of the maxima's heights): ``E = θy + y²/2`` of their excess ``y``
    over the threshold is at most Exp(1) (its tail under ``e^{-q}``, within three standard
    errors), so random clusters of them get uniform or larger p-values: no more than the
    level's share of 20-spike clusters fall under it."""
    rec = _noise(90.0, 16, band_hz, seed=3)
    peaks = detect_group_peaks(rec, DETECTION)
    noise = sc.get_noise_levels(rec, return_in_uV=False, random_slices_kwargs={"seed": 0})
    e = excess(-peaks["amplitude_uv"] / noise[peaks["channel_index"]], 4.0)
    n = e.size
    assert n > 250
    for q in (0.5, 1.0, 2.0, 3.0):
        bound = np.exp(-q)
        assert np.mean(e > q) <= bound + 3 * np.sqrt(bound * (1 - bound) / n), q
    labels = np.random.default_rng(0).permutation(n) // 20
    p = noise_p_values(labels, e, labels.max() + 1)
    assert np.mean(p < 0.1) <= 0.1 + 3 * np.sqrt(0.09 / p.size)


def test_p_values_are_the_gamma_tail_of_each_units_detected_spikes():
    """A unit's p-value is ``P(Gamma(n, 1) ≥ S)`` over its spikes at a detection (NaN: found
    by matching alone), 1 for a unit with none; spikes in no unit (-1) count for none."""
    labels = np.array([0, 0, 0, 1, 1, 2, -1, 0])
    e = np.array([1.0, 2.0, np.nan, 0.5, 0.25, np.nan, 100.0, 4.0])
    p = noise_p_values(labels, e, 4)
    np.testing.assert_allclose(p, [stats.gamma.sf(7.0, 3), stats.gamma.sf(0.75, 2), 1.0, 1.0])


def test_a_neuron_at_the_threshold_is_told_from_noise_in_a_few_tens_of_spikes():
    """Spikes of amplitude ``θ`` SD with unit-SD spread, those over the threshold detected:
    30 of them give p < 0.001 in 99 % of draws; noise crossings (``E`` Exp(1)) in about 0.1
    %. The excess is ``θy + y²/2``, zero for a peak under ``θ``."""
    np.testing.assert_allclose(excess(np.array([3.9, 4.0, 5.0, 6.0]), 4.0), [0, 0, 4.5, 10])
    rng = np.random.default_rng(1)
    a = 4.0 + np.abs(rng.normal(size=(1000, 30)))  # N(θ, 1) over θ
    labels = np.repeat(np.arange(1000), 30)
    p = noise_p_values(labels, excess(a.ravel(), 4.0), 1000)
    assert np.mean(p < 0.001) >= 0.99
    p0 = noise_p_values(labels, rng.exponential(size=labels.size), 1000)
    assert np.mean(p0 < 0.001) <= 0.005


def test_pure_noise_sorts_into_no_single_unit_and_no_matched_spike():
    """A minute of Gaussian noise on 16 channels: the crossings cluster, but every cluster is
    noise's by the test, so the overlap pass matches no template (no more spikes than
    detections) and no single unit is reported (without the test: 7 single units and half as
    many spikes again, matched in the noise)."""
    rec = _noise(60.0, 16, (300.0, 6000.0), seed=1)
    detected = detect_group_peaks(rec, DETECTION).size
    result = sort_recording_group(rec, DETECTION, FAST)
    assert result.sorting.multi_unit.size > 0
    assert result.sorting.multi_unit.all()
    assert result.samples.size <= detected
