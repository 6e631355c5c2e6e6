"""Packaging: environment.yml (conda) and pyproject.toml (pip) pin the same packages to the same
ranges; the wheel ships every module, schema and template and the licence; and installed from the
wheel, outside the checkout, the command line, spikeinterface's ``run_sorter`` and the workflow
work from another directory."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from neurodict._version import __version__
from tests.conftest import BIN, REPO, write_yaml


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


def test_citation_and_changelog_name_this_version():
    """CITATION.cff is valid YAML for this version; CHANGELOG.md has an entry for it."""
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert citation["version"] == __version__
    assert (
        citation["license"]
        == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]
    )
    assert len(citation["references"]) >= 4
    assert f"## [{__version__}]" in (REPO / "CHANGELOG.md").read_text()


# -- the wheel, installed outside the checkout ----------------------------------------------------

# What the wheel is built from: the sdist's share of the tree, copied so that the build leaves no
# build/ or egg-info in the checkout (and no stale build/lib can leak into the wheel).
SOURCE = ("pyproject.toml", "README.md", "LICENSE", "neurodict")
# The workflow as a user deploys it: the Snakefile and its rules without the package's source.
# (Snakemake puts the Snakefile's folder first on sys.path, so the checkout's Snakefile would
# import the checkout's neurodict and hide what the wheel lacks.)
WORKFLOW = ("Snakefile", "rules", "environment.yml")
_JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def _copy(names, src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in names:
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name, ignore=_JUNK)
        else:
            shutil.copy2(src / name, dst / name)
    return dst


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built offline with this environment's setuptools (`pip wheel --no-deps`)."""
    setuptools = metadata.version("setuptools")
    assert int(setuptools.split(".")[0]) >= 77, (
        f"setuptools {setuptools} cannot build PEP 639 licence metadata: `make install` brings "
        "the dev extra's setuptools>=77"
    )
    tmp = tmp_path_factory.mktemp("wheel")
    src = _copy(SOURCE, REPO, tmp / "src")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--wheel-dir",
            str(tmp / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (built,) = (tmp / "dist").glob("neurodict-*.whl")
    return built


@dataclass(frozen=True)
class Venv:
    """A fresh virtual environment with neurodict installed from the wheel."""

    root: Path
    bin: Path
    site: Path
    env: dict

    def run(self, args: list, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(a) for a in args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Venv:
    """A fresh venv holding neurodict from the wheel, its dependencies borrowed from this one.

    The wheel goes in first, by pip (console script and all); then a ``.pth`` line appends this
    environment's site-packages for the dependencies, offline. A path line in a ``.pth`` does not
    run the ``.pth`` files of the folder it adds, so the editable install's finder stays off, and
    the new venv's own site-packages comes first: the only neurodict it can import is the wheel's.
    """
    root = tmp_path_factory.mktemp("venv") / "wheel-env"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120
    )
    python = root / "bin" / "python"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    deps = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site / "_neurodict_test_dependencies.pth").write_text("".join(f"{d}\n" for d in deps))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
    }
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p) != BIN]
    env["PATH"] = os.pathsep.join([str(root / "bin"), *path])
    return Venv(root=root, bin=root / "bin", site=site, env=env)


def test_wheel_ships_every_module_schema_and_template_and_the_licence(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = f"neurodict-{__version__}.dist-info"
        meta = zf.read(f"{info}/METADATA").decode()
    tree = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "neurodict").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert {n for n in names if n.startswith("neurodict/")} == tree
    assert {
        "neurodict/schemas/config.schema.yaml",
        "neurodict/schemas/session.schema.yaml",
        "neurodict/report/templates/session.html",
    } <= names
    assert f"{info}/licenses/LICENSE" in names
    assert f"Version: {__version__}\n" in meta
    assert "License-Expression: BSD-3-Clause\n" in meta


def test_installed_package_and_schemas_come_from_the_wheel(venv, tmp_path):
    """The wheel's neurodict is the only one on the path; its schemas are found inside it."""
    out = venv.run(
        [
            venv.bin / "python",
            "-c",
            "import os, sys, neurodict, neurodict.config as c\n"
            "print(neurodict.__file__); print(c.schema_path('config'));"
            "print(c.schema_path('session')); print(neurodict.__version__)\n"
            "print(*[p for p in sys.path if os.path.isfile(os.path.join(p or '.', "
            "'neurodict', '__init__.py'))])",
        ],
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    package, config, session, version, *importable = out.stdout.split()
    assert [Path(p) for p in importable] == [venv.site]
    for path in (package, config, session):
        assert Path(path).is_relative_to(venv.site / "neurodict"), path
        assert Path(path).is_file()
    assert version == __version__
    assert shutil.which("neurodict", path=venv.env["PATH"]) == str(venv.bin / "neurodict")


def test_validate_from_the_wheel(venv, tiny_session, tmp_path):
    """`neurodict validate` with the packaged defaults (no config/config.yaml beside it)."""
    out = venv.run([venv.bin / "neurodict", "validate", tiny_session], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "valid: 8 channels in 2 groups" in out.stdout


RUN_SORTER = """
import sys
from pathlib import Path

import spikeinterface.sorters as ss
from spikeinterface.core import generate_ground_truth_recording

import neurodict

out = Path(sys.argv[1])
rec, _ = generate_ground_truth_recording(durations=[10.0], sampling_frequency=20000.0,
                                         num_channels=4, num_units=3, seed=0)
rec = rec.save(folder=out / "recording", progress_bar=False)
sorting = ss.run_sorter("neurodict", rec, folder=out / "sorted", remove_existing_folder=True,
                        n_burn=5, n_samples=3, n_keep=2)
print(neurodict.__file__, sorting.get_num_units(), sorting.to_spike_vector().size)
"""


def test_run_sorter_from_the_wheel(venv, tmp_path):
    out = venv.run([venv.bin / "python", "-c", RUN_SORTER, tmp_path], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    package, n_units, n_spikes = out.stdout.split()[-3:]
    assert Path(package).is_relative_to(venv.site)
    assert int(n_units) >= 1 and int(n_spikes) > 0


def test_workflow_from_another_directory_with_the_wheel(venv, tiny_session, tmp_path):
    """The whole plan (a dry run), then its first job for real: `neurodict ingest` of the wheel."""
    workflow = _copy(WORKFLOW, REPO, tmp_path / "workflow")
    work = tmp_path / "work"
    work.mkdir()
    write_yaml(
        work / "config.yaml", {"sessions": {"tiny": str(tiny_session)}, "results_dir": "results"}
    )
    snakemake = [
        venv.bin / "python",
        "-m",
        "snakemake",
        "--snakefile",
        workflow / "Snakefile",
        "--directory",
        work,
        "--configfile",
        work / "config.yaml",
        "--cores",
        "1",
    ]
    out = venv.run([*snakemake, "--dry-run"], cwd=work)
    assert out.returncode == 0, out.stdout + out.stderr
    for rule in (
        "ingest",
        "preprocess",
        "detect",
        "sort",
        "lfpdict",
        "clusters",
        "report",
        "export",
        "summary",
    ):
        assert f"rule {rule}:" in out.stdout, rule
    out = venv.run([*snakemake, "results/tiny/session.json"], cwd=work)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (work / "results" / "tiny" / "recording.json").is_file()
