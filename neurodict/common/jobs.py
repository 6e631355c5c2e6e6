"""Job settings: spikeinterface's for the steps that stream a whole recording, and the
sorter's own worker processes.

Chunks last at most ``chunk_s`` seconds and hold at most :data:`CHUNK_VALUES` samples x
channels, so that a worker's memory (the chunk, its filter margins and each filter's float64
copy) does not grow with the channel count: 10 s on a tetrode, 1.5 s on 384 channels at 30 kHz.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from itertools import islice

import spikeinterface.core as sc
from threadpoolctl import threadpool_limits

CHUNK_VALUES = 2**24  # samples x channels read for one chunk (64 MB in float32)


def job_kwargs(
    rec: sc.BaseRecording,
    n_jobs: int,
    chunk_s: float = 10.0,
    progress_bar: bool = False,
    source: sc.BaseRecording | None = None,
) -> dict:
    """``n_jobs``, ``chunk_duration`` and ``progress_bar`` for spikeinterface's chunked jobs on
    `rec`, computed lazily from `source` (default `rec` itself): a chunk of `rec` reads
    ``source``'s channels over the same time (the LFP from the wideband signal). (A duration,
    not a size: spikeinterface passes a ``chunk_size`` on to its noise levels as the size of
    their random chunks.)"""
    source = rec if source is None else source
    values_per_s = source.get_num_channels() * source.sampling_frequency
    seconds = min(chunk_s, CHUNK_VALUES / max(values_per_s, 1.0))
    seconds = max(seconds, 1.0 / rec.sampling_frequency)
    return {"n_jobs": n_jobs, "chunk_duration": f"{seconds:.6g}s", "progress_bar": progress_bar}


def chunk_samples(rec: sc.BaseRecording, chunk_s: float) -> int:
    """Samples in a chunk of `rec` read whole by this process: at most `chunk_s` seconds and
    :data:`CHUNK_VALUES` values (10 s of 384 channels at 25 kHz were 384 MB a copy, and a
    check on them holds several)."""
    values = CHUNK_VALUES // max(rec.get_num_channels(), 1)
    return max(1, min(int(chunk_s * rec.sampling_frequency), values))


def worker_pool(n_jobs: int, fork: bool = False) -> ProcessPoolExecutor:
    """`n_jobs` worker processes, each with one BLAS/OpenMP thread: `n_jobs` cores in all. A
    worker's BLAS would otherwise start as many threads as the machine has cores, and `n_jobs`
    of them on as many cores wait on each other: a 240-dimensional pair's principal axes took
    20x longer with two workers of two threads on two cores than with one thread each.
    `fork`: the workers are forks of this process (they read its memory, never copied)."""
    context = multiprocessing.get_context("fork") if fork else None
    return ProcessPoolExecutor(n_jobs, mp_context=context, initializer=_one_thread)


def _one_thread() -> None:
    threadpool_limits(1)


def thread_map(fn: Callable, items: Iterable, n_jobs: int) -> Iterator:
    """``fn(item)`` of each of `items` on `n_jobs` threads, each with one BLAS/OpenMP thread,
    yielded in the items' order; at most `n_jobs` items in flight, so that the threads hold
    no more memory than `n_jobs` calls. For work that releases the GIL (reading and filtering
    traces, numpy's array loops, numba kernels compiled ``nogil``) on arrays this process
    already holds: no copy to a worker and back. The one-thread limit is process-wide and
    holds while the generator is open, the caller's work between items included: calls are
    in flight on the other threads then, and more BLAS threads would oversubscribe the cores."""
    items = iter(items)
    if n_jobs <= 1:
        yield from map(fn, items)
        return
    with threadpool_limits(1), ThreadPoolExecutor(n_jobs) as pool:
        pending = deque(pool.submit(fn, item) for item in islice(items, n_jobs))
        while pending:
            result = pending.popleft().result()
            pending.extend(pool.submit(fn, item) for item in islice(items, 1))
            yield result
