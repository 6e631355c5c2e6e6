"""The report's provenance section: package versions, resolved parameters, time and memory per rule.

Time and memory come from Snakemake's ``benchmark:`` files (one TSV per rule and session, under
``results/benchmarks/<session>/``); a step run outside Snakemake has none, and the table says so.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

import yaml

from neurodict.common.files import read_tsv

# The packages whose versions decide the results, in the order the report lists them.
PACKAGES = (
    "neurodict",
    "spikeinterface",
    "neo",
    "probeinterface",
    "numpy",
    "scipy",
    "numba",
    "scikit-learn",
    "matplotlib",
    "jinja2",
    "snakemake",
    "pynwb",
    "hdmf",
)

# Snakemake benchmark columns shown, with the report's names (units in the names).
BENCHMARK_COLUMNS = {
    "s": "wall_s",
    "cpu_time": "cpu_s",
    "max_rss": "max_rss_mb",
    "max_uss": "max_uss_mb",
    "mean_load": "mean_load_percent",
    "io_in": "io_in_mb",
    "io_out": "io_out_mb",
}


def package_versions(packages: tuple[str, ...] = PACKAGES) -> list[dict]:
    """Installed version of each of `packages` (``not installed`` where absent), and Python."""
    rows = [{"package": "python", "version": platform.python_version()}]
    for name in packages:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "not installed"
        rows.append({"package": name, "version": version})
    return rows


def benchmark_rows(folder: str | Path) -> list[dict]:
    """One row per Snakemake benchmark file in `folder`: the rule (file stem) and its figures.

    A file with several repeats (``benchmark: repeat(...)``) gives its mean per column.
    Missing or non-numeric values ("NA", "-") are left empty.
    """
    rows = []
    for path in sorted(Path(folder).glob("*.tsv")):
        runs = read_tsv(path)
        row = {"rule": path.stem}
        for column, name in BENCHMARK_COLUMNS.items():
            values = [_number(run.get(column)) for run in runs]
            values = [v for v in values if v is not None]
            row[name] = round(sum(values) / len(values), 3) if values else ""
        rows.append(row)
    return rows


def _number(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def provenance_section(info: dict, benchmarks_dir: str | Path) -> dict:
    """Versions, the session as resolved at ingest (parameters included), time per rule."""
    rows = benchmark_rows(benchmarks_dir)
    resolved = {
        k: info[k]
        for k in ("name", "raw_path", "format", "mains_hz", "windows", "params")
        if k in info
    }
    if rows:
        timing = {
            "kind": "table",
            "id": "benchmarks-table",
            "columns": ["rule", *BENCHMARK_COLUMNS.values()],
            "rows": rows,
        }
    else:
        timing = {
            "kind": "text",
            "text": f"No Snakemake benchmark files in {benchmarks_dir} "
            "(steps run outside Snakemake).",
        }
    return {
        "id": "provenance",
        "title": "Provenance",
        "blocks": [
            {
                "kind": "text",
                "text": "Wall time and memory per rule, from Snakemake's benchmark "
                "files (memory in MB; the report's own rule is not yet "
                "finished when the page is written).",
            },
            timing,
            {
                "kind": "table",
                "id": "versions-table",
                "columns": ["package", "version"],
                "rows": package_versions(),
            },
            {
                "kind": "text",
                "text": "The session and parameters as resolved at ingest "
                "(config/config.yaml defaults merged with the session's "
                "overrides):",
            },
            {"kind": "pre", "text": yaml.safe_dump(resolved, sort_keys=False)},
        ],
    }
