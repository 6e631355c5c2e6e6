"""Synthetic sessions: seeded, consistent truth, and an LFP the pipeline recovers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import spikeinterface as si

from neurodict.config import load_session
from neurodict.ingest import step as ingest_step
from neurodict.preprocess import step as preprocess_step
from neurodict.synth import SynthSpec, bin_spikes, generate_session, lags_ms, spike_lfp
from tests.conftest import TINY


def test_spike_lfp_equals_brute_force_convolution():
    rng = np.random.default_rng(0)
    u = (rng.random((3, 500)) < 0.02).astype("float32")
    filters = rng.standard_normal((3, 2, 41))
    got = spike_lfp(u, filters)
    want = np.zeros((2, 500))
    for r in range(2):
        for n in range(3):
            for t in np.flatnonzero(u[n]):
                for j, tau in enumerate(range(-20, 21)):
                    if 0 <= t + tau < 500:
                        want[r, t + tau] += filters[n, r, j]
    np.testing.assert_allclose(got, want, atol=1e-5)  # u is float32


def test_bin_spikes_counts_every_spike():
    u = bin_spikes([np.array([0, 19, 20, 39999]), np.array([5, 6])], 20000.0, 1000.0, 2000)
    assert u.sum() == 6
    assert u[0, 0] == 2 and u[0, 1] == 1 and u[0, 1999] == 1 and u[1, 0] == 2


def test_truth_is_complete_and_consistent(tiny_session):
    folder = Path(tiny_session).parent
    truth = np.load(folder / "truth.npz")
    n_units = TINY.n_regions * TINY.units_per_region
    assert truth["filters"].shape == (n_units, TINY.n_regions, lags_ms(TINY).size)
    assert truth["lfp_uv"].shape == (TINY.n_regions, int(TINY.duration_s * TINY.fs_lfp_hz))
    np.testing.assert_allclose(
        truth["filters"],
        truth["unit_gain"][:, None, None] * truth["family_filters"][truth["unit_family"]],
        rtol=1e-5,
    )
    sorting = si.load(folder / "truth_sorting")
    assert list(sorting.unit_ids) == list(truth["unit_ids"])
    assert list(sorting.get_property("region")) == list(truth["unit_region"])
    session = load_session(tiny_session)
    assert session.regions == list(truth["regions"])
    assert session.num_channels == TINY.n_regions * TINY.channels_per_group
    # the conditions come from the events table, the bad channels from the detection
    assert session.events == folder / "events.tsv"
    half = TINY.duration_s / 2
    assert [(w.start_s, w.end_s, w.condition) for w in session.windows] == [
        (0.0, half, "baseline"),
        (half, TINY.duration_s, "task"),
    ]
    assert session.auto_bad_channels and session.bad_channels == ()


def test_same_seed_same_bytes(tmp_path, tiny_session):
    again = generate_session(tmp_path / "again", TINY, progress=False)

    def digest(p):
        return hashlib.sha256((Path(p).parent / "recording.raw").read_bytes()).hexdigest()

    assert digest(again) == digest(tiny_session)
    other = generate_session(
        tmp_path / "other", SynthSpec(**{**TINY.__dict__, "seed": 4}), progress=False
    )
    assert digest(other) != digest(tiny_session)


def test_pipeline_recovers_the_planted_region_lfp(tiny_session, tmp_path):
    """Wideband -> LFP band -> region median gives back the planted LFP (same band)."""
    ingest_step.run(tmp_path, tiny_session)
    preprocess_step.run(tmp_path)
    got = si.load(tmp_path / "region_lfp").get_traces().T
    truth = np.load(Path(tiny_session).parent / "truth.npz")["lfp_uv"]
    sos = scipy.signal.butter(3, [0.5, 300], btype="bandpass", fs=1000.0, output="sos")
    want = scipy.signal.sosfiltfilt(sos, truth, axis=1)
    interior = slice(2000, -2000)
    for r in range(truth.shape[0]):
        corr = np.corrcoef(got[r, interior], want[r, interior])[0, 1]
        assert corr > 0.98, (r, corr)


def test_rejects_rates_that_do_not_divide(tmp_path):
    with pytest.raises(ValueError, match=r"'fs_hz': expected a multiple of fs_lfp_hz=1000.0"):
        generate_session(tmp_path / "x", SynthSpec(fs_hz=15500.0), progress=False)
    assert not (tmp_path / "x").exists()
