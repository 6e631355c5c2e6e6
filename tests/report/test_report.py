"""The session report: user-supplied names are escaped; provenance reads Snakemake's benchmarks."""

from __future__ import annotations

import json
import shutil

import numpy as np
import spikeinterface as si
import spikeinterface.core as sc

from neurodict.preprocess import motion
from neurodict.report import step as report_step
from neurodict.report.provenance import benchmark_rows, package_versions
from neurodict.report.session import bad_channel_blocks, motion_blocks

SCRIPT = "<script>alert(1)</script>"


def test_names_from_user_files_are_escaped(workflow_results, tmp_path):
    """Channel ids from the raw file and condition labels show as text, never as markup."""
    results = tmp_path / "tiny"
    shutil.copytree(
        workflow_results / "tiny",
        results,
        ignore=shutil.ignore_patterns("phy", "session.nwb", "lfp"),
    )
    rec = si.load(results / "recording.json")
    ids = [SCRIPT, "<b>x</b>", *rec.channel_ids[2:]]
    rec.rename_channels(new_channel_ids=ids).dump_to_json(
        results / "recording.json", include_properties=True
    )
    info = json.loads((results / "session.json").read_text())
    info["windows"][0]["condition"] = "<b>x</b>"
    (results / "session.json").write_text(json.dumps(info))
    html = report_step.run(results, tmp_path / "report.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert SCRIPT not in html and "<b>x</b>" not in html
    assert "No Snakemake benchmark files" in html  # this copy has no benchmarks beside it


def test_benchmark_rows(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (tmp_path / "detect.tsv").write_text(
        header + "6.02\t0:00:06\t813.99\t0\t205.69\t0\t0.14\t0.1\t68.08\t5.92\n"
    )
    (tmp_path / "ingest.tsv").write_text(
        header + "1.0\t0:00:01\tNA\t-\t-\t-\t-\t-\t-\t1.0\n"
        "3.0\t0:00:03\tNA\t-\t-\t-\t-\t-\t-\t2.0\n"
    )
    rows = benchmark_rows(tmp_path)
    assert [r["rule"] for r in rows] == ["detect", "ingest"]
    assert rows[0]["wall_s"] == 6.02 and rows[0]["max_rss_mb"] == 813.99
    assert rows[1]["wall_s"] == 2.0 and rows[1]["max_rss_mb"] == ""  # repeats averaged


def test_package_versions_names_every_package():
    versions = {r["package"]: r["version"] for r in package_versions(("numpy", "no-such-pkg"))}
    assert versions["numpy"][0].isdigit() and versions["no-such-pkg"] == "not installed"
    assert "python" in versions


def test_bad_channel_block_lists_each_channel_with_its_label_and_score():
    """With auto bad channels the recording section says which channels were found and lists
    every grouped channel's label, method and score; without auto it adds nothing."""
    rec = sc.NumpyRecording([np.zeros((10, 3), "float32")], 1000.0)
    for key, values in {
        "group": ["tt", "tt", "tt"],
        "bad_label": ["good", "dead", "zero"],
        "bad_method": ["mad", "mad", "before detection"],
        "bad_score": [1.02, 0.013, np.nan],
    }.items():
        rec.set_property(key, np.array(values))
    info = {"auto_bad_channels": True, "groups": [{"name": "tt", "channels": [4, 5, 6]}]}
    text, table = bad_channel_blocks(info, rec)
    assert text["text"].endswith("median): 2 of 3 channels: 5 (dead), 6 (zero).")
    assert table["rows"] == [
        {"channel": 4, "group": "tt", "label": "good", "method": "mad", "score": "1.02"},
        {"channel": 5, "group": "tt", "label": "dead", "method": "mad", "score": "0.01"},
        {"channel": 6, "group": "tt", "label": "zero", "method": "before detection", "score": ""},
    ]
    assert bad_channel_blocks(info | {"auto_bad_channels": False}, rec) == []


def test_motion_block_lists_every_group_and_plots_the_corrected_ones(tmp_path):
    """motion.npz as the preprocess step writes it: one row per group (decision, reason, span,
    range of the estimate) and a figure only for the corrected group."""
    estimates = [
        motion.Estimate(
            "tt",
            "none",
            "auto: span 20 um < motion_min_span_um 300",
            20.0,
            np.zeros(0),
            np.zeros(0),
            np.zeros((0, 0)),
        ),
        motion.Estimate(
            "shank",
            "nonrigid",
            "motion: nonrigid",
            620.0,
            np.arange(3.0),
            np.array([100.0, 500.0]),
            np.array([[0.0, 1.0], [4.0, 5.0], [-2.5, 0.0]]),
        ),
    ]
    motion.save(tmp_path / "motion.npz", estimates)
    table, *figs = motion_blocks(np.load(tmp_path / "motion.npz"))
    assert table["rows"] == [
        {
            "group": "tt",
            "motion": "none",
            "why": "auto: span 20 um < motion_min_span_um 300",
            "span_um": "20",
            "displacement_range_um": "",
        },
        {
            "group": "shank",
            "motion": "nonrigid",
            "why": "motion: nonrigid",
            "span_um": "620",
            "displacement_range_um": "7.5",
        },
    ]
    assert len(figs) == 1 and figs[0]["caption"].startswith("Group shank: the nonrigid motion")
    assert motion_blocks(None) == []


def test_detection_figure_of_a_group_across_regions():
    """A shank with regions by depth (detection.tsv's region lists them): grey, not a crash."""
    from neurodict.report import figures

    rows = [
        {"group": "tt", "region": "CA1", "rate_hz": "12.5"},
        {"group": "shank", "region": "DG, TH, CA1", "rate_hz": "40"},
    ]
    fig = figures.detection_counts(rows, ["CA1", "DG", "TH"])
    bars = fig.axes[0].patches
    assert [tuple(b.get_facecolor()) for b in bars][1] == figures.SEVERAL_REGIONS_COLOR
    assert tuple(bars[0].get_facecolor()) == figures.region_colors(["CA1", "DG", "TH"])["CA1"]
