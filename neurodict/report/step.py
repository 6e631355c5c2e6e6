"""``neurodict report``: one recording session's self-contained HTML report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import spikeinterface as si

from neurodict.common.files import read_tsv
from neurodict.common.layout import session_info
from neurodict.preprocess.step import ARTEFACTS_TSV, MOTION_NPZ
from neurodict.report.provenance import provenance_section
from neurodict.report.session import (
    clusters_section,
    detection_section,
    dictionary_section,
    group_notes,
    preprocessing_section,
    recording_section,
    render,
)
from neurodict.report.sorting import sorting_section


def run(
    results: str | Path,
    out_html: str | Path | None = None,
    benchmarks_dir: str | Path | None = None,
) -> Path:
    """Render ``report.html`` for one session from the files in `results`.

    Parameters
    ----------
    results : path
        The session's results folder (``results/<session>``).
    out_html : path, optional
        The page to write (atomically; default ``<results>/report.html``).
    benchmarks_dir : path, optional
        Snakemake's benchmark files of the session (default: ``results/../benchmarks/<session>``,
        where the rules write them).
    """
    results = Path(results)
    out_html = results / "report.html" if out_html is None else out_html
    if benchmarks_dir is None:
        benchmarks_dir = results.parent / "benchmarks" / results.name
    info = session_info(results)
    rec = si.load(results / "recording.json")
    spikeband = si.load(results / "spikeband")
    artefacts = results / ARTEFACTS_TSV
    motion = results / MOTION_NPZ
    detected = read_tsv(results / "detection.tsv")
    notes = group_notes(info, spikeband, detected)
    sections = [
        recording_section(info, rec),
        preprocessing_section(
            info,
            rec,
            spikeband,
            si.load(results / "region_lfp"),
            read_tsv(artefacts) if artefacts.exists() else None,
            np.load(motion) if motion.exists() else None,
        ),
        detection_section(info, detected, notes),
    ]
    if (results / "units.tsv").exists():
        sections.append(sorting_section(results, info, notes))
    if (results / "lfp_dict.npz").exists():
        sections.append(dictionary_section(results))
    if (results / "clusters_summary.tsv").exists():
        sections.append(clusters_section(results))
    sections.append(provenance_section(info, benchmarks_dir))
    return render(f"Recording session {info['name']}", sections, out_html)
