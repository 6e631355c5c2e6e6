"""Snippet extraction: the chunks traces are read in and the batches snippets are interpolated
in bound memory and change nothing else."""

from __future__ import annotations

import numpy as np
import spikeinterface.core as sc

from neurodict.sort import snippets


def test_chunks_and_batches_change_nothing_but_memory(monkeypatch):
    rec, sorting = sc.generate_ground_truth_recording(
        durations=[4.0], num_channels=8, num_units=4, sampling_frequency=20000.0, seed=5
    )
    samples = np.sort(np.concatenate([sorting.get_unit_spike_train(u) for u in sorting.unit_ids]))
    samples = np.concatenate([[3], samples, [rec.get_num_samples() - 2]])  # at both edges
    noise = np.full(8, 5.0)

    def run():
        return snippets.extract(rec, samples, 1.0, 1.5, 0.2, noise, chunk_s=30.0)

    x, aligned = run()
    monkeypatch.setattr(snippets, "CHUNK_VALUES", 8 * 3001)  # 3001-sample chunks
    monkeypatch.setattr(snippets, "ENERGY_ROWS", 97)
    monkeypatch.setattr(snippets, "RESAMPLE_SPIKES", 7)
    x_small, aligned_small = run()
    assert x.shape == (samples.size, 8, 50) and x.dtype == np.float32
    np.testing.assert_array_equal(aligned_small, aligned)
    np.testing.assert_array_equal(x_small, x)
    # a snippet is the recording's window around its aligned peak, in noise units, up to the
    # sub-sample shift (at most half a sample)
    i = samples.size // 2
    raw = rec.get_traces(start_frame=aligned[i] - 20, end_frame=aligned[i] + 30) / 5.0
    assert np.corrcoef(raw.T.ravel(), x[i].ravel())[0, 1] > 0.9
