"""Conditions from an events table (``events:``): rows become windows beside the listed ones,
BIDS's column names are read too, and every bad row is named with its line and column."""

from __future__ import annotations

import pytest

from neurodict.config import ConfigError
from tests.ingest.test_readers import binary_session, noise, session_of


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
