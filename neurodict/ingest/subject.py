"""The session file's optional ``subject:`` block, as it goes into ``session.json``.

:func:`neurodict.config.load_session` validates the whole session file against the packaged
schema (``subject`` included: its keys, the NWB/DANDI forms of ``sex``, ``age``, ``species``);
the resolved :class:`neurodict.config.Session` does not keep the block, so ingest reads it here
from the same file, checks it against the same schema (the file may have changed in between) and
adds what a schema cannot express: that ``date_of_birth`` is a day of the calendar.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from neurodict.config import ConfigError, load_schema, problem, read_yaml, schema_problems


def read_subject(session_file: str | Path) -> dict | None:
    """The validated ``subject:`` block of `session_file`, or None where it has none.

    Returns
    -------
    dict or None
        The keys the file gives (``id``, ``species``, ``sex`` and ``age`` and/or
        ``date_of_birth``, optionally ``genotype``, ``strain``, ``description``), as text.

    Raises
    ------
    ConfigError
        Naming the file and the key, in the message form of :mod:`neurodict.config`.
    """
    file = Path(session_file)
    data = read_yaml(file)
    if "subject" not in data:
        return None
    subject = data["subject"]
    schema = load_schema("session")["properties"]["subject"]
    problems = schema_problems(subject, schema, file, prefix="subject.")
    if not problems and "date_of_birth" in subject:
        try:
            datetime.date.fromisoformat(subject["date_of_birth"])
        except ValueError:
            problems.append(
                problem(
                    file,
                    "subject.date_of_birth",
                    "a day of the calendar, YYYY-MM-DD",
                    subject["date_of_birth"],
                )
            )
    if problems:
        raise ConfigError(problems)
    return dict(subject)
