"""The workflow's steps as plain functions: read inputs, compute, write outputs atomically.

Each step writes its outputs under a temporary name, renames them when complete and records
its resolved parameters, package versions and run time in ``<step>.provenance.json``. The
Snakemake rules and the command line call these functions; tests call them directly.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import spikeinterface as si
import spikeinterface.core as sc

from neurodict import detect, preprocess
from neurodict.config import load_config, load_session
from neurodict.io import open_recording
from neurodict.outputs import atomic_path, provenance, write_json


def session_info(results: Path) -> dict:
    """The session as resolved at ingest time (``results/<session>/session.json``)."""
    return json.loads((Path(results) / "session.json").read_text())


def ingest(session_file: str | Path, out_dir: str | Path, config: dict | None = None,
           name: str | None = None) -> sc.BaseRecording:
    """Validate a session, open its recording and record both.

    Writes ``session.json`` (the resolved session and workflow parameters) and
    ``recording.json`` (the lazy recording with probe and channel properties ``group``,
    ``region``, ``bad``; ``spikeinterface.load`` reopens it). Raw data are only read.
    """
    started = time.time()
    config = config or load_config()
    session = load_session(session_file, config=config, name=name)
    rec = open_recording(session)
    out_dir = Path(out_dir)
    with atomic_path(out_dir / "recording.json") as tmp:
        rec.dump_to_json(tmp, include_properties=True)
    info = session.to_dict() | {
        "num_channels_used": rec.get_num_channels(),
        "duration_s": rec.get_total_duration(),
        "sampling_frequency_hz": rec.sampling_frequency,
    }
    write_json(out_dir / "session.json", info)
    write_json(out_dir / "ingest.provenance.json", provenance("ingest", info, started))
    return rec


def preprocess_session(results: str | Path, n_jobs: int = 1) -> None:
    """Spike band, channel LFPs and region LFPs of an ingested session, saved as folders.

    Reads ``recording.json`` and ``session.json`` in `results`; writes ``spikeband/``,
    ``lfp/`` and ``region_lfp/`` (spikeinterface binary folders, float32 microvolts).
    """
    started = time.time()
    results = Path(results)
    session = session_info(results)
    rec = si.load(results / "recording.json")
    job = {"n_jobs": n_jobs, "chunk_duration": "10s", "progress_bar": True}
    p = session["params"]
    lfp = preprocess.lfp_band(rec, p["lfp"], session["mains_hz"])
    for name, out in (("spikeband", preprocess.spike_band(rec, p["spikeband"])), ("lfp", lfp)):
        with atomic_path(results / name) as tmp:
            out.save(folder=tmp, **job)
    lfp = si.load(results / "lfp")
    with atomic_path(results / "region_lfp") as tmp:
        preprocess.region_lfp(lfp, p["lfp"]["region_reference"]).save(folder=tmp, **job)
    write_json(results / "preprocess.provenance.json",
               provenance("preprocess", {k: p[k] for k in ("spikeband", "lfp")}
                          | {"mains_hz": session["mains_hz"]}, started))


def detect_session(results: str | Path, n_jobs: int = 1) -> np.ndarray:
    """Detect spikes per electrode group in ``spikeband/``.

    Writes ``peaks.npy`` (structured, :data:`neurodict.detect.PEAK_DTYPE`) and
    ``detection.tsv`` (group, region, n_channels, n_peaks, rate_hz).
    """
    started = time.time()
    results = Path(results)
    rec = si.load(results / "spikeband")
    params = session_info(results)["params"]["detection"]
    peaks = detect.detect_group_peaks(rec, params, n_jobs=n_jobs)
    with atomic_path(results / "peaks.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, peaks)
    write_tsv(results / "detection.tsv", detect.peak_counts(rec, peaks))
    write_json(results / "detect.provenance.json", provenance("detect", params, started))
    return peaks


def write_tsv(path: str | Path, rows: list[dict]) -> None:
    """Write dict rows as a tab-separated table with a header, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)


def read_tsv(path: str | Path) -> list[dict]:
    """Read a table written by :func:`write_tsv` (values as strings)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))
