"""One workflow run per results folder: ``<results>/.neurodict.lock`` names the run that holds it.

Snakemake's own lock lives in the working directory (``.snakemake/locks``), so two runs started
in different working directories but sharing one results folder would both run, and one's
``ingest`` would rewrite ``session.json`` under the other's ``sort``. The Snakefile therefore takes
this lock when a run starts (Snakemake's ``onstart``, in the process that schedules the jobs, on
SLURM too) and gives it back when the run ends. The file records that process's host, pid and
start time, its working directory and when the lock was taken.

A second run is refused while that process lives on that host; the lock of a process that is
gone (``kill -9``, a reboot) is taken over. A lock held from another host cannot be checked from
here: it is refused, naming the file to delete once that run is over.

:func:`stale_snakemake_locks` finds Snakemake's own lock left by a run killed here, so that the
next run can remove it instead of stopping with "Directory cannot be locked".
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import secrets
import socket
import time
from pathlib import Path

from neurodict.common.errors import InputError

LOCK_NAME = ".neurodict.lock"


class ResultsLocked(InputError):
    """Another run holds the results folder; the message names it and what to do."""


def hostname() -> str:
    """This machine's name, as the lock and the temporary file names record it."""
    return socket.gethostname() or "localhost"


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the command name, which may hold spaces)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot), or None where /proc cannot tell.

    With the pid it tells a live holder from an unrelated process that got its pid later.
    """
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


def pid_alive(pid: int, started: str | None = None) -> bool:
    """Whether process `pid` lives on this host (and, given `started`, is that same process)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    if started is not None:
        now = process_start(pid)
        if now is not None and now != started:
            return False  # the pid now belongs to a later process
    return True


@dataclasses.dataclass(frozen=True)
class Holder:
    """What a lock file says about the run that took it."""

    host: str
    pid: int
    started: str | None
    workdir: str
    since: str
    token: str
    # recorded once the run has started: whether its jobs run here, Snakemake's lock files
    local_exec: bool | None = None
    snakemake_locks: dict[str, str] = dataclasses.field(default_factory=dict)

    def alive(self) -> bool | None:
        """True or False on the holder's own host; None on another (it cannot be checked)."""
        if self.host != hostname():
            return None
        return pid_alive(self.pid, self.started)

    def describe(self) -> str:
        return (
            f"snakemake process {self.pid} on host {self.host}, working directory "
            f"{self.workdir}, since {self.since}"
        )


def _read_lock_file(path: Path) -> Holder:
    try:
        data = json.loads(path.read_text())
        fields = {f.name for f in dataclasses.fields(Holder)}
        return Holder(**{k: v for k, v in data.items() if k in fields})
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError) as exc:
        raise InputError(
            f"{path}: not a lock file that neurodict wrote ({exc}); if no run uses "
            f"this results folder, delete it."
        ) from exc


def read_holder(results: str | Path) -> Holder | None:
    """The run named by ``<results>/.neurodict.lock``; None when there is no lock file.

    A file that cannot be read as a lock (cut short, edited) is an InputError naming it.
    """
    try:
        return _read_lock_file(Path(results) / LOCK_NAME)
    except FileNotFoundError:
        return None


class ResultsLock:
    """A held lock on one results folder; :meth:`release` gives it back (only if still ours)."""

    def __init__(self, path: Path, holder: Holder):
        self.path = path
        self.holder = holder

    def update(self, **changes) -> None:
        """Record more about this run in the lock file (rewritten atomically)."""
        self.holder = dataclasses.replace(self.holder, **changes)
        tmp = self.path.with_name(f"{LOCK_NAME}.{self.holder.token}")
        tmp.write_text(json.dumps(dataclasses.asdict(self.holder), indent=2))
        os.replace(tmp, self.path)

    def release(self) -> None:
        """Delete the lock file if it is still this run's (its token matches)."""
        _HELD.pop(self.path, None)
        with contextlib.suppress(OSError, InputError):
            current = read_holder(self.path.parent)
            if current is not None and current.token == self.holder.token:
                self.path.unlink()


_HELD: dict[Path, ResultsLock] = {}


@atexit.register
def release_all() -> None:
    """Give back every lock this process holds (also at exit: a run stopped with Ctrl-C, which
    calls neither Snakemake's onsuccess nor onerror)."""
    for lock in list(_HELD.values()):
        lock.release()


def acquire(
    results: str | Path, *, workdir: str | Path | None = None, attempts: int = 20
) -> ResultsLock:
    """Take ``<results>/.neurodict.lock`` for this process, over from a dead holder if need be.

    Raises
    ------
    ResultsLocked
        A live process holds it, or a process on another host (which cannot be checked).
    """
    results = Path(results)
    path = results / LOCK_NAME
    if path in _HELD:
        return _HELD[path]
    results.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    mine = Holder(
        host=hostname(),
        pid=pid,
        started=process_start(pid),
        workdir=str(Path(workdir or os.getcwd()).resolve()),
        since=time.strftime("%Y-%m-%d %H:%M:%S %z"),
        token=secrets.token_hex(8),
    )
    for _ in range(attempts):
        if _create(path, mine):
            lock = _HELD[path] = ResultsLock(path, mine)
            return lock
        holder = read_holder(results)
        if holder is None:
            continue  # released meanwhile: try again
        alive = holder.alive()
        if alive is None:
            raise ResultsLocked(
                f"{path}: the results folder {results} is in use by another run: "
                f"{holder.describe()}. That host's processes cannot be checked from here "
                f"({hostname()}); wait for that run to end or, if it is over (killed, machine "
                f"down), delete {path} and run again."
            )
        if alive:
            raise ResultsLocked(
                f"{path}: the results folder {results} is in use by another run: "
                f"{holder.describe()}. Two runs must not write one results folder; wait for "
                f"that run to end (or stop it), or give this run another results_dir."
            )
        _take_over(path, holder)
    raise ResultsLocked(
        f"{path}: could not take the lock in {attempts} attempts (other runs "
        f"kept taking it); run again."
    )


def _create(path: Path, holder: Holder) -> bool:
    """Create the lock file with its whole content at once; False when one exists already."""
    tmp = path.with_name(f"{LOCK_NAME}.{holder.token}")
    tmp.write_text(json.dumps(dataclasses.asdict(holder), indent=2))
    try:
        os.link(tmp, path)  # atomic, on NFS too; fails when the lock exists
        return True
    except FileExistsError:
        return False
    except OSError as exc:  # a file system without hard links: exclusive creation instead
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(tmp.read_text())
        return True
    finally:
        tmp.unlink()


def _take_over(path: Path, stale: Holder) -> None:
    """Remove the lock of a dead holder, unless another run replaced it in the meantime."""
    aside = path.with_name(f"{LOCK_NAME}.stale-{secrets.token_hex(8)}")
    try:
        os.rename(path, aside)  # atomic: of two runs taking over at once, one moves it
    except FileNotFoundError:
        return
    try:
        moved = _read_lock_file(aside)
    except (OSError, InputError):
        moved = None
    if moved is not None and moved.token != stale.token:
        # a live run took the lock between our read and the rename: put its lock back
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    aside.unlink()


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (what a Snakemake lock file held when it was recorded)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _ancestors() -> set[int]:
    """This process and its parents (a wrapper such as `timeout snakemake` is not a job)."""
    found, pid = set(), os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        fields = _stat_fields(pid)
        pid = int(fields[1]) if fields else 0
    return found


def processes_in(workdir: str | Path) -> list[int] | None:
    """Pids of live processes working in `workdir` that run snakemake or neurodict (a killed
    run's orphaned jobs), this process and its parents left out; None where /proc cannot tell."""
    workdir = Path(workdir).resolve()
    proc = Path("/proc")
    if not (proc / "self" / "cwd").exists():
        return None
    mine = _ancestors()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            if Path(os.readlink(entry / "cwd")) != workdir:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"snakemake" in cmdline or b"neurodict" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def stale_snakemake_locks(
    results: str | Path, workdir: str | Path | None = None
) -> tuple[list[Path], str]:
    """Snakemake's lock files that a run killed in this working directory left, or why not.

    Returned only when all of this holds: the results folder's lock names a run in this working
    directory on this host; that process is gone; it ran its jobs on this host (a SLURM run's
    jobs may still be queued); no other process working here runs snakemake or neurodict (the
    killed run's orphaned jobs); and each lock file still holds what that run wrote. Otherwise
    the text says why not (empty when no lock of a killed run from here is involved).
    """
    workdir = Path(workdir or os.getcwd()).resolve()
    try:
        holder = read_holder(results)
    except InputError as exc:
        return [], str(exc)
    if holder is None or Path(holder.workdir) != workdir or holder.alive() is not False:
        return [], ""
    found = []
    for name, digest in holder.snakemake_locks.items():
        path = workdir / name
        with contextlib.suppress(OSError):
            if file_digest(path) == digest:
                found.append(path)
    if not found:
        return [], ""
    if holder.local_exec is not True:
        return [], (
            f"the killed run ({holder.describe()}) submitted its jobs to a cluster; they "
            f"may still be queued or running (squeue --me)"
        )
    others = processes_in(workdir)
    if others is None:
        return [], "this host's processes cannot be listed (/proc)"
    if others:
        return [], f"processes {others} still run snakemake or neurodict in {workdir}"
    return found, ""
