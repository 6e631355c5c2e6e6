"""How every step writes: to a temporary name renamed when complete, with a provenance record.

A killed run leaves only ``.<stem>.tmp-<pid><suffix>`` entries, never a file or folder that looks
finished; Snakemake's ``--rerun-incomplete`` then redoes the step, and its next write of the same
output removes what the killed writer left.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import platform
import shutil
import time
from collections.abc import Iterator
from pathlib import Path


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


def provenance(step: str, params: dict, started: float) -> dict:
    """What produced an output: step, resolved parameters, package versions, host, run time."""
    import numpy
    import spikeinterface

    from neurodict import __version__

    return {
        "step": step,
        "params": params,
        "neurodict": __version__,
        "spikeinterface": spikeinterface.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_s": round(time.time() - started, 3),
    }
