"""Where a session's results live, and the session as ingest resolved it.

``results/<session>/`` holds every output of one recording session; each stage reads its inputs
from there by these names, so the Snakemake rules and the command line agree on them.
"""

from __future__ import annotations

import json
from pathlib import Path

import spikeinterface.core as sc

from neurodict.common.errors import InputError

SESSION_JSON = "session.json"


def session_info(results: str | Path) -> dict:
    """The session as resolved at ingest time (``results/<session>/session.json``).

    Raises
    ------
    FileNotFoundError
        Naming the file and the step that writes it.
    """
    path = Path(results) / SESSION_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; expected the session.json that "
                                f"`neurodict ingest --results {results}` writes.")
    return json.loads(path.read_text())


def spike_source(results: str | Path, info: dict) -> Path:
    """The spike trains that drive the dictionaries: the sorter's (``lfpdict.spikes: sorted``)
    or the session's ground truth (``truth``)."""
    if info["params"]["lfpdict"]["spikes"] == "sorted":
        return Path(results) / "sorting"
    if not info.get("ground_truth_sorting"):
        raise FileNotFoundError(f"{Path(results) / SESSION_JSON}: 'lfpdict.spikes' is 'truth' "
                                f"but the session has no 'ground_truth_sorting'.")
    return Path(info["ground_truth_sorting"])


def group_recording(rec: sc.BaseRecording, group: str) -> sc.BaseRecording:
    """The channels of electrode group `group` (a ValueError names the groups there are)."""
    parts = rec.split_by("group")
    if group not in parts:
        raise InputError(f"electrode group '{group}' is not in the recording; expected one of "
                         f"{sorted(map(str, parts))}")
    return parts[group]
