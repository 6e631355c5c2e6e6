"""A recording's segments laid end to end: the session's timeline.

A recording may hold several segments (Open Ephys recordings of one session, SpikeGLX runs after a
pause, one binary file per run). Filters run within each segment (no filter reaches across a
pause); from the spike band on, every stage works on one timeline, the segments back to back, and
knows where each begins (``session.json``'s ``segments``). What must not reach across a pause is
cut there: snippets (peaks too near a boundary are not sorted), the dictionaries' statistics and
predictions (computed per piece between boundaries), band phases (filtered per segment).

Each segment of a multi-segment recording is trimmed at ingest to a whole number of LFP samples,
so that a timeline sample ``s`` lies in LFP bin ``s // factor`` in every segment alike.
"""

from __future__ import annotations

import numpy as np
import spikeinterface.core as sc


def concatenate(rec: sc.BaseRecording) -> sc.BaseRecording:
    """`rec` as one segment: its segments back to back (lazy); `rec` itself if it has one."""
    return rec if rec.get_num_segments() == 1 else sc.concatenate_recordings([rec])


def split(rec: sc.BaseRecording, starts: list[int]) -> sc.BaseRecording:
    """A one-segment timeline cut back into segments beginning at `starts` (lazy)."""
    if len(starts) <= 1:
        return rec
    ends = list(starts[1:]) + [rec.get_num_samples()]
    return sc.append_recordings([rec.frame_slice(a, b) for a, b in zip(starts, ends, strict=True)])


def segments_table(rec: sc.BaseRecording) -> list[dict]:
    """Per segment of `rec`: index, start_sample (on the timeline), n_samples, t_start_s (the
    segment's first sample on the recording's own clock) and duration_s."""
    rows, start = [], 0
    fs = rec.sampling_frequency
    for i in range(rec.get_num_segments()):
        n = rec.get_num_samples(segment_index=i)
        t0 = rec.get_start_time(segment_index=i)
        rows.append(
            {
                "segment": i,
                "start_sample": start,
                "n_samples": n,
                "t_start_s": float(t0),
                "duration_s": n / fs,
            }
        )
        start += n
    return rows


def segment_starts(rec: sc.BaseRecording) -> list[int]:
    """Where each segment of `rec` begins on its segments end to end, in samples."""
    return [row["start_sample"] for row in segments_table(rec)]


def starts(info: dict) -> list[int]:
    """Segment starts on the timeline in samples (session.json's ``segments``; one segment for
    results ingested before segments were recorded)."""
    rows = info.get("segments") or [{"start_sample": 0}]
    return [int(r["start_sample"]) for r in rows]


def starts_s(info: dict) -> list[float]:
    """Segment starts on the timeline in seconds (session.json's ``segments``)."""
    return [s / info["sampling_frequency_hz"] for s in starts(info)]


def in_bins(starts_s, fs_hz: float) -> list[int]:
    """Segment starts given in seconds (`starts_s`; one segment at 0 when None) as bins at
    `fs_hz`."""
    return [int(round(t * fs_hz)) for t in starts_s or [0.0]]


def pieces(a: int, b: int, bounds: list[int]) -> list[tuple[int, int]]:
    """``[a, b)`` cut at the segment starts `bounds`: the non-empty parts, each inside one
    segment."""
    cuts = [a] + [s for s in bounds if a < s < b] + [b]
    return [(lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:], strict=True) if hi > lo]


def segment_of(samples: np.ndarray, bounds: list[int]) -> np.ndarray:
    """The segment index of each timeline sample."""
    return np.searchsorted(np.asarray(bounds), np.asarray(samples), side="right") - 1


def near_boundary(samples: np.ndarray, bounds: list[int], before: int, after: int) -> np.ndarray:
    """Whether the window ``[s - before, s + after)`` around each sample crosses a segment
    boundary (the first segment's start is not a boundary)."""
    samples = np.asarray(samples)
    out = np.zeros(samples.shape, dtype=bool)
    for s in bounds[1:]:
        out |= (samples - before < s) & (samples + after > s)
    return out
