"""Raw formats to a recording: real samples of several formats, and every failure named clearly.

Each test writes its session YAML into ``tmp_path``; relative paths in it are relative to that
folder, absolute ones point at the shared data or the spikewrap wheel's example data.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import probeinterface as pi
import pytest
import spikeinterface.core as sc
import yaml

from neurodict.common import timeline
from neurodict.config import ConfigError, load_session
from neurodict.ingest.readers import IngestError, open_recording, read_raw

REPO = Path(__file__).resolve().parents[2]
LOCUST = REPO.parent / "shared/data/locust/locust_trial_01.raw"
LOCUST_FS, LOCUST_NCH = 15000.0, 4


def _spikewrap_examples() -> Path | None:
    """The spikewrap wheel's tiny example data, found without importing spikewrap."""
    try:
        spec = importlib.util.find_spec("spikewrap")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "examples" / "example_tiny_data"
    return path if path.is_dir() else None


SPIKEWRAP_DATA = _spikewrap_examples()
needs_spikewrap = pytest.mark.skipif(
    SPIKEWRAP_DATA is None,
    reason="spikewrap (its example_tiny_data: Open Ephys, SpikeGLX) is not installed",
)
needs_locust = pytest.mark.skipif(
    not LOCUST.is_file(), reason=f"real locust tetrode recording not found at {LOCUST}"
)


def write_session(tmp_path: Path, data: dict, name: str = "session.yaml") -> Path:
    """Write the session mapping `data` as YAML into `tmp_path`; return its path."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def session_of(tmp_path: Path, data: dict):
    return load_session(write_session(tmp_path, data))


# Recordings here are seconds long: the dictionaries, which need more, are skipped
# (spike trains from a ground truth these sessions do not have).
NO_DICTIONARIES = {"lfpdict": {"spikes": "truth"}}


def noise(n_samples: int, n_channels: int, seed: int = 0) -> np.ndarray:
    """int16 samples with signal on every channel (all-zero channels are refused)."""
    rng = np.random.default_rng(seed)
    return rng.integers(-1000, 1000, size=(n_samples, n_channels), dtype="int16")


def binary_session(tmp_path: Path, samples: np.ndarray, **extra) -> dict:
    """A binary session over `samples` (n_samples x n_channels), written to tmp_path/raw.bin."""
    samples.tofile(tmp_path / "raw.bin")
    n = samples.shape[1]
    data = {
        "raw_path": "raw.bin",
        "format": "binary",
        "sampling_frequency_hz": 1000.0,
        "num_channels": n,
        "dtype": str(samples.dtype),
        "groups": [{"name": "tt1", "region": "CA1", "channels": list(range(n))}],
        "mains_hz": 50,
        "params": NO_DICTIONARIES,
    }
    data.update(extra)
    return data


# ----------------------------------------------------------------------------------------------
# 1. Real locust antennal-lobe tetrode, raw int16


@needs_locust
def test_locust_tetrode_opens_with_generic_tetrode_and_exact_samples(tmp_path):
    s = session_of(
        tmp_path,
        {
            "raw_path": str(LOCUST),
            "format": "binary",
            "sampling_frequency_hz": LOCUST_FS,
            "num_channels": LOCUST_NCH,
            "dtype": "int16",
            "groups": [{"name": "tt1", "region": "AL", "channels": [0, 1, 2, 3]}],
            "mains_hz": 50,
        },
    )
    rec = open_recording(s)

    n_samples = LOCUST.stat().st_size // (LOCUST_NCH * 2)
    assert rec.get_num_channels() == 4
    assert rec.get_sampling_frequency() == LOCUST_FS
    assert rec.get_num_segments() == 1
    assert rec.get_num_samples() == n_samples
    assert rec.get_total_duration() == pytest.approx(28.8, abs=0.05)
    assert list(rec.get_property("group")) == ["tt1"] * 4
    assert list(rec.get_property("region")) == ["AL"] * 4
    assert not rec.get_property("bad").any()

    assert rec.has_probe()
    probe = rec.get_probe()
    assert probe.get_contact_count() == 4
    np.testing.assert_allclose(probe.contact_positions, pi.generate_tetrode().contact_positions)

    raw = np.fromfile(LOCUST, dtype="int16").reshape(-1, LOCUST_NCH)
    for start in (0, 150_000, n_samples - 3000):
        traces = rec.get_traces(start_frame=start, end_frame=start + 3000)
        assert traces.dtype == np.int16
        np.testing.assert_array_equal(traces, raw[start : start + 3000])


# ----------------------------------------------------------------------------------------------
# 2. Real Open Ephys binary (Neuropixels, 2 recordings) from the spikewrap wheel


def openephys_session(segment_index: int | None = None) -> dict:
    data = {
        "raw_path": str(SPIKEWRAP_DATA / "openephys/rawdata/sub-001/ses-001/ephys"),
        "format": "openephys",
        "groups": [
            {"name": "shank_ca1", "region": "CA1", "channels": [0, 1, 2, 3]},
            {"name": "shank_pfc", "region": "PFC", "channels": [4, 5, 6, 7]},
        ],
        "mains_hz": 50,
        "params": NO_DICTIONARIES,
    }
    if segment_index is not None:
        data["segment_index"] = segment_index
    return data


@needs_spikewrap
def test_openephys_with_two_segments_opens_both_on_one_timeline(tmp_path):
    s = session_of(tmp_path, openephys_session())
    rec = open_recording(s)
    assert rec.get_num_segments() == 2
    # each recording cut to whole LFP samples (30 kHz -> 1 kHz: 1000 -> 990 samples)
    assert [rec.get_num_samples(segment_index=i) for i in range(2)] == [990, 990]
    full = read_raw(load_session(write_session(tmp_path, openephys_session(1), "one.yaml")))
    np.testing.assert_array_equal(
        rec.get_traces(segment_index=1), full.get_traces(end_frame=990)[:, :8]
    )
    rows = timeline.segments_table(rec)
    assert [(r["start_sample"], r["n_samples"]) for r in rows] == [(0, 990), (990, 990)]
    assert rows[1]["t_start_s"] == pytest.approx(727.8748, abs=1e-4)


def test_binary_files_one_per_segment(tmp_path):
    first, second = noise(3000, 4, seed=1), noise(2000, 4, seed=2)
    second.tofile(tmp_path / "run2.bin")
    data = binary_session(tmp_path, first, raw_path=["raw.bin", "run2.bin"])
    rec = open_recording(session_of(tmp_path, data))
    assert [rec.get_num_samples(segment_index=i) for i in range(2)] == [3000, 2000]
    np.testing.assert_array_equal(rec.get_traces(segment_index=1), second)
    (tmp_path / "run2.bin").write_bytes(second.tobytes()[:-3])
    with pytest.raises(IngestError) as info:
        open_recording(session_of(tmp_path, data))
    assert str(info.value).startswith(
        f"binary file '{tmp_path / 'run2.bin'}' is truncated or mis-described: 15997 bytes"
    )


def test_several_raw_paths_only_for_binary(tmp_path):
    data = binary_session(tmp_path, noise(100, 4), raw_path=["raw.bin", "raw.bin"])
    data["format"] = "intan"
    with pytest.raises(ConfigError) as info:
        session_of(tmp_path, data)
    assert (
        "'raw_path': expected one path (a list of files, one per segment, is read for format "
        "binary only)"
    ) in str(info.value)


@needs_spikewrap
def test_openephys_segment_out_of_range_is_a_config_error(tmp_path):
    s = session_of(tmp_path, openephys_session(segment_index=2))
    with pytest.raises(ConfigError) as info:
        read_raw(s)
    assert str(info.value) == (
        f"{s.file}: 'segment_index': expected an index below the 2 segments; got 2."
    )


@needs_spikewrap
def test_openephys_segment_opens_with_own_probe_and_groups(tmp_path):
    s = session_of(tmp_path, openephys_session(segment_index=0))
    full = read_raw(s)
    assert full.get_num_channels() == 384
    assert full.get_num_segments() == 1

    rec = open_recording(s)
    assert rec.get_num_channels() == 8
    assert rec.get_sampling_frequency() == 30000.0
    assert rec.get_num_segments() == 1
    assert rec.get_num_samples() == 1000
    assert list(rec.channel_ids) == list(full.channel_ids[:8])
    # The format's own Neuropixels probe is kept (not replaced by generic tetrodes).
    assert rec.has_probe()
    probe = rec.get_probe()
    assert probe.get_contact_count() == 8
    assert probe.manufacturer == "imec"
    assert list(rec.get_property("group")) == ["shank_ca1"] * 4 + ["shank_pfc"] * 4
    assert list(rec.get_property("region")) == ["CA1"] * 4 + ["PFC"] * 4
    assert not rec.get_property("bad").any()
    np.testing.assert_array_equal(
        rec.get_traces(end_frame=100), full.get_traces(end_frame=100)[:, :8]
    )

    s1 = load_session(write_session(tmp_path, openephys_session(segment_index=1), "s1.yaml"))
    assert open_recording(s1).get_num_samples() == 1000


# ----------------------------------------------------------------------------------------------
# 3. Real SpikeGLX (Neuropixels, AP band + sync stream) from the spikewrap wheel


def spikeglx_session(stream: str | None = None) -> dict:
    data = {
        "raw_path": str(SPIKEWRAP_DATA / "spikeglx/rawdata/sub-001/ses-001/ephys/run-001_g0_imec0"),
        "format": "spikeglx",
        "groups": [{"name": "shank0", "region": "CA1", "channels": list(range(8))}],
        "mains_hz": 60,
        "params": NO_DICTIONARIES,
    }
    if stream is not None:
        data["stream"] = stream
    return data


@needs_spikewrap
def test_spikeglx_without_stream_names_format_path_and_streams(tmp_path):
    s = session_of(tmp_path, spikeglx_session())
    with pytest.raises(IngestError) as info:
        open_recording(s)
    msg = str(info.value)
    assert msg.startswith(f"the spikeglx reader could not open '{s.raw_path}' (from {s.file}): ")
    assert "imec0.ap" in msg and "imec0.ap-SYNC" in msg


@needs_spikewrap
def test_spikeglx_with_stream_opens(tmp_path):
    s = session_of(tmp_path, spikeglx_session(stream="imec0.ap"))
    rec = open_recording(s)
    assert rec.get_sampling_frequency() == 30000.0
    assert rec.get_num_channels() == 8
    assert rec.get_num_samples() == 15000
    assert rec.has_probe() and rec.get_probe().get_contact_count() == 8
    assert list(rec.get_property("region")) == ["CA1"] * 8


# ----------------------------------------------------------------------------------------------
# 4. NWB written with pynwb


def write_nwb(path: Path, rec: sc.BaseRecording) -> np.ndarray:
    from datetime import UTC, datetime

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ecephys import ElectricalSeries

    nwb = NWBFile(
        session_description="neurodict io test",
        identifier="io-test",
        session_start_time=datetime(2024, 1, 1, tzinfo=UTC),
    )
    device = nwb.create_device(name="probe")
    group = nwb.create_electrode_group(
        name="tetrode", description="a tetrode", location="CA1", device=device
    )
    for i in range(rec.get_num_channels()):
        nwb.add_electrode(x=float(i), y=0.0, z=0.0, group=group, location="CA1")
    region = nwb.create_electrode_table_region(
        list(range(rec.get_num_channels())), "all electrodes"
    )
    traces = rec.get_traces()
    nwb.add_acquisition(
        ElectricalSeries(
            name="ElectricalSeries",
            data=traces,
            electrodes=region,
            rate=float(rec.get_sampling_frequency()),
        )
    )
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return traces


def test_nwb_round_trip(tmp_path):
    source = sc.generate_recording(
        num_channels=4, durations=[2.0], sampling_frequency=10000.0, seed=0
    )
    traces = write_nwb(tmp_path / "rec.nwb", source)
    s = session_of(
        tmp_path,
        {
            "raw_path": "rec.nwb",
            "format": "nwb",
            "groups": [{"name": "tt1", "region": "CA1", "channels": [0, 1, 2, 3]}],
            "mains_hz": 50,
            "params": NO_DICTIONARIES,
        },
    )
    rec = open_recording(s)
    assert rec.get_sampling_frequency() == 10000.0
    assert rec.get_num_channels() == 4
    assert rec.get_num_samples() == 20000
    np.testing.assert_allclose(rec.get_traces(), traces, rtol=1e-6, atol=1e-6)
    assert list(rec.get_property("region")) == ["CA1"] * 4
    assert rec.has_probe()


# ----------------------------------------------------------------------------------------------
# 5. Corrupt files of formats without an offline sample; a missing raw path


def _corrupt(tmp_path: Path, fmt: str) -> Path:
    rng = np.random.default_rng(7)
    if fmt == "neuralynx":
        folder = tmp_path / "nlx"
        folder.mkdir()
        (folder / "CSC1.ncs").write_bytes(rng.bytes(64))
        return folder
    path = tmp_path / {"intan": "x.rhd", "blackrock": "x.ns5", "plexon": "x.plx"}[fmt]
    path.write_bytes(rng.bytes(64))
    return path


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("fmt", ["intan", "blackrock", "plexon", "neuralynx"])
def test_corrupt_file_names_format_and_path(tmp_path, fmt):
    raw = _corrupt(tmp_path, fmt)
    s = session_of(
        tmp_path,
        {
            "raw_path": raw.name,
            "format": fmt,
            "groups": [{"name": "tt1", "region": "CA1", "channels": [0]}],
            "mains_hz": 50,
        },
    )
    with pytest.raises(
        IngestError, match=re.escape(f"the {fmt} reader could not open '{raw}' (from {s.file}): ")
    ):
        open_recording(s)


@pytest.mark.parametrize(
    "fmt",
    [
        "binary",
        "openephys",
        "spikeglx",
        "intan",
        "blackrock",
        "plexon",
        "plexon2",
        "neuralynx",
        "nwb",
    ],
)
def test_missing_raw_path_is_a_config_error(tmp_path, fmt):
    data = {
        "raw_path": "nowhere/raw.dat",
        "format": fmt,
        "groups": [{"name": "tt1", "region": "CA1", "channels": [0]}],
        "mains_hz": 50,
    }
    if fmt == "binary":
        data.update(sampling_frequency_hz=1000.0, num_channels=1)
    path = write_session(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_session(path)
    assert str(info.value) == (
        f"{path}: 'raw_path': expected an existing file or folder; "
        f"got '{tmp_path / 'nowhere/raw.dat'}'."
    )


# ----------------------------------------------------------------------------------------------
# 6. Bad binary data


def test_truncated_binary(tmp_path):
    data = binary_session(tmp_path, np.zeros((10, 8), dtype="int16"))
    with open(tmp_path / "raw.bin", "ab") as f:
        f.write(b"\x00\x01\x02")  # 163 bytes: not a multiple of 8 x 2
    s = session_of(tmp_path, data)
    raw = tmp_path / "raw.bin"
    with pytest.raises(IngestError) as info:
        open_recording(s)
    assert str(info.value) == (
        f"binary file '{raw}' is truncated or mis-described: 163 bytes is not a multiple of "
        f"num_channels x itemsize = 8 x 2 = 16 bytes (check num_channels and dtype in {s.file})."
    )


def test_binary_dtype_itemsize_is_used_for_truncation(tmp_path):
    # 10 frames of 3 int16 channels (60 bytes) read as float32: 60 % 12 == 0 (opens, 5 frames),
    # as float64: 60 % 24 != 0 (truncated).
    data = binary_session(tmp_path, np.zeros((10, 3), dtype="int16"))
    data["dtype"] = "float64"
    s = session_of(tmp_path, data)
    with pytest.raises(
        IngestError,
        match=r"60 bytes is not a multiple of num_channels x "
        r"itemsize = 3 x 8 = 24 bytes",
    ):
        read_raw(s)
    data["dtype"] = "float32"
    assert read_raw(session_of(tmp_path, data)).get_num_samples() == 5


def test_empty_binary(tmp_path):
    data = binary_session(tmp_path, np.zeros((0, 4), dtype="int16"))
    s = session_of(tmp_path, data)
    assert (tmp_path / "raw.bin").stat().st_size == 0
    with pytest.raises(IngestError) as info:
        open_recording(s)
    assert str(info.value) == (
        f"binary file '{tmp_path / 'raw.bin'}' is empty; expected samples of 4 channels x int16."
    )


def test_probe_file_with_wrong_contact_count(tmp_path):
    probegroup = pi.ProbeGroup()
    probegroup.add_probe(pi.generate_tetrode())
    pi.write_probeinterface(tmp_path / "tetrode.json", probegroup)
    data = binary_session(tmp_path, noise(100, 8), probe={"file": "tetrode.json"})
    s = session_of(tmp_path, data)
    with pytest.raises(IngestError) as info:
        open_recording(s)
    assert str(info.value) == (
        f"probe '{tmp_path / 'tetrode.json'}' has 4 contacts but '{tmp_path / 'raw.bin'}' "
        f"has 8 channels (from {s.file})."
    )


def test_probe_file_with_matching_contacts_is_used(tmp_path):
    probegroup = pi.ProbeGroup()
    probe = pi.generate_linear_probe(num_elec=4, ypitch=25)
    probegroup.add_probe(probe)
    pi.write_probeinterface(tmp_path / "shank.json", probegroup)
    data = binary_session(tmp_path, noise(100, 4), probe={"file": "shank.json"})
    rec = open_recording(session_of(tmp_path, data))
    np.testing.assert_allclose(rec.get_probe().contact_positions, probe.contact_positions)


def test_probe_file_with_bad_device_channel_indices(tmp_path):
    probegroup = pi.ProbeGroup()
    probe = pi.generate_tetrode()
    probe.set_device_channel_indices([0, 1, 2, 5])  # 5 is not a channel of a 4-channel file
    probegroup.add_probe(probe)
    pi.write_probeinterface(tmp_path / "tetrode.json", probegroup)
    data = binary_session(tmp_path, noise(100, 4), probe={"file": "tetrode.json"})
    with pytest.raises(IngestError, match=re.escape(f"probe '{tmp_path / 'tetrode.json'}'")):
        open_recording(session_of(tmp_path, data))


def test_unreadable_probe_file(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    data = binary_session(tmp_path, noise(100, 4), probe={"file": "broken.json"})
    with pytest.raises(IngestError, match=re.escape(f"'{tmp_path / 'broken.json'}'")):
        open_recording(session_of(tmp_path, data))


def test_group_channel_beyond_num_channels(tmp_path):
    data = binary_session(tmp_path, noise(100, 4))
    data["groups"] = [{"name": "tt1", "region": "CA1", "channels": [0, 1, 2, 7]}]
    path = write_session(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_session(path)
    assert str(info.value) == (
        f"{path}: 'groups[0].channels': expected channel indices below num_channels = 4; got 7."
    )


def test_group_channel_beyond_recording(tmp_path):
    source = sc.generate_recording(
        num_channels=4, durations=[0.5], sampling_frequency=10000.0, seed=0
    )
    write_nwb(tmp_path / "rec.nwb", source)
    s = session_of(
        tmp_path,
        {
            "raw_path": "rec.nwb",
            "format": "nwb",
            "groups": [{"name": "tt1", "region": "CA1", "channels": [0, 1, 2, 7]}],
            "mains_hz": 50,
            "params": NO_DICTIONARIES,
        },
    )
    with pytest.raises(ConfigError) as info:
        open_recording(s)
    assert str(info.value) == (
        f"{s.file}: 'groups[0].channels': expected channel indices below 4 (the recording's "
        f"channel count); got 7."
    )


def test_window_beyond_recording(tmp_path):
    data = binary_session(tmp_path, noise(2000, 4))  # 2 s at 1 kHz
    data["windows"] = [
        {"start_s": 0.5, "end_s": 1.5, "condition": "rest"},
        {"start_s": 1.0, "end_s": 3.0, "condition": "odour"},
    ]
    s = session_of(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        open_recording(s)
    assert info.value.problems == [
        f"{s.file}: 'windows[1].end_s': expected a time within the recording "
        f"(0 to 2.000 s); got 3.0."
    ]
    data["windows"] = [{"start_s": 1.0, "end_s": 3.0, "condition": "odour"}]
    s = session_of(tmp_path, data)
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "'windows[0].end_s': expected a time within the recording (0 to 2.000 s); got 3.0."
        ),
    ):
        open_recording(s)
    data["windows"] = [{"start_s": 1.0, "end_s": 2.0, "condition": "odour"}]
    assert open_recording(session_of(tmp_path, data)).get_total_duration() == 2.0


# ----------------------------------------------------------------------------------------------
# 7. Bad channels, group order, gains


def test_bad_channel_property(tmp_path):
    data = binary_session(tmp_path, noise(100, 4), bad_channels=[1])
    rec = open_recording(session_of(tmp_path, data))
    assert rec.get_property("bad").dtype == bool
    assert list(rec.get_property("bad")) == [False, True, False, False]


def test_channels_follow_group_order_with_properties(tmp_path):
    rng = np.random.default_rng(0)
    samples = rng.integers(-1000, 1000, size=(500, 8), dtype="int16")
    data = binary_session(tmp_path, samples, gain_to_uv=0.195, offset_to_uv=-5.0, bad_channels=[5])
    data["groups"] = [
        {"name": "tt_pfc", "region": "PFC", "channels": [4, 5, 6, 7]},
        {"name": "wire", "region": "CA1", "channels": [2]},
    ]
    rec = open_recording(session_of(tmp_path, data))
    assert rec.get_num_channels() == 5
    np.testing.assert_array_equal(rec.get_traces(), samples[:, [4, 5, 6, 7, 2]])
    np.testing.assert_allclose(
        rec.get_traces(return_in_uV=True),
        samples[:, [4, 5, 6, 7, 2]] * 0.195 - 5.0,
        rtol=1e-5,
        atol=1e-3,
    )
    assert list(rec.get_property("group")) == ["tt_pfc"] * 4 + ["wire"]
    assert list(rec.get_property("region")) == ["PFC"] * 4 + ["CA1"]
    assert list(rec.get_property("bad")) == [False, True, False, False, False]
    # Generic layout: a tetrode then a 1-contact shank, 300 um apart.
    probes = rec.get_probegroup().probes
    assert [p.get_contact_count() for p in probes] == [4, 1]
    positions = rec.get_channel_locations()
    np.testing.assert_allclose(positions[:4], pi.generate_tetrode().contact_positions)
    assert positions[4, 0] == pytest.approx(300.0)


def test_non_finite_starts_are_each_channels_first_across_chunks():
    from neurodict.ingest.readers import non_finite_starts

    x = np.zeros((1000, 4), np.float32)
    x[[120, 700], 0] = np.nan
    x[[450, 460, 999], 2] = [np.inf, np.nan, -np.inf]
    rec = sc.NumpyRecording([x], 100.0)
    assert non_finite_starts(rec, chunk_s=1.0).tolist() == [120, -1, 450, -1]
    assert non_finite_starts(rec.astype("int16")).tolist() == [-1, -1, -1, -1]
