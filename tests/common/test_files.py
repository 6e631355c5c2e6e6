"""Outputs appear complete or not at all."""

from __future__ import annotations

import os
import subprocess

import pytest

from neurodict.common.files import atomic_path, write_json
from neurodict.common.lock import hostname


def test_success_renames_file_and_folder(tmp_path):
    with atomic_path(tmp_path / "a.json") as tmp:
        assert tmp.name.endswith(".json") and tmp.name.startswith(".a.tmp-")
        tmp.write_text("{}")
        assert not (tmp_path / "a.json").exists()
    assert (tmp_path / "a.json").read_text() == "{}"
    with atomic_path(tmp_path / "folder") as tmp:
        tmp.mkdir()
        (tmp / "x").write_text("1")
    assert (tmp_path / "folder" / "x").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "folder"]


def test_failure_leaves_previous_output_and_no_temporary(tmp_path):
    write_json(tmp_path / "a.json", {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert (tmp_path / "a.json").read_text() == '{\n  "v": 1\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_rewrite_replaces_a_folder(tmp_path):
    for value in ("1", "2"):
        with atomic_path(tmp_path / "f") as tmp:
            tmp.mkdir()
            (tmp / value).write_text(value)
    assert [p.name for p in (tmp_path / "f").iterdir()] == ["2"]


def test_next_write_removes_what_a_killed_writer_left(tmp_path):
    """kill -9 or scancel leave a temporary; the rerun's write of that output removes it."""
    child = subprocess.Popen(["true"])
    child.wait()  # a process that is gone
    killed = f"{hostname()}-{child.pid}"
    (tmp_path / f".lfp.tmp-{killed}").mkdir()  # a killed preprocess: lfp half-written
    (tmp_path / f".lfp.tmp-{killed}" / "traces_cached_seg0.raw").write_bytes(b"\0" * 8)
    (tmp_path / f".lfp_dict.tmp-{killed}.npz").write_bytes(b"half")  # another output's: kept
    (tmp_path / ".lfp.tmp-notes").write_text("not a temporary name: kept")
    with atomic_path(tmp_path / "lfp") as tmp:
        assert tmp.name == f".lfp.tmp-{hostname()}-{os.getpid()}"
        tmp.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".lfp.tmp-notes",
        f".lfp_dict.tmp-{killed}.npz",
        "lfp",
    ]
    with atomic_path(tmp_path / "lfp_dict.npz") as tmp:
        tmp.write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lfp.tmp-notes", "lfp", "lfp_dict.npz"]
