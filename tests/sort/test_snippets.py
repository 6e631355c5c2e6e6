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


def test_whitened_snippets_in_time_order_and_batches_change_nothing(monkeypatch):
    """The sorter's snippets come out in time order, each row with its own spike, whitened,
    the same whatever the batches they are whitened in."""
    from neurodict.sort import run
    from neurodict.sort.params import SortParams

    rec, sorting = sc.generate_ground_truth_recording(
        durations=[3.0], num_channels=4, num_units=3, sampling_frequency=20000.0, seed=2
    )
    samples = np.sort(np.concatenate([sorting.get_unit_spike_train(u) for u in sorting.unit_ids]))
    noise = np.full(4, 5.0)
    params = SortParams()
    x, aligned = snippets.extract(rec, samples, params.ms_before, params.ms_after, 0.2, noise)
    W = np.random.default_rng(0).standard_normal((x.shape[2] - 3, x.shape[2]))
    perm = np.random.default_rng(1).permutation(samples.size)  # as if alignment reordered all
    monkeypatch.setattr(snippets, "extract", lambda *a, **k: (x[perm].copy(), aligned[perm]))

    def whitened():
        return run._whitened_snippets(rec, samples, 0.2, noise, W, params, "neg", False)

    white, t, amplitudes, excursion = whitened()
    order = np.argsort(aligned, kind="stable")
    np.testing.assert_array_equal(t, aligned[order])
    expected = np.einsum("st,imt->ims", W.astype(np.float32), x[order])
    np.testing.assert_allclose(white, expected, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(run, "SNIPPET_BATCH", 7)
    white_small, *_ = whitened()
    np.testing.assert_array_equal(white_small, white)
