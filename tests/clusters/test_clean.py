"""Clean predictors (issue 15, item 6): a unit's own spikes leak into the LFP of its own
channels; the clean home-region LFP takes them out, and multi-units stay out of the inputs.

The bleed-through case: units with large spikes and NO coupling to an LFP of independent
noise. On the region LFP (the median that includes the unit's own channels) the low-frequency
part of the spike waveform survives the low-pass, and the unit looks gamma-locked; on the
clean LFP (the region's other groups, or the own group despiked) it does not.
"""

from __future__ import annotations

import numpy as np
import pytest
import spikeinterface as si
import spikeinterface.core as sc

from neurodict.clusters.phase import band_phase, locking, phase_table
from neurodict.config import apply_defaults, load_schema
from neurodict.lfpdict.estimator import SpikeLFPDictionary
from neurodict.lfpdict.inputs import (
    LFPDictInputError,
    despike,
    despiked_targets,
    load_clean_targets,
    load_lfpdict_inputs,
    unit_exclusions,
)
from neurodict.preprocess import filters

FS = 10000.0
DURATION_S = 60.0
LFP_PARAMS = apply_defaults({"sessions": {}}, load_schema("config"))["lfp"]
# CA1 has two tetrodes (a unit there has other groups to fall back on), PFC one (despiked)
GROUPS = ["CA1_a"] * 4 + ["CA1_b"] * 4 + ["PFC_a"] * 4
REGIONS = [g.split("_")[0] for g in GROUPS]
SAVE = {"chunk_duration": "10s", "progress_bar": False}


def pink_noise(n: int, rms: float, rng) -> np.ndarray:
    """1/f noise between 1 and 200 Hz: a stand-in for an LFP, independent of every spike."""
    f = np.fft.rfftfreq(n, 1 / FS)
    keep = (f >= 1) & (f <= 200)
    spec = np.zeros(f.size, complex)
    spec[keep] = (rng.standard_normal(keep.sum()) + 1j * rng.standard_normal(keep.sum())) / np.sqrt(
        f[keep]
    )
    x = np.fft.irfft(spec, n)
    return x * rms / x.std()


def spike_waveform(peak_uv: float) -> np.ndarray:
    """A 4 ms extracellular spike (-1 ms .. +3 ms): a sharp trough and a slow positive lobe;
    its net area (-0.21 uV s at 500 uV) is what leaks through the low-pass."""
    t_ms = np.arange(-10, 30) / FS * 1000
    return peak_uv * (
        -np.exp(-0.5 * (t_ms / 0.25) ** 2) + 0.1 * np.exp(-0.5 * ((t_ms - 1.0) / 0.8) ** 2)
    )


def poisson_train(rate_hz: float, n: int, rng) -> np.ndarray:
    isi = rng.exponential(1 / rate_hz, int(DURATION_S * rate_hz * 2)) + 0.003  # 3 ms refractory
    train = (np.cumsum(isi) * FS).astype(np.int64)
    return train[(train > 100) & (train < n - 100)]


@pytest.fixture(scope="module")
def bleed(tmp_path_factory):
    """Wideband recording -> channel LFPs, region LFPs, clean region LFPs and a sorting, saved
    as preprocessing would: unit ``a`` on CA1_a (500 uV), ``b`` on PFC_a (500 uV), ``m`` a
    multi-unit on PFC_a (250 uV); no spike is related to the LFP."""
    out = tmp_path_factory.mktemp("bleed")
    rng = np.random.default_rng(0)
    n = int(DURATION_S * FS)
    common = {r: pink_noise(n, 60.0, rng) for r in ("CA1", "PFC")}
    x = np.stack([common[r] for r in REGIONS], axis=1) + 10 * rng.standard_normal((n, 12))
    trains = {}
    for unit, group, peak_uv, rate_hz in (
        ("a", "CA1_a", 500.0, 25.0),
        ("b", "PFC_a", 500.0, 25.0),
        ("m", "PFC_a", 250.0, 20.0),
    ):
        trains[unit] = poisson_train(rate_hz, n, rng)
        channels = np.flatnonzero(np.array(GROUPS) == group)
        wave = spike_waveform(peak_uv)[:, None] * np.array([1.0, 0.9, 0.8, 0.7])
        for s in trains[unit]:
            x[s - 10 : s + 30, channels] += wave
    rec = sc.NumpyRecording([x.astype("float32")], FS)
    rec.set_property("group", np.array(GROUPS))
    rec.set_property("region", np.array(REGIONS))
    rec.set_property("bad", np.zeros(len(GROUPS), bool))
    filters.lfp_band(rec, LFP_PARAMS, 50).save(folder=out / "lfp", **SAVE)
    lfp = si.load(out / "lfp")
    chain = filters.lfp_rate_chain(LFP_PARAMS, 50)
    filters.region_lfp(lfp, "median", chain).save(folder=out / "region_lfp", **SAVE)
    filters.region_lfp_clean(lfp, chain).save(folder=out / "region_lfp_clean", **SAVE)
    sorting = sc.NumpySorting.from_unit_dict([trains], FS)
    sorting.set_property("region", np.array(["CA1", "PFC", "PFC"]))
    sorting.set_property("group", np.array(["CA1_a", "PFC_a", "PFC_a"]))
    sorting.set_property("multi_unit", np.array([False, False, True]))
    sorting.save(folder=out / "sorting")
    return out


def own_region_rows(rows: list[dict]) -> dict:
    return {(r["unit"], r["band"]): r for r in rows if r["region"] == r["unit_region"]}


def test_bleed_through_locks_before_cleaning_and_not_after(bleed):
    spike_bins, y, targets, target_regions, unit_regions, unit_ids, fs = load_lfpdict_inputs(
        bleed / "sorting", bleed / "region_lfp"
    )
    assert list(unit_ids) == ["a", "b"]  # the multi-unit m is left out (units: single)
    home = load_clean_targets(bleed / "sorting", bleed / "region_lfp_clean", unit_ids)
    assert [home.method_of_unit(n) for n in range(2)] == ["other_groups", "despiked"]
    before = own_region_rows(phase_table(spike_bins, unit_ids, unit_regions, y, targets, fs))
    after_rows = phase_table(
        spike_bins, unit_ids, unit_regions, y, targets, fs, home=home, target_regions=targets
    )
    after = own_region_rows(after_rows)
    for unit in ("a", "b"):
        # before: the spikes' own low-frequency part makes them look gamma-locked
        assert before[unit, "gamma"]["rayleigh_p"] < 1e-10, before[unit, "gamma"]
        assert before[unit, "gamma"]["ppc"] > 0.015, before[unit, "gamma"]
        # after: nothing, in any band
        for band in ("delta", "theta", "beta", "gamma"):
            row = after[unit, band]
            assert abs(row["ppc"]) < 0.005, row
            assert row["rayleigh_p"] > 1e-3, row
        assert after[unit, "gamma"]["rayleigh_p"] > 0.01
        assert abs(after[unit, "gamma"]["ppc"]) < 0.002
    # the other region is read as it is; the own region from the clean row, and said so
    assert {r["lfp"] for r in after_rows if r["region"] != r["unit_region"]} == {"region"}
    assert after["a", "gamma"]["lfp"] == "other_groups"
    assert after["b", "gamma"]["lfp"] == "despiked"


def heldout_r2(y: np.ndarray, bins: np.ndarray, half_lags: int = 20) -> float:
    """R^2 on the second half of a least-squares filter (lags +-half_lags bins) fitted on the
    first: how much of `y` a unit's spikes predict, a stand-in for the inside R^2."""
    u = np.bincount(bins, minlength=y.size).astype(float)
    lags = np.arange(-half_lags, half_lags + 1)
    design = np.stack([np.roll(u, k) for k in lags], axis=1)
    design = np.column_stack([design, np.ones(y.size)])
    half = y.size // 2
    coef = np.linalg.solve(design[:half].T @ design[:half], design[:half].T @ y[:half])
    resid = y[half:] - design[half:] @ coef
    return float(1 - resid.var() / y[half:].var())


def test_spikes_predict_the_region_lfp_only_through_bleed_through(bleed):
    spike_bins, y, targets, _, unit_regions, unit_ids, _ = load_lfpdict_inputs(
        bleed / "sorting", bleed / "region_lfp"
    )
    home = load_clean_targets(bleed / "sorting", bleed / "region_lfp_clean", unit_ids)
    for n in range(len(unit_ids)):
        own = y[list(targets).index(unit_regions[n])]
        clean = home.of_unit(n)
        assert heldout_r2(own, spike_bins[n]) > 0.01
        assert heldout_r2(clean, spike_bins[n]) < 0.001  # about -41 / 30000 on noise
        # spike-triggered average at the spike: tens of uV before, about nothing after
        assert own[spike_bins[n]].mean() < -30
        assert abs(clean[spike_bins[n]].mean() - clean.mean()) < 5


def test_dictionary_targets_are_despiked_of_their_regions_units(bleed):
    """What the dictionaries fit: each region's LFP without its units' bleed-through. Before,
    a unit's spikes predict its region's LFP and the dictionary's inside R^2 is clearly
    positive; after, about nothing; the multi-unit m, left out of the dictionaries, is removed
    from PFC too."""
    spike_bins, y, targets, target_regions, unit_regions, unit_ids, fs = load_lfpdict_inputs(
        bleed / "sorting", bleed / "region_lfp"
    )
    clean = despiked_targets(bleed / "sorting", bleed / "region_lfp", y, target_regions)
    for n in range(len(unit_ids)):
        row = list(target_regions).index(unit_regions[n])
        assert heldout_r2(y[row], spike_bins[n]) > 0.01
        assert heldout_r2(clean[row], spike_bins[n]) < 0.001
    m = np.floor(si.load(bleed / "sorting").get_unit_spike_train("m") / 10).astype(int)
    assert y[1][m].mean() < -20
    assert abs(clean[1][m].mean() - clean[1].mean()) < 3
    inside = {}
    for name, target in (("before", y), ("after", clean)):
        est = SpikeLFPDictionary(
            fs, lag_minus_ms=20, lag_plus_ms=20, n_atoms=4, n_folds=3, n_outer=3, n_null=0
        ).fit(spike_bins, target, unit_regions, target_regions)
        inside[name] = est.paths_["inside"].nested()[0]
    assert (inside["before"] > 0.01).all(), inside
    assert (inside["after"] < 0.002).all(), inside


def test_excluded_units_are_despiked_too(bleed):
    """The multi-unit m is out of the dictionaries, but its spikes leak into PFC_a as well:
    the despiked row removes them (m's spike-triggered average goes from -50 to ~0 uV)."""
    region = si.load(bleed / "region_lfp").get_traces()[:, 1]
    home = load_clean_targets(bleed / "sorting", bleed / "region_lfp_clean", ["b"])
    m = np.floor(si.load(bleed / "sorting").get_unit_spike_train("m") / 10).astype(int)
    assert region[m].mean() < -20
    assert abs(home.of_unit(0)[m].mean() - home.of_unit(0).mean()) < 3


def test_a_unit_without_a_group_gets_its_whole_region_despiked(bleed, tmp_path):
    """A ground-truth sorting without ``group``: in a region of one group the group is known;
    in a region of several the region's median is despiked of all its units."""
    sorting = si.load(bleed / "sorting")
    truth = sc.NumpySorting.from_unit_dict(
        [{u: sorting.get_unit_spike_train(u) for u in sorting.unit_ids}], FS
    )
    truth.set_property("region", np.array(["CA1", "PFC", "PFC"]))
    truth.save(folder=tmp_path / "truth")
    with pytest.raises(LFPDictInputError, match="has no electrode group and its region 'CA1'"):
        load_clean_targets(tmp_path / "truth", bleed / "region_lfp_clean", ["a", "b"])
    home = load_clean_targets(
        tmp_path / "truth", bleed / "region_lfp_clean", ["a", "b"], bleed / "region_lfp"
    )
    assert list(home.groups[home.unit_row]) == ["", "PFC_a"]
    assert list(home.methods[home.unit_row]) == ["despiked", "despiked"]
    spike_bins, *_ = load_lfpdict_inputs(tmp_path / "truth", bleed / "region_lfp")
    theta = phase_table(spike_bins[:1], ["a"], ["CA1"], home.y[home.unit_row[:1]], ["CA1"], 1000.0)
    gamma = [r for r in theta if r["band"] == "gamma"][0]
    assert gamma["rayleigh_p"] > 0.01 and abs(gamma["ppc"]) < 0.002


def test_despike_recovers_kernels_of_overlapping_units():
    """Two units, half of whose spikes coincide, with different kernels: the joint fit tells
    them apart (separate spike-triggered averages would not) and the rest is untouched."""
    rng = np.random.default_rng(1)
    n = 200_000
    shared = rng.choice(n - 20, 1000, replace=False) + 10
    one = np.sort(np.concatenate([shared, rng.choice(n - 20, 1000, replace=False) + 10]))
    two = np.sort(np.concatenate([shared, rng.choice(n - 20, 1000, replace=False) + 10]))
    k1 = np.array([0, 1, -4, -10, -4, 1, 0], float)
    k2 = np.array([0, 0, 3, 6, 3, 0, 0], float)
    noise = 5 * rng.standard_normal(n)
    y = noise.copy()
    for bins, k in ((one, k1), (two, k2)):
        np.add.at(y, (bins[:, None] + np.arange(-3, 4)).ravel(), np.tile(k, bins.size))
    cleaned, kernels = despike(y, [one, two], 3)
    np.testing.assert_allclose(kernels, np.stack([k1, k2]), atol=0.4)
    assert cleaned.dtype == np.float32
    assert np.std(cleaned - noise) < 0.1 * np.std(noise)
    # no spikes: nothing removed
    np.testing.assert_allclose(despike(y, [], 3)[0], y, rtol=1e-6)


def test_despiking_keeps_a_genuine_slow_coupling():
    """A unit that truly drives its LFP (a 30 ms bump after each spike) and bleeds into it
    (a 2 ms dip): the despiked LFP keeps the bump and its locking, loses the dip. Without
    the flanks the bump is cut out around every spike and the unit looks gamma-locked."""
    rng = np.random.default_rng(2)
    n = 120_000
    fs = 1000.0
    f = np.fft.rfftfreq(n, 1 / fs)
    spec = np.where(f >= 1, 1 / np.sqrt(np.maximum(f, 1)), 0) * (
        rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)
    )
    noise = np.fft.irfft(spec, n)
    noise *= 40 / noise.std()
    bins = np.sort(rng.choice(np.arange(100, n - 100), 2400, replace=False))
    lags = np.arange(-60, 61)
    coupling = 15 * np.exp(-0.5 * ((lags - 10) / 30.0) ** 2)
    genuine = noise.copy()
    np.add.at(genuine, (bins[:, None] + lags).ravel(), np.tile(coupling, bins.size))
    y = genuine.copy()
    np.add.at(y, np.concatenate([bins, bins + 1]), -40.0)

    def gamma_ppc(signal):
        return locking(band_phase(signal[None], fs, (30.0, 80.0))[0][bins])["ppc"]

    def theta_ppc(signal):
        return locking(band_phase(signal[None], fs, (4.0, 12.0))[0][bins])["ppc"]

    cleaned, kernel = despike(y, [bins], 5, flank_bins=15)
    assert kernel[0, 5] == pytest.approx(-40, abs=3) and abs(kernel[0, 0]) < 3
    assert np.std(cleaned - genuine) < 0.1 * np.std(y - genuine)
    assert gamma_ppc(y) > 0.05  # the dip
    assert abs(gamma_ppc(cleaned) - gamma_ppc(genuine)) < 0.003
    assert theta_ppc(cleaned) == pytest.approx(theta_ppc(genuine), abs=0.003)
    assert theta_ppc(genuine) > 0.02  # the genuine locking is there, and kept
    boxed, _ = despike(y, [bins], 5)
    assert gamma_ppc(boxed) > gamma_ppc(genuine) + 0.01


def test_despiking_follows_the_spikes_through_the_notches():
    """The bleed-through reaches the LFP through the mains notches, which make each spike's
    kernel ring at 50 Hz for ~0.2 s. Despiking through the same chain leaves nothing locked to
    the spikes at any lag; removing the short kernel alone leaves the ringing."""
    rng = np.random.default_rng(3)
    n = 120_000
    chain = filters.lfp_rate_chain(LFP_PARAMS, 50)
    bins = np.sort(rng.choice(np.arange(500, n - 500), 2400, replace=False))
    u = np.bincount(bins, minlength=n).astype(float)
    bleed = filters.apply_lfp_rate_chain(np.convolve(u, [-100.0, -100.0], mode="same"), chain)
    noise = 20 * rng.standard_normal(n)
    y = noise + bleed
    far = np.arange(10, 101)  # 10 to 100 ms after the spike

    def sta(x):
        return np.array([x[bins + lag].mean() for lag in far])

    assert np.abs(sta(bleed)).max() > 5  # the ringing
    cleaned, _ = despike(y, [bins], 5, chain, 15)
    assert np.abs(sta(cleaned - noise)).max() < 0.5
    assert np.std(cleaned - noise) < 0.05 * np.std(bleed)
    short_only, _ = despike(y, [bins], 5, None, 15)
    assert np.abs(sta(short_only - noise)).max() > 3


def test_units_single_leaves_out_multi_units_and_noise(tmp_path):
    trains = {f"u{i}": np.arange(10, 2000, 97) + i for i in range(5)}
    sorting = sc.NumpySorting.from_unit_dict([trains], 20000.0)
    sorting.set_property("region", np.array(["CA1"] * 5))
    sorting.set_property("multi_unit", np.array([False, True, False, False, False]))
    sorting.set_property("noise", np.array([False, False, True, False, False]))
    sorting.set_property("quality", np.array(["good", "good", "good", "mua", "good"]))
    sorting.save(folder=tmp_path / "sorting")
    lfp = sc.NumpyRecording([np.zeros((200, 1), "float32")], 1000.0, channel_ids=["CA1"])
    lfp.set_property("region", np.array(["CA1"]))
    lfp.save(folder=tmp_path / "lfp")
    *_, unit_ids, _, excluded = load_lfpdict_inputs(
        tmp_path / "sorting", tmp_path / "lfp", return_excluded=True
    )
    assert list(unit_ids) == ["u0", "u4"]
    assert excluded == {"u1": "multi_unit", "u2": "noise", "u3": "quality mua"}
    *_, unit_ids, _, excluded = load_lfpdict_inputs(
        tmp_path / "sorting", tmp_path / "lfp", units="all", return_excluded=True
    )
    assert list(unit_ids) == ["u0", "u1", "u2", "u3", "u4"] and excluded == {}
    # a ground-truth sorting has no flags: every unit stays
    truth = sc.NumpySorting.from_unit_dict([trains], 20000.0)
    truth.set_property("region", np.array(["CA1"] * 5))
    assert unit_exclusions(truth, "single") == {}
    # a saved flag read back as text counts the same
    text = sc.NumpySorting.from_unit_dict([trains], 20000.0)
    text.set_property("multi_unit", np.array(["False", "True", "false", "1", "0"]))
    assert list(unit_exclusions(text)) == ["u1", "u3"]
    with pytest.raises(ValueError, match="'lfpdict.units'"):
        unit_exclusions(truth, "some")


def test_the_report_lists_the_excluded_units():
    from neurodict.report.session import excluded_units_blocks

    assert excluded_units_blocks({}) == []  # results from before units were left out
    none = excluded_units_blocks({"excluded_unit_ids": np.array([], dtype=str)})
    assert none[0]["text"].endswith("none.")
    text, table = excluded_units_blocks(
        {
            "excluded_unit_ids": np.array(["7", "12"]),
            "excluded_reasons": np.array(["multi_unit", "quality noise"]),
        }
    )
    assert "2 units left out" in text["text"] and text["text"].endswith("7, 12.")
    assert table["rows"] == [
        {"unit": "7", "reason": "multi_unit"},
        {"unit": "12", "reason": "quality noise"},
    ]
