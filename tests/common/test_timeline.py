"""The session's timeline: segments laid end to end, cut back, and what lies near a pause."""

from __future__ import annotations

import numpy as np
import spikeinterface.core as sc

from neurodict.common import timeline


def test_pieces_cut_at_segment_starts_only_inside():
    assert timeline.pieces(0, 100, [0, 40, 70]) == [(0, 40), (40, 70), (70, 100)]
    assert timeline.pieces(10, 40, [0, 40, 70]) == [(10, 40)]
    assert timeline.pieces(45, 60, [0, 40, 70]) == [(45, 60)]
    assert timeline.pieces(30, 30, [0, 40]) == []


def test_segment_of_and_near_boundary():
    bounds = [0, 100, 250]
    np.testing.assert_array_equal(
        timeline.segment_of([0, 99, 100, 249, 250, 999], bounds), [0, 0, 1, 1, 2, 2]
    )
    # a window [s - 3, s + 5) crosses a boundary b when s - 3 < b < s + 5 ... i.e. b - 5 < s < b + 3
    s = np.array([0, 2, 94, 95, 96, 100, 102, 103, 244, 246, 252, 253])
    np.testing.assert_array_equal(
        timeline.near_boundary(s, bounds, before=3, after=5),
        [False, False, False, False, True, True, True, False, False, True, True, False],
    )


def test_concatenate_and_split_round_trip():
    rec, _ = sc.generate_ground_truth_recording(
        durations=[0.3, 0.5], num_channels=3, sampling_frequency=10000.0, seed=1
    )
    line = timeline.concatenate(rec)
    assert line.get_num_segments() == 1
    rows = timeline.segments_table(rec)
    assert [r["start_sample"] for r in rows] == [0, 3000]
    assert [r["n_samples"] for r in rows] == [3000, 5000]
    back = timeline.split(line, [r["start_sample"] for r in rows])
    assert back.get_num_segments() == 2
    for i in range(2):
        np.testing.assert_array_equal(
            back.get_traces(segment_index=i), rec.get_traces(segment_index=i)
        )
    one, _ = sc.generate_ground_truth_recording(durations=[0.2], num_channels=2, seed=2)
    assert timeline.concatenate(one) is one and timeline.split(one, [0]) is one


def test_segment_starts_in_bins():
    assert timeline.in_bins([0.0, 12.3456, 30.0], 1000.0) == [0, 12346, 30000]
    assert timeline.in_bins(None, 1000.0) == [0]
