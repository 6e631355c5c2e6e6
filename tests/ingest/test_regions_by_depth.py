"""Regions by depth on one shank (``regions_by_depth``): each channel takes the region of the
range that holds its depth, region LFPs and clean LFPs treat the shank's regions apart, a
unit's region is its peak channel's, and every mistake is named."""

from __future__ import annotations

import numpy as np
import pytest
import spikeinterface.core as sc
import spikeinterface.sorters as ss

import neurodict  # noqa: F401  (registers the sorter)
from neurodict.config import ConfigError
from neurodict.ingest.readers import IngestError, open_recording
from neurodict.preprocess.filters import CleanRegionLFPRecording, RegionLFPRecording
from tests.ingest.test_readers import (
    binary_session,
    needs_spikewrap,
    noise,
    session_of,
    spikeglx_session,
)

RANGES = [
    {"from_um": 0, "to_um": 100, "region": "CA1"},
    {"from_um": 100, "to_um": 400, "region": "DG"},
]


def shank_session(tmp_path, ranges=RANGES, **extra):
    """A 12-channel shank (the generic layout: 20 um apart from depth 0) and a tetrode in DG."""
    data = binary_session(tmp_path, noise(4000, 16), **extra)
    data["groups"] = [
        {"name": "shank", "channels": list(range(12)), "regions_by_depth": ranges},
        {"name": "tt", "region": "DG", "channels": [12, 13, 14, 15]},
    ]
    return data


def test_each_channel_takes_the_region_of_its_depth(tmp_path):
    s = session_of(tmp_path, shank_session(tmp_path))
    assert s.regions == ["CA1", "DG"]
    rec = open_recording(s)
    depth = rec.get_channel_locations()[:12, 1]
    assert list(depth) == [20.0 * i for i in range(12)]
    assert list(rec.get_property("region")) == ["CA1"] * 5 + ["DG"] * 7 + ["DG"] * 4


def test_region_and_clean_lfps_treat_the_shank_regions_apart(tmp_path):
    rec = open_recording(session_of(tmp_path, shank_session(tmp_path)))
    rec = rec.astype("float32")
    x = rec.get_traces()
    region = RegionLFPRecording(rec)
    assert list(region.channel_ids) == ["CA1", "DG"]
    np.testing.assert_allclose(region.get_traces()[:, 0], np.median(x[:, :5], axis=1))
    clean = CleanRegionLFPRecording(rec)
    assert list(clean.channel_ids) == ["shank:CA1", "shank:DG", "tt"]
    assert list(clean.get_property("clean_method")) == ["despiked", "other_groups", "other_groups"]
    y = clean.get_traces()
    np.testing.assert_allclose(y[:, 0], np.median(x[:, :5], axis=1))  # CA1: the shank alone
    np.testing.assert_allclose(y[:, 1], np.median(x[:, 12:], axis=1))  # DG without the shank
    np.testing.assert_allclose(y[:, 2], np.median(x[:, 5:12], axis=1))  # DG without the tetrode


def test_a_channel_outside_every_range_is_named(tmp_path):
    ranges = [
        {"from_um": 0, "to_um": 100, "region": "CA1"},
        {"from_um": 120, "to_um": 400, "region": "DG"},
    ]
    s = session_of(tmp_path, shank_session(tmp_path, ranges))
    with pytest.raises(IngestError) as err:
        open_recording(s)
    assert str(err.value) == (
        f"channel 5 of group shank lies at depth 100 um, in none of its regions_by_depth ranges "
        f"(0-100 um CA1, 120-400 um DG) (from {tmp_path / 'session.yaml'}); expected every "
        "channel of the group in one range (depth: the probe's y coordinate)."
    )


def test_a_range_without_channels_is_named(tmp_path):
    ranges = RANGES + [{"from_um": 400, "to_um": 800, "region": "TH"}]
    with pytest.raises(IngestError) as err:
        open_recording(session_of(tmp_path, shank_session(tmp_path, ranges)))
    assert str(err.value) == (
        f"the regions_by_depth range 400-800 um (TH) of group shank holds none of its channels "
        f"(from {tmp_path / 'session.yaml'}; their depths 0 to 220 um); expected each range to "
        "hold a channel."
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"region": "CA1"},
            "'groups[0]': expected exactly one of region, regions_by_depth, regions_file; got "
            "['region', 'regions_by_depth'].",
        ),
        (
            {"regions_by_depth": [RANGES[0], {"from_um": 50, "to_um": 300, "region": "DG"}]},
            "'groups[0].regions_by_depth': expected ranges that do not overlap; got "
            "'ranges 0 and 1 overlap (50 < 100 um)'.",
        ),
        (
            {"regions_by_depth": [{"from_um": 100, "to_um": 0, "region": "DG"}]},
            "'groups[0].regions_by_depth[0]': expected from_um < to_um; got "
            "{'from_um': 100, 'to_um': 0, 'region': 'DG'}.",
        ),
    ],
)
def test_region_mistakes_are_named(tmp_path, change, message):
    data = shank_session(tmp_path)
    data["groups"][0].update(change)
    with pytest.raises(ConfigError) as err:
        session_of(tmp_path, data)
    assert str(err.value) == f"{tmp_path / 'session.yaml'}: {message}"


def test_a_units_region_is_its_peak_channels(tmp_path):
    """One shank of 16 channels, sorted as one group, crosses two regions: every unit is in
    the region of the channel where its mean waveform peaks, and both regions have units."""
    rec, _ = sc.generate_ground_truth_recording(
        durations=[20.0], num_channels=16, num_units=6, seed=3
    )
    depth = rec.get_channel_locations()[:, 1]
    cut = np.median(depth)
    rec.set_property("group", np.array(["shank"] * 16))
    rec.set_property("region", np.where(depth < cut, "CA1", "DG"))
    rec = rec.save(folder=tmp_path / "rec")
    sorting = ss.run_sorter(
        "neurodict", rec, folder=tmp_path / "sort", epoch_s=10.0, n_burn=20, n_samples=6, n_keep=3
    )
    region_of = dict(zip(rec.channel_ids, rec.get_property("region"), strict=True))
    peaks = sorting.get_property("peak_channel")
    assert list(sorting.get_property("region")) == [region_of[c] for c in peaks]
    assert set(sorting.get_property("region")) == {"CA1", "DG"}


@needs_spikewrap
def test_a_real_neuropixels_shank_takes_its_regions_by_depth(tmp_path):
    """The spikewrap wheel's SpikeGLX sample (a Neuropixels 2.0 probe, 384 channels, 0 to
    1425 um, its probe read from the meta file), one group over every channel: channels
    take CA1 below 700 um and DG above, by the probe's own geometry."""
    data = spikeglx_session(stream="imec0.ap")
    data["groups"] = [
        {
            "name": "shank0",
            "channels": list(range(384)),
            "regions_by_depth": [
                {"from_um": 0, "to_um": 700, "region": "CA1"},
                {"from_um": 700, "to_um": 1500, "region": "DG"},
            ],
        }
    ]
    rec = open_recording(session_of(tmp_path, data))
    depth = rec.get_channel_locations()[:, 1]
    regions = rec.get_property("region")
    assert rec.get_num_channels() == 384 and set(regions) == {"CA1", "DG"}
    assert np.array_equal(regions == "CA1", depth < 700)
    clean = CleanRegionLFPRecording(rec)
    assert sorted(clean.channel_ids) == ["shank0:CA1", "shank0:DG"]
    assert list(clean.get_property("clean_method")) == ["despiked", "despiked"]


def table_session(tmp_path, table: str):
    """The shank of :func:`shank_session` with its regions from a channel -> region table."""
    (tmp_path / "regions.tsv").write_text(table)
    data = shank_session(tmp_path)
    del data["groups"][0]["regions_by_depth"]
    data["groups"][0]["regions_file"] = "regions.tsv"
    return data


def test_regions_from_a_channel_table(tmp_path):
    rows = "".join(f"{c}\t{'DG' if c % 2 else 'CA3'}\tx\n" for c in range(12))
    s = session_of(tmp_path, table_session(tmp_path, "channel\tregion\tnote\n" + rows))
    assert s.regions == ["CA3", "DG"]
    rec = open_recording(s)
    assert list(rec.get_property("region")[:12]) == ["CA3", "DG"] * 6


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            [(c, "CA1") for c in range(11)] + [(12, "CA1")],
            "line 13: expected a channel of the group (0 .. 11) once; got '12' (not a channel "
            "of the group).",
        ),
        (
            [(c, "CA1") for c in range(12)] + [(3, "DG")],
            "line 14: expected a channel of the group (0 .. 11) once; got '3' (listed twice).",
        ),
        ([(c, "CA1") for c in range(10)], "expected every channel of the group; missing [10, 11]."),
        (
            [(c, "CA 1") for c in range(12)][:1] + [(c, "CA1") for c in range(1, 12)],
            "line 2: expected a region name of letters, digits, '_', '-', '.'; got 'CA 1'.",
        ),
    ],
)
def test_channel_table_mistakes_are_named(tmp_path, rows, message):
    table = "channel\tregion\n" + "".join(f"{c}\t{r}\n" for c, r in rows)
    with pytest.raises(ConfigError) as err:
        session_of(tmp_path, table_session(tmp_path, table))
    where = f"{tmp_path / 'regions.tsv'} (regions of {tmp_path / 'session.yaml'})"
    assert str(err.value) == f"{where}: {message}"
