"""A recording of several segments (runs of one session with a pause) through every step.

The synthetic session is generated as one stretch, its pauses cut out (their spikes and LFP
never recorded), each run written to its own raw file; its truth lies on the session's
timeline (segments back to back)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import spikeinterface as si
import spikeinterface.comparison as scmp
import yaml

from neurodict.clusters import step as clusters_step
from neurodict.common import timeline
from neurodict.common.files import read_tsv
from neurodict.config import section_defaults
from neurodict.detect import step as detect_step
from neurodict.detect.step import snippet_reach
from neurodict.export import step as export_step
from neurodict.ingest import step as ingest_step
from neurodict.lfpdict import step as lfpdict_step
from neurodict.preprocess import step as preprocess_step
from neurodict.report import step as report_step
from neurodict.sort import step as sort_step
from neurodict.synth import SynthSpec, generate_session, segment_ranges
from tests.conftest import LFPDICT

SPEC = SynthSpec(
    n_regions=2,
    units_per_region=3,
    duration_s=45.0,
    fs_hz=10000.0,
    seed=3,
    n_segments=2,
    gap_s=5.0,
)
QUICK = {"n_burn": 6, "n_samples": 3, "n_keep": 2}


def session_with(folder, synth, **params):
    data = yaml.safe_load((synth / "session.yaml").read_text())
    data["raw_path"] = [str(synth / p) for p in data["raw_path"]]
    for key in ("ground_truth_sorting", "events"):
        data[key] = str(synth / data[key])
    data["probe"]["file"] = str(synth / data["probe"]["file"])
    data["params"] = params
    path = folder / "session.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate_session(tmp_path_factory.mktemp("segments") / "synth", SPEC, progress=False)


@pytest.fixture(scope="module")
def results(tmp_path_factory, synth):
    """Every step on the two-segment session, with one dictionary window per segment."""
    folder = tmp_path_factory.mktemp("segments_run")
    session = session_with(
        folder, synth.parent, sorting=QUICK, lfpdict=LFPDICT | {"windows": "segments"}
    )
    results = folder / "results"
    ingest_step.run(results, session)
    preprocess_step.run(results)
    detect_step.run(results)
    for g in yaml.safe_load(session.read_text())["groups"]:
        sort_step.run(results, g["name"])
    sort_step.merge(results)
    lfpdict_step.run(results)
    clusters_step.run(results)
    report_step.run(results)
    export_step.run(results)
    return results


def test_synthetic_segments_drop_the_pause(synth):
    kept = segment_ranges(SPEC, int(SPEC.duration_s * SPEC.fs_hz))
    assert kept == [(0, 175_000), (225_000, 450_000)]  # 5 s paused after the first run
    data = yaml.safe_load(synth.read_text())
    assert data["raw_path"] == ["recording_seg0.raw", "recording_seg1.raw"]
    sizes = [(synth.parent / p).stat().st_size // (2 * 8) for p in data["raw_path"]]
    assert sizes == [175_000, 225_000]
    truth = si.load(synth.parent / "truth_sorting")
    assert max(truth.get_unit_spike_train(u).max() for u in truth.unit_ids) < 400_000


def test_segments_recorded_at_ingest(results):
    info = json.loads((results / "session.json").read_text())
    assert [(r["segment"], r["start_sample"], r["n_samples"]) for r in info["segments"]] == [
        (0, 0, 175_000),
        (1, 175_000, 225_000),
    ]
    assert info["duration_s"] == 40.0
    assert si.load(results / "recording.json").get_num_segments() == 2
    assert si.load(results / "spikeband").get_num_segments() == 1


def test_spike_band_is_filtered_within_each_segment(tmp_path, synth):
    """The timeline's spike band and LFP equal each run preprocessed as a session of its own,
    up to the samples of the pause's edges: no filter reaches across the pause."""
    off = {"spikeband": {"mask_artefacts": False}, "lfpdict": {"jitter_min_s": 2.0}}
    line = session_with(tmp_path, synth.parent, **off)
    ingest_step.run(tmp_path / "line", line)
    preprocess_step.run(tmp_path / "line")
    data = yaml.safe_load(line.read_text())
    for i, start in enumerate((0, 175_000)):
        alone = dict(data, raw_path=data["raw_path"][i], events=None)
        alone = {k: v for k, v in alone.items() if v is not None}
        path = tmp_path / f"alone{i}.yaml"
        path.write_text(yaml.safe_dump(alone))
        ingest_step.run(tmp_path / f"alone{i}", path)
        preprocess_step.run(tmp_path / f"alone{i}")
        for folder, factor in (("spikeband", 1), ("lfp", 10)):
            own = si.load(tmp_path / f"alone{i}" / folder).get_traces()
            there = si.load(tmp_path / "line" / folder).get_traces(
                start_frame=start // factor, end_frame=start // factor + own.shape[0]
            )
            np.testing.assert_allclose(there, own, atol=1e-3, err_msg=folder)


def test_spikes_carry_their_segment_and_match_the_truth(results, synth):
    spikes = np.load(results / "spikes.npz")
    seg = spikes["segment_index"]
    assert set(np.unique(seg)) == {0, 1}
    np.testing.assert_array_equal(seg, spikes["sample_index"] >= 175_000)
    np.testing.assert_array_equal(
        spikes["segment_sample_index"], spikes["sample_index"] - 175_000 * seg
    )
    # no spike's snippet, detected or matched, straddles the pause
    reach = snippet_reach(section_defaults("sorting"), SPEC.fs_hz)
    assert not timeline.near_boundary(spikes["sample_index"], [0, 175_000], *reach).any()
    assert all("n_at_segment_edges" in r for r in read_tsv(results / "detection.tsv"))
    truth = si.load(synth.parent / "truth_sorting")
    sorting = si.load(results / "sorting")
    # each run on its own: the same units found as well in both (the second run's spikes lie
    # where its truth does on the timeline, not shifted by the pause)
    well = []
    for a, b in ((0, 175_000), (175_000, 400_000)):
        cmp = scmp.compare_sorter_to_ground_truth(
            truth.frame_slice(a, b), sorting.frame_slice(a, b), exhaustive_gt=True
        )
        well.append(set(cmp.get_well_detected_units(well_detected_score=0.75)))
    assert len(well[0]) >= 3 and well[0] == well[1]


def test_the_sort_step_gives_the_sorter_the_segment_starts(results, monkeypatch):
    """The sorter leaves out matched spikes across the pause only where it knows the pause:
    the sort step passes the session's segment starts."""

    class Seen(Exception):
        pass

    def spy(*args, starts=None, **kwargs):
        raise Seen(starts)

    monkeypatch.setattr(sort_step, "sort_recording_group", spy)
    group = json.loads((results / "session.json").read_text())["groups"][0]["name"]
    with pytest.raises(Seen) as seen:
        sort_step.run(results, group)
    assert seen.value.args == ([0, 175_000],)


def test_dictionaries_have_a_window_per_segment(results):
    d = np.load(results / "lfp_dict.npz")
    assert list(d["windows"]) == ["segment0", "segment1"]
    assert d["coef"].shape[0] == 2
    rows = read_tsv(results / "lfp_scores.tsv")
    r2 = {(r["region"], r["predictors"], r["model"]): float(r["r2_heldout"]) for r in rows}
    assert r2[("PFC", "all", "dictionary")] > 0.2


def test_report_and_nwb_show_the_segments(results):
    html = (results / "report.html").read_text()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert "2 recording segments, filtered each on its own and laid end to end" in text
    assert 'id="segments-table"' in html
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(results / "session.nwb"), "r") as io:
        epochs = io.read().epochs.to_dataframe()
    assert list(epochs["start_time"]) == [0.0, 17.5]
    assert list(epochs["stop_time"]) == [17.5, 40.0]
    assert [list(t) for t in epochs["tags"]] == [["segment0"], ["segment1"]]
