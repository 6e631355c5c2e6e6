"""Issue 13, case 7: degenerate data runs through merge and the report says what happened.

A group that turns flat after ingest (all-zero channels), a group without good channels, and a
session where no spike crosses the threshold: every step from preprocessing to the report runs,
the tables keep their headers, and the report names the group and the reason.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml

from neurodict.common.files import read_tsv
from neurodict.detect import step as detect_step
from neurodict.ingest import step as ingest_step
from neurodict.preprocess import step as preprocess_step
from neurodict.report import step as report_step
from neurodict.sort import step as sort_step
from tests.conftest import relocated_session

# A short chain: these tests are about the paths around the sorter, not its quality.
QUICK = {"sorting": {"n_burn": 6, "n_samples": 3, "n_keep": 2, "template_matching": False}}


def run_session(tmp_path, tiny_session, zero_after_ingest=(), **changes) -> tuple:
    """Every step on a copy of the tiny session: the results folder, and the report's text."""
    raw = np.fromfile(tiny_session.parent / "recording.raw", dtype="int16").reshape(-1, 8)
    raw.tofile(tmp_path / "recording.raw")
    session = relocated_session(
        tiny_session, tmp_path, raw_path=str(tmp_path / "recording.raw"), **changes
    )
    results = tmp_path / "results"
    ingest_step.run(results, session)
    if zero_after_ingest:  # channels dead after ingest's check: the data change under it
        raw = raw.copy()
        raw[:, list(zero_after_ingest)] = 0
        raw.tofile(tmp_path / "recording.raw")
    preprocess_step.run(results)
    detect_step.run(results)
    for g in yaml.safe_load(session.read_text())["groups"]:
        sort_step.run(results, g["name"])
    sort_step.merge(results)
    html = report_step.run(results).read_text()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'")
    return results, text


def test_flat_group_reported_and_the_other_sorted(tmp_path, tiny_session):
    results, text = run_session(tmp_path, tiny_session, zero_after_ingest=range(4), params=QUICK)
    counts = {r["group"]: r["n_peaks"] for r in read_tsv(results / "detection.tsv")}
    assert counts["CA1_tt"] == 0 and counts["PFC_tt"] > 0
    units = read_tsv(results / "units.tsv")
    assert units and {u["group"] for u in units} == {"PFC_tt"}
    assert [u["unit"] for u in units] == [str(i) for i in range(len(units))]
    assert "group CA1_tt: no spikes detected; its spike band is flat" in text
    assert "No units in group CA1_tt." in text
    assert "group PFC_tt:" not in text
    assert "No spikes were detected in any group" not in text
    assert read_tsv(results / "artefacts.tsv") == []  # a flat group is not an artefact
    assert (
        "robust SD at once), each extended until every channel stays under 4 robust SD. "
        "None found." in text
    )


def test_session_without_spikes_and_group_without_channels(tmp_path, tiny_session):
    """Both tetrodes in one region, one of them with every channel bad, and a threshold that
    no spike crosses: no peaks, no units, yet merge and the report finish."""
    groups = yaml.safe_load(tiny_session.read_text())["groups"]
    groups[1]["region"] = groups[0]["region"]
    results, text = run_session(
        tmp_path,
        tiny_session,
        groups=groups,
        bad_channels=list(groups[0]["channels"]),
        params={"detection": {"threshold_sigma": 99.0}} | QUICK,
    )
    assert [r["group"] for r in read_tsv(results / "detection.tsv")] == ["PFC_tt"]
    for table in ("units.tsv", "metrics.tsv"):
        assert read_tsv(results / table) == []
        assert (results / table).read_text().startswith("unit\t")
    assert (results / "sort" / "CA1_tt.npz").exists()
    spikes = np.load(results / "spikes.npz")
    assert spikes["sample_index"].size == 0
    assert "group CA1_tt: no good channels (all of them are in bad_channels)" in text
    assert "group PFC_tt: no spikes detected (nothing crossed the threshold)" in text
    assert "No spikes were detected in any group of the session" in text
    assert "0 units (0 single units, 0 multi-unit)" in text
    assert "No units in groups CA1_tt, PFC_tt." in text


def test_unknown_group_is_a_user_error(tmp_path, tiny_session):
    """A group name that the session does not have is the user's error (InputError, no
    traceback), not an IndexError or ValueError from the peaks' lookup."""
    from neurodict.common.errors import InputError

    session = relocated_session(tiny_session, tmp_path)
    results = tmp_path / "results"
    ingest_step.run(results, session)
    preprocess_step.run(results)
    detect_step.run(results)
    with pytest.raises(InputError, match="electrode group 'nope' is not in the recording"):
        sort_step.run(results, "nope")
