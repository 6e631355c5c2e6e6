"""Saturation and large artefacts: found per group, chunk-safe, zeroed on their group only; and
one 20 ms saturation in a ground-truth session no longer spoils the sorting of its group."""

from __future__ import annotations

import numpy as np
import pytest
import spikeinterface as si
import spikeinterface.core as sc
from spikeinterface.comparison import compare_sorter_to_ground_truth

from neurodict.common.files import read_tsv
from neurodict.config import apply_defaults, load_schema
from neurodict.detect import step as detect_step
from neurodict.ingest import step as ingest_step
from neurodict.preprocess import artefacts, filters
from neurodict.preprocess import step as preprocess_step
from neurodict.report.session import artefact_blocks
from neurodict.sort import step as sort_step
from tests.conftest import relocated_session

FS = 20000.0
GAIN = 0.195  # uV per int16 step
PARAMS = apply_defaults({"sessions": {}}, load_schema("config"))["spikeband"]
GROUPS = ("A", "A", "A", "A", "B", "B", "B", "B")


def raw_recording(traces_uv: np.ndarray, integer: bool = True) -> sc.BaseRecording:
    """A recording with the properties ingestion sets: int16 with a gain, or float32 uV."""
    if integer:
        rec = sc.NumpyRecording(
            [np.clip(np.round(traces_uv / GAIN), -32768, 32767).astype("int16")], FS
        )
        rec.set_channel_gains(GAIN)
        rec.set_channel_offsets(0.0)
    else:
        rec = sc.NumpyRecording([traces_uv.astype("float32")], FS)
    n = traces_uv.shape[1]
    rec.set_property("group", np.array(GROUPS[:n]))
    rec.set_property("region", np.array(["CA1"] * 4 + ["PFC"] * 4)[:n])
    rec.set_property("bad", np.zeros(n, bool))
    return rec


def at(t_s: float) -> int:
    return int(t_s * FS)


@pytest.fixture(scope="module")
def wideband() -> np.ndarray:
    """6 s of 10 uV noise on two tetrodes with: a 600 uV spike on one channel of A (1 s), a
    large tetrode spike on A (2 s), channel 2 of A at the ADC's rail for 20 ms (3 s), and a
    2 ms, 2 mV step common to every channel of B (4 s)."""
    x = np.random.default_rng(0).standard_normal((at(6.0), 8)) * 10.0
    spike = -np.sin(np.linspace(0, np.pi, at(0.0005))) * 600.0
    x[at(1.0) : at(1.0) + spike.size, 0] += spike
    for ch, scale in enumerate((0.7, 0.45, 0.3, 0.2)):
        x[at(2.0) : at(2.0) + spike.size, ch] += scale * spike
    x[at(3.0) : at(3.02), 2] = 32767 * GAIN
    x[at(4.0) : at(4.002), 4:8] += 2000.0
    return x


def periods_of(x: np.ndarray, integer: bool = True, **kwargs) -> tuple[np.ndarray, object]:
    raw = raw_recording(x, integer)
    spikeband = filters.spike_band(raw, PARAMS)
    return artefacts.find_artefacts(
        filters.good_channels(raw), spikeband, PARAMS, **kwargs
    ), spikeband


def test_rail_limits():
    low, high = artefacts.rail_limits("int16", 0.98)
    assert (low, high) == pytest.approx((-0.5 - 0.98 * 32767.5, -0.5 + 0.98 * 32767.5))
    assert artefacts.rail_limits("uint16", 1.0) == (0.0, 65535.0)
    assert artefacts.rail_limits("float32", 0.98) is None


def test_saturation_and_common_artefact_found_spikes_left(wideband):
    periods, spikeband = periods_of(wideband)
    assert [(int(p["group_index"]), str(p["kind"])) for p in periods] == [
        (0, "saturation"),
        (1, "artefact"),
    ]
    sat, art = periods
    # each covers what was injected, plus the filter's ringing, and not much more
    assert sat["start"] <= at(3.0) and sat["end"] >= at(3.02)
    assert sat["end"] - sat["start"] < at(0.02) + at(0.03)
    assert art["start"] <= at(4.0) and art["end"] >= at(4.002)
    assert art["end"] - art["start"] < at(0.03)
    # where a stretch ends, every channel of its group stays under artefact_end_sigma for one
    # period of the high-pass corner (the definition of its end)
    noise = sc.get_noise_levels(
        spikeband, return_in_uV=False, random_slices_kwargs={"seed": artefacts.NOISE_SEED}
    )
    quiet = int(round(FS / PARAMS["freq_min_hz"]))
    for p, channels in ((sat, slice(0, 4)), (art, slice(4, 8))):
        for a, b in ((p["end"], p["end"] + quiet), (p["start"] - quiet, p["start"])):
            z = np.abs(spikeband.get_traces(start_frame=a, end_frame=b))[:, channels]
            assert np.all(z < PARAMS["artefact_end_sigma"] * noise[channels])
        inside = np.abs(spikeband.get_traces(start_frame=p["start"], end_frame=p["end"]))
        assert inside[:, channels].max() > PARAMS["artefact_end_sigma"] * noise[channels].max()


def test_stretches_do_not_depend_on_the_chunks(wideband):
    whole, _ = periods_of(wideband)
    for chunk_s in (0.37, 1.0003, 3.0):
        np.testing.assert_array_equal(periods_of(wideband, chunk_s=chunk_s)[0], whole)


def test_float_raw_has_no_rail(wideband):
    periods, _ = periods_of(wideband, integer=False)
    # one channel at 6.4 mV is neither a saturation (no rail) nor common to the group
    assert [(int(p["group_index"]), str(p["kind"])) for p in periods] == [(1, "artefact")]


def test_clean_noise_and_a_flat_group_have_no_artefacts():
    x = np.random.default_rng(1).standard_normal((at(3.0), 8)) * 10.0
    x[:, 4:] = 0.0  # group B flat: zero noise, never an artefact, no division warnings
    with np.errstate(all="raise"):
        periods, _ = periods_of(x)
    assert periods.size == 0


def test_zeroed_on_its_group_only(tmp_path, wideband):
    periods, spikeband = periods_of(wideband)
    saved = spikeband.save(folder=tmp_path / "spikeband")
    before = saved.get_traces().copy()
    artefacts.zero_in_place(saved, periods)
    after = si.load(tmp_path / "spikeband").get_traces()
    expect = before.copy()
    for p, channels in zip(periods, (slice(0, 4), slice(4, 8)), strict=True):
        expect[p["start"] : p["end"], channels] = 0
    np.testing.assert_array_equal(after, expect)
    assert np.all(after[periods[0]["start"] : periods[0]["end"], 4:] != 0)  # B untouched there


def test_rows_and_table(tmp_path, wideband):
    periods, _ = periods_of(wideband)
    rows = artefacts.rows(periods, ["A", "B"], FS)
    assert rows[0]["group"] == "A" and rows[0]["kind"] == "saturation"
    assert rows[0]["duration_ms"] == pytest.approx(
        (periods[0]["end"] - periods[0]["start"]) / FS * 1000, abs=0.01
    )
    artefacts.write_table(tmp_path / "a.tsv", rows)
    assert read_tsv(tmp_path / "a.tsv") == rows
    artefacts.write_table(tmp_path / "none.tsv", [])
    assert read_tsv(tmp_path / "none.tsv") == []
    assert (tmp_path / "none.tsv").read_text().split() == artefacts.COLUMNS


def test_report_says_what_was_masked():
    info = {"params": {"spikeband": PARAMS}}
    rows = [
        {"group": "A", "kind": "saturation", "start_s": 3.0, "end_s": 3.03, "duration_ms": 30.0},
        {"group": "B", "kind": "artefact", "start_s": 4.0, "end_s": 4.01, "duration_ms": 10.0},
        {"group": "A", "kind": "artefact", "start_s": 5.0, "end_s": 5.02, "duration_ms": 20.0},
    ]
    text, table = artefact_blocks(info, rows, duration_s=10.0)
    assert "saturation (a raw sample at 98% or more of the ADC's range" in text["text"]
    assert "at least 50% of the group's channels beyond 50 robust SD" in text["text"]
    assert (
        "Masked: group A: 2 stretches, 0.05 s (0.5% of the recording); group B: 1 "
        "stretch, 0.01 s (0.1% of the recording)."
    ) in text["text"]
    assert table["id"] == "artefacts-table" and table["rows"] == rows
    assert artefact_blocks(info, [], 10.0)[0]["text"].endswith("None found.")
    assert artefact_blocks(info, None, 10.0) == []  # results from before artefacts.tsv
    off = {"params": {"spikeband": PARAMS | {"mask_artefacts": False}}}
    assert "not looked for" in artefact_blocks(off, [], 10.0)[0]["text"]


def test_one_saturation_keeps_the_single_units(tmp_path, tiny_session):
    """Issue 13, case 6: one 20 ms saturation on every channel of a tetrode. Without masking
    it made a unit of a few spikes at SNR ~90 and turned a single unit into a multi-unit; with
    it the artefact is listed and the group's sorting matches its ground truth: each true
    unit a single unit, no multi-unit holding a tenth of a true unit's spikes (a multi-unit
    of matches under the threshold may exist beside them)."""
    raw = np.fromfile(tiny_session.parent / "recording.raw", dtype="int16").reshape(-1, 8)
    raw = raw.copy()
    fs = 10000.0
    start, stop = int(12.0 * fs), int(12.02 * fs)
    raw[start:stop, 0:4] = np.iinfo(np.int16).max
    raw.tofile(tmp_path / "recording.raw")
    session = relocated_session(tiny_session, tmp_path, raw_path=str(tmp_path / "recording.raw"))
    results = tmp_path / "results"
    ingest_step.run(results, session)
    preprocess_step.run(results)
    # (a) the artefact is found and written
    rows = read_tsv(results / preprocess_step.ARTEFACTS_TSV)
    assert [(r["group"], r["kind"]) for r in rows] == [("CA1_tt", "saturation")]
    assert rows[0]["start_s"] <= 12.0 and rows[0]["end_s"] >= 12.02
    assert rows[0]["duration_ms"] < 60
    spikeband = si.load(results / "spikeband")
    a, b = int(rows[0]["start_s"] * fs), int(rows[0]["end_s"] * fs)
    assert not np.any(spikeband.get_traces(start_frame=a, end_frame=b)[:, :4])
    assert np.all(spikeband.get_traces(start_frame=a, end_frame=b)[:, 4:].std(axis=0) > 0)
    # (b) no peak in it, and the group's sorting keeps its single units
    peaks = detect_step.run(results)
    assert not np.any((peaks["sample_index"] >= a) & (peaks["sample_index"] < b))
    result = sort_step.run(results, "CA1_tt")
    labels, multi = result.sorting.labels, result.sorting.multi_unit
    counts = np.bincount(labels[labels >= 0], minlength=multi.size)
    # the artefact's few large spikes made a single unit; a multi-unit pools small clusters
    assert counts[~multi].min() >= 10, f"a single unit of {counts[~multi].min()} spikes"
    sorting = sc.NumpySorting.from_samples_and_labels(
        [result.samples[labels >= 0]], [labels[labels >= 0]], fs
    )
    truth = si.load(tiny_session.parent / "truth_sorting")
    truth = truth.select_units([u for u in truth.unit_ids if str(u).startswith("CA1")])
    cmp = compare_sorter_to_ground_truth(truth, sorting, exhaustive_gt=True)
    best = cmp.hungarian_match_12
    accuracy = cmp.get_performance()["accuracy"]
    for unit in truth.unit_ids:
        assert accuracy[unit] >= 0.8, (unit, accuracy[unit])
        assert not multi[int(best[unit])], f"{unit} is matched by a multi-unit"
    pooled = cmp.match_event_count.to_numpy()[:, multi]  # true units' spikes in multi-units
    spikes = [truth.get_unit_spike_train(u).size for u in truth.unit_ids]
    assert np.all(pooled <= 0.1 * np.array(spikes)[:, None]), pooled
