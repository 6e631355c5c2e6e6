"""Clean region LFPs (issue 15, item 6): per electrode group, its region's LFP without the
group's own channels, or (a region of one group) its own median to be despiked; the LFP-rate
filter chain the despiking models; and the step writing them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import spikeinterface as si
import spikeinterface.core as sc
import spikeinterface.preprocessing as spre

from neurodict.clusters.phase import band_phase, locking
from neurodict.config import apply_defaults, load_schema
from neurodict.ingest import step as ingest_step
from neurodict.lfpdict.atoms import BANDS_HZ
from neurodict.lfpdict.inputs import load_clean_targets, spike_bins_from_sorting
from neurodict.preprocess import filters
from neurodict.preprocess import step as preprocess_step

LFP = apply_defaults({"sessions": {}}, load_schema("config"))["lfp"]


def channel_lfp(traces: np.ndarray, groups, regions) -> sc.BaseRecording:
    """Channel LFPs (n_samples, n_channels) with the properties preprocessing keeps."""
    rec = sc.NumpyRecording([traces.astype("float32")], 1000.0)
    rec.set_property("group", np.array(groups))
    rec.set_property("region", np.array(regions))
    return rec


def test_each_group_gets_its_region_without_its_own_channels():
    x = np.random.default_rng(0).standard_normal((3000, 6)).astype("float32")
    groups = ["CA1_a", "CA1_a", "CA1_b", "CA1_c", "PFC_a", "PFC_a"]
    regions = ["CA1", "CA1", "CA1", "CA1", "PFC", "PFC"]
    clean = filters.region_lfp_clean(channel_lfp(x, groups, regions))
    assert list(clean.channel_ids) == ["CA1_a", "CA1_b", "CA1_c", "PFC_a"]
    assert list(clean.get_property("group")) == ["CA1_a", "CA1_b", "CA1_c", "PFC_a"]
    assert list(clean.get_property("region")) == ["CA1", "CA1", "CA1", "PFC"]
    assert list(clean.get_property("clean_method")) == [
        "other_groups",
        "other_groups",
        "other_groups",
        "despiked",
    ]
    got = clean.get_traces()
    np.testing.assert_allclose(got[:, 0], np.median(x[:, [2, 3]], axis=1), rtol=1e-6)
    np.testing.assert_allclose(got[:, 1], np.median(x[:, [0, 1, 3]], axis=1), rtol=1e-6)
    np.testing.assert_allclose(got[:, 2], np.median(x[:, [0, 1, 2]], axis=1), rtol=1e-6)
    np.testing.assert_allclose(got[:, 3], np.median(x[:, [4, 5]], axis=1), rtol=1e-6)
    chunked = np.concatenate(
        [clean.get_traces(start_frame=s, end_frame=s + 700) for s in range(0, 3000, 700)]
    )
    np.testing.assert_array_equal(chunked, got)
    assert clean.get_annotation_keys().count(filters.LFP_RATE_FILTERS) == 0


def test_the_chain_is_the_lfp_rate_part_of_lfp_band():
    """apply_lfp_rate_chain filters as the high-pass and notches of lfp_band do."""
    x = np.random.default_rng(1).standard_normal((40000, 1)) * 20.0
    chain = filters.lfp_rate_chain(LFP, 50)
    assert chain == {
        "fs_hz": 1000.0,
        "highpass_hz": 0.5,
        "filter_order": 3,
        "notch_hz": [50.0, 100.0, 150.0, 200.0, 250.0],
        "notch_q": 30.0,
    }
    rec = sc.NumpyRecording([x.astype("float32")], 1000.0)
    rec = spre.highpass_filter(
        rec,
        freq_min=0.5,
        filter_order=3,
        margin_ms="auto",
        ignore_low_freq_error=True,
        dtype="float32",
    )
    for freq in chain["notch_hz"]:
        rec = spre.notch_filter(rec, freq=freq, q=30.0, margin_ms=2000.0, dtype="float32")
    want = rec.get_traces()[:, 0]
    got = filters.apply_lfp_rate_chain(x[:, 0], chain)
    interior = slice(12000, -12000)  # the 0.5 Hz high-pass edges differ in padding
    np.testing.assert_allclose(got[interior], want[interior], atol=0.01 * want.std())
    # the notch's ringing is what the despiking must model: an impulse rings at 50 Hz
    impulse = np.zeros(4001)
    impulse[2000] = 1.0
    ring = filters.apply_lfp_rate_chain(impulse, chain)
    assert abs(ring[2020]) > 0.02 and abs(ring[2100]) > 0.002  # 20 and 100 ms on


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory, tiny_session) -> Path:
    results = tmp_path_factory.mktemp("clean_step")
    ingest_step.run(results, tiny_session)
    preprocess_step.run(results)
    return results


def test_the_step_writes_clean_region_lfps(preprocessed, tiny_session):
    """The tiny session has one tetrode per region: both rows are the region's median, to be
    despiked. Despiked of the ground-truth units, they follow the planted LFP closer than the
    region LFP does, and lock the units to it as the planted LFP does."""
    clean = si.load(preprocessed / "region_lfp_clean")
    region = si.load(preprocessed / "region_lfp")
    assert list(clean.channel_ids) == ["CA1_tt", "PFC_tt"]
    assert list(clean.get_property("clean_method")) == ["despiked", "despiked"]
    chain = filters.lfp_rate_chain(LFP, 50)
    assert clean.get_annotation(filters.LFP_RATE_FILTERS) == chain
    np.testing.assert_array_equal(clean.get_traces(), region.get_traces())
    truth_dir = Path(tiny_session).parent / "truth_sorting"
    truth = si.load(truth_dir)
    home = load_clean_targets(truth_dir, preprocessed / "region_lfp_clean", truth.unit_ids)
    assert list(home.groups[home.unit_row]) == [str(g) for g in truth.get_property("group")]
    # the planted LFP (no spikes in it) through the same filters
    planted = np.load(Path(tiny_session).parent / "truth.npz")["lfp_uv"]
    sos = scipy.signal.butter(3, 300, btype="lowpass", fs=1000.0, output="sos")
    planted = filters.apply_lfp_rate_chain(scipy.signal.sosfiltfilt(sos, planted, axis=1), chain)
    interior = slice(2000, -2000)
    y = region.get_traces().T
    for r in range(2):
        before = np.corrcoef(y[r, interior], planted[r, interior])[0, 1]
        after = np.corrcoef(home.y[r, interior], planted[r, interior])[0, 1]
        assert after > before > 0.99, (r, before, after)
    # the planted units are truly coupled to their LFP (delta, theta) and bleed into it
    # (beta, gamma): the despiked LFP gives the planted LFP's locking, the region LFP does not
    bins = spike_bins_from_sorting(truth, 1000.0)
    worst_region, worst_clean = 0.0, 0.0
    for band in BANDS_HZ.values():
        phases = {
            name: band_phase(signal, 1000.0, band)
            for name, signal in (("planted", planted), ("region", y), ("clean", home.y))
        }
        for n, row in enumerate(home.unit_row):
            ppc = {k: locking(p[row, bins[n]])["ppc"] for k, p in phases.items()}
            worst_region = max(worst_region, abs(ppc["region"] - ppc["planted"]))
            worst_clean = max(worst_clean, abs(ppc["clean"] - ppc["planted"]))
    assert worst_region > 0.04 and worst_clean < 0.01, (worst_region, worst_clean)
