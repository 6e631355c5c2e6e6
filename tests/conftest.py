"""Shared fixtures: a tiny synthetic multi-region session and one whole workflow run on it,
each made once per test run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from neurodict.synth import SynthSpec, generate_session

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The tests' dictionaries: three nulls, one dictionary size and a short penalty path keep each
# fit short (a size chosen among several and the null's size are tested on their own).
LFPDICT = {"n_null": 3, "n_atoms": 12, "lambda_fractions": [0.3, 0.1, 0.05]}
TINY = SynthSpec(n_regions=2, units_per_region=3, duration_s=30.0, fs_hz=10000.0, seed=3)


@pytest.fixture(scope="session")
def tiny_session(tmp_path_factory) -> Path:
    """Session YAML of a 2-region, 30 s synthetic session with ground truth beside it."""
    return generate_session(tmp_path_factory.mktemp("synth") / "tiny", TINY, progress=False)


def write_yaml(path: Path, data: dict) -> Path:
    """Write `data` as YAML to `path` and return the path."""
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def relocated_session(session: Path, folder: Path, **changes) -> Path:
    """A copy of `session` in `folder` with its paths made absolute and `changes` applied."""
    data = yaml.safe_load(Path(session).read_text())
    base = Path(session).parent
    data["raw_path"] = str(base / data["raw_path"])
    data["probe"]["file"] = str(base / data["probe"]["file"])
    data["ground_truth_sorting"] = str(base / data["ground_truth_sorting"])
    data["events"] = str(base / data["events"])
    data.update(changes)
    return write_yaml(Path(folder) / "s.yaml", data)


def run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a command with the test environment's scripts first on PATH."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def snakemake(workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    """Run the repository's workflow in `workdir` on its ``config.yaml``, two cores."""
    return run(
        [
            str(BIN / "snakemake"),
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(workdir / "config.yaml"),
            "--cores",
            "2",
            *extra,
        ],
        cwd=workdir,
    )


@pytest.fixture(scope="session")
def workflow_run(tmp_path_factory, tiny_session) -> tuple[Path, subprocess.CompletedProcess]:
    """The whole workflow run once on the tiny session: its folder and the finished process.

    Tests of the outputs (reports, exports, the browser) share this one run.
    """
    work = tmp_path_factory.mktemp("workflow_run")
    write_yaml(
        work / "config.yaml",
        {"sessions": {"tiny": str(tiny_session)}, "results_dir": "results", "lfpdict": LFPDICT},
    )
    return work, snakemake(work)


@pytest.fixture(scope="session")
def workflow_results(workflow_run) -> Path:
    """``results/`` of the whole workflow run (the run must have succeeded)."""
    work, out = workflow_run
    assert out.returncode == 0, out.stderr[-3000:]
    return work / "results"
