"""``neurodict detect``: spike peaks of every electrode group, the sort stage's input."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import spikeinterface as si

from neurodict.common import timeline
from neurodict.common.files import atomic_path, write_json, write_tsv
from neurodict.common.layout import session_info
from neurodict.common.provenance import provenance
from neurodict.detect import peaks as detection

PEAKS_NPY = "peaks.npy"


def run(results: str | Path, n_jobs: int = 1) -> np.ndarray:
    """Detect spikes per electrode group in ``spikeband/``.

    Writes ``peaks.npy`` (structured, :data:`neurodict.detect.peaks.PEAK_DTYPE`) and
    ``detection.tsv`` (group, region, n_channels, n_peaks, rate_hz, n_at_segment_edges).

    On a multi-segment timeline a peak whose snippet (:func:`snippet_reach`) would hold samples
    of two segments is a spike of neither: it is left out of ``peaks.npy`` and counted per
    group in ``n_at_segment_edges``.
    """
    started = time.time()
    results = Path(results)
    rec = si.load(results / "spikeband")
    info = session_info(results)
    params = info["params"]["detection"]
    peaks = detection.detect_group_peaks(rec, params, n_jobs=n_jobs)
    before, after = snippet_reach(info["params"]["sorting"], rec.sampling_frequency)
    edge = timeline.near_boundary(peaks["sample_index"], timeline.starts(info), before, after)
    with atomic_path(results / PEAKS_NPY) as tmp, open(tmp, "wb") as f:
        np.save(f, peaks[~edge])
    edges = np.bincount(peaks["group_index"][edge], minlength=len(set(rec.get_property("group"))))
    rows = detection.peak_counts(rec, peaks[~edge])
    write_tsv(
        results / "detection.tsv",
        [row | {"n_at_segment_edges": int(n)} for row, n in zip(rows, edges, strict=True)],
    )
    write_json(results / "detect.provenance.json", provenance("detect", params, started))
    return peaks


def snippet_reach(sorting: dict, fs_hz: float) -> tuple[int, int]:
    """Samples before and after a peak that the sorter reads (its snippet, the overlap pass's
    templates and the alignment search), from the ``sorting`` section."""
    align = sorting["align_ms"]
    before = sorting["ms_before"] + align
    after = max(sorting["ms_after"], sorting["peel_ms_after"]) + align
    return int(np.ceil(before * fs_hz / 1000)), int(np.ceil(after * fs_hz / 1000))


def group_peaks(results: str | Path, rec: si.BaseRecording, group: str) -> np.ndarray:
    """The peaks of electrode group `group` from ``peaks.npy``, as written by :func:`run`,
    their ``channel_index`` counted among the group's channels (those of
    :func:`neurodict.common.layout.group_recording`).

    `rec` is the session's spike band (its ``group`` property orders the groups as
    :func:`neurodict.detect.peaks.detect_group_peaks` numbered them).
    """
    groups = np.asarray(rec.get_property("group")).astype(str)
    names = list(dict.fromkeys(groups))
    peaks = np.load(Path(results) / PEAKS_NPY, allow_pickle=False)
    peaks = peaks[peaks["group_index"] == names.index(group)]
    peaks["channel_index"] = np.searchsorted(
        np.flatnonzero(groups == group), peaks["channel_index"]
    )
    return peaks
