"""Exports: the workflow's session.nwb passes nwbinspector and reads back; phy; posteriors."""

from __future__ import annotations

import datetime
import json
import re
import shutil

import numpy as np
import pytest
import spikeinterface as si
import spikeinterface.core as sc

from neurodict.cli import main
from neurodict.common.errors import InputError
from neurodict.export import step as export_step
from neurodict.export.posteriors import ExportInputError, posterior_summary
from neurodict.sort.unit_model import descriptions, peak_drift, peak_point, unit_model
from tests.ingest.test_subject import SUBJECT


def test_nwb_passes_nwbinspector(workflow_results):
    from nwbinspector import Importance, inspect_nwbfile

    messages = [
        m
        for m in inspect_nwbfile(nwbfile_path=workflow_results / "tiny" / "session.nwb")
        if m.importance.value >= Importance.BEST_PRACTICE_VIOLATION.value
    ]
    assert not messages, [(m.check_function_name, m.message) for m in messages]


def test_nwb_reads_back(workflow_results):
    from pynwb import NWBHDF5IO

    sorted_units = si.load(workflow_results / "tiny" / "sorting")
    with NWBHDF5IO(workflow_results / "tiny" / "session.nwb", "r") as io:
        nwb = io.read()
        electrodes = nwb.electrodes.to_dataframe()
        assert list(electrodes["location"]) == ["CA1"] * 4 + ["PFC"] * 4
        assert list(electrodes["group_name"]) == ["CA1_tt"] * 4 + ["PFC_tt"] * 4
        units = nwb.units.to_dataframe()
        assert list(units["unit_name"]) == [str(u) for u in sorted_units.unit_ids]
        for i, unit in enumerate(sorted_units.unit_ids):
            np.testing.assert_allclose(
                units["spike_times"].iloc[i], sorted_units.get_unit_spike_train(unit) / 10000.0
            )
        assert {
            "snr",
            "firing_rate",
            "isi_violations_ratio",
            "region",
            "posterior_mean",
            "posterior_p05",
        } <= set(units.columns)
        assert units["posterior_mean"].between(0, 1).all()
        assert units["waveform_mean"].iloc[0].ndim == 1
        lfp = nwb.processing["ecephys"]["region_lfp"]
        assert lfp.data.shape == (30000, 2) and lfp.rate == 1000.0
        tables = nwb.processing["neurodict"].data_interfaces
        assert {"lfp_scores", "clusters", "dictionary_atoms", "dictionary_filters"} <= set(tables)
        scores = tables["lfp_scores"].to_dataframe()
        assert scores["r2_heldout"].dtype == float and len(scores) > 0


def test_phy_folder(workflow_results):
    phy = workflow_results / "tiny" / "phy"
    sorted_units = si.load(workflow_results / "tiny" / "sorting")
    assert np.load(phy / "spike_times.npy").size == sorted_units.to_spike_vector().size
    assert np.load(phy / "templates.npy").shape[0] == sorted_units.get_num_units()
    params = (phy / "params.py").read_text()
    assert "spikeband" in params and "n_channels_dat = 8" in params


@pytest.fixture
def two_units():
    return sc.NumpySorting.from_unit_dict(
        {"a": np.array([10, 30, 50]), "b": np.array([20, 40])}, sampling_frequency=1000.0
    )


def test_posterior_summary(two_units, tmp_path):
    vector = two_units.to_spike_vector()
    prob = np.where(vector["unit_index"] == 0, 0.9, 0.5)
    np.savez(tmp_path / "spikes.npz", probability=prob, unit_index=vector["unit_index"])
    summary = posterior_summary(two_units, tmp_path / "spikes.npz")
    np.testing.assert_allclose(summary["posterior_mean"], [0.9, 0.5])
    np.testing.assert_allclose(summary["posterior_p05"], [0.9, 0.5])


@pytest.mark.parametrize(
    "arrays, expected",
    [
        ({"prob": np.ones(5)}, "expected an array 'probability'"),
        ({"probability": np.ones(4)}, "has shape (4,); expected one value per spike"),
        ({"probability": np.full(5, 1.5)}, "must lie in [0, 1]"),
        ({"probability": np.ones(5), "unit_index": np.zeros(5, int)}, "'unit_index' differs"),
    ],
)
def test_posterior_summary_rejects_mismatch(two_units, tmp_path, arrays, expected):
    np.savez(tmp_path / "spikes.npz", **arrays)
    with pytest.raises(ExportInputError, match=re.escape(expected)):
        posterior_summary(two_units, tmp_path / "spikes.npz")


def test_export_command_rejects_bad_probabilities(tiny_session, tmp_path, capsys):
    np.savez(tmp_path / "spikes.npz", probability=np.ones(3))
    assert (
        main(
            [
                "export",
                "--results",
                str(tmp_path),
                "--sorting",
                str(tiny_session.parent / "truth_sorting"),
                "--probabilities",
                str(tmp_path / "spikes.npz"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "neurodict export: error:" in err and "expected one value per spike" in err
    assert not (tmp_path / "session.nwb").exists()


def test_export_step_adds_posteriors(workflow_results, tiny_session, tmp_path):
    """With the sorter's per-spike probabilities, each unit gets their mean and 5th percentile."""
    from pynwb import NWBHDF5IO

    results = tmp_path / "tiny"
    shutil.copytree(
        workflow_results / "tiny",
        results,
        ignore=shutil.ignore_patterns("phy", "session.nwb", "lfp"),
    )
    sorting_dir = tiny_session.parent / "truth_sorting"
    vector = si.load(sorting_dir).to_spike_vector()
    np.savez(tmp_path / "spikes.npz", probability=np.linspace(0.0, 1.0, vector.size))
    figures = export_step.run(results, sorting_dir, probabilities=tmp_path / "spikes.npz")
    assert figures["n_units"] == 6 and "posterior_mean" in figures["unit_columns"]
    with NWBHDF5IO(results / "session.nwb", "r") as io:
        units = io.read().units.to_dataframe()
    assert units["posterior_mean"].between(0, 1).all()
    assert (units["posterior_p05"] <= units["posterior_mean"]).all()
    assert "presence" not in units.columns  # the sorter's model describes its own units only
    assert not list(results.glob(".*tmp-*"))


def test_nwb_units_have_the_sorters_model(workflow_results):
    """Each sorted unit's presence and drift columns are sorter.npz's posterior for that unit."""
    from pynwb import NWBHDF5IO

    tiny = workflow_results / "tiny"
    model, spikes = np.load(tiny / "sorter.npz"), np.load(tiny / "spikes.npz")
    with NWBHDF5IO(tiny / "session.nwb", "r") as io:
        table = io.read().units
        units = table.to_dataframe()
        assert "posterior probability" in table["presence"].description
        assert "posterior mean" in table["drift_peak_uv"].description
    described = set()
    for g in ("CA1_tt", "PFC_tt"):
        for k, u in enumerate(spikes[f"units_{g}"]):
            row = units.iloc[int(u)]
            assert row["unit_name"] == str(u)
            np.testing.assert_allclose(row["presence"], model[f"{g}/presence"][k])
            templates = model[f"{g}/templates_uv"][k]
            m, t = np.unravel_index(np.abs(templates.mean(0)).argmax(), templates.shape[1:])
            np.testing.assert_allclose(row["drift_peak_uv"], model[f"{g}/drift_uv"][k][:, m, t])
            np.testing.assert_allclose(
                row["drift_peak_sd_uv"], model[f"{g}/drift_sd_uv"][k][:, m, t]
            )
            described.add(int(u))
    assert described and all(np.isfinite(units["presence"].iloc[u]).all() for u in described)
    for u in set(range(len(units))) - described:  # refractory-conflict units: not in the model
        assert np.isnan(units["presence"].iloc[u]).all()


def _sorter_files(folder):
    """sorter.npz and spikes.npz of a session with units 0, 1 (group A), 2 (A's refractory
    conflicts) and 3 (group B); 2 epochs, 3 channels, 4 samples."""
    templates = np.zeros((2, 2, 3, 4))
    templates[0, :, 0, 1] = -80.0  # unit 0 peaks on channel 0, which its model did not see
    templates[0, :, 2, 3] = -30.0  # ... its largest seen value: channel 2, sample 3
    templates[1, :, 1, 2] = -60.0
    drift = templates + np.arange(2)[None, :, None, None]
    drift[0, :, 0] = np.nan
    np.savez(
        folder / "sorter.npz",
        **{
            "A/presence": np.array([[0.95, 0.1], [0.7, 0.8]]),
            "A/templates_uv": templates,
            "A/drift_uv": drift,
            "A/drift_sd_uv": np.full(drift.shape, 2.0),
            "B/presence": np.full((1, 2), np.nan),
            "B/templates_uv": np.ones((1, 2, 3, 4)),
            "B/drift_uv": np.full((1, 2, 3, 4), np.nan),
            "B/drift_sd_uv": np.full((1, 2, 3, 4), np.nan),
        },
    )
    np.savez(folder / "spikes.npz", units_A=np.array([0, 1]), units_B=np.array([3]))
    return folder / "sorter.npz", folder / "spikes.npz"


def test_unit_model(tmp_path):
    model = unit_model(*_sorter_files(tmp_path), ["A", "B"], n_units=4)
    np.testing.assert_array_equal(model["presence"][:2], [[0.95, 0.1], [0.7, 0.8]])
    assert np.isnan(model["presence"][2:]).all()  # A's refractory conflicts; B has no model
    np.testing.assert_array_equal(model["drift_peak_uv"][:2], [[-30.0, -29.0], [-60.0, -59.0]])
    np.testing.assert_array_equal(model["drift_peak_sd_uv"][:2], 2.0)
    assert np.isnan(model["drift_peak_uv"][2:]).all()
    assert set(descriptions(60.0)) == set(model)
    assert "epoch of 60 s" in descriptions(60.0)["presence"]


def test_unit_model_rejects_other_numbering(tmp_path):
    with pytest.raises(InputError, match=r"'units_B' \(3\) does not fit a sorting of 3 units"):
        unit_model(*_sorter_files(tmp_path), ["A", "B"], n_units=3)


def test_peak_drift_skips_unseen_channels():
    templates = np.zeros((2, 2, 3))
    templates[:, 0, 1], templates[:, 1, 2] = 9.0, -4.0
    drift = templates.copy()
    drift[:, 0] = np.nan
    assert peak_point(templates, drift) == (1, 2)
    mean, sd = peak_drift(templates, drift, np.ones_like(drift))
    np.testing.assert_array_equal(mean, [-4.0, -4.0])
    assert peak_point(templates, np.full_like(drift, np.nan)) is None
    assert np.isnan(peak_drift(templates, np.full_like(drift, np.nan), drift)[0]).all()


def test_nwb_subject_from_session_json(workflow_results, tiny_session, tmp_path):
    """session.json's subject becomes the NWB Subject, field for field, and its start time the
    file's; nwbinspector's subject checks then pass. A mouse's electrode locations are checked
    against the Allen CCF, which knows CA1 but not the synthetic session's 'PFC'."""
    from nwbinspector import Importance, inspect_nwbfile
    from pynwb import NWBHDF5IO

    results = tmp_path / "tiny"
    shutil.copytree(
        workflow_results / "tiny",
        results,
        ignore=shutil.ignore_patterns("phy", "session.nwb", "lfp"),
    )
    subject = SUBJECT
    info = json.loads((results / "session.json").read_text())
    info |= {"subject": subject, "session_start_time": "2024-03-05T10:00:00+00:00"}
    (results / "session.json").write_text(json.dumps(info))
    export_step.run(results, tiny_session.parent / "truth_sorting")
    with NWBHDF5IO(results / "session.nwb", "r") as io:
        nwb = io.read()
        s = nwb.subject
        assert (s.subject_id, s.species, s.sex, s.age) == ("M12", "Mus musculus", "F", "P90D")
        assert (s.genotype, s.strain, s.description) == (
            "Pvalb-IRES-Cre/wt",
            "C57BL/6J",
            "Implanted in CA1 and PFC.",
        )
        assert s.date_of_birth == datetime.datetime(2023, 12, 6, tzinfo=datetime.UTC)
        assert nwb.session_start_time == datetime.datetime(2024, 3, 5, 10, tzinfo=datetime.UTC)
    messages = [
        (m.check_function_name, m.message)
        for m in inspect_nwbfile(nwbfile_path=results / "session.nwb")
        if m.importance.value >= Importance.BEST_PRACTICE_VIOLATION.value
    ]
    assert [name for name, _ in messages] == ["check_electrodes_location_allen_ccf"]
    assert "Electrode location 'PFC' is not a term in the Allen" in messages[0][1]
