"""Condition windows from an event channel of the recording (TTL lines, digital words).

Events are read by the format's event reader (spikeinterface's, built on neo) on the clock that
reader gives them: Open Ephys (0.6 and later) writes event times on its synchronised clock, the
continuous stream's ``timestamps.npy``, not its sample numbers, so a segment's start is read on
that clock too (:func:`event_clock_starts`). An event of segment ``i`` at time ``t`` lies at
``start_i / fs + (t - t0_i)`` on the session's timeline (:mod:`neurodict.common.timeline`); an
event with an on and an off edge opens a window until its off edge, one with a single edge a
window of ``duration_s``. A window is cut at the end of its segment; events outside every
segment's samples (acquired while the continuous data were not saved) are left out and counted.
"""

from __future__ import annotations

import numpy as np
import spikeinterface.extractors as se

from neurodict.config import Session, problem
from neurodict.ingest.readers import IngestError

EVENT_READERS = {
    "openephys": se.read_openephys_event,
    "spikeglx": se.read_spikeglx_event,
    "plexon2": se.read_plexon2_event,
}


def read_events(session: Session):
    """The event extractor of the session's raw data, or an IngestError naming the path."""
    try:
        return EVENT_READERS[session.format](session.raw_path)
    except Exception as exc:  # the reader's own error, with format and path
        raise IngestError(
            f"the {session.format} event reader could not open '{session.raw_path}' (from "
            f"{session.file}, events.channel): {type(exc).__name__}: {exc}"
        ) from exc


def channel_windows(session: Session, segments: list[dict], fs_hz: float) -> tuple[list, dict]:
    """Windows (``start_s``, ``end_s``, ``condition``, on the timeline) from the session's event
    channel, and counts: ``n_events`` of a listed label, ``outside`` (no samples there),
    ``cut`` (window cut at its segment's end).

    Parameters
    ----------
    session : Session
        With ``event_channel`` (channel, conditions, optional duration_s).
    segments : list of dict
        The recording's segments as ingest keeps them
        (:func:`neurodict.common.timeline.segments_table`).
    fs_hz : float

    Raises
    ------
    IngestError
        When the channel is not one of the recording's, or an event has no duration and
        ``events.duration_s`` is not set.
    """
    spec = session.event_channel
    events = read_events(session)
    channels = [str(c) for c in events.channel_ids]
    if spec["channel"] not in channels:
        raise IngestError(
            f"{session.file}: 'events.channel': expected one of the recording's event "
            f"channels {channels}; got {spec['channel']!r}."
        )
    windows, counts = [], {"n_events": 0, "outside": 0, "cut": 0}
    sources = [
        session.segment_index if session.segment_index is not None else seg["segment"]
        for seg in segments
    ]
    clock = event_clock_starts(session, sources, [seg["t_start_s"] for seg in segments])
    for seg, source, t0 in zip(segments, sources, clock, strict=True):
        found = events.get_events(channel_id=spec["channel"], segment_index=source)
        labels = np.asarray(found["label"]).astype(str)
        keep = np.isin(labels, list(spec["conditions"]))
        onset = np.asarray(found["time"], dtype=float)[keep] - t0
        duration = _durations(session, np.asarray(found["duration"], dtype=float)[keep])
        counts["n_events"] += int(keep.sum())
        inside = (onset >= 0) & (onset < seg["duration_s"])
        counts["outside"] += int((~inside).sum())
        end = np.minimum(onset + duration, seg["duration_s"])
        counts["cut"] += int((inside & (onset + duration > seg["duration_s"])).sum())
        offset = seg["start_sample"] / fs_hz
        windows += [
            {"start_s": offset + a, "end_s": offset + b, "condition": spec["conditions"][c]}
            for a, b, c in zip(onset[inside], end[inside], labels[keep][inside], strict=True)
        ]
    return sorted(windows, key=lambda w: w["start_s"]), counts


def event_clock_starts(session: Session, segments: list[int], t_start_s: list[float]) -> list:
    """The start of each recording segment of `segments` on the clock of the format's event
    times: Open Ephys's synchronised timestamps (the continuous stream's ``timestamps.npy``,
    memory-mapped, the recording opened once), otherwise each segment's own `t_start_s`."""
    if session.format != "openephys":
        return list(t_start_s)
    kwargs = {"stream_name": session.stream} if session.stream else {}
    rec = se.read_openephys(session.raw_path, load_sync_timestamps=True, **kwargs)
    return [float(rec.get_start_time(segment_index=i)) for i in segments]


def _durations(session: Session, duration: np.ndarray) -> np.ndarray:
    """Each event's own duration, or ``events.duration_s`` where it has none."""
    fixed = session.event_channel.get("duration_s")
    missing = ~(np.isfinite(duration) & (duration > 0))
    if missing.any() and fixed is None:
        raise IngestError(
            problem(
                session.file,
                "events.duration_s",
                f"a window length: {int(missing.sum())} events of channel "
                f"{session.event_channel['channel']!r} have no off edge",
                None,
            )
        )
    return np.where(missing, fixed if fixed is not None else 0.0, duration)
