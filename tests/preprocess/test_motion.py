"""Motion correction per electrode group: the rule of ``auto``, the estimate against a known
drift, and a corrected recording with the same channels, ids and properties."""

from __future__ import annotations

import re

import numpy as np
import pytest
from spikeinterface.generation import generate_drifting_recording
from spikeinterface.preprocessing import bandpass_filter

from neurodict.preprocess import motion
from tests.drift import two_columns, zigzag


@pytest.mark.parametrize(
    ("choice", "span", "want"),
    [
        ("auto", 300.0, "nonrigid"),
        ("auto", 299.0, "none"),
        ("rigid", 20.0, "rigid"),
        ("none", 1000.0, "none"),
    ],
)
def test_auto_corrects_groups_at_least_the_minimum_span_wide(choice, span, want):
    assert motion.decide(choice, span, 300.0)[0] == want


def test_collections_inside_see_only_new_objects_and_all_again_after():
    """A cycle of objects made before :func:`motion.collections_of_new_objects` and dropped
    survives a collection inside it (frozen: the collection does not walk it), one made inside
    does not; after it, even an exception raised inside, the first is collected too."""
    import gc
    import weakref

    class Node:
        pass

    def cycle():
        a, b = Node(), Node()
        a.other, b.other = b, a
        return weakref.ref(a)

    before = cycle()
    with pytest.raises(RuntimeError), motion.collections_of_new_objects():
        inside = cycle()
        gc.collect()
        assert before() is not None
        assert inside() is None
        raise RuntimeError
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert before() is None


@pytest.mark.parametrize(("drift", "want"), [(10.0, True), (9.9, False)])
def test_auto_corrects_a_drift_of_at_least_the_pitches_asked_for(drift, want):
    corrected, why = motion.drifts(drift, 20.0, 0.5)
    assert corrected is want
    sign = ">=" if want else "<"
    assert why == f"estimated drift {drift:.1f} um {sign} motion_min_drift_pitch 0.5 x pitch 20 um"


AUTO = {"motion": "auto", "motion_min_span_um": 300.0, "motion_min_drift_pitch": 0.5}


def test_pitch_and_drift():
    from spikeinterface.core import generate_recording

    rec = generate_recording(num_channels=4, durations=[0.1])
    rec.set_dummy_probe_from_locations(np.array([[0, 0], [20, 0], [0, 25.0], [0, 50.0]]))
    assert motion.pitch_um(rec) == 25.0
    d = np.array([[0.0, 1.0], [3.0, -6.0], [1.0, 2.0]])  # time bins x depth bins
    assert motion.drift_um(d) == 8.0


@pytest.fixture(scope="module")
def two_groups():
    """A drifting two-column probe of 18 rows: its first 32 channels one group ("shank": the
    first column and 14 rows of the second, 340 um) and its last 4 another ("narrow": 60 um of
    the second column), 50 s, the true displacement, and the same recording without drift."""
    static, rec, _, extra = generate_drifting_recording(
        num_units=12,
        duration=50.0,
        probe_name=None,
        generate_probe_kwargs=two_columns(18),
        generate_displacement_vector_kwargs=zigzag(20.0, 10.0, 30),  # ±20 um from 10 s
        extra_outputs=True,
        seed=2,
    )
    group = np.array(["shank"] * 32 + ["narrow"] * 4)
    out = []
    for r in (rec, static):
        r = bandpass_filter(r, freq_min=300.0, freq_max=6000.0)
        r.set_property("group", group)
        r.set_property("region", np.where(group == "shank", "CA1", "DG"))
        out.append(r)
    return out[0], extra, out[1]


def test_the_estimate_follows_the_drift_and_channels_stay_as_they_were(two_groups):
    rec, extra, _ = two_groups
    out, estimates = motion.correct_groups(rec, AUTO, n_jobs=2)
    by_group = {e.group: e for e in estimates}
    assert [e.group for e in estimates] == ["shank", "narrow"]
    assert by_group["narrow"].kind == "none" and by_group["shank"].kind == "nonrigid"
    assert re.fullmatch(
        r"auto: span 340 um >= motion_min_span_um 300; estimated drift \d+\.\d um >= "
        r"motion_min_drift_pitch 0.5 x pitch 20 um",
        by_group["shank"].reason,
    )
    assert by_group["narrow"].reason == "auto: span 60 um < motion_min_span_um 300"
    # the estimate at the shank's units against their true displacement, both centred
    shank = by_group["shank"]
    t = np.arange(extra["unit_displacements"].shape[0]) / extra["displacement_sampling_frequency"]
    inside = extra["unit_locations"][:, 1] < 300
    true = extra["unit_displacements"][:, inside, 1]
    est = np.stack(
        [np.array([np.interp(ti, shank.times_s, shank.displacement_um[:, 0]) for ti in t])]
        * true.shape[1],
        axis=1,
    )
    true, est = true - true.mean(0), est - est.mean(0)
    assert np.sqrt(np.mean((est - true) ** 2)) < 0.3 * np.sqrt(np.mean(true**2))
    # same channels, ids, order and properties; the narrow group's traces untouched
    np.testing.assert_array_equal(out.channel_ids, rec.channel_ids)
    for key in ("group", "region"):
        np.testing.assert_array_equal(out.get_property(key), rec.get_property(key))
    np.testing.assert_array_equal(out.get_channel_locations(), rec.get_channel_locations())
    a = out.get_traces(start_frame=30000, end_frame=31000)
    b = rec.get_traces(start_frame=30000, end_frame=31000)
    np.testing.assert_array_equal(a[:, 32:], b[:, 32:])
    assert np.abs(a[:, :32] - b[:, :32]).max() > 0  # the shank is interpolated


def test_auto_estimates_a_static_shank_and_leaves_it_uninterpolated(two_groups):
    """The same shank without drift: estimated (the estimate kept for the report), under half
    a pitch, so its traces are the band's, which the kept estimate would have changed."""
    from spikeinterface.core.motion import Motion
    from spikeinterface.sortingcomponents.motion import InterpolateMotionRecording

    _, _, static = two_groups
    out, estimates = motion.correct_groups(static, AUTO, n_jobs=2)
    shank = estimates[0]
    assert shank.kind == "none" and shank.displacement_um.size > 0
    assert re.fullmatch(
        r"auto: span 340 um >= motion_min_span_um 300; estimated drift \d+\.\d um < "
        r"motion_min_drift_pitch 0.5 x pitch 20 um",
        shank.reason,
    )
    a = out.get_traces(start_frame=30000, end_frame=31000)
    np.testing.assert_array_equal(a, static.get_traces(start_frame=30000, end_frame=31000))
    kept = Motion([shank.displacement_um], [shank.times_s], shank.depths_um)
    part = static.select_channels(static.channel_ids[:32])
    forced = InterpolateMotionRecording(part, kept, border_mode="force_extrapolate")
    b = forced.get_traces(start_frame=30000, end_frame=31000)
    assert np.abs(b - a[:, :32]).max() > 0


def test_a_corrected_recording_of_one_group_is_split_by_group_again(monkeypatch):
    """One group corrected: the aggregated result still opens per group (the sort step's
    group_recording), with the same channels."""
    from spikeinterface.core import generate_recording

    from neurodict.common.layout import group_recording

    rec = generate_recording(num_channels=6, durations=[1.0], seed=0)
    rec.set_property("group", np.array(["shank"] * 6))
    monkeypatch.setattr(
        motion,
        "correct",
        lambda part, g, params, n_jobs: (
            part,
            motion.Estimate(g, "rigid", "test", 100.0, np.zeros(0), np.zeros(0), np.zeros((0, 0))),
        ),
    )
    out, _ = motion.correct_groups(rec, {"motion": "rigid", "motion_min_span_um": 0.0}, n_jobs=1)
    part = group_recording(out, "shank")
    np.testing.assert_array_equal(part.channel_ids, rec.channel_ids)


def test_the_preprocess_step_moves_a_band_that_does_not_drift(tmp_path, tiny_session, monkeypatch):
    """A group estimated under auto that does not drift: spikeband/ is the band as written,
    moved into place, not copied, and motion.npz keeps the estimate with its reason."""
    import spikeinterface as si

    from neurodict.ingest import step as ingest_step
    from neurodict.preprocess import step as preprocess_step
    from tests.conftest import relocated_session

    correct_groups = motion.correct_groups

    def spy(rec, params, n_jobs):
        out, estimates = correct_groups(rec, params, n_jobs)
        monkeypatch.setattr(out, "save", lambda **kw: pytest.fail("the band was copied"))
        return out, estimates

    monkeypatch.setattr(motion, "correct_groups", spy)
    bands = {}
    for choice in ("auto", "none"):
        band = {"motion": choice, "motion_min_span_um": 0.0, "motion_min_drift_pitch": 1000.0}
        (tmp_path / choice).mkdir()
        session = relocated_session(tiny_session, tmp_path / choice, params={"spikeband": band})
        ingest_step.run(tmp_path / choice / "results", session)
        preprocess_step.run(tmp_path / choice / "results")
        bands[choice] = si.load(tmp_path / choice / "results" / "spikeband").get_traces()
    np.testing.assert_array_equal(bands["auto"], bands["none"])
    estimate = np.load(tmp_path / "auto" / "results" / preprocess_step.MOTION_NPZ)
    assert set(estimate["kind"]) == {"none"}
    assert all("motion_min_drift_pitch 1000" in r for r in estimate["reason"])
    group = str(estimate["groups"][0])
    assert estimate[f"{group}/displacement_um"].size > 0
