"""Snippet extraction: the chunks traces are read in and the batches snippets are interpolated
in bound memory and change nothing else."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import spikeinterface.core as sc
from spikeinterface.preprocessing import bandpass_filter

from neurodict.sort import kernels, snippets


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
    monkeypatch.setattr(snippets, "GATHER_VALUES", 7 * 50 * 8 * 8)  # 7 snippets
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
    the same whatever the batches they are cut and whitened in (alignment may carry a spike
    across a batch's boundary) and however many threads cut them."""
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
    asked = []

    def extract(rec, at, *args, read, **kwargs):  # each spike's snippet on the channels read
        asked.append(at.size)
        rows = perm[np.searchsorted(samples, at)]
        return x[rows][np.arange(at.size)[:, None], read], aligned[rows]

    monkeypatch.setattr(snippets, "extract", extract)

    channels = np.random.default_rng(2).integers(0, 4, samples.size)

    every = (np.arange(4)[None], np.zeros(samples.size, np.int64))  # all on every channel

    def whitened(held=every, **kwargs):
        x, *rest = run._whitened_snippets(
            rec, samples, channels, 0.2, noise, W, params, "neg", False, held, **kwargs
        )
        assert x.shape == (len(rest[0]), 4, W.shape[0])
        return x.values if held is every else x, *rest

    white, t, on, amplitudes, below, overlapped = whitened()
    order = np.argsort(aligned, kind="stable")
    np.testing.assert_array_equal(t, aligned[order])
    spike = np.argsort(perm)[order]  # the spike whose snippet is each row
    np.testing.assert_array_equal(on, channels[spike])
    before = 12  # ms_before 0.6 at 20 kHz
    np.testing.assert_allclose(amplitudes, x[order][np.arange(spike.size), on, before] * 5.0)
    assert below.size == 0 and not overlapped.any()
    expected = np.einsum("st,imt->ims", W, x[order].astype(np.float64))
    # float32 sums: rounding of order 1e-7 of the values summed
    np.testing.assert_allclose(white, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    # held on two stores of channels, each spike on its own store's
    stores = np.array([[0, 1, 2], [1, 2, 3]])
    local = whitened(held=(stores, (channels >= 2).astype(np.int64)))[0]
    np.testing.assert_array_equal(local.store, channels[spike] >= 2)
    np.testing.assert_allclose(  # a GEMM of other shape: float32 rounding apart
        local.values,
        white[np.arange(spike.size)[:, None], stores[local.store]],
        rtol=1e-5,
        atol=1e-6 * np.abs(expected).max(),
    )
    # with a floor on the excursion (the overlap pass's): the detections under it are listed
    # apart and left out of the snippets
    half = 4  # align_ms 0.2 at 20 kHz
    excursion = (-x[order][:, :, before - half : before + half + 1]).max(axis=(1, 2))
    floor = float(np.median(excursion))
    kept = whitened(min_excursion=floor)
    np.testing.assert_array_equal(kept[1], aligned[order][excursion >= floor])
    np.testing.assert_array_equal(kept[2], on[excursion >= floor])
    np.testing.assert_array_equal(kept[4], aligned[order][excursion < floor])
    np.testing.assert_array_equal(kept[0], white[excursion >= floor])
    assert max(asked) == samples.size  # one batch: all cut at once
    monkeypatch.setattr(run, "SNIPPET_VALUES", 7 * 8 * 32)  # 8 channels cut, 32 samples
    asked.clear()
    white_small, t_small, _, amplitudes_small, _, _ = whitened()
    assert max(asked) == 7  # cut, like whitened, a batch at a time: never all unwhitened
    np.testing.assert_array_equal(white_small, white)
    np.testing.assert_array_equal(t_small, t)
    np.testing.assert_array_equal(amplitudes_small, amplitudes)
    kept_small = whitened(min_excursion=floor)
    for small, whole in zip(kept_small, kept, strict=True):
        np.testing.assert_array_equal(small, whole)
    for threaded, whole in zip(whitened(min_excursion=floor, n_jobs=3), kept, strict=True):
        np.testing.assert_array_equal(threaded, whole)  # batches cut on three threads
    # peeled: each snippet loses its matched neighbours' waveforms, and those that lost a
    # part of at least min_excursion noise SDs (spike-sized) are flagged
    t_match = np.sort(aligned)[::4]
    which = np.arange(t_match.size) % 2
    waves = np.zeros((2, 4, 30), np.float32)
    waves[0, 1, 10] = -1.5 * 5.0  # 1.5 noise SDs (noise 5 uV)
    waves[1, 2, 12] = -0.5 * 5.0  # half a noise SD
    none = np.full(samples.size, -1)  # no snippet is a matched spike itself
    peeled = (
        kernels.neighbour_waves(np.sort(aligned), none, t_match, which, waves, x.shape[2]) / 5.0
    )
    white_p, *_, flagged = whitened(peel=(none, t_match, which, waves), min_excursion=1.0)
    residual = x[order] - peeled
    keep = (-residual[:, :, before - half : before + half + 1]).max(axis=(1, 2)) >= 1.0
    np.testing.assert_array_equal(flagged, (np.abs(peeled).max(axis=(1, 2)) >= 1.0)[keep])
    assert 0 < flagged.sum() < flagged.size
    np.testing.assert_allclose(
        white_p, np.einsum("st,imt->ims", W.astype(np.float32), residual[keep]), atol=1e-4
    )
    threaded = whitened(peel=(none, t_match, which, waves), min_excursion=1.0, n_jobs=2)
    np.testing.assert_array_equal(threaded[0], white_p)
    np.testing.assert_array_equal(threaded[-1], flagged)
    # with the channels about each spike's (`neighbours`), only what those lost counts
    near = np.abs(np.subtract.outer(np.arange(4), np.arange(4))) <= 1
    *_, flagged_near = whitened(
        peel=(none, t_match, which, waves), min_excursion=1.0, neighbours=near
    )
    lost_near = (np.abs(peeled).max(axis=2) * near[channels[spike]]).max(axis=1) >= 1.0
    np.testing.assert_array_equal(flagged_near, lost_near[keep])
    assert (flagged_near < flagged).any()
    # and a detection's excursion is that on the channels about its own: a spike-sized value
    # elsewhere on the probe at the same moment is another neuron's
    window = -x[order][:, :, before - half : before + half + 1]
    excursion_near = (window.max(axis=2) * near[channels[spike]]).max(axis=1)
    kept_near = whitened(min_excursion=floor, neighbours=near)
    np.testing.assert_array_equal(kept_near[1], aligned[order][excursion_near >= floor])
    np.testing.assert_array_equal(kept_near[4], aligned[order][excursion_near < floor])
    np.testing.assert_array_equal(kept_near[3], amplitudes[excursion_near >= floor])
    assert ((excursion >= floor) & (excursion_near < floor)).any()
    # a matched spike (its own index among the matched ones) is kept whatever its residual's
    # excursion: only detections are tested against the floor. Here the spikes of half the
    # rows are "matched" to one more spike far past the recording, which peels nothing.
    far = np.r_[t_match, 10**9]
    matched_row = np.random.default_rng(3).random(samples.size) < 0.5
    own = np.where(matched_row[perm], far.size - 1, -1)
    got = whitened(peel=(own, far, np.r_[which, 0], waves), min_excursion=floor)
    matched = matched_row[order]
    keep = (-residual[:, :, before - half : before + half + 1]).max(axis=(1, 2)) >= floor
    assert (matched & ~keep).any() and (~matched & ~keep).any()
    np.testing.assert_array_equal(got[1], aligned[order][keep | matched])
    np.testing.assert_array_equal(got[4], aligned[order][~keep & ~matched])
    np.testing.assert_allclose(
        got[0],
        np.einsum("st,imt->ims", W.astype(np.float32), residual[keep | matched]),
        atol=1e-4,
    )


def test_tails_in_batches_are_the_means_of_all(monkeypatch):
    """The overlap pass's template tails (each unit's mean waveform per epoch after the snippet
    window) from long snippets cut batch by batch, on one thread or two, equal the means over
    all at once; with the snippets held on stores of channels, on each channel the mean over
    the spikes that hold it (a unit's over all epochs where none does in an epoch, zero where
    none ever does)."""
    from neurodict.sort import run
    from neurodict.sort.params import SortParams

    rec, sorting = sc.generate_ground_truth_recording(
        durations=[4.0], num_channels=4, num_units=3, sampling_frequency=20000.0, seed=3
    )
    trains = [sorting.get_unit_spike_train(u) for u in sorting.unit_ids]
    samples = np.concatenate(trains)
    labels = np.repeat(np.arange(len(trains)), [t.size for t in trains])
    order = np.argsort(samples, kind="stable")
    samples, labels = samples[order], labels[order]
    params = SortParams(epoch_s=1.0)
    noise = np.full(4, 5.0)
    units = np.array([0, 2])
    channels = np.random.default_rng(0).integers(0, 4, samples.size)

    near = snippets.alignment_channels(rec, 100.0)
    every = (np.arange(4)[None], np.zeros(samples.size, np.int64))

    epoch = (samples // 20000).astype(np.int64)
    ours = np.isin(labels, units)  # every spike of the two units picked
    unit = np.searchsorted(units, labels[ours])

    def tails(n_jobs=1, held=every):
        return run._tails(
            rec, samples[ours], channels[ours], (held[0], held[1][ours]), unit, epoch[ours],
            np.arange(unit.size), 2, 4, noise, params, near, n_jobs,
        )  # fmt: skip

    whole = tails()
    assert whole.shape[:2] == (2, 4) and np.abs(whole).max() > 0
    # held on stores: channel 3 by no spike of unit 0 in epoch 1, channel 0 by none of unit 2
    stores = np.array([[0, 1, 2, -1], [1, 2, 3, -1], [1, 2, -1, -1]])
    store = np.where(labels == 2, 2, np.where((labels == 0) & (epoch == 1), 0, 1))
    store[(labels == 2) & (epoch == 0)] = 1
    local = tails(held=(stores, store))
    before, after = snippets.window_samples(20000.0, params.ms_before, params.ms_after)
    x, _ = snippets.extract(
        rec,
        samples,
        params.ms_before,
        params.peel_ms_after,
        0.0,
        noise,
        neighbours=near,
        channels=channels,
    )
    x = x[:, :, before + after :] * 5.0
    for k, u in enumerate(units):
        for m in range(4):
            on = (labels == u) & (stores[store] == m).any(1)
            for e in range(4):
                here = on & (epoch == e)
                mean = x[here, m].mean(0) if here.any() else (x[on, m].mean(0) if on.any() else 0)
                np.testing.assert_allclose(local[k, e, m], mean, rtol=1e-5, atol=1e-6)
    assert (local[1, :, 0] == 0).all()
    monkeypatch.setattr(run, "SNIPPET_VALUES", 7 * 4 * 72)  # 7 long snippets (72 samples)
    np.testing.assert_array_equal(tails(), whole)
    np.testing.assert_array_equal(tails(n_jobs=2), whole)  # batches cut on two threads
    np.testing.assert_array_equal(tails(n_jobs=2, held=(stores, store)), local)


def test_a_spike_is_aligned_on_its_own_channels_not_a_far_one():
    """On a long probe a spike is aligned on the energy of the channels within the detection
    radius of the one where it is largest at its detected sample: a spike far along the
    probe 3 samples later, with more energy over its channels, does not move it (it does
    when every channel's energy counts, as on a tetrode)."""

    fs, n = 30000.0, 3000
    t = np.arange(n)
    traces = np.zeros((n, 8), np.float32)
    bump = lambda peak, width: -np.exp(-0.5 * ((t - peak) / width) ** 2)  # noqa: E731
    traces[:, 0], traces[:, 1] = 40 * bump(1500, 4), 20 * bump(1500, 4)
    traces[:, 6], traces[:, 7] = 50 * bump(1503, 4), 45 * bump(1503, 4)
    rec = sc.NumpyRecording(traces, fs)
    rec.set_channel_locations(np.c_[np.zeros(8), 100.0 * np.arange(8)])
    near = snippets.alignment_channels(rec, 150.0)
    assert near[0].tolist() == [True, True, False, False, False, False, False, False]
    noise = np.ones(8)
    _, local = snippets.extract(rec, np.array([1500]), 0.5, 0.5, 0.2, noise, neighbours=near)
    _, every = snippets.extract(rec, np.array([1500]), 0.5, 0.5, 0.2, noise)
    assert local.tolist() == [1500] and every[0] > 1500
    # a spike found on the far channel is aligned on that one's neighbours
    at = np.array([1500])
    _, far = snippets.extract(rec, at, 0.5, 0.5, 0.2, noise, neighbours=near, channels=at * 0 + 6)
    assert far.tolist() == [1503]
    tetrode = sc.NumpyRecording(traces[:, :4], fs)
    tetrode.set_channel_locations(np.c_[np.zeros(4), 20.0 * np.arange(4)])
    assert snippets.alignment_channels(tetrode, 150.0) is None


def test_delay_operators_recut_a_whitened_snippet_later():
    """With the whitener of band-passed noise (the noise's band 0.012-0.24 cycles per sample,
    T = 40 -> T' = 22), ``U_δ`` is orthogonal and re-cuts a whitened spike δ samples later to
    within a few percent of its norm (under a third of what the delay itself changes);
    ``U_0`` is the identity; without whitening ``U_δ`` is the circular delay itself."""
    T = 40
    t = np.arange(T, dtype=float)

    def spike(at):
        return -np.exp(-0.5 * ((at - 15) / 2.0) ** 2) + 0.3 * np.exp(-0.5 * ((at - 22) / 4) ** 2)

    lag = np.arange(T)
    low, high = 0.012, 0.24
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (np.sin(2 * np.pi * high * lag) - np.sin(2 * np.pi * low * lag)) / (np.pi * lag)
    r[0] = 2 * (high - low)
    values, vectors = np.linalg.eigh(scipy.linalg.toeplitz(r))
    keep = values > 0.01 * values.max()
    whiten = (vectors[:, keep] / np.sqrt(values[keep])).T
    unwhiten = vectors[:, keep] * np.sqrt(values[keep])
    delays = np.array([-1.25, -0.6, 0.0, 0.3, 1.0])
    U = snippets.delay_operators(delays, whiten, unwhiten)
    assert U.shape == (5, 22, 22)
    np.testing.assert_allclose(U[2], np.eye(22), atol=1e-12)
    plain = snippets.delay_operators(delays, np.eye(T), np.eye(T))
    w = whiten @ spike(t)
    for d, Ud, Pd in zip(delays, U, plain, strict=True):
        np.testing.assert_allclose(Ud @ Ud.T, np.eye(22), atol=1e-12)
        np.testing.assert_allclose(Pd @ spike(t), spike(t + d), atol=1e-4)  # tails wrap
        error = np.linalg.norm(Ud @ w - whiten @ spike(t + d)) / np.linalg.norm(w)
        change = np.linalg.norm(whiten @ spike(t + d) - w) / np.linalg.norm(w)
        assert error <= 0.07 and error <= 0.3 * change + 1e-12, (d, error, change)


def test_noise_whitener_is_the_covariance_of_every_quiet_window():
    """The snippet-window whitener sums the windows' covariance a stretch at a time: the same
    ``W`` as the covariance (``np.cov``) of every window of the stretches with no value
    reaching ``exclude_sigma`` held at once, and ``W C W' = I`` on the directions kept."""
    rec = bandpass_filter(
        sc.generate_ground_truth_recording(
            durations=[20.0], num_channels=8, num_units=5, sampling_frequency=20000.0, seed=3
        )[0],
        freq_min=300.0,
        freq_max=3000.0,
    )
    noise = np.asarray(
        sc.get_noise_levels(rec, return_in_uV=True, random_slices_kwargs={"seed": 0})
    )
    T, kw = 30, {"n_chunks": 6, "chunk_s": 0.5, "exclude_sigma": 4.0, "min_eig": 0.01, "seed": 2}
    W, unwhiten = snippets.noise_whitener(rec, T, noise, **kw)
    n_total, length = rec.get_num_samples(), 10000
    starts = np.unique(np.random.default_rng(2).integers(0, n_total - length, 6))
    windows = []
    for start in starts:
        x = rec.get_traces(start_frame=int(start), end_frame=int(start) + length) / noise
        cut = x[: (length // T) * T].T.reshape(-1, T)
        windows.append(cut[np.abs(cut).max(1) < 4.0])
    C = np.cov(np.concatenate(windows).astype(np.float64).T)
    vals, vecs = np.linalg.eigh(C)
    keep = vals > 0.01 * vals.max()
    expected = (vecs[:, keep] / np.sqrt(vals[keep])).T
    assert W.shape == expected.shape and 0 < W.shape[0] < T  # the band leaves out directions
    np.testing.assert_allclose(np.abs(W), np.abs(expected), atol=1e-8 * np.abs(expected).max())
    np.testing.assert_allclose(W @ C @ W.T, np.eye(W.shape[0]), atol=1e-8)
    np.testing.assert_allclose(W @ unwhiten, np.eye(W.shape[0]), atol=1e-8)
