"""environment.yml (conda) and pyproject.toml (pip) pin the same packages to the same ranges."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.conftest import REPO


def _split(spec: str) -> tuple[str, str]:
    name, rng = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", spec.strip()).groups()
    return name.lower().replace("_", "-"), rng.replace(" ", "")


def test_environment_yml_matches_pyproject():
    """environment.yml = the dependencies and the slurm extra (cluster users run the executor)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    pip = dict(_split(s) for s in pyproject["project"]["dependencies"] + extras["slurm"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = dict(_split(s) for s in env["dependencies"] if isinstance(s, str))
    assert conda.pop("python") == ">=" + pyproject["project"]["requires-python"].lstrip(">=")
    conda.pop("pip")
    assert conda == pip


def test_dev_extra_installs_the_slurm_executor():
    """`make install` (the dev extra) brings what the real-SLURM test in .ci/run needs."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    dev = dict(_split(s) for s in extras["dev"])
    assert dict(_split(s) for s in extras["slurm"]).items() <= dev.items()


def test_spikeinterface_range_is_pinned():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    spec = dict(_split(s) for s in pyproject["project"]["dependencies"])["spikeinterface"]
    assert ">=" in spec and "<" in spec.replace("<=", "")
