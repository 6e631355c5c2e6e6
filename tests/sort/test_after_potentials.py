"""The overlap pass leaves out a unit whose template is another unit's after-potential."""

import numpy as np

from neurodict.sort.after_potentials import after_potentials

T, T_W, LAG = 10, 30, 12  # window, template length, the second detection's lag (samples)


def _templates() -> np.ndarray:
    """(3, 1, 2, T_W) in noise SDs: a neuron whose waveform swings back to -5 SD 12 samples
    after its -10 SD trough (both at window sample 3), the same waveform from its second
    trough (its second detection's unit), and a small neuron (-6 SD) on the other channel."""
    a = np.zeros((2, T_W))
    a[0, 3], a[0, 3 + LAG] = -10.0, -5.0
    a[0, 4], a[0, 2 + LAG] = 4.0, -2.0
    echo = np.zeros_like(a)
    echo[:, : T_W - LAG] = a[:, LAG:]
    small = np.zeros_like(a)
    small[1, 3] = -6.0
    return np.stack([a, echo, small])[:, None].astype(np.float32)


def _spikes(echo_lag: int):
    """The three units' spikes, time-sorted: the neuron's every 100 samples, its second
    detections `echo_lag` after each, the small neuron's at random (some within a template's
    length of the others)."""
    first = np.arange(100, 10_000, 100)
    small = np.sort(np.random.default_rng(0).choice(np.arange(50, 10_000, 7), 60, replace=False))
    samples = np.r_[first, first + echo_lag, small]
    unit = np.repeat([0, 1, 2], [first.size, first.size, small.size])
    order = np.argsort(samples, kind="stable")
    samples, unit = samples[order], unit[order]
    channels = np.where(unit == 2, 1, 0)
    return samples, channels, unit, np.zeros(samples.size, np.int64)


def test_a_unit_of_another_unit_s_second_detections_is_left_out():
    """Each of the echo unit's spikes lies 12 samples after one of the neuron's: its template
    (peak 5 SD, over the 4 SD threshold) net of the neuron's waveform there is zero, and it is
    left out; the neuron's and the small neuron's keep their peaks. Batches of any size give
    the same."""
    spikes = _spikes(LAG)
    held = np.array([[0, 1]]), np.zeros(spikes[0].size, np.int64)
    picked = np.arange(spikes[0].size)
    for batch in (7, 1000):
        out = after_potentials(_templates(), T, np.ones(2), 4.0, spikes, picked, held, batch)
        np.testing.assert_array_equal(out, [False, True, False])


def test_a_unit_whose_spikes_follow_no_other_unit_s_is_kept():
    """The same templates with the second unit's spikes 40 samples after the neuron's
    (beyond its template): nothing is taken from its template, and every unit is kept."""
    spikes = _spikes(40)
    held = np.array([[0, 1]]), np.zeros(spikes[0].size, np.int64)
    out = after_potentials(
        _templates(), T, np.ones(2), 4.0, spikes, np.arange(spikes[0].size), held, 64
    )
    np.testing.assert_array_equal(out, [False, False, False])
