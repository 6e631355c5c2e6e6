"""How every step writes: to a temporary name renamed when complete; JSON and TSV tables.

A killed run leaves only ``.<stem>.tmp-<host>-<pid><suffix>`` entries, never a file or folder that
looks finished; Snakemake's ``--rerun-incomplete`` then redoes the step, and its next write of the
same output removes what the killed writer left (only once that writer is gone: a temporary of a
live process, or of one on another host, is left alone).

Every output must lie inside the results folder: :func:`atomic_path` refuses a path that leads
out of the root it is given, or of ``$NEURODICT_RESULTS_ROOT`` (which the Snakefile sets for every
job) before it creates or removes anything.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from neurodict.common.errors import InputError
from neurodict.common.lock import hostname, pid_alive

# The results folder every write must stay inside (absolute; set by the Snakefile for its jobs).
RESULTS_ROOT_ENV = "NEURODICT_RESULTS_ROOT"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def inside(path: str | Path, root: str | Path) -> Path:
    """`path` with its folders resolved (links followed, ``..`` applied); an InputError naming it
    when it does not lie inside `root` (the root itself is not inside)."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise InputError(
            f"{path}: not a file or folder name to write; expected a path inside "
            f"the results folder {root}."
        )
    resolved = path.parent.resolve() / path.name
    base = Path(root).resolve()
    if resolved == base or not resolved.is_relative_to(base):
        raise InputError(
            f"{path}: refusing to write outside the results folder {root} "
            f"(the path leads to {resolved})."
        )
    return resolved


def results_root() -> Path | None:
    """The results folder named by ``$NEURODICT_RESULTS_ROOT``; None when it is not set."""
    root = os.environ.get(RESULTS_ROOT_ENV)
    return Path(root) if root else None


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", hostname())


def _writer_gone(middle: str) -> bool:
    """Whether the writer named in a temporary's ``<host>-<pid>`` (or old ``<pid>``) is gone."""
    host, _, pid = middle.rpartition("-") if not middle.isdigit() else ("", "", middle)
    if not pid.isdigit():
        return False  # not a temporary's name
    if host and host != _host_tag():
        return False  # another host's writer: cannot be checked from here
    return int(pid) == os.getpid() or not pid_alive(int(pid))


@contextlib.contextmanager
def atomic_path(final: str | Path, root: str | Path | None = None) -> Iterator[Path]:
    """Yield a temporary sibling of `final`; rename it to `final` when the block succeeds.

    Works for files and folders alike (the block creates what it needs at the yielded path).
    On an exception the temporary is removed and `final` is left untouched. Temporaries of
    `final` left by a writer that is gone (``.<stem>.tmp-<host>-<pid><suffix>`` of a dead process
    on this host) are removed first; those of live writers and of other hosts are left alone.

    Raises
    ------
    InputError
        `final` lies outside `root` (default ``$NEURODICT_RESULTS_ROOT`` when set), checked
        before anything is created or removed.
    """
    final = Path(final)
    tmp = _temporary(final, root)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    _remove(final)
    os.replace(tmp, final)


@contextlib.contextmanager
def scratch_path(name: str | Path, root: str | Path | None = None) -> Iterator[Path]:
    """Yield a temporary path for intermediate data, named as :func:`atomic_path` names the
    temporary of `name` (so a killed writer's is cleaned up the same way), removed when the
    block ends, whether it succeeds or not."""
    tmp = _temporary(Path(name), root)
    try:
        yield tmp
    finally:
        _remove(tmp)


def _temporary(final: Path, root) -> Path:
    """``.<stem>.tmp-<host>-<pid><suffix>`` beside `final`, after removing those of writers
    that are gone; `final` checked to lie inside `root`."""
    root = root if root is not None else results_root()
    if root is not None:
        inside(final, root)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.stem}.tmp-"
    pattern = f"{glob.escape(prefix)}*{glob.escape(final.suffix)}"
    for stale in final.parent.glob(pattern):
        middle = stale.name[len(prefix) : len(stale.name) - len(final.suffix)]
        if _writer_gone(middle):
            _remove(stale)
    return final.parent / f"{prefix}{_host_tag()}-{os.getpid()}{final.suffix}"


def write_json(path: str | Path, data: dict) -> None:
    """Write `data` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str))


def write_tsv(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> None:
    """Write dict rows as a tab-separated table with a header, atomically.

    `columns` (default: the first row's keys) keeps the header of a table with no rows."""
    with atomic_path(path) as tmp:
        pd.DataFrame.from_records(rows, columns=columns).to_csv(tmp, sep="\t", index=False)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_tsv`: numbers and booleans typed, empty cells NaN.

    Identifiers (``unit_id``, ``unit``, ``left_out``, ``group``, ``region`` and the like) stay
    strings, whatever they look like.
    """
    return pd.read_csv(
        path,
        sep="\t",
        keep_default_na=False,
        na_values=[""],
        dtype={c: str for c in STRING_COLUMNS},
    )


def read_tsv(path: str | Path) -> list[dict]:
    """The rows of :func:`read_table` as dicts; an empty cell is ``None``."""
    frame = read_table(path)
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


# Columns that name things: never converted to numbers ("1" is a unit id, not an integer).
STRING_COLUMNS = (
    "unit",
    "unit_id",
    "left_out",
    "group",
    "region",
    "unit_region",
    "home_region",
    "window",
    "band",
    "condition",
    "session",
    "name",
    "subject",
    "predictors",
    "model",
    "kind",
    "cluster_id",
)
