"""Chunked jobs: at most 10 s, and at most CHUNK_VALUES samples x channels read per chunk."""

from __future__ import annotations

import spikeinterface.core as sc

from neurodict.common.jobs import CHUNK_VALUES, job_kwargs


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
