"""``neurodict ingest``: validate a session, open its recording and record both."""

from __future__ import annotations

import datetime
import logging
import time
from pathlib import Path

import spikeinterface.core as sc

from neurodict.common import timeline
from neurodict.common.files import atomic_path, write_json, write_tsv
from neurodict.common.provenance import provenance
from neurodict.config import load_config, load_session
from neurodict.ingest import bad_channels as bad_ch
from neurodict.ingest import events
from neurodict.ingest.readers import open_recording
from neurodict.ingest.subject import read_subject

log = logging.getLogger(__name__)

# Where session_start_time comes from: session files carry no date or time of the recording.
START_TIME_SOURCE = "raw file's modification time"


def session_start_time(raw_path: str | Path) -> str:
    """The session's start as ISO 8601 text in UTC: the raw file's (or folder's) modification
    time, the one date every format has (:data:`START_TIME_SOURCE`)."""
    mtime = Path(raw_path).stat().st_mtime
    return datetime.datetime.fromtimestamp(mtime, tz=datetime.UTC).isoformat()


def run(
    results: str | Path,
    session_file: str | Path,
    config: dict | None = None,
    name: str | None = None,
) -> sc.BaseRecording:
    """Validate a session, open its recording and record both in `results`.

    Writes ``session.json`` (the resolved session and workflow parameters; ``bad_channels_all``
    the channels left out, listed or found), ``recording.json`` (the lazy recording with probe
    and channel properties ``group``, ``region``, ``bad``, ``bad_label``, ``bad_method``,
    ``bad_score``; ``spikeinterface.load`` reopens it) and ``bad_channels.tsv`` (those
    properties, one row per grouped channel). Raw data are only read.

    ``session.json`` also has the recording's ``segments``
    (:func:`neurodict.common.timeline.segments_table`: one row for a one-segment recording),
    its condition ``windows`` on the timeline (listed, from the events table, and from the
    event channel with its ``event_counts``, :func:`neurodict.ingest.events.channel_windows`),
    the session file's ``subject`` (None without one,
    :func:`neurodict.ingest.subject.read_subject`) and ``session_start_time``
    (:func:`session_start_time`), which the NWB export and the summary read.
    """
    started = time.time()
    config = config or load_config()
    session = load_session(session_file, config=config, name=name)
    subject = read_subject(session.file)
    rec = open_recording(session)
    results = Path(results)
    with atomic_path(results / "recording.json") as tmp:
        rec.dump_to_json(tmp, include_properties=True)
    rows = bad_ch.table_rows(rec, session.channels)
    write_tsv(results / "bad_channels.tsv", rows, bad_ch.COLUMNS)
    segments = timeline.segments_table(rec)
    windows, event_counts = [vars(w) for w in session.windows], None
    if session.event_channel:
        found, event_counts = events.channel_windows(session, segments, rec.sampling_frequency)
        windows = windows + found
        log.info(
            "events of channel %r: %d with a listed label, %d windows, %d outside the "
            "recorded samples, %d cut at a segment's end",
            session.event_channel["channel"],
            event_counts["n_events"],
            len(found),
            event_counts["outside"],
            event_counts["cut"],
        )
    info = session.to_dict() | {
        "segments": segments,
        "windows": windows,
        "event_counts": event_counts,
        "bad_channels_all": [r["channel"] for r in rows if r["label"] != bad_ch.GOOD],
        "num_channels_used": rec.get_num_channels(),
        "duration_s": sum(r["duration_s"] for r in segments),
        "sampling_frequency_hz": rec.sampling_frequency,
        "subject": subject,
        "session_start_time": session_start_time(session.raw_path),
        "session_start_time_source": START_TIME_SOURCE,
    }
    write_json(results / "session.json", info)
    write_json(results / "ingest.provenance.json", provenance("ingest", info, started))
    return rec
