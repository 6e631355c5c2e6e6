"""``benchmarks/collisions.py``: each ground-truth spike's fate by its lag to another unit."""

from __future__ import annotations

import numpy as np
import spikeinterface.core as sc

from tests.benchmark_modules import load

collisions = load("collisions")


def test_spikes_in_another_unit_are_counted_by_their_lag_to_the_other_unit():
    """Two units 500 samples apart but for five pairs 0-2 samples apart and five 20 apart; the
    sorting puts the five close pairs' first-unit spikes in the second unit and finds every
    other spike 2 samples late: those five are lost to another unit in the 0-2 bin and make
    all of the lost, and one first-unit spike left out is not found (in its own bin)."""
    a = np.arange(1000, 61000, 1000)  # 60 spikes
    b = a + 500
    b[:5] = a[:5] + np.array([0, 1, 1, 2, 2])
    b[5:10] = a[5:10] + 20
    gt = sc.NumpySorting.from_unit_dict([{"a": a, "b": b}], 30000.0)
    out_a = a[5:-1] + 2  # the last one of a not found
    out_b = np.r_[b + 2, a[:5] + 2]
    out = sc.NumpySorting.from_unit_dict([{"x": out_a, "y": np.sort(out_b)}], 30000.0)
    rows = {r["lag"]: r for r in collisions.table(collisions.spike_fates(gt, out, 12))}
    assert rows["0-2"]["spikes"] == 10 and rows["0-2"]["lost"] == 0.5
    assert rows["0-2"]["share_of_lost"] == 1.0
    assert rows["15-29"]["spikes"] == 10 and rows["15-29"]["lost"] == 0.0
    assert rows[">=60"]["missed"] == 1 / rows[">=60"]["spikes"]
    assert sum(r["spikes"] for r in rows.values()) == 120
