"""The command line: clear errors with exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from neurodict.cli import main
from tests.conftest import REPO, relocated_session, write_yaml


def test_validate_ok(tiny_session, capsys):
    assert main(["validate", str(tiny_session)]) == 0
    out = capsys.readouterr().out
    assert "valid: 8 channels in 2 groups, regions ['CA1', 'PFC'], 30.00 s at 10000 Hz." in out


def test_validate_reports_problem_without_traceback(tmp_path):
    session = write_yaml(
        tmp_path / "s.yaml",
        {"raw_path": "nope.bin", "format": "binary", "groups": [], "mains_hz": 50},
    )
    out = subprocess.run(
        [Path(sys.executable).parent / "neurodict", "validate", str(session)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("neurodict validate: error:\n")
    assert f"{session}: 'groups': expected a value that satisfies minItems=1; got []." in out.stderr


def test_validate_window_outside_recording(tiny_session, tmp_path, capsys):
    session = relocated_session(
        tiny_session,
        tmp_path,
        windows=[
            {"start_s": 0.0, "end_s": 10.0, "condition": "a"},
            {"start_s": 10.0, "end_s": 31.5, "condition": "b"},
        ],
    )
    assert main(["validate", str(session)]) == 2
    assert (
        f"{session}: 'windows[1].end_s': expected a time within the recording (0 to 30.000 s); "
        "got 31.5."
    ) in capsys.readouterr().err


def test_bundled_real_session_validates(capsys):
    """config/sessions/locust.yaml describes the real tetrode correctly (where it is present)."""
    session = REPO / "config" / "sessions" / "locust.yaml"
    if not (REPO.parent / "shared" / "data" / "locust" / "locust_trial_01.raw").exists():
        pytest.skip("the locust recording (../shared/data/locust) is not on this machine")
    assert main(["validate", str(session)]) == 0
    assert (
        "valid: 4 channels in 1 groups, regions ['AL'], 28.77 s at 15000 Hz."
        in capsys.readouterr().out
    )
