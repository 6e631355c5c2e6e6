"""How every step writes: to a temporary name renamed when complete; JSON and TSV tables.

A killed run leaves only ``.<stem>.tmp-<pid><suffix>`` entries, never a file or folder that looks
finished; Snakemake's ``--rerun-incomplete`` then redoes the step, and its next write of the same
output removes what the killed writer left.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `final`; rename it to `final` when the block succeeds.

    Works for files and folders alike (the block creates what it needs at the yielded path).
    On an exception the temporary is removed and `final` is left untouched. Temporaries of
    `final` left by a killed writer (``.<stem>.tmp-<pid><suffix>``) are removed first: only one
    job writes an output at a time.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.stem}.tmp-{os.getpid()}{final.suffix}"
    pattern = f".{glob.escape(final.stem)}.tmp-[0-9]*{glob.escape(final.suffix)}"
    for stale in final.parent.glob(pattern):
        if stale.name[len(final.stem) + 6:len(stale.name) - len(final.suffix)].isdigit():
            _remove(stale)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    _remove(final)
    os.replace(tmp, final)


def write_json(path: str | Path, data: dict) -> None:
    """Write `data` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str))


def write_tsv(path: str | Path, rows: list[dict]) -> None:
    """Write dict rows as a tab-separated table with a header, atomically."""
    with atomic_path(path) as tmp:
        pd.DataFrame.from_records(rows).to_csv(tmp, sep="\t", index=False)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_tsv`: numbers and booleans typed, empty cells NaN.

    Identifiers (``unit_id``, ``unit``, ``left_out``, ``group``, ``region`` and the like) stay
    strings, whatever they look like.
    """
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""],
                       dtype={c: str for c in STRING_COLUMNS})


def read_tsv(path: str | Path) -> list[dict]:
    """The rows of :func:`read_table` as dicts; an empty cell is ``None``."""
    frame = read_table(path)
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


# Columns that name things: never converted to numbers ("1" is a unit id, not an integer).
STRING_COLUMNS = ("unit", "unit_id", "left_out", "group", "region", "unit_region", "home_region",
                  "window", "band", "condition", "session", "name", "predictors", "model",
                  "kind", "cluster_id")
