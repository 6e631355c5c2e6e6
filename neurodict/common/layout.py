"""Where a session's results live, and the session as ingest resolved it.

``results/<session>/`` holds every output of one recording session; each stage reads its inputs
from there by these names, so the Snakemake rules and the command line agree on them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import spikeinterface.core as sc

from neurodict.common.errors import InputError
from neurodict.common.files import inside

SESSION_JSON = "session.json"
# A session or electrode-group name becomes a folder or file name: letters, digits, '_', '-' and
# '.', not '.' or '..', not starting with '-' (an option) -- the schema's pattern, checked again
# here so that no name can reach a path or a command line.
NAME_PATTERN = r"^(?!\.{1,2}$)(?!-)[A-Za-z0-9_.-]+$"
NAME_RULE = "letters, digits, '_', '-' and '.' only, not '.' or '..', not starting with '-'"
# Folders of the results folder that are not sessions.
RESERVED_NAMES = ("summary", "logs", "benchmarks")


def check_name(name: object, what: str = "session") -> str:
    """`name` if it can name a `what` (a session or a group); an InputError saying why not."""
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise InputError(f"{what} name {name!r}: expected {NAME_RULE}.")
    if what == "session" and name in RESERVED_NAMES:
        raise InputError(
            f"session name {name!r}: expected a name other than "
            f"{', '.join(RESERVED_NAMES)} (folders of the results folder)."
        )
    return name


def results_path(results: str | Path, *parts: str) -> Path:
    """``results/<parts...>``, refused (InputError naming it) when it leads out of `results`."""
    path = Path(results).joinpath(*parts)
    inside(path, results)
    return path


def session_info(results: str | Path) -> dict:
    """The session as resolved at ingest time (``results/<session>/session.json``).

    Raises
    ------
    FileNotFoundError
        Naming the file and the step that writes it.
    """
    path = Path(results) / SESSION_JSON
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not found; expected the session.json that "
            f"`neurodict ingest --results {results}` writes."
        )
    return json.loads(path.read_text())


def group_regions(group: dict) -> list[str]:
    """The regions of one of session.json's groups: its ``regions`` (several for a shank with
    regions by depth), or its one ``region``."""
    return group.get("regions") or [group["region"]]


def session_regions(info: dict) -> list[str]:
    """Every region of session.json's groups, in order of first appearance."""
    return list(dict.fromkeys(r for g in info["groups"] for r in group_regions(g)))


def spike_source(results: str | Path, info: dict) -> Path:
    """The spike trains that drive the dictionaries: the sorter's (``lfpdict.spikes: sorted``)
    or the session's ground truth (``truth``)."""
    if info["params"]["lfpdict"]["spikes"] == "sorted":
        return Path(results) / "sorting"
    if not info.get("ground_truth_sorting"):
        raise FileNotFoundError(
            f"{Path(results) / SESSION_JSON}: 'lfpdict.spikes' is 'truth' "
            f"but the session has no 'ground_truth_sorting'."
        )
    return Path(info["ground_truth_sorting"])


def group_recording(rec: sc.BaseRecording, group: str) -> sc.BaseRecording:
    """The channels of electrode group `group` (an InputError names the groups there are)."""
    groups = np.asarray(rec.get_property("group")).astype(str)
    if group not in groups:
        raise InputError(
            f"electrode group '{group}' is not in the recording; expected one of "
            f"{sorted(set(groups))}"
        )
    return rec.select_channels(rec.channel_ids[groups == group])
