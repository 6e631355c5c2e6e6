"""``neurodict preprocess``: spike band (artefacts zeroed), channel LFPs, region LFPs and clean
region LFPs (per electrode group, without its own spikes), saved as folders, and the artefacts'
table."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import spikeinterface as si

from neurodict.common import timeline
from neurodict.common.files import atomic_path, scratch_path, write_json
from neurodict.common.jobs import job_kwargs
from neurodict.common.layout import session_info
from neurodict.common.provenance import provenance
from neurodict.preprocess import artefacts, filters, motion

ARTEFACTS_TSV = "artefacts.tsv"
REGION_LFP_CLEAN = "region_lfp_clean"
MOTION_NPZ = "motion.npz"


def run(results: str | Path, n_jobs: int = 1) -> None:
    """Spike band, channel LFPs, region LFPs and clean region LFPs of an ingested session.

    Every output holds one segment, the session's timeline: a multi-segment recording is
    filtered within each segment, then its segments are laid end to end
    (:mod:`neurodict.common.timeline`).

    Reads ``recording.json`` and ``session.json`` in `results`; writes ``spikeband/``,
    ``lfp/``, ``region_lfp/`` and ``region_lfp_clean/`` (spikeinterface binary folders, float32
    microvolts; the last has one channel per electrode group, see
    :class:`neurodict.preprocess.filters.CleanRegionLFPRecording`) and
    ``artefacts.tsv`` (group, kind, start_s, end_s, duration_ms: the stretches of
    :func:`neurodict.preprocess.artefacts.find_artefacts`, zeroed on their group's channels in
    ``spikeband/`` when ``spikeband.mask_artefacts`` is set; none are looked for otherwise).
    """
    started = time.time()
    results = Path(results)
    session = session_info(results)
    rec = si.load(results / "recording.json")
    p = session["params"]
    # filtered within each segment, then laid end to end (neurodict.common.timeline)
    lfp = timeline.concatenate(filters.lfp_band(rec, p["lfp"], session["mains_hz"]))
    spikeband = timeline.concatenate(filters.spike_band(rec, p["spikeband"]))
    groups = [str(g) for g in dict.fromkeys(spikeband.get_property("group"))]
    with (
        atomic_path(results / "spikeband") as tmp,
        scratch_path(results / "spikeband-uncorrected") as scratch,
    ):
        filtered = scratch if motion.any_estimated(spikeband, p["spikeband"]) else tmp
        job = job_kwargs(spikeband, n_jobs, progress_bar=True)
        spikeband.save(folder=filtered, **job)
        periods = np.zeros(0, artefacts.PERIOD_DTYPE)
        saved = si.load(filtered)
        if p["spikeband"]["mask_artefacts"]:
            raw = timeline.concatenate(filters.good_channels(rec))
            periods = artefacts.find_artefacts(raw, saved, p["spikeband"])
            artefacts.zero_in_place(saved, periods)
        corrected, estimates = motion.correct_groups(saved, p["spikeband"], n_jobs)
        if filtered == scratch and corrected is saved:  # estimated, none drifts: moved whole
            os.replace(scratch, tmp)
        elif filtered == scratch:  # interpolated from the band as filtered
            corrected.save(folder=tmp, **job)
    with atomic_path(results / MOTION_NPZ) as tmp:
        motion.save(tmp, estimates)
    artefacts.write_table(
        results / ARTEFACTS_TSV, artefacts.rows(periods, groups, spikeband.sampling_frequency)
    )
    with atomic_path(results / "lfp") as tmp:
        lfp.save(folder=tmp, **job_kwargs(lfp, n_jobs, progress_bar=True, source=spikeband))
    lfp = si.load(results / "lfp")
    job = job_kwargs(lfp, n_jobs, progress_bar=True)
    chain = filters.lfp_rate_chain(p["lfp"], session["mains_hz"])
    with atomic_path(results / "region_lfp") as tmp:
        filters.region_lfp(lfp, p["lfp"]["region_reference"], chain).save(folder=tmp, **job)
    with atomic_path(results / REGION_LFP_CLEAN) as tmp:
        filters.region_lfp_clean(lfp, chain).save(folder=tmp, **job)
    write_json(
        results / "preprocess.provenance.json",
        provenance(
            "preprocess",
            {k: p[k] for k in ("spikeband", "lfp")} | {"mains_hz": session["mains_hz"]},
            started,
        ),
    )
