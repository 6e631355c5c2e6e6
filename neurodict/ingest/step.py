"""``neurodict ingest``: validate a session, open its recording and record both."""

from __future__ import annotations

import time
from pathlib import Path

import spikeinterface.core as sc

from neurodict.common.files import atomic_path, write_json
from neurodict.common.provenance import provenance
from neurodict.config import load_config, load_session
from neurodict.ingest.readers import open_recording


def run(
    results: str | Path,
    session_file: str | Path,
    config: dict | None = None,
    name: str | None = None,
) -> sc.BaseRecording:
    """Validate a session, open its recording and record both in `results`.

    Writes ``session.json`` (the resolved session and workflow parameters) and
    ``recording.json`` (the lazy recording with probe and channel properties ``group``,
    ``region``, ``bad``; ``spikeinterface.load`` reopens it). Raw data are only read.
    """
    started = time.time()
    config = config or load_config()
    session = load_session(session_file, config=config, name=name)
    rec = open_recording(session)
    results = Path(results)
    with atomic_path(results / "recording.json") as tmp:
        rec.dump_to_json(tmp, include_properties=True)
    info = session.to_dict() | {
        "num_channels_used": rec.get_num_channels(),
        "duration_s": rec.get_total_duration(),
        "sampling_frequency_hz": rec.sampling_frequency,
    }
    write_json(results / "session.json", info)
    write_json(results / "ingest.provenance.json", provenance("ingest", info, started))
    return rec
