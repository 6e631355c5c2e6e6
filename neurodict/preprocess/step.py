"""``neurodict preprocess``: spike band, channel LFPs and region LFPs, saved as folders."""

from __future__ import annotations

import time
from pathlib import Path

import spikeinterface as si

from neurodict.common.files import atomic_path, write_json
from neurodict.common.layout import session_info
from neurodict.common.provenance import provenance
from neurodict.preprocess import filters


def run(results: str | Path, n_jobs: int = 1) -> None:
    """Spike band, channel LFPs and region LFPs of an ingested session.

    Reads ``recording.json`` and ``session.json`` in `results`; writes ``spikeband/``,
    ``lfp/`` and ``region_lfp/`` (spikeinterface binary folders, float32 microvolts).
    """
    started = time.time()
    results = Path(results)
    session = session_info(results)
    rec = si.load(results / "recording.json")
    job = {"n_jobs": n_jobs, "chunk_duration": "10s", "progress_bar": True}
    p = session["params"]
    lfp = filters.lfp_band(rec, p["lfp"], session["mains_hz"])
    for name, out in (("spikeband", filters.spike_band(rec, p["spikeband"])), ("lfp", lfp)):
        with atomic_path(results / name) as tmp:
            out.save(folder=tmp, **job)
    lfp = si.load(results / "lfp")
    with atomic_path(results / "region_lfp") as tmp:
        filters.region_lfp(lfp, p["lfp"]["region_reference"]).save(folder=tmp, **job)
    write_json(results / "preprocess.provenance.json",
               provenance("preprocess", {k: p[k] for k in ("spikeband", "lfp")}
                          | {"mains_hz": session["mains_hz"]}, started))
