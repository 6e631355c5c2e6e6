"""Profiles: threads reach the steps, the SLURM profile covers every rule, sessions run apart."""

from __future__ import annotations

import re

import yaml

from neurodict.cli import build_parser
from tests.conftest import REPO, relocated_session, write_yaml
from tests.test_workflow import BIN, run

SLURM = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
SITE = REPO / "profiles" / "slurm-site.example"


def rule_blocks() -> dict[str, str]:
    """Rule name -> its text, for every rule in rules/*.smk."""
    blocks = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for name, body in re.findall(
            r"^rule (\w+):\n(.*?)(?=^\S|\Z)", smk.read_text(), flags=re.M | re.S
        ):
            blocks[name] = body
    return blocks


def commands_with_threads() -> set[str]:
    """The `neurodict` subcommands that take --threads (spikeinterface's n_jobs)."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {
        name
        for name, p in sub.choices.items()
        if any("--threads" in a.option_strings for a in p._actions)
    }


def test_every_rule_passes_its_threads_to_the_step():
    takes_threads = commands_with_threads()
    assert {"preprocess", "detect"} <= takes_threads
    for name, body in rule_blocks().items():
        command = re.search(r'"neurodict (\w+)', body).group(1)
        assert re.search(r"^    threads: \d+$", body, flags=re.M), name
        if command in takes_threads:
            assert "--threads {threads}" in body, name


def test_no_step_takes_every_core():
    for path in (REPO / "neurodict").rglob("*.py"):
        assert not re.search(r"n_jobs\s*=\s*-1", path.read_text()), path


def test_default_profile_names_its_cores():
    default = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    assert isinstance(default["cores"], int) and default["cores"] >= 1


def test_slurm_profile_sizes_every_rule():
    assert SLURM["executor"] == "slurm" and SLURM["rerun-incomplete"] is True
    # no default-resources: the site profile's partition and account reach every job
    assert "default-resources" not in SLURM
    for name in rule_blocks():
        assert SLURM["set-threads"][name] >= 1, name
        assert {"mem_mb", "runtime"} <= set(SLURM["set-resources"][name]), name
    assert SLURM["set-resources"]["lfpdict"]["tasks"] == 1  # one task per GPU, not per core


def test_sessions_are_independent_jobs_with_a_gpu_only_for_backend_gpu(tiny_session, tmp_path):
    """A dry run with the SLURM and example site profiles on two sessions, one with backend gpu."""
    gpu = relocated_session(tiny_session, tmp_path, params={"lfpdict": {"backend": "gpu"}})
    write_yaml(tmp_path / "config.yaml", {"sessions": {"a": str(tiny_session), "b": str(gpu)}})
    out = run(
        [
            str(BIN / "snakemake"),
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(tmp_path / "config.yaml"),
            "--workflow-profile",
            str(REPO / "profiles" / "slurm"),
            "--profile",
            str(SITE),
            "--dry-run",
            "--cores",
            "64",
        ],
        cwd=tmp_path,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", text, flags=re.M))
    for name in ("ingest", "preprocess", "detect", "lfpdict", "clusters", "report"):
        assert counts[name] == "2", name
    assert counts["summary"] == "1"
    assert "neurodict preprocess --results results/a --threads 4" in text
    jobs = re.split(r"\n(?=rule \w+:)", text)
    lfpdict = {
        re.search(r"results/(\w)/lfp_dict.npz", j).group(1): j
        for j in jobs
        if j.startswith("rule lfpdict:")
    }
    assert "gpu=0" in lfpdict["a"] and "gpu=1" in lfpdict["b"]
    assert "threads: 8" in lfpdict["a"] and "tasks=1" in lfpdict["b"]
    assert "slurm_partition=normal" in lfpdict["a"]  # from the site profile


def test_site_example_holds_only_site_settings():
    site = yaml.safe_load((SITE / "config.yaml").read_text())
    assert set(site) <= {"default-resources", "slurm-qos"}
    assert set(site["default-resources"]) == {"slurm_partition", "slurm_account"}


def test_docs_show_the_cluster_command():
    text = (REPO / "docs" / "cluster.md").read_text()
    assert "--workflow-profile profiles/slurm --profile" in text
    assert "docs/cluster.md" in (REPO / "README.md").read_text()
