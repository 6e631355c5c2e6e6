"""Shared fixtures: a tiny synthetic multi-region session, generated once per test run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from neurodict.synth import SynthSpec, generate_session

REPO = Path(__file__).resolve().parents[1]
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
    data.update(changes)
    return write_yaml(Path(folder) / "s.yaml", data)
