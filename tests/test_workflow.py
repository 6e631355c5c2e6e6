"""The Snakemake workflow: formatted, lint-clean, a dry run, and a whole run on a tiny session."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from neurodict.common.lock import LOCK_NAME, hostname
from tests.conftest import BIN, REPO, relocated_session, run, snakemake, write_yaml


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_session) -> Path:
    work = tmp_path_factory.mktemp("workflow")
    write_yaml(
        work / "config.yaml", {"sessions": {"tiny": str(tiny_session)}, "results_dir": "results"}
    )
    return work


def test_snakefmt_check():
    out = run([str(BIN / "snakefmt"), "--check", "Snakefile", "rules"], cwd=REPO)
    assert out.returncode == 0, out.stderr


def test_snakemake_lint(workdir):
    """Lint on a configuration whose session exists (a clean clone has no data/demo yet)."""
    out = snakemake(workdir, "--lint")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Congratulations, your workflow is in a good condition" in out.stdout + out.stderr


def test_dry_run_plans_every_step(workdir):
    out = snakemake(workdir, "--dry-run")
    assert out.returncode == 0, out.stderr
    for rule in (
        "ingest",
        "preprocess",
        "detect",
        "lfpdict",
        "clusters",
        "report",
        "summary",
        "export",
        "all",
    ):
        assert f"rule {rule}:" in out.stdout or f"localrule {rule}:" in out.stdout, rule


def test_invalid_session_stops_before_any_job(workdir, tiny_session, tmp_path):
    bad = relocated_session(tiny_session, tmp_path, mains_hz=55)
    write_yaml(tmp_path / "config.yaml", {"sessions": {"bad": str(bad)}})
    out = snakemake(tmp_path, "--dry-run")
    assert out.returncode != 0
    assert f"{bad}: 'mains_hz': expected one of [50, 60]; got 55." in out.stdout + out.stderr


def test_readme_step_3_own_config_from_a_fresh_clone(tiny_session, tmp_path):
    """README step 3 as written, in a copy of the repository without data/demo: the user's copy
    of config/config.yaml replaces the defaults (no `demo` session is merged in)."""
    for name in ("Snakefile", "rules", "config", "profiles"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, tmp_path / name)
    mine = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert "demo" in mine["sessions"] and not (tmp_path / "data").exists()
    mine["sessions"] = {"mine": str(tiny_session)}
    write_yaml(tmp_path / "my_config.yaml", mine)
    out = run(
        [
            str(BIN / "snakemake"),
            "--configfile",
            "my_config.yaml",
            "--profile",
            "profiles/default",
            "--dry-run",
        ],
        cwd=tmp_path,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "results/mine/report.html" in text and "demo" not in text
    # without --configfile the defaults still apply (here: the demo session, absent)
    out = run([str(BIN / "snakemake"), "--profile", "profiles/default", "--dry-run"], cwd=tmp_path)
    assert out.returncode != 0 and "data/demo/session.yaml" in out.stdout + out.stderr


def test_whole_workflow_on_tiny_session(workflow_run):
    workdir, out = workflow_run
    assert out.returncode == 0, out.stderr[-3000:]
    res = workdir / "results" / "tiny"
    for name in (
        "recording.json",
        "session.json",
        "spikeband",
        "lfp",
        "region_lfp",
        "peaks.npy",
        "detection.tsv",
        "lfp_dict.npz",
        "lfp_scores.tsv",
        "lfp_bands.tsv",
        "clusters.tsv",
        "clusters_summary.tsv",
        "phase.tsv",
        "importance.tsv",
        "report.html",
        "session.nwb",
        "phy/params.py",
    ):
        assert (res / name).exists(), name
    for step in ("ingest", "preprocess", "detect", "lfpdict", "clusters", "report", "export"):
        assert (workdir / "results" / "logs" / "tiny" / f"{step}.log").exists()
        assert (workdir / "results" / "benchmarks" / "tiny" / f"{step}.tsv").exists()
    prov = json.loads((res / "preprocess.provenance.json").read_text())
    assert prov["params"]["lfp"]["fs_lfp_hz"] == 1000.0
    html = (res / "report.html").read_text()
    for section in (
        "recording",
        "preprocessing",
        "detection",
        "dictionaries",
        "clusters",
        "provenance",
    ):
        assert f'<section id="{section}">' in html
    assert '<table class="sortable" id="benchmarks-table">' in html
    assert "<td>lfpdict</td>" in html and "<td>spikeinterface</td>" in html
    assert "http://" not in html and "https://" not in html  # self-contained, no network
    assert not list(res.glob(".*tmp-*"))  # nothing half-written left behind
    assert not (workdir / "results" / LOCK_NAME).exists()  # the run gave its lock back
    summary = (workdir / "results" / "summary" / "report.html").read_text()
    assert '<section id="pooled">' in summary and 'href="../tiny/report.html"' in summary
    # a second run has nothing to do
    again = snakemake(workdir, "--dry-run")
    assert "Nothing to be done" in again.stdout + again.stderr
    # Snakemake's own report of the annotated outputs, self-contained
    out = snakemake(workdir, "--report", "snakemake_report.html")
    assert out.returncode == 0, out.stderr[-3000:]
    page = (workdir / "snakemake_report.html").read_text()
    assert "lfp_scores.tsv" in page and "clusters_summary.tsv" in page
    assert '<script src="http' not in page


def test_killed_step_leaves_nothing_that_looks_finished(workdir, tiny_session, tmp_path):
    """An interrupted preprocess leaves only a temporary name; the rerun completes it."""
    shutil.copy(workdir / "config.yaml", tmp_path / "config.yaml")
    out = snakemake(tmp_path, "--until", "ingest")
    assert out.returncode == 0, out.stderr
    res = tmp_path / "results" / "tiny"
    child = subprocess.Popen(["true"])
    child.wait()  # the killed writer: a process that is gone
    partial = res / f".spikeband.tmp-{hostname()}-{child.pid}"
    partial.mkdir()
    (partial / "traces_cached_seg0.raw").write_bytes(b"\0" * 10)
    out = snakemake(tmp_path, "--until", "preprocess")
    assert out.returncode == 0, out.stderr
    assert (res / "spikeband" / "binary.json").exists()
    assert not partial.exists()  # the rerun's write removed what the killed one left
