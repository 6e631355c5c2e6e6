"""The summary across sessions groups them by subject, then by date, and links their reports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from neurodict.common.files import read_tsv
from neurodict.config import section_defaults
from neurodict.summary import step as summary_step

# "wt-A" sorts after "no subject": the group without a subject must still come last.
MOUSE_A = {"id": "wt-A", "species": "Mus musculus", "sex": "F", "age": "P90D"}
# name -> (subject, session_start_time): names in an order that is neither subject nor date.
SESSIONS = {
    "s1": (MOUSE_A | {"age": "P92D"}, "2024-03-07T09:00:00+00:00"),
    "s2": (None, "2024-03-06T09:00:00+00:00"),
    "s3": (MOUSE_A, "2024-03-05T23:30:00-02:00"),  # 2024-03-06 01:30 UTC
}


def fake_session(folder: Path, subject: dict | None, start: str, seed: int) -> None:
    """session.json (subject, start time) and an lfp_dict.npz of 4 units x 2 regions."""
    folder.mkdir(parents=True)
    info = {"name": folder.name, "subject": subject, "session_start_time": start}
    (folder / "session.json").write_text(json.dumps(info))
    rng = np.random.default_rng(seed)
    np.savez(
        folder / "lfp_dict.npz",
        filters=rng.standard_normal((4, 2, 41)),
        lags_ms=np.arange(-20.0, 21.0),
        regions=np.array(["CA1", "PFC"]),
        unit_ids=np.array(["0", "1", "2", "3"]),
        unit_regions=np.array(["CA1", "CA1", "PFC", "PFC"]),
    )


def test_summary_groups_sessions_by_subject_and_date(tmp_path):
    for i, (name, (subject, start)) in enumerate(SESSIONS.items()):
        fake_session(tmp_path / name, subject, start, seed=i)
    params = section_defaults("clusters") | {"n_boot": 2, "n_perm": 9}
    summary_step.run(tmp_path, list(SESSIONS), params)

    rows = read_tsv(tmp_path / "summary" / "sessions.tsv")
    assert [(r["subject"], r["date"], r["session"], r["report"], r["age"]) for r in rows] == [
        ("wt-A", "2024-03-06", "s3", "../s3/report.html", "P90D"),
        ("wt-A", "2024-03-07", "s1", "../s1/report.html", "P92D"),
        ("no subject", "2024-03-06", "s2", "../s2/report.html", None),
    ]

    page = (tmp_path / "summary" / "report.html").read_text()
    tables = re.findall(r'<table class="sortable" id="sessions-(\d+)">(.*?)</table>', page, re.S)
    links = [(k, re.findall(r'<a href="([^"]+)">', body)) for k, body in tables]
    assert links == [
        ("0", ["../s3/report.html", "../s1/report.html"]),
        ("1", ["../s2/report.html"]),
    ]
    assert "Subject wt-A (species Mus musculus, sex F): 2 sessions on 2 days." in page
    assert "No subject (session files without a subject block): 1 session on 1 day." in page
    assert page.index("Subject wt-A (") < page.index('id="sessions-0"') < page.index("No subject")
