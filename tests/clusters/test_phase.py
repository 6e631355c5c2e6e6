"""Spike-LFP phase locking: planted preferred phase and PPC recovered; Elephant agrees."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special

from neurodict.clusters.phase import (
    band_phase,
    kappa_estimate,
    locking,
    phase_table,
    ppc,
    rayleigh_p,
)

FS = 1000.0


def theta_lfp(seconds=300, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    freq = 7.0 + 0.5 * np.sin(2 * np.pi * 0.05 * t)  # a slowly wandering theta
    phase = 2 * np.pi * np.cumsum(freq) / FS
    return 100 * np.cos(phase) + 10 * rng.standard_normal(t.size), np.angle(np.exp(1j * phase))


def locked_spikes(true_phase, preferred_deg, kappa, n, rng):
    """Spike bins whose theta phase is von Mises(preferred, kappa)."""
    wanted = (
        rng.vonmises(np.radians(preferred_deg), kappa, size=n)
        if kappa > 0
        else rng.uniform(-np.pi, np.pi, n)
    )
    order = np.argsort(true_phase)
    pos = np.searchsorted(true_phase[order], wanted)  # a sample at (almost) that phase ...
    pos = np.clip(pos + rng.integers(-20, 21, n), 0, order.size - 1)  # ... drawn among many
    return np.sort(order[pos])


def test_planted_locking_recovered():
    rng = np.random.default_rng(1)
    y, true_phase = theta_lfp()
    kappa = 1.0
    spikes = locked_spikes(true_phase, 120.0, kappa, 1500, rng)
    phases = band_phase(y[None], FS, (4.0, 12.0))[0]
    got = locking(phases[spikes])
    assert abs(np.angle(np.exp(1j * np.radians(got["preferred_phase_deg"] - 120.0)))) < np.radians(
        10
    )
    a1 = scipy.special.i1(kappa) / scipy.special.i0(kappa)
    assert got["ppc"] == pytest.approx(a1**2, abs=0.03)  # E[PPC] = A1(kappa)^2
    assert got["kappa"] == pytest.approx(kappa, rel=0.15)
    assert got["rayleigh_p"] < 1e-10


def test_unlocked_spikes_have_ppc_near_zero():
    rng = np.random.default_rng(2)
    y, _ = theta_lfp()
    spikes = np.sort(rng.integers(0, y.size, 1500))
    got = locking(band_phase(y[None], FS, (4.0, 12.0))[0][spikes])
    assert abs(got["ppc"]) < 0.005
    assert got["rayleigh_p"] > 1e-3


def test_ppc_is_the_mean_pairwise_cosine():
    theta = np.random.default_rng(3).uniform(-np.pi, np.pi, 40)
    pairs = [np.cos(a - b) for i, a in enumerate(theta) for j, b in enumerate(theta) if i != j]
    assert ppc(theta) == pytest.approx(np.mean(pairs), abs=1e-12)
    assert np.isnan(ppc(theta[:1]))


def test_rayleigh_and_kappa_edge_cases():
    assert rayleigh_p(0.0, 100) == 1.0
    # Z = n R^2 = 4: the large-n series exp(-Z) (1 + (2Z - Z^2) / (4n)) gives 0.0180
    assert rayleigh_p(0.2, 100) == pytest.approx(0.0180, rel=0.01)
    assert np.isnan(kappa_estimate(0.5, 0))
    assert kappa_estimate(0.0, 100) == 0.0


def test_against_elephant():
    elephant = pytest.importorskip("elephant.phase_analysis")
    neo = pytest.importorskip("neo")
    pq = pytest.importorskip("quantities")
    import scipy.signal

    rng = np.random.default_rng(4)
    y, true_phase = theta_lfp(60)
    spikes = locked_spikes(true_phase, -45.0, 2.0, 300, rng)
    sos = scipy.signal.butter(3, (4.0, 12.0), btype="bandpass", fs=FS, output="sos")
    analytic = scipy.signal.hilbert(scipy.signal.sosfiltfilt(sos, y))
    signal = neo.AnalogSignal(analytic[:, None], units="uV", sampling_rate=FS * pq.Hz)
    train = neo.SpikeTrain(spikes / FS * pq.s, t_stop=y.size / FS * pq.s)
    phases, _, _ = elephant.spike_triggered_phase(signal, train, interpolate=False)
    mean_angle, r = elephant.mean_phase_vector(np.asarray(phases[0]))
    ours = locking(band_phase(y[None], FS, (4.0, 12.0))[0][spikes])
    assert ours["resultant_length"] == pytest.approx(float(r), abs=1e-3)
    assert ours["preferred_phase_deg"] == pytest.approx(np.degrees(float(mean_angle)), abs=0.5)


def test_phase_table_rows():
    rng = np.random.default_rng(5)
    y, _ = theta_lfp(30)
    rows = phase_table(
        [np.sort(rng.integers(0, y.size, 100))] * 2,
        ["a", "b"],
        ["CA1", "PFC"],
        np.stack([y, y]),
        ["CA1", "PFC"],
        FS,
    )
    assert len(rows) == 2 * 2 * 4
    assert set(rows[0]) == {
        "unit",
        "unit_region",
        "region",
        "band",
        "n_spikes",
        "preferred_phase_deg",
        "resultant_length",
        "ppc",
        "kappa",
        "rayleigh_p",
    }


def test_band_phase_is_filtered_within_each_recording_segment():
    rng = np.random.default_rng(7)
    y = rng.standard_normal((2, 4000))
    got = band_phase(y, 1000.0, (4.0, 12.0), bounds=[0, 2500])
    want = np.concatenate(
        [
            band_phase(y[:, :2500], 1000.0, (4.0, 12.0)),
            band_phase(y[:, 2500:], 1000.0, (4.0, 12.0)),
        ],
        axis=1,
    )
    np.testing.assert_allclose(got, want, atol=1e-12)
    across = band_phase(y, 1000.0, (4.0, 12.0))
    assert np.abs(np.angle(np.exp(1j * (across - got)))[:, 2400:2600]).max() > 0.5
