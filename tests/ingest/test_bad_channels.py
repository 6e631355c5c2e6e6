"""Automatic bad channels (``bad_channels: auto``): planted dead, noisy and zero channels are
found per electrode group by the method that fits it, a clean recording loses none, and what
cannot be right is refused with a message naming the region and channels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.signal
import spikeinterface.core as sc

from neurodict.common.files import read_tsv
from neurodict.config import ConfigError, load_config
from neurodict.ingest.bad_channels import detect_group
from neurodict.ingest.readers import IngestError, open_recording
from neurodict.ingest.step import run as ingest
from tests.ingest.test_readers import session_of, write_session

FS = 30000.0
N_SHANK = 24


def wideband(dead=(), noisy=(), zero=(), seed=0, duration_s=6.0) -> np.ndarray:
    """Two tetrodes (channels 0-7) and a 24-channel shank (8-31), int16 microvolts: white
    noise of 5 uV on each channel plus a shared signal below 3 kHz (one per tetrode; six
    sources with 80 um wide depth profiles on the shank), as neighbouring contacts share in
    the brain. Dead channels carry 0.5 uV of noise alone, noisy ones 100 uV."""
    rng = np.random.default_rng(seed)
    n = int(FS * duration_s)
    low = scipy.signal.butter(4, 3000.0, fs=FS, output="sos")
    x = rng.normal(0.0, 5.0, (n, 8 + N_SHANK))
    depth = np.arange(N_SHANK) * 20.0
    profile = np.exp(-((depth[:, None] - np.linspace(0, depth[-1], 6)[None]) ** 2) / 2 / 80.0**2)
    x[:, 8:] += 15.0 * scipy.signal.sosfilt(low, rng.normal(size=(n, 6)), axis=0) @ profile.T
    for t in range(2):
        x[:, 4 * t : 4 * t + 4] += 15.0 * scipy.signal.sosfilt(low, rng.normal(size=(n, 1)), axis=0)
    for c in dead:
        x[:, c] = rng.normal(0.0, 0.5, n)
    for c in noisy:
        x[:, c] = rng.normal(0.0, 100.0, n)
    for c in zero:
        x[:, c] = 0.0
    return np.round(x).astype("int16")


def session_data(tmp_path, x: np.ndarray, bad_channels="auto") -> dict:
    (tmp_path / "raw.bin").write_bytes(x.tobytes())
    return {
        "raw_path": "raw.bin",
        "format": "binary",
        "sampling_frequency_hz": FS,
        "num_channels": x.shape[1],
        "dtype": "int16",
        "groups": [
            {"name": "tt1", "region": "CA1", "channels": [0, 1, 2, 3]},
            {"name": "tt2", "region": "PFC", "channels": [4, 5, 6, 7]},
            {"name": "shank", "region": "V1", "channels": list(range(8, x.shape[1]))},
        ],
        "mains_hz": 50,
        "bad_channels": bad_channels,
        "params": {"lfpdict": {"spikes": "truth"}},
    }


def found(rec) -> dict[int, str]:
    labels = rec.get_property("bad_label")
    return {i: str(lab) for i, lab in enumerate(labels) if lab != "good"}


def test_a_clean_recording_loses_no_channel(tmp_path):
    rec = open_recording(session_of(tmp_path, session_data(tmp_path, wideband())))
    assert found(rec) == {}
    assert not rec.get_property("bad").any()
    methods = rec.get_property("bad_method")
    assert set(methods[:8]) == {"mad"} and set(methods[8:]) == {"coherence+psd"}
    assert np.all(np.abs(rec.get_property("bad_score") - 1.0) < 0.5)


def test_planted_dead_noisy_and_zero_channels_are_found(tmp_path):
    x = wideband(dead=(2, 15), noisy=(5, 25), zero=(30,))
    rec = open_recording(session_of(tmp_path, session_data(tmp_path, x)))
    assert found(rec) == {2: "dead", 5: "noise", 15: "dead", 25: "noise", 30: "zero"}
    assert np.flatnonzero(rec.get_property("bad")).tolist() == [2, 5, 15, 25, 30]
    score = rec.get_property("bad_score")
    assert score[5] > 5 and score[25] > 5 and score[2] < 0.2 and score[15] < 0.2
    assert np.isnan(score[30]) and rec.get_property("bad_method")[30] == "before detection"


def test_listed_channels_stay_bad_beside_auto(tmp_path):
    rec = open_recording(session_of(tmp_path, session_data(tmp_path, wideband(), [9, "auto"])))
    assert found(rec) == {9: "listed"}


def test_without_auto_only_the_listed_channels_are_bad(tmp_path):
    x = wideband(noisy=(5,))
    rec = open_recording(session_of(tmp_path, session_data(tmp_path, x, [1])))
    assert found(rec) == {1: "listed"}


def test_ingest_writes_the_table_and_the_session_lists_every_bad_channel(tmp_path):
    path = write_session(tmp_path, session_data(tmp_path, wideband(dead=(6,))))
    ingest(tmp_path / "out", path)
    rows = read_tsv(tmp_path / "out" / "bad_channels.tsv")
    assert [(r["channel"], r["label"]) for r in rows if r["label"] != "good"] == [(6, "dead")]
    assert len(rows) == 32 and {r["method"] for r in rows} == {"mad", "coherence+psd"}
    info = json.loads((tmp_path / "out" / "session.json").read_text())
    assert info["bad_channels_all"] == [6] and info["auto_bad_channels"] is True


def test_a_region_left_without_good_channels_is_refused(tmp_path):
    x = wideband()
    x[:, 0:4] = 0
    with pytest.raises(IngestError) as err:
        open_recording(session_of(tmp_path, session_data(tmp_path, x)))
    assert (
        f"region 'CA1' has no good channel left (from {tmp_path / 'session.yaml'}): channels "
        "0 (zero), 1 (zero), 2 (zero), 3 (zero) are bad; expected at least one good channel "
        "per region" in str(err.value)
    )


def test_bad_channels_other_than_indices_and_auto_are_refused(tmp_path):
    with pytest.raises(ConfigError) as err:
        session_of(tmp_path, session_data(tmp_path, wideband(duration_s=1.0), [3, "some"]))
    assert "'bad_channels[1]': expected a channel index or 'auto'; got 'some'." in str(err.value)


def test_a_shank_without_gains_is_judged_by_mad(tmp_path):
    """coherence+psd's thresholds are microvolts: a recording without gains gets mad, which
    still finds a planted noisy channel."""
    x = wideband(noisy=(20,), duration_s=2.0)[:, 8:].astype("float32")
    rec = sc.NumpyRecording([x], FS)
    rec.set_dummy_probe_from_locations(np.c_[np.zeros(N_SHANK), np.arange(N_SHANK) * 20.0])
    assert not rec.has_scaleable_traces()
    labels, scores, method = detect_group(rec, load_config()["bad_channel_detection"])
    assert method == "mad"
    assert np.flatnonzero(labels != "good").tolist() == [12] and scores[12] > 5
