"""Chunked jobs: at most 10 s, and at most CHUNK_VALUES samples x channels read per chunk; the
sorter's worker processes: one BLAS thread each."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import spikeinterface.core as sc
from threadpoolctl import threadpool_info, threadpool_limits

from neurodict.common.jobs import CHUNK_VALUES, chunk_samples, job_kwargs, thread_map, worker_pool


def _seconds(job: dict) -> float:
    return float(job["chunk_duration"].rstrip("s"))


def test_chunks_shrink_with_the_channels_read():
    tetrode = sc.generate_recording(num_channels=4, sampling_frequency=30000.0, durations=[1.0])
    probe = sc.generate_recording(num_channels=384, sampling_frequency=30000.0, durations=[1.0])
    assert job_kwargs(tetrode, 2) == {"n_jobs": 2, "chunk_duration": "10s", "progress_bar": False}
    assert _seconds(job_kwargs(probe, 1)) * 30000.0 * 384 <= CHUNK_VALUES * (
        1 + 1e-5
    )  # 6 significant digits
    assert _seconds(job_kwargs(probe, 1)) > 1.0
    # an LFP at 1 kHz computed from the probe's wideband samples: the same time span
    lfp = sc.generate_recording(num_channels=384, sampling_frequency=1000.0, durations=[1.0])
    assert (
        job_kwargs(lfp, 1, source=probe)["chunk_duration"] == job_kwargs(probe, 1)["chunk_duration"]
    )
    assert job_kwargs(lfp, 1)["chunk_duration"] == "10s"


def _blas_threads(_=None) -> list[int]:
    np.ones((4, 4)) @ np.ones((4, 4))  # the BLAS loaded
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


@pytest.mark.parametrize("fork", [False, True])
def test_each_worker_runs_one_blas_thread(fork):
    """Two workers on a process whose BLAS runs two threads: one thread each (two workers of
    two threads on two cores wait on each other)."""
    with threadpool_limits(2, user_api="blas"):
        assert set(_blas_threads()) == {2}
        with worker_pool(2, fork=fork) as pool:
            seen = list(pool.map(_blas_threads, range(4)))
    assert all(threads and set(threads) == {1} for threads in seen), seen


def test_thread_map_runs_n_jobs_at_once_and_yields_in_order():
    """Three threads: the first three calls run at once (each waits for the others), results
    come back in the items' order whatever order they finish in, no more than three items
    are started beyond the last one yielded, and each thread runs one BLAS thread."""
    started, together = [], threading.Barrier(3, timeout=10)
    lock = threading.Lock()

    def work(i):
        with lock:
            started.append(i)
        if i < 3:
            together.wait()  # broken (an error) unless three calls run at once
        return i, _blas_threads()

    seen = []
    with threadpool_limits(2, user_api="blas"):
        for i, threads in thread_map(work, range(10), 3):
            with lock:
                assert max(started) <= i + 3
            seen.append(i)
            assert set(threads) == {1}
    assert seen == list(range(10))
    assert list(thread_map(lambda i: i * i, range(4), 1)) == [0, 1, 4, 9]


def test_chunks_read_whole_hold_at_most_chunk_values():
    """:func:`chunk_samples`: `chunk_s` on few channels, CHUNK_VALUES values on many."""
    tetrode = sc.generate_recording(num_channels=4, sampling_frequency=25000.0, durations=[1.0])
    probe = sc.generate_recording(num_channels=384, sampling_frequency=25000.0, durations=[1.0])
    assert chunk_samples(tetrode, 10.0) == 250000
    assert chunk_samples(probe, 10.0) == CHUNK_VALUES // 384
    assert chunk_samples(probe, 1e-9) == 1
