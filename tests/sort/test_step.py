"""The sort stage reads the detect stage's peaks: one detection per session."""

from __future__ import annotations

import json

import numpy as np
import spikeinterface as si

from neurodict.detect import step as detect_step
from neurodict.ingest import step as ingest_step
from neurodict.preprocess import step as preprocess_step
from neurodict.sort import step as sort_step


def test_sort_uses_the_peaks_of_the_detect_stage(tiny_session, tmp_path):
    """Only the group's peaks of the first half are kept in peaks.npy: the sorted spikes lie
    there too (the sort stage does not detect again; template matching, which looks for
    spikes everywhere, is off here)."""
    ingest_step.run(tmp_path, tiny_session)
    info = json.loads((tmp_path / "session.json").read_text())
    info["params"]["sorting"]["template_matching"] = False
    (tmp_path / "session.json").write_text(json.dumps(info))
    preprocess_step.run(tmp_path)
    peaks = detect_step.run(tmp_path)
    rec = si.load(tmp_path / "spikeband")
    group = str(rec.get_property("group")[0])
    half = rec.get_num_samples() // 2
    kept = peaks[(peaks["group_index"] != 0) | (peaks["sample_index"] < half)]
    np.save(tmp_path / "peaks.npy", kept)
    result = sort_step.run(tmp_path, group)
    assert result.samples.size > 0.3 * np.sum(kept["group_index"] == 0)
    align = int(1e-3 * rec.sampling_frequency)  # peaks move by at most align_ms onto the energy
    assert result.samples.max() < half + align
