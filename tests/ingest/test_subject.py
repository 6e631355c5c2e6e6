"""The session file's optional subject block: validated at the boundary, carried into
session.json with the session's start time; a session without one still ingests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from neurodict.cli import main
from neurodict.config import ConfigError, load_session
from neurodict.ingest import step as ingest_step
from tests.ingest.test_readers import binary_session, noise, write_session

SUBJECT = {
    "id": "M12",
    "species": "Mus musculus",
    "sex": "F",
    "age": "P90D",
    "date_of_birth": "2023-12-06",
    "genotype": "Pvalb-IRES-Cre/wt",
    "strain": "C57BL/6J",
    "description": "Implanted in CA1 and PFC.",
}
# 2024-03-05 10:00:00 UTC, the raw file's modification time in these tests.
MTIME_S = 1709632800


def ingest(tmp_path: Path, **extra) -> dict:
    """Ingest a 4-channel binary session with `extra` keys; the session.json written."""
    data = binary_session(tmp_path, noise(2000, 4), **extra)
    os.utime(tmp_path / "raw.bin", (MTIME_S, MTIME_S))
    ingest_step.run(tmp_path / "results", write_session(tmp_path, data))
    return json.loads((tmp_path / "results" / "session.json").read_text())


def test_subject_is_carried_into_session_json(tmp_path):
    info = ingest(tmp_path, subject=SUBJECT)
    assert info["subject"] == SUBJECT
    assert info["session_start_time"] == "2024-03-05T10:00:00+00:00"
    assert info["session_start_time_source"] == "raw file's modification time"


def test_session_without_subject_still_ingests(tmp_path):
    info = ingest(tmp_path)
    assert info["subject"] is None
    assert info["session_start_time"] == "2024-03-05T10:00:00+00:00"
    assert info["num_channels_used"] == 4


KNOWN_KEYS = "['age', 'date_of_birth', 'description', 'genotype', 'id', 'sex', 'species', 'strain']"


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"sex": "male"}, "'subject.sex': expected one of ['M', 'F', 'U', 'O']; got 'male'."),
        (
            {"age": "90 days"},
            "'subject.age': expected an ISO 8601 duration such as 'P90D' (90 days) or 'P12W'; "
            "got '90 days'.",
        ),
        (
            {"weight": "20 g"},
            f"'subject.weight': expected a known key (one of {KNOWN_KEYS}); got 'unknown key'.",
        ),
        (
            {"species": "mouse"},
            "'subject.species': expected a Latin binomial such as 'Mus musculus'; got 'mouse'.",
        ),
        (
            {"id": "M 12"},
            "'subject.id': expected a name of letters, digits, '_', '-', '.'; got 'M 12'.",
        ),
        ({"id": 12}, "'subject.id': expected a value of type string; got 12."),
    ],
)
def test_bad_subject_is_refused_naming_file_and_key(tmp_path, capsys, change, expected):
    path = write_session(
        tmp_path, binary_session(tmp_path, noise(2000, 4), subject=SUBJECT | change)
    )
    with pytest.raises(ConfigError) as info:
        load_session(path)
    assert str(info.value) == f"{path.resolve()}: {expected}"
    assert main(["validate", str(path)]) == 2
    assert f"{path.resolve()}: {expected}" in capsys.readouterr().err
    with pytest.raises(ConfigError) as info:
        ingest_step.run(tmp_path / "results", path)
    assert str(info.value) == f"{path.resolve()}: {expected}"
    assert not (tmp_path / "results").exists()


def test_subject_needs_age_or_date_of_birth(tmp_path):
    subject = {k: SUBJECT[k] for k in ("id", "species", "sex")}
    path = write_session(tmp_path, binary_session(tmp_path, noise(2000, 4), subject=subject))
    with pytest.raises(ConfigError) as info:
        load_session(path)
    assert str(info.value) == (
        f"{path.resolve()}: 'subject': expected a value that satisfies anyOf=[{{'required': "
        f"['age']}}, {{'required': ['date_of_birth']}}]; got {subject!r}."
    )
    born = subject | {"date_of_birth": "2023-12-06"}
    assert ingest(tmp_path, subject=born)["subject"] == born


def test_date_of_birth_must_be_a_quoted_calendar_day(tmp_path):
    path = write_session(tmp_path, binary_session(tmp_path, noise(2000, 4), subject=SUBJECT))
    unquoted = tmp_path / "unquoted.yaml"
    unquoted.write_text(path.read_text().replace("'2023-12-06'", "2023-12-06"))
    with pytest.raises(ConfigError) as info:
        load_session(unquoted)
    assert str(info.value) == (
        f"{unquoted.resolve()}: 'subject.date_of_birth': expected a value of type string; "
        "got datetime.date(2023, 12, 6)."
    )
    # The schema's pattern lets 30 February through; ingest refuses it before writing anything.
    path = write_session(
        tmp_path,
        binary_session(tmp_path, noise(2000, 4), subject=SUBJECT | {"date_of_birth": "2023-02-30"}),
    )
    load_session(path)
    with pytest.raises(ConfigError) as info:
        ingest_step.run(tmp_path / "results", path)
    assert str(info.value) == (
        f"{path.resolve()}: 'subject.date_of_birth': expected a day of the calendar, "
        "YYYY-MM-DD; got '2023-02-30'."
    )
    assert not (tmp_path / "results").exists()
