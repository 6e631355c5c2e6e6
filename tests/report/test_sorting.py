"""The report's sorting section: the model's posterior presence and drift on the unit cards,
and each group's spikes by reason, from small hand-made sorter outputs and the workflow's."""

from __future__ import annotations

import numpy as np
import pytest

from neurodict.common.files import read_tsv, write_tsv
from neurodict.report import sorting as report_sorting
from neurodict.sort.step import UNIT_COLUMNS

E, M, T = 3, 2, 5
FS = 1000.0
INFO = {
    "groups": [{"name": "A", "region": "R1"}, {"name": "B", "region": "R2"}],
    "params": {"sorting": {"epoch_s": 10.0, "refractory_ms": 1.5}},
}
# Session units: A's model units 0 (single) and 1 (multi-unit), A's unit 2 of spikes left in
# no unit by a refractory conflict, and B's unit 3 (single) from a group without a model.
SPIKES = {0: 7, 1: 4, 2: 2, 3: 5}
REASON = {0: 0, 1: 1, 2: 2, 3: 0}
CONTENT = {0: "single unit", 1: "multi-unit", 2: "refractory conflicts", 3: "single unit"}
GROUP = {0: "A", 1: "A", 2: "A", 3: "B"}


def _group_model(g: str, units: list[int], unit: np.ndarray, rng, learned: bool) -> dict:
    U = len(units)
    templates = rng.normal(size=(U, E, M, T))
    templates[:, :, 1, 2] = [[-50.0, -60.0, -70.0]] * U  # the peak: channel 1, sample 2
    drift = templates + rng.normal(scale=0.1, size=templates.shape)
    presence = np.tile([0.9, 0.2, 0.6], (U, 1))
    if not learned:
        drift[:] = presence[:] = np.nan
    n = unit.size
    return {
        f"{g}/samples": np.sort(rng.integers(0, int(E * 10 * FS), n)),
        f"{g}/amplitudes_uv": rng.normal(-50, 5, n),
        f"{g}/unit": unit,
        f"{g}/probability": rng.uniform(0.5, 1, n),
        f"{g}/fs_hz": FS,
        f"{g}/dictionary": rng.normal(size=(T, 2)),
        f"{g}/features": rng.normal(size=(n, 4)),
        f"{g}/feature_units": unit,
        f"{g}/feature_centres": np.zeros(n, int),
        f"{g}/centre_channels": np.array([0]),
        f"{g}/counts": np.tile([3, 0, 1], (U, 1)) + np.arange(U)[:, None],
        f"{g}/presence": presence,
        f"{g}/templates_uv": templates,
        f"{g}/drift_uv": drift,
        f"{g}/drift_sd_uv": np.abs(drift) * 0.05,
        f"{g}/trace": np.linspace(-100, -50, 4),
        f"{g}/n_atoms": np.array([6, 4, 3, 3, 3]),
    }


@pytest.fixture
def results(tmp_path):
    """A results folder with units.tsv, metrics.tsv, spikes.npz and sorter.npz of `SPIKES`."""
    rng = np.random.default_rng(0)
    unit_index = np.concatenate([np.full(n, u) for u, n in SPIKES.items()])
    reason = np.array([REASON[u] for u in unit_index], np.int8)
    order = rng.permutation(unit_index.size)
    np.savez(
        tmp_path / "spikes.npz",
        sample_index=np.arange(unit_index.size),
        unit_index=unit_index[order],
        probability=np.ones(unit_index.size, np.float32),
        reason=reason[order],
        reasons=np.array(["single_unit", "multi_unit", "refractory_conflict"]),
        below_threshold_sample_index=np.array([3, 8, 9]),
        below_threshold_group=np.array(["A", "A", "A"]),
        units_A=np.array([0, 1]),
        units_B=np.array([3]),
    )
    of = {g: unit_index[np.isin(unit_index, [u for u in GROUP if GROUP[u] == g])] for g in "AB"}
    np.savez(
        tmp_path / "sorter.npz",
        **_group_model("A", [0, 1], of["A"], rng, learned=True),
        **_group_model("B", [3], of["B"], rng, learned=False),
    )
    write_tsv(
        tmp_path / "units.tsv",
        [
            {
                "unit": u,
                "group": GROUP[u],
                "region": "R1" if GROUP[u] == "A" else "R2",
                "n_spikes": n,
                "firing_rate_hz": n / 30,
                "epochs_present": "0,2" if u < 2 else "",
                "refractory_violations": 0,
                "snr": 5.0,
                "peak_channel": 1,
                "multi_unit": CONTENT[u] != "single unit",
                "content": CONTENT[u],
            }
            for u, n in SPIKES.items()
        ],
        UNIT_COLUMNS,
    )
    write_tsv(tmp_path / "metrics.tsv", [{"unit": u, "snr": 5.0} for u in SPIKES])
    return tmp_path


@pytest.fixture
def panels(monkeypatch):
    """What each unit card's presence and drift panels were given, by the order of the cards."""
    seen = {"presence": [], "drift": []}
    presence_panel, drift_panel = report_sorting.presence_panel, report_sorting.drift_panel

    def record_presence(ax, presence, counts, centres, width):
        seen["presence"].append((presence, counts))
        presence_panel(ax, presence, counts, centres, width)

    def record_drift(ax, mean, sd, centres):
        seen["drift"].append((mean, sd))
        drift_panel(ax, mean, sd, centres)

    monkeypatch.setattr(report_sorting, "presence_panel", record_presence)
    monkeypatch.setattr(report_sorting, "drift_panel", record_drift)
    return seen


def test_cards_show_posterior_presence_and_drift(results, panels):
    section = report_sorting.sorting_section(results, INFO)
    captions = [b["caption"] for b in section["blocks"] if b["kind"] == "figure"]
    cards = [c for c in captions if c.startswith("Unit ")]
    assert [c.split(":")[0] for c in cards] == ["Unit 0", "Unit 1", "Unit 3"]
    assert all("posterior presence probability" in c and "drift posterior" in c for c in cards)
    model = np.load(results / "sorter.npz")
    for (presence, counts), (mean, sd), (g, k) in zip(
        panels["presence"], panels["drift"], [("A", 0), ("A", 1), ("B", 0)], strict=True
    ):
        np.testing.assert_array_equal(presence, model[f"{g}/presence"][k])
        np.testing.assert_array_equal(counts, model[f"{g}/counts"][k])
        np.testing.assert_array_equal(mean, model[f"{g}/drift_uv"][k][:, 1, 2])
        np.testing.assert_array_equal(sd, model[f"{g}/drift_sd_uv"][k][:, 1, 2])
    assert np.all((panels["presence"][0][0] >= 0) & (panels["presence"][0][0] <= 1))
    assert np.isnan(panels["presence"][2][0]).all() and np.isnan(panels["drift"][2][0]).all()


def test_spikes_by_reason_per_group(results):
    section = report_sorting.sorting_section(results, INFO)
    texts = [b["text"] for b in section["blocks"] if b["kind"] == "text"]
    assert (
        "Spikes by reason: A, 7 in single units, 4 in multi-units, 2 left in no unit "
        "(refractory conflicts), 3 detections below threshold once neighbouring spikes were "
        "peeled (not spikes); B, 5 in single units, 0 in multi-units, 0 left in no "
        "unit (refractory conflicts), 0 detections below threshold once neighbouring spikes "
        "were peeled (not spikes)." in texts
    )
    assert any("1 multi-unit, 1 holding a group's spikes left in no unit" in t for t in texts)
    (table,) = [b for b in section["blocks"] if b.get("id") == "groups-units-table"]
    assert table["rows"] == [
        {
            "group": "A",
            "units": 3,
            "single_units": 1,
            "multi_units": 1,
            "spikes_single_unit": 7,
            "spikes_multi_unit": 4,
            "spikes_refractory_conflict": 2,
            "spikes_below_threshold": 3,
        },
        {
            "group": "B",
            "units": 1,
            "single_units": 1,
            "multi_units": 0,
            "spikes_single_unit": 5,
            "spikes_multi_unit": 0,
            "spikes_refractory_conflict": 0,
            "spikes_below_threshold": 0,
        },
    ]


def test_reason_counts_need_reasons(results):
    """spikes.npz without per-spike reasons (older results): units per group, no spike counts."""
    rows = report_sorting.reason_rows(read_tsv(results / "units.tsv"), None)
    assert [set(r) for r in rows] == [{"group", "units", "single_units", "multi_units"}] * 2
    assert report_sorting.reason_text(rows) == ""


def test_workflow_report_counts_spikes_by_reason(workflow_results):
    """The workflow's report.html gives each group's spikes by reason as spikes.npz has them."""
    tiny = workflow_results / "tiny"
    html = (tiny / "report.html").read_text()
    spikes = np.load(tiny / "spikes.npz")
    group_of = np.array([r["group"] for r in read_tsv(tiny / "units.tsv")])
    reasons = list(spikes["reasons"])
    assert reasons == ["single_unit", "multi_unit", "refractory_conflict"]
    for g in ("CA1_tt", "PFC_tt"):
        n = np.bincount(spikes["reason"][group_of[spikes["unit_index"]] == g], minlength=3)
        assert n.sum() > 0
        below = int(np.sum(spikes["below_threshold_group"] == g))
        assert (
            f"{g}, {n[0]} in single units, {n[1]} in multi-units, {n[2]} left in no unit "
            f"(refractory conflicts), {below} detections below threshold" in html
        )
    assert 'id="groups-units-table"' in html
    assert "posterior presence probability" in html and "drift posterior" in html
