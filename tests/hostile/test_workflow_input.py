"""Hostile input against the workflow and the file system (issue 13, cases 1, 2, 4, 8, 9).

Names that would inject shell commands or lead out of the results folder are refused when the
workflow starts, before any job, and nothing appears anywhere; two runs sharing one results
folder are refused; a killed run's locks and temporaries are cleaned up only once their process
is gone; no step can write outside the results folder.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from neurodict.common import lock
from neurodict.common.errors import InputError
from neurodict.common.files import RESULTS_ROOT_ENV, atomic_path, write_json
from neurodict.common.layout import check_name, results_path
from tests.conftest import BIN, REPO, relocated_session, snakemake, write_yaml

# Shell metacharacters, paths, globs, regex characters, option-like and reserved names.
HOSTILE_SESSIONS = [
    "z`touch pwned`",
    "x&rm -rf x&",
    "../../escaped",
    "a b",
    "*",
    "+",
    "",
    "$(touch pwned)",
    "s;touch pwned",
    "a/b",
    ".",
    "..",
    "-h",
    "summary",
    "tab\there",
    "new\nline",
]
HOSTILE_GROUPS = ["../../g", "g;touch pwned", "-h", "a b", "g`touch pwned`"]
NAME_RULE = "expected letters, digits, '_', '-' and '.' only"


def tree(root: Path) -> set[str]:
    """Every path under `root` (files, folders, links), relative, links not followed."""
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(str((Path(folder) / name).relative_to(root)))
    return found


def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """A working directory two levels down (so that ``../../x`` still lands in `tmp_path`), with
    a folder ``x`` that ``rm -rf x`` would delete."""
    work = tmp_path / "a" / "b" / "work"
    (work / "x").mkdir(parents=True)
    (work / "x" / "keep").write_text("keep")
    return work, tmp_path


def assert_nothing_ran(
    out: subprocess.CompletedProcess, before: set[str], root: Path, work: Path
) -> None:
    """No job started, no file appeared outside Snakemake's own ``.snakemake``, ``x`` kept."""
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "Job stats" not in text and "rule ingest" not in text, text
    snakemake_dir = str((work / ".snakemake").relative_to(root))
    new = {p for p in tree(root) - before if not p.startswith(snakemake_dir)}
    assert new == set(), new
    assert (work / "x" / "keep").read_text() == "keep"
    assert not (work / "results").exists()
    for place in (root, REPO, Path.cwd()):
        assert not list(place.glob("pwned*")), place


@pytest.fixture(scope="module")
def hostile_sessions_run(tmp_path_factory, tiny_session):
    """One real run (not a dry run) of a configuration naming a session by every hostile name:
    its output, the configuration file, and whether anything ran."""
    work, root = sandbox(tmp_path_factory.mktemp("hostile_sessions"))
    sessions = {name: str(tiny_session) for name in HOSTILE_SESSIONS}
    config = write_yaml(work / "config.yaml", {"sessions": sessions, "results_dir": "results"})
    before = tree(root)
    out = snakemake(work, "--until", "ingest")
    assert_nothing_ran(out, before, root, work)
    return out.stdout + out.stderr, config


@pytest.mark.parametrize("name", HOSTILE_SESSIONS, ids=repr)
def test_hostile_session_name_refused_before_anything_runs(hostile_sessions_run, name):
    text, config = hostile_sessions_run
    # the workflow's own check (rules/common.smk), before the schema's: names the file and name
    assert "neurodict: invalid configuration:" in text, text
    assert f"{config}: 'sessions': session name {name!r}" in text, text
    assert "Traceback" not in text


@pytest.fixture(scope="module")
def hostile_groups_run(tmp_path_factory, tiny_session):
    """One real run of a configuration whose sessions name their groups by every hostile name
    (two per session): its output and each name's session file."""
    tmp = tmp_path_factory.mktemp("hostile_groups")
    work, root = sandbox(tmp)
    groups = yaml.safe_load(Path(tiny_session).read_text())["groups"]
    sessions, file_of = {}, {}
    for i in range(0, len(HOSTILE_GROUPS), len(groups)):
        names = HOSTILE_GROUPS[i : i + len(groups)]
        renamed = [dict(g, name=n) for g, n in zip(groups, names, strict=False)]
        (tmp / f"s{i}").mkdir()
        session = relocated_session(
            tiny_session, tmp / f"s{i}", groups=renamed + groups[len(names) :]
        )
        sessions[f"s{i}"] = str(session)
        file_of |= dict.fromkeys(names, session)
    write_yaml(work / "config.yaml", {"sessions": sessions, "results_dir": "results"})
    before = tree(root)
    out = snakemake(work, "--until", "ingest")
    assert_nothing_ran(out, before, root, work)
    return out.stdout + out.stderr, file_of


@pytest.mark.parametrize("name", HOSTILE_GROUPS, ids=repr)
def test_hostile_group_name_refused_before_anything_runs(hostile_groups_run, name):
    text, file_of = hostile_groups_run
    # the session schema or the workflow's own check refuses it; either names file and group,
    # every session's problems in the one refusal
    assert "neurodict: invalid configuration:" in text, text
    assert any(
        str(file_of[name]) in line and repr(name)[1:-1] in line for line in text.splitlines()
    ), text


def test_check_name_allows_ordinary_names():
    for name in ("tiny", "mouse12_day3", "s-1.v2", "CA1_tt", "..a", "a.."):
        assert check_name(name) == name
    with pytest.raises(InputError, match="other than summary, logs, benchmarks"):
        check_name("logs")
    assert check_name("summary", "electrode group") == "summary"  # only sessions are folders


# --- no write outside the results folder ----------------------------------------------------


def test_escaping_output_path_refused_before_anything_is_created(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    escaping = results / "s" / ".." / ".." / "out" / "x.json"
    with pytest.raises(InputError, match="refusing to write outside the results folder") as exc:
        with atomic_path(escaping, root=results) as tmp:
            tmp.write_text("{}")
    assert str(escaping) in str(exc.value)
    assert tree(tmp_path) == {"results"}  # not even the folders were made
    with pytest.raises(InputError):
        with atomic_path(results, root=results):  # the root itself would be replaced
            pass
    with pytest.raises(InputError, match="not a file or folder name"):
        with atomic_path(results / "s" / "..", root=results):
            pass
    # a link inside the results folder that leads out of it
    (tmp_path / "elsewhere").mkdir()
    (results / "s").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="elsewhere"):
        with atomic_path(results / "s" / "x.json", root=results):
            pass
    assert list((tmp_path / "elsewhere").iterdir()) == []
    # inside: written
    with atomic_path(results / "t" / "sort" / "g.npz", root=results) as tmp:
        tmp.write_bytes(b"1")
    assert (results / "t" / "sort" / "g.npz").read_bytes() == b"1"


def test_every_write_checks_the_workflows_results_root(tmp_path, monkeypatch):
    """The Snakefile sets $NEURODICT_RESULTS_ROOT for its jobs: every step's writes are checked."""
    results = tmp_path / "results"
    monkeypatch.setenv(RESULTS_ROOT_ENV, str(results))
    with pytest.raises(InputError, match="outside the results folder"):
        write_json(results / "s" / "sort" / ".." / ".." / ".." / "x.json", {})
    assert not (tmp_path / "x.json").exists()
    write_json(results / "s" / "ok.json", {"a": 1})
    assert json.loads((results / "s" / "ok.json").read_text()) == {"a": 1}


def test_results_path_refuses_escapes(tmp_path):
    assert results_path(tmp_path, "sort", "g.npz") == tmp_path / "sort" / "g.npz"
    for parts in (("..", "x"), ("sort", "..", "..", "x"), ("/etc/passwd",)):
        with pytest.raises(InputError, match="outside the results folder"):
            results_path(tmp_path, *parts)


def test_rule_shell_parameters_are_quoted():
    """Every value a rule puts into its shell command is quoted ({x:q}); only {threads} is a
    number the workflow itself sets."""
    fields = [
        (smk.name, field)
        for smk in sorted((REPO / "rules").glob("*.smk"))
        for command in re.findall(r"shell:\n((?:\s+\".*\"\n)+)", smk.read_text())
        for field in re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", command)
    ]
    assert len(fields) > 30  # every rule's command was read
    for name, field in fields:
        assert field == "threads" or field.endswith(":q"), (name, field)


# --- temporaries of live and dead writers ----------------------------------------------------


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_atomic_path_leaves_a_live_writers_temporary_and_removes_a_dead_ones(tmp_path):
    host = lock.hostname()
    live = subprocess.Popen(["sleep", "60"])
    try:
        mine = tmp_path / f".lfp.tmp-{host}-{live.pid}"  # another job writing lfp right now
        mine.mkdir()
        gone = tmp_path / f".lfp.tmp-{host}-{dead_pid()}"  # a killed job's
        gone.mkdir()
        old = tmp_path / f".lfp.tmp-{dead_pid()}"  # an older neurodict's name, writer gone
        old.mkdir()
        remote = tmp_path / ".lfp.tmp-othernode-1"  # another host's: cannot be checked
        remote.mkdir()
        with atomic_path(tmp_path / "lfp") as tmp:
            assert tmp.name == f".lfp.tmp-{host}-{os.getpid()}"
            tmp.mkdir()
        assert mine.is_dir() and remote.is_dir()
        assert not gone.exists() and not old.exists()
        assert (tmp_path / "lfp").is_dir()
    finally:
        live.kill()
        live.wait()


# --- one run per results folder ---------------------------------------------------------------


def shared_config(work: Path, tiny_session: Path, results: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    write_yaml(
        work / "config.yaml", {"sessions": {"tiny": str(tiny_session)}, "results_dir": str(results)}
    )


def hold_lock(results: Path, workdir: Path) -> subprocess.Popen:
    """Another process that holds the results folder's lock until killed."""
    code = (
        "import sys, time; from neurodict.common import lock; "
        "lock.acquire(sys.argv[1], workdir=sys.argv[2]); print('held', flush=True); "
        "time.sleep(600)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(results), str(workdir)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_second_run_on_a_locked_results_folder_is_refused_then_takes_a_stale_lock(
    tiny_session, tmp_path
):
    results = tmp_path / "shared-results"
    shared_config(tmp_path / "B", tiny_session, results)
    holder = hold_lock(results, tmp_path / "A")  # run A, from another working directory
    try:
        out = snakemake(tmp_path / "B", "--until", "ingest")
        text = out.stdout + out.stderr
        assert out.returncode != 0, text
        assert (
            f"{results / lock.LOCK_NAME}: the results folder {results} is in use by another "
            f"run: snakemake process {holder.pid} on host {lock.hostname()}, working "
            f"directory {tmp_path / 'A'}"
        ) in text, text
        assert "Two runs must not write one results folder" in text
        assert not (results / "tiny").exists()  # ingest did not run
        assert lock.read_holder(results).pid == holder.pid  # A's lock untouched
    finally:
        holder.kill()  # kill -9: the lock stays, its process is gone
        holder.wait()
    assert lock.read_holder(results).pid == holder.pid
    out = snakemake(tmp_path / "B", "--until", "ingest")
    assert out.returncode == 0, out.stderr[-3000:]
    assert (results / "tiny" / "session.json").is_file()
    assert not (results / lock.LOCK_NAME).exists()  # given back at the end of the run


def test_rerun_after_kill_9_unlocks_snakemakes_lock_itself(tiny_session, tmp_path):
    work = tmp_path / "w"
    shared_config(work, tiny_session, Path("results"))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    args = [
        str(BIN / "snakemake"),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(work / "config.yaml"),
        "--cores",
        "1",
        "--until",
        "ingest",
        "--rerun-incomplete",
    ]
    run = subprocess.Popen(
        args,
        cwd=work,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the run has started its jobs: both locks taken
            holder = lock.read_holder(work / "results")
            if holder is not None and holder.snakemake_locks:
                break
            assert run.poll() is None, "the run ended before it could be killed"
            time.sleep(0.1)
        else:
            pytest.fail("the run did not take the results lock")
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # snakemake and its jobs, as kill -9 of the group
        run.wait()
    assert list((work / ".snakemake" / "locks").glob("*.lock"))  # Snakemake's lock was left
    out = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "neurodict: removed Snakemake's lock left by a killed run in this folder" in text
    assert (work / "results" / "tiny" / "session.json").is_file()
    assert not (work / "results" / lock.LOCK_NAME).exists()


def write_holder(results: Path, **fields) -> lock.Holder:
    holder = lock.Holder(
        **{
            "host": lock.hostname(),
            "pid": dead_pid(),
            "started": None,
            "workdir": str(results.parent),
            "since": "earlier",
            "token": "t0",
            **fields,
        }
    )
    results.mkdir(parents=True, exist_ok=True)
    (results / lock.LOCK_NAME).write_text(json.dumps(holder.__dict__))
    return holder


def test_lock_refusals_and_take_overs(tmp_path):
    results = tmp_path / "results"
    write_holder(results, host="another-node", pid=os.getpid())
    with pytest.raises(lock.ResultsLocked, match="cannot be checked from here"):
        lock.acquire(results)
    # a dead process's lock, and one whose pid now belongs to another process: taken over
    for fields in ({}, {"pid": os.getpid(), "started": "0"}):
        write_holder(results, **fields)
        held = lock.acquire(results)
        assert lock.read_holder(results).pid == os.getpid()
        held.release()
        assert not (results / lock.LOCK_NAME).exists()
    # a release gives back only its own lock
    held = lock.acquire(results)
    write_holder(results, token="someone-else")
    held.release()
    assert lock.read_holder(results).token == "someone-else"
    (results / lock.LOCK_NAME).write_text("{not json")
    with pytest.raises(InputError, match=f"{results / lock.LOCK_NAME}: not a lock file"):
        lock.acquire(results)
    assert sorted(p.name for p in results.iterdir()) == [lock.LOCK_NAME]  # no temporaries left


def test_snakemake_lock_of_a_killed_run_kept_when_its_jobs_may_still_run(tmp_path):
    work = tmp_path / "w"
    locks = work / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text("results/s/session.json\n")
    recorded = {".snakemake/locks/0.output.lock": lock.file_digest(locks / "0.output.lock")}
    results = work / "results"
    write_holder(results, workdir=str(work), local_exec=False, snakemake_locks=recorded)
    found, why = lock.stale_snakemake_locks(results, work)
    assert found == [] and "submitted its jobs to a cluster" in why
    write_holder(results, workdir=str(work), local_exec=True, snakemake_locks=recorded)
    assert lock.stale_snakemake_locks(results, work) == ([locks / "0.output.lock"], "")
    # a lock file since rewritten by another run is not the killed run's
    (locks / "0.output.lock").write_text("results/other/session.json\n")
    assert lock.stale_snakemake_locks(results, work) == ([], "")
    # a live holder's: never
    write_holder(
        results,
        workdir=str(work),
        local_exec=True,
        pid=os.getpid(),
        snakemake_locks={
            ".snakemake/locks/0.output.lock": lock.file_digest(locks / "0.output.lock")
        },
    )
    assert lock.stale_snakemake_locks(results, work) == ([], "")
