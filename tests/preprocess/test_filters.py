"""Spike band, LFP band and region LFPs against scipy.signal, chunk-safe, amplitude and phase."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import spikeinterface.core as sc

from neurodict.common.errors import InputError
from neurodict.config import apply_defaults, load_schema
from neurodict.preprocess import filters as preprocess

FS = 20000.0
PARAMS = apply_defaults({"sessions": {}}, load_schema("config"))


def make_recording(traces: np.ndarray, regions=("CA1", "CA1", "PFC", "PFC"), bad=None):
    """A NumpyRecording with the properties ingestion sets, (n_samples, n_channels) float32."""
    rec = sc.NumpyRecording([traces.astype("float32")], FS)
    n = traces.shape[1]
    rec.set_property("group", np.array([f"{r}_tt" for r in regions]))
    rec.set_property("region", np.array(regions))
    rec.set_property("bad", np.zeros(n, bool) if bad is None else np.array(bad))
    return rec


@pytest.fixture
def noise():
    return np.random.default_rng(0).standard_normal((int(4 * FS), 4)) * 20.0


def test_spike_band_matches_scipy_sosfiltfilt(noise):
    p = PARAMS["spikeband"]
    got = preprocess.spike_band(make_recording(noise), p).get_traces()
    sos = scipy.signal.butter(
        p["filter_order"],
        [p["freq_min_hz"], p["freq_max_hz"]],
        btype="bandpass",
        fs=FS,
        output="sos",
    )
    want = scipy.signal.sosfiltfilt(sos, noise, axis=0)
    interior = slice(2000, -2000)
    np.testing.assert_allclose(got[interior], want[interior], atol=1e-3 * want.std())


def test_lfp_band_matches_the_scipy_cascade():
    noise = np.random.default_rng(1).standard_normal((int(40 * FS), 2)) * 20.0
    p = PARAMS["lfp"]
    rec = make_recording(noise, regions=("CA1", "PFC"))
    got = preprocess.lfp_band(rec, p, mains_hz=50).get_traces()
    order = p["filter_order"]
    x = scipy.signal.sosfiltfilt(
        scipy.signal.butter(order, p["freq_max_hz"], btype="lowpass", fs=FS, output="sos"),
        noise,
        axis=0,
    )
    x = scipy.signal.resample_poly(x, 1, int(FS / p["fs_lfp_hz"]), axis=0)
    fs = p["fs_lfp_hz"]
    x = scipy.signal.sosfiltfilt(
        scipy.signal.butter(order, p["freq_min_hz"], btype="highpass", fs=fs, output="sos"),
        x,
        axis=0,
    )
    for freq in (50, 100, 150, 200, 250):
        b, a = scipy.signal.iirnotch(freq, p["notch_q"], fs=fs)
        x = scipy.signal.filtfilt(b, a, x, axis=0)
    assert got.shape == x.shape
    interior = slice(12000, -12000)  # 12 s: the 0.5 Hz high-pass edges differ in padding
    np.testing.assert_allclose(got[interior], x[interior], atol=0.01 * x.std())


def test_chunked_equals_whole(noise):
    rec = make_recording(noise)
    for out in (
        preprocess.spike_band(rec, PARAMS["spikeband"]),
        preprocess.region_lfp(preprocess.lfp_band(rec, PARAMS["lfp"], 60), "median"),
    ):
        whole = out.get_traces()
        n = out.get_num_samples()
        step = n // 7
        chunked = np.concatenate(
            [out.get_traces(start_frame=s, end_frame=min(s + step, n)) for s in range(0, n, step)]
        )
        np.testing.assert_allclose(chunked, whole, atol=1e-3 * whole.std())


def test_lfp_keeps_amplitude_and_phase_of_8hz():
    t = np.arange(int(10 * FS)) / FS
    x = 100.0 * np.sin(2 * np.pi * 8.0 * t + 0.3)
    lfp = preprocess.lfp_band(make_recording(np.tile(x[:, None], 4)), PARAMS["lfp"], 50)
    y = lfp.get_traces()[:, 0]
    t_lfp = np.arange(y.size) / lfp.sampling_frequency
    interior = slice(2000, -2000)
    # least-squares amplitude and phase of the 8 Hz component
    design = np.stack([np.sin(2 * np.pi * 8 * t_lfp), np.cos(2 * np.pi * 8 * t_lfp)], axis=1)
    (s, c), *_ = np.linalg.lstsq(design[interior], y[interior], rcond=None)
    assert np.hypot(s, c) == pytest.approx(100.0, rel=0.01)
    assert np.degrees(np.arctan2(c, s)) == pytest.approx(np.degrees(0.3), abs=1.0)


@pytest.mark.parametrize("mains_hz", [50, 60])
def test_mains_and_harmonics_removed(mains_hz):
    t = np.arange(int(10 * FS)) / FS
    x = (
        50 * np.sin(2 * np.pi * 8 * t)
        + 40 * np.sin(2 * np.pi * mains_hz * t)
        + 20 * np.sin(2 * np.pi * 3 * mains_hz * t)
    )
    lfp = preprocess.lfp_band(make_recording(np.tile(x[:, None], 4)), PARAMS["lfp"], mains_hz)
    y = lfp.get_traces()[2000:-2000, 0]
    freqs, psd = scipy.signal.periodogram(y, fs=lfp.sampling_frequency, window="hann")

    def power(f):
        return psd[np.argmin(np.abs(freqs - f))]

    assert power(mains_hz) < 1e-3 * (40**2 / 50**2) * power(8)
    assert power(3 * mains_hz) < 1e-3 * power(8)
    assert power(8) == pytest.approx(
        np.interp(
            8,
            *scipy.signal.periodogram(
                50 * np.sin(2 * np.pi * 8 * np.arange(y.size) / 1e3), fs=1e3, window="hann"
            ),
        ),
        rel=0.05,
    )


def test_region_median_over_good_channels_only(noise):
    rec = make_recording(noise, bad=[False, True, False, False])
    lfp = preprocess.lfp_band(rec, PARAMS["lfp"], 50)
    region = preprocess.region_lfp(lfp, "median")
    assert list(region.channel_ids) == ["CA1", "PFC"]
    assert list(region.get_property("region")) == ["CA1", "PFC"]
    x = lfp.get_traces()
    np.testing.assert_allclose(region.get_traces()[:, 0], x[:, 0], rtol=1e-6)  # one good channel
    np.testing.assert_allclose(region.get_traces()[:, 1], np.median(x[:, 1:3], axis=1), rtol=1e-6)


def test_lfp_rate_must_divide_the_sampling_rate(noise):
    with pytest.raises(
        InputError,
        match=r"'lfp.fs_lfp_hz': expected a divisor of the sampling "
        r"rate 20000.0 Hz; got 3000.0.",
    ):
        preprocess.lfp_band(make_recording(noise), dict(PARAMS["lfp"], fs_lfp_hz=3000.0), 50)


@pytest.mark.parametrize("edges", [(0.5, 600.0), (300.0, 300.0), (400.0, 300.0)])
def test_lfp_band_edges_are_a_user_error(noise, edges):
    with pytest.raises(
        InputError,
        match=r"expected freq_min_hz < freq_max_hz < fs_lfp_hz / 2 = "
        r"500 Hz; got",
    ):
        preprocess.lfp_band(
            make_recording(noise),
            dict(PARAMS["lfp"], freq_min_hz=edges[0], freq_max_hz=edges[1]),
            50,
        )


def test_spike_band_edges_are_a_user_error(noise):
    """A high-pass corner at or above the (clipped) low-pass corner is the user's setting, said
    before any filtering; not scipy's ValueError from deep inside the filter design."""
    with pytest.raises(
        InputError,
        match=r"'spikeband.freq_min_hz': expected a value below "
        r"freq_max_hz, clipped to 0.45 of the sampling rate "
        r"20000 Hz \(6000 Hz\); got 9000.0.",
    ):
        preprocess.spike_band(make_recording(noise), dict(PARAMS["spikeband"], freq_min_hz=9000.0))
    with pytest.raises(InputError, match=r"\(9000 Hz\); got 9500.0"):
        preprocess.spike_band(
            make_recording(noise),
            dict(PARAMS["spikeband"], freq_min_hz=9500.0, freq_max_hz=12000.0),
        )


def test_spike_band_drops_bad_channels(noise):
    out = preprocess.spike_band(
        make_recording(noise, bad=[False, False, True, False]), PARAMS["spikeband"]
    )
    assert out.get_num_channels() == 3
    assert out.get_dtype() == np.float32
