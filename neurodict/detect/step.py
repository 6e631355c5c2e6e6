"""``neurodict detect``: spike peaks of every electrode group, the sort stage's input."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import spikeinterface as si

from neurodict.common.files import atomic_path, write_json, write_tsv
from neurodict.common.layout import session_info
from neurodict.common.provenance import provenance
from neurodict.detect import peaks as detection

PEAKS_NPY = "peaks.npy"


def run(results: str | Path, n_jobs: int = 1) -> np.ndarray:
    """Detect spikes per electrode group in ``spikeband/``.

    Writes ``peaks.npy`` (structured, :data:`neurodict.detect.peaks.PEAK_DTYPE`) and
    ``detection.tsv`` (group, region, n_channels, n_peaks, rate_hz).
    """
    started = time.time()
    results = Path(results)
    rec = si.load(results / "spikeband")
    params = session_info(results)["params"]["detection"]
    peaks = detection.detect_group_peaks(rec, params, n_jobs=n_jobs)
    with atomic_path(results / PEAKS_NPY) as tmp, open(tmp, "wb") as f:
        np.save(f, peaks)
    write_tsv(results / "detection.tsv", detection.peak_counts(rec, peaks))
    write_json(results / "detect.provenance.json", provenance("detect", params, started))
    return peaks


def group_peaks(results: str | Path, rec: si.BaseRecording, group: str) -> np.ndarray:
    """The peaks of electrode group `group` from ``peaks.npy``, as written by :func:`run`.

    `rec` is the session's spike band (its ``group`` property orders the groups as
    :func:`neurodict.detect.peaks.detect_group_peaks` numbered them).
    """
    names = [str(g) for g in dict.fromkeys(rec.get_property("group"))]
    peaks = np.load(Path(results) / PEAKS_NPY, allow_pickle=False)
    return peaks[peaks["group_index"] == names.index(group)]
