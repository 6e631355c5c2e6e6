"""The dictionary step on spikeinterface folders: outputs, and bad input named or documented."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import spikeinterface.core as sc

from neurodict.cli import main
from neurodict.common.files import read_tsv
from neurodict.config import apply_defaults, load_schema
from neurodict.lfpdict.inputs import LFPDictInputError
from neurodict.lfpdict.step import write_dictionaries

PARAMS = apply_defaults({"sessions": {}}, load_schema("config"))["lfpdict"] | {
    "lag_minus_ms": 50.0,
    "lag_plus_ms": 50.0,
    "n_atoms": 4,
    "n_outer": 3,
    "n_inner": 50,
    "jitter_min_s": 5.0,
    "n_null": 2,
    "backend": "cpu",
}
FS_LFP = 1000.0


def write_inputs(
    tmp_path,
    *,
    duration_s=30.0,
    regions=("CA1", "PFC"),
    unit_regions=None,
    empty_unit=False,
    flat=None,
    sorting_fs=20000.0,
    seed=0,
):
    rng = np.random.default_rng(seed)
    unit_regions = unit_regions or ["CA1", "CA1", "PFC"]
    n = int(duration_s * FS_LFP)
    trains = {
        f"u{i}": np.sort(rng.choice(int(duration_s * sorting_fs), size=150, replace=False))
        for i in range(len(unit_regions))
    }
    if empty_unit:
        trains["u0"] = np.zeros(0, dtype=int)
    sorting = sc.NumpySorting.from_unit_dict([trains], sorting_fs)
    sorting.set_property("region", np.array(unit_regions))
    sorting.save(folder=tmp_path / "sorting")
    y = rng.standard_normal((n, len(regions))).astype("float32") * 50
    if flat is not None:
        y[:, flat] = 0.0
    lfp = sc.NumpyRecording([y], FS_LFP, channel_ids=np.array(regions))
    lfp.set_property("region", np.array(regions))
    lfp.save(folder=tmp_path / "region_lfp")
    write_session_json(tmp_path, PARAMS)
    return tmp_path / "sorting", tmp_path / "region_lfp"


def write_session_json(results, lfpdict_params: dict) -> None:
    """The ``session.json`` ingest would write: the parameters the later stages read."""
    (results / "session.json").write_text(
        json.dumps(
            {
                "params": {"lfpdict": lfpdict_params},
                "windows": [],
                "sampling_frequency_hz": 1000.0,
                "segments": [{"segment": 0, "start_sample": 0}],
            }
        )
    )


def test_outputs_of_the_step(tmp_path):
    sorting, lfp = write_inputs(tmp_path)
    est = write_dictionaries(sorting, lfp, tmp_path / "out", PARAMS)
    d = np.load(tmp_path / "out" / "lfp_dict.npz")
    assert d["atoms"].shape == (4, 101)
    assert d["coef"].shape == (1, 3, 2, 4)
    assert d["filters"].shape == (3, 2, 101)
    assert list(d["unit_ids"]) == ["u0", "u1", "u2"] and list(d["regions"]) == ["CA1", "PFC"]
    assert d["lags_ms"][0] == -50.0 and d["lags_ms"][-1] == 50.0
    rows = read_tsv(tmp_path / "out" / "lfp_scores.tsv")
    assert list(rows[0]) == [
        "region",
        "predictors",
        "model",
        "r2_heldout",
        "r2_se",
        "n_folds",
        "penalty",
        "n_atoms",
        "null_mean",
        "null_p95",
        "p_value",
    ]
    assert len(rows) == 2 * 3 * 4
    bands = read_tsv(tmp_path / "out" / "lfp_bands.tsv")
    assert len(bands) == 3 * 2 * 4 and {b["band"] for b in bands} == {
        "delta",
        "theta",
        "beta",
        "gamma",
    }
    assert est.n_atoms_used_ <= 4
    # white-noise LFP, random spikes: nothing to predict
    dict_all = [float(r["r2_heldout"]) for r in rows if r["model"] == "dictionary"]
    assert max(dict_all) < 0.05


def test_unit_with_no_spikes_gets_zero_filters(tmp_path):
    sorting, lfp = write_inputs(tmp_path, empty_unit=True)
    est = write_dictionaries(sorting, lfp, tmp_path / "out", PARAMS)
    assert not est.filters_[0].any()


def test_flat_region_gives_nan_r2_and_zero_filters(tmp_path):
    sorting, lfp = write_inputs(tmp_path, flat=1)
    est = write_dictionaries(sorting, lfp, tmp_path / "out", PARAMS)
    assert not est.filters_[:, 1].any()
    scores = read_tsv(tmp_path / "out" / "lfp_scores.tsv")
    pfc = [r["r2_heldout"] for r in scores if r["region"] == "PFC"]
    assert len(pfc) == 3 * 4 and all(v is None or np.isnan(v) for v in pfc)


def test_sorting_longer_than_lfp_is_an_error(tmp_path):
    sorting, _ = write_inputs(tmp_path, duration_s=30.0)
    _, lfp = write_inputs(tmp_path / "short", duration_s=20.0)
    with pytest.raises(
        LFPDictInputError,
        match=r"has spikes until 2\d\.\d+ s but the LFP .* "
        r"lasts 20.000 s: expected the same recording",
    ):
        write_dictionaries(sorting, lfp, tmp_path / "out", PARAMS)


def test_unit_region_without_lfp_is_an_error(tmp_path):
    sorting, lfp = write_inputs(tmp_path, unit_regions=["CA1", "VTA", "PFC"])
    with pytest.raises(
        LFPDictInputError,
        match=r"unit 'u1' has region 'VTA', which is not "
        r"among the LFP's regions \['CA1', 'PFC'\]",
    ):
        write_dictionaries(sorting, lfp, tmp_path / "out", PARAMS)


def test_cli_names_the_problem(tmp_path, capsys):
    sorting, lfp = write_inputs(tmp_path, unit_regions=["CA1", "VTA", "PFC"])
    assert main(["lfpdict", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "neurodict lfpdict: error:" in err and "unit 'u1' has region 'VTA'" in err
    assert not Path(tmp_path / "lfp_dict.npz").exists()


def with_multi_unit(sorting_dir: Path) -> Path:
    """The sorting of `write_inputs` with u1 flagged multi-unit, as the sorter flags them."""
    import spikeinterface as si

    sorting = si.load(sorting_dir)
    sorting.set_property("multi_unit", np.array([False, True, False]))
    sorting.save(folder=sorting_dir.parent / "sorting_mua")
    return sorting_dir.parent / "sorting_mua"


def test_multi_units_are_left_out_by_default(tmp_path):
    """lfpdict.units defaults to single: the multi-unit u1 is in no output."""
    sorting, lfp = write_inputs(tmp_path)
    write_dictionaries(with_multi_unit(sorting), lfp, tmp_path / "out", PARAMS)
    d = np.load(tmp_path / "out" / "lfp_dict.npz")
    assert list(d["unit_ids"]) == ["u0", "u2"] and d["filters"].shape[0] == 2
    assert {r["unit"] for r in read_tsv(tmp_path / "out" / "lfp_bands.tsv")} == {"u0", "u2"}


def test_units_all_keeps_multi_units_and_single_records_the_excluded(tmp_path):
    sorting, lfp = write_inputs(tmp_path)
    mua = with_multi_unit(sorting)
    write_dictionaries(mua, lfp, tmp_path / "single", PARAMS)
    d = np.load(tmp_path / "single" / "lfp_dict.npz")
    assert list(d["excluded_unit_ids"]) == ["u1"]
    assert list(d["excluded_reasons"]) == ["multi_unit"]
    write_dictionaries(mua, lfp, tmp_path / "all", PARAMS | {"units": "all"})
    d = np.load(tmp_path / "all" / "lfp_dict.npz")
    assert list(d["unit_ids"]) == ["u0", "u1", "u2"]
    assert list(d["excluded_unit_ids"]) == []
