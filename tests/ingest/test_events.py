"""Conditions from an events table (``events:``): rows become windows beside the listed ones,
BIDS's column names are read too, and every bad row is named with its line and column."""

from __future__ import annotations

import pytest

from neurodict.config import ConfigError
from tests.ingest.test_readers import binary_session, needs_spikewrap, noise, session_of


def events_session(tmp_path, table: str, **extra):
    (tmp_path / "events.tsv").write_text(table)
    return binary_session(tmp_path, noise(20000, 4), events="events.tsv", **extra)


def test_event_rows_become_windows_beside_the_listed_ones(tmp_path):
    table = "onset_s\tduration_s\tcondition\tnote\n1.5\t2\trun\tx\n\n10\t0.5\tlick\ty\n"
    s = session_of(
        tmp_path,
        events_session(tmp_path, table, windows=[{"start_s": 0, "end_s": 1, "condition": "rest"}]),
    )
    assert [(w.start_s, w.end_s, w.condition) for w in s.windows] == [
        (0, 1, "rest"),
        (1.5, 3.5, "run"),
        (10.0, 10.5, "lick"),
    ]
    assert s.to_dict()["events"] == str(tmp_path / "events.tsv")


def test_bids_column_names_are_read(tmp_path):
    table = "onset\tduration\ttrial_type\n2\t1\tgo\n"
    s = session_of(tmp_path, events_session(tmp_path, table))
    assert [(w.start_s, w.end_s, w.condition) for w in s.windows] == [(2.0, 3.0, "go")]


@pytest.mark.parametrize(
    "table, message",
    [
        (
            "start\tlength\tcondition\n1\t2\trun\n",
            "line 1: expected a header with the columns ['onset_s', 'duration_s', "
            "'condition'] (or ['onset', 'duration', 'trial_type']); got "
            "['start', 'length', 'condition'].",
        ),
        (
            "onset_s\tduration_s\tcondition\n1\t2\trun\n3\t-1\trun\n",
            "line 3: expected onset_s a number >= 0 and duration_s a number > 0; got '3' and '-1'.",
        ),
        (
            "onset_s\tduration_s\tcondition\n1\tn/a\trun\n",
            "line 2: expected onset_s a number >= 0 and duration_s a number > 0; got '1' "
            "and 'n/a'.",
        ),
        (
            "onset_s\tduration_s\tcondition\n1\t2\n",
            "line 2: expected 3 tab-separated cells; got 2.",
        ),
        (
            "onset_s\tduration_s\tcondition\n1\t2\t\n",
            "line 2: expected a condition label of 1-100 characters without control "
            "characters; got ''.",
        ),
    ],
)
def test_bad_rows_are_named_with_their_line(tmp_path, table, message):
    with pytest.raises(ConfigError) as err:
        session_of(tmp_path, events_session(tmp_path, table))
    assert str(err.value) == (
        f"{tmp_path / 'events.tsv'} (events of {tmp_path / 'session.yaml'}): {message}"
    )


def test_a_missing_events_table_is_named(tmp_path):
    data = binary_session(tmp_path, noise(20000, 4), events="absent.tsv")
    with pytest.raises(ConfigError) as err:
        session_of(tmp_path, data)
    assert str(err.value) == (
        f"{tmp_path / 'session.yaml'}: 'events': expected an existing tab-separated events "
        f"table; got '{tmp_path / 'absent.tsv'}'."
    )


# ---------------------------------------------------------------- events from the recording
def openephys_with_ttl(tmp_path, seconds_after_start):
    """The spikewrap wheel's real two-recording Open Ephys folder, its TTL events replaced by
    on/off pairs at `seconds_after_start` (line, on, off) of each recording's synchronised
    start; returns the folder."""
    import shutil

    import numpy as np

    from tests.ingest.test_readers import SPIKEWRAP_DATA

    folder = tmp_path / "ephys"
    shutil.copytree(SPIKEWRAP_DATA / "openephys/rawdata/sub-001/ses-001/ephys", folder)
    for rec in sorted((folder / "Record Node 104/experiment1").glob("recording*")):
        stream = rec / "continuous/Neuropix-PXI-100.ProbeA-AP"
        t0, n0 = np.load(stream / "timestamps.npy")[0], np.load(stream / "sample_numbers.npy")[0]
        edges = sorted(
            (t, state)
            for line, on, off in seconds_after_start
            for t, state in ((on, line), (off, -line))
        )
        ttl = rec / "events/Neuropix-PXI-100.ProbeA-AP/TTL"
        times = np.array([t0 + t for t, _ in edges])
        np.save(ttl / "timestamps.npy", times)
        np.save(ttl / "sample_numbers.npy", n0 + np.round(np.array([t for t, _ in edges]) * 3e4))
        np.save(ttl / "states.npy", np.array([s for _, s in edges], dtype=np.int16))
        np.save(ttl / "full_words.npy", np.zeros(len(edges), dtype=np.uint64))
    return folder


def openephys_events_session(tmp_path, folder, events):
    from tests.ingest.test_readers import NO_DICTIONARIES

    return {
        "raw_path": str(folder),
        "format": "openephys",
        "groups": [{"name": "shank", "region": "CA1", "channels": [0, 1, 2, 3]}],
        "mains_hz": 50,
        "params": NO_DICTIONARIES,
        "events": events,
    }


@needs_spikewrap
def test_ttl_events_of_an_open_ephys_recording_become_windows_on_the_timeline(tmp_path):
    """Both recordings of the real Open Ephys folder, each with TTL pulses on line 1 (listed),
    one on line 2 (not listed), one running past the recording's end (cut) and one after it
    (outside); windows land on the session's timeline (the second recording 33 ms on)."""
    import json

    from neurodict.ingest import step as ingest_step

    folder = openephys_with_ttl(
        tmp_path, [(1, 0.005, 0.015), (2, 0.010, 0.012), (1, 0.025, 0.045), (1, 0.5, 0.6)]
    )
    data = openephys_events_session(
        tmp_path, folder, {"channel": "Neuropixels PXI Sync", "conditions": {"1": "laser"}}
    )
    path = tmp_path / "s.yaml"
    path.write_text(__import__("yaml").safe_dump(data))
    ingest_step.run(tmp_path / "results", path)
    info = json.loads((tmp_path / "results/session.json").read_text())
    assert [r["n_samples"] for r in info["segments"]] == [990, 990]  # whole LFP samples
    got = [(round(w["start_s"], 4), round(w["end_s"], 4), w["condition"]) for w in info["windows"]]
    assert got == [
        (0.005, 0.015, "laser"),
        (0.025, 0.033, "laser"),
        (0.038, 0.048, "laser"),
        (0.058, 0.066, "laser"),
    ]
    assert info["event_counts"] == {"n_events": 6, "outside": 2, "cut": 2}


@needs_spikewrap
def test_event_channel_errors_name_the_channel_and_the_key(tmp_path):
    from neurodict.ingest import step as ingest_step
    from neurodict.ingest.readers import IngestError

    folder = openephys_with_ttl(tmp_path, [(1, 0.005, 0.015)])
    data = openephys_events_session(
        tmp_path, folder, {"channel": "TTL line 9", "conditions": {"1": "laser"}}
    )
    path = tmp_path / "s.yaml"
    path.write_text(__import__("yaml").safe_dump(data))
    with pytest.raises(IngestError) as info:
        ingest_step.run(tmp_path / "results", path)
    assert str(info.value) == (
        f"{path}: 'events.channel': expected one of the recording's event channels "
        "['Messages', 'Neuropixels PXI Sync']; got 'TTL line 9'."
    )


def test_event_channel_of_a_format_without_events_is_refused(tmp_path):
    data = binary_session(
        tmp_path, noise(2000, 4), events={"channel": "1", "conditions": {"1": "laser"}}
    )
    with pytest.raises(ConfigError) as info:
        session_of(tmp_path, data)
    assert (
        "'events.channel': expected a recording whose format has event channels (openephys, "
        "spikeglx, plexon2); format binary has none here, use an events table; got '1'."
    ) in str(info.value)
