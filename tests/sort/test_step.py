"""The sort stage reads the detect stage's peaks: one detection per session."""

from __future__ import annotations

import json

import numpy as np
import spikeinterface as si
from scipy import sparse

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


def test_two_units_spikes_at_one_sample_keep_the_sorting_and_spikes_npz_in_one_order(tmp_path):
    """The overlap pass can give two units a spike at the same sample, in either order: the
    session's sorting lists them by sample, then unit, and spikes.npz row by row with it."""
    from dataclasses import replace

    from neurodict.sort.combine import combine_groups
    from neurodict.sort.local import LocalSnippets
    from neurodict.sort.params import SortParams
    from neurodict.sort.run import GroupResult, one_unit

    samples = np.array([100, 500, 500, 900])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]], np.float32)
    x = LocalSnippets.full(np.zeros((4, 2, 48), np.float32))
    one = one_unit(x, samples, 30000.0, 1.0, SortParams())
    two = replace(
        one,
        labels=np.array([0, 1, 0, 1]),  # unit 1 before unit 0 at sample 500
        reason=np.zeros(4, np.int8),
        probability=sparse.csr_array(probabilities),
        multi_unit=np.zeros(2, bool),
        templates=np.repeat(one.templates, 2, axis=0),
    )
    part = GroupResult(samples, np.zeros(4), two, np.eye(48), np.ones(2), np.array(["a", "b"]), 3e4)
    sorting, _, units = combine_groups({"g": part}, {"a": "CA1", "b": "CA1"}, 30000.0)
    vector = sorting.to_spike_vector()
    np.testing.assert_array_equal(vector["sample_index"], [100, 500, 500, 900])
    np.testing.assert_array_equal(vector["unit_index"], [0, 0, 1, 1])
    sort_step.write_spikes(tmp_path / "spikes.npz", sorting, {"g": part}, units, [0])
    spikes = np.load(tmp_path / "spikes.npz")
    np.testing.assert_array_equal(spikes["unit_index"], [0, 0, 1, 1])
    np.testing.assert_allclose(spikes["probability"], [0.9, 0.7, 0.8, 0.6])
    # every unit's, in the group's order, read back as written
    written = sort_step.group_probabilities(spikes, "g")
    np.testing.assert_array_equal(written.toarray(), probabilities)
