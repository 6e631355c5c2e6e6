"""Two results folders hold the same outputs: equal bytes, or equal numbers within tolerance.

Usage: python tests/slurm/compare.py REFERENCE OTHER

Compares every file under REFERENCE/results with its namesake under OTHER/results (the two
workflow directories), leaving out what differs by design: logs, Snakemake's benchmarks, HTML
reports, provenance records (run times, hosts) and NWB files (creation time, identifier). Text
that names a workflow directory is read with that directory replaced, so two runs in different
folders compare equal. Also fails when a half-written temporary (``.<name>.tmp-<host>-<pid>``,
neurodict.common.files.atomic_path) is left in OTHER.
Exits 1 and lists every difference.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

RTOL = 1e-5
ATOL = 1e-8
LEFT_OUT_DIRS = ("logs", "benchmarks")
LEFT_OUT_NAMES = ("provenance.json", ".snakemake_timestamp")
# NWB files carry their creation time and a random identifier; tests/test_export.py reads them.
LEFT_OUT_SUFFIXES = (".html", ".provenance.json", ".nwb")


def outputs(results: Path) -> set[Path]:
    """Paths, relative to `results`, of every output file that should be reproducible."""
    found = set()
    for path in results.rglob("*"):
        rel = path.relative_to(results)
        if (
            path.is_dir()
            or rel.parts[0] in LEFT_OUT_DIRS
            or path.name in LEFT_OUT_NAMES
            or path.name.endswith(LEFT_OUT_SUFFIXES)
        ):
            continue
        found.add(rel)
    return found


def close(a, b) -> bool:
    """Equal values, with floats (and strings that read as floats) equal within tolerance."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return False
    return (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=RTOL, abs_tol=ATOL)


def arrays_close(a: np.ndarray, b: np.ndarray) -> bool:
    """Same shape and dtype; numbers within tolerance (NaN equal to NaN), the rest equal."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.complexfloating):
        return bool(np.allclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True))
    return bool(np.array_equal(a, b))


def same_content(a: Path, b: Path, dir_a: Path, dir_b: Path) -> bool:
    """Whether file `a` (in workflow directory `dir_a`) and `b` (in `dir_b`) hold the same data."""
    suffix = a.suffix
    if suffix == ".npz":
        with np.load(a, allow_pickle=False) as x, np.load(b, allow_pickle=False) as y:
            return x.files == y.files and all(arrays_close(x[k], y[k]) for k in x.files)
    if suffix == ".npy":
        return arrays_close(np.load(a, allow_pickle=False), np.load(b, allow_pickle=False))
    if suffix == ".raw":  # spikeinterface binary folders: float32 traces
        return arrays_close(np.fromfile(a, dtype="<f4"), np.fromfile(b, dtype="<f4"))
    text_a = a.read_text().replace(str(dir_a), "<workdir>")
    text_b = b.read_text().replace(str(dir_b), "<workdir>")
    if suffix == ".json":
        return close(json.loads(text_a), json.loads(text_b))
    if suffix == ".tsv":
        rows_a = list(csv.reader(text_a.splitlines(), delimiter="\t"))
        rows_b = list(csv.reader(text_b.splitlines(), delimiter="\t"))
        return close(rows_a, rows_b)
    return text_a == text_b


def compare(dir_a: Path, dir_b: Path) -> list[str]:
    """Every difference between the results of workflow directories `dir_a` and `dir_b`."""
    res_a, res_b = dir_a / "results", dir_b / "results"
    files_a, files_b = outputs(res_a), outputs(res_b)
    problems = [f"only in {res_a}: {p}" for p in sorted(files_a - files_b)]
    problems += [f"only in {res_b}: {p}" for p in sorted(files_b - files_a)]
    problems += [f"half-written output left: {p}" for p in sorted(res_b.rglob(".*.tmp-*"))]
    identical = 0
    for rel in sorted(files_a & files_b):
        a, b = res_a / rel, res_b / rel
        if a.read_bytes() == b.read_bytes():
            identical += 1
        elif not same_content(a, b, dir_a, dir_b):
            problems.append(f"differs: {rel}")
    print(
        f"compare: {len(files_a & files_b)} outputs, {identical} byte for byte, "
        f"{len(files_a & files_b) - identical} compared as numbers or with paths replaced"
    )
    return problems


def main(argv: list[str]) -> int:
    dir_a, dir_b = (Path(p).resolve() for p in argv)
    problems = compare(dir_a, dir_b)
    for line in problems:
        print(f"compare: {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
