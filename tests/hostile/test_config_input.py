"""Hostile configuration and session files (issue 13): each is refused at once, before any work,
with one message naming the file and the key, line or channel.

Every case is tried twice: through the function that reads it (``read_yaml``, ``load_config``,
``load_session``, ``check_workflow_config``, ``open_recording``) and through
``neurodict validate``, which must exit with status 2 and print the same message.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from neurodict.cli import main
from neurodict.config import (
    MAX_YAML_BYTES,
    NAME_TEXT,
    ConfigError,
    check_workflow_config,
    duration_problems,
    load_config,
    load_session,
    read_yaml,
)
from neurodict.ingest.readers import IngestError, open_recording
from neurodict.lfpdict.estimator import circular_jitter, fold_cores
from tests.conftest import relocated_session, write_yaml

# Far more than any machine can expand: 9 levels of 9 aliases, 9**9 leaves.
LEVELS = "abcdefghi"
# A refusal is immediate; this bound only catches a hang (jsonschema on the expanded bomb).
FAST_S = 5.0


def bomb(indent: str = "") -> str:
    """A YAML list whose anchors and aliases expand to 9**9 items, as one flow sequence."""
    items = [f"&{LEVELS[0]} [" + ", ".join(["0"] * 9) + "]"]
    for prev, name in zip(LEVELS, LEVELS[1:], strict=False):
        items.append(f"&{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return indent + "[" + ", ".join(items) + "]"


def session_text(tiny_session: Path, tmp_path: Path, **changes) -> str:
    """The YAML text of a relocated copy of the tiny session (absolute paths)."""
    return relocated_session(tiny_session, tmp_path, **changes).read_text()


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def line_of(text: str, start: str) -> int:
    """1-based number of the first line of `text` that starts with `start`."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(start))


def refused(call, error=ConfigError) -> str:
    """The message of the error `call()` raises, checking it came fast."""
    started = time.perf_counter()
    with pytest.raises(error) as info:
        call()
    assert time.perf_counter() - started < FAST_S
    return str(info.value)


def validate_refuses(capsys, session: Path, config: Path | None = None) -> str:
    """``neurodict validate``: exit status 2, no traceback; returns its message."""
    argv = ["validate", str(session)] + (["--config", str(config)] if config else [])
    started = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - started < FAST_S
    err = capsys.readouterr().err
    assert err.startswith("neurodict validate: error:\n") and "Traceback" not in err
    return err


def ingest_refuses(capsys, session: Path) -> str:
    """The IngestError that opening the recording of `session` raises, which ``neurodict
    validate`` prints in full too."""
    message = refused(lambda: open_recording(load_session(session)), IngestError)
    assert message in validate_refuses(capsys, session)
    return message


# ----------------------------------------------------------------------------------------------
# The YAML reader: size, encoding, aliases, duplicate keys, non-finite numbers


def test_alias_bomb_in_a_session_is_refused_at_once(tiny_session, tmp_path, capsys):
    text = session_text(tiny_session, tmp_path)
    text = "".join(x for x in text.splitlines(True) if not x.startswith("bad_channels:"))
    text += f"bad_channels: {bomb()}\n"
    path = write_text(tmp_path / "s.yaml", text)
    line = line_of(text, "bad_channels:")
    expected = (
        f"{path}: 'bad_channels[0]': expected a plain value (YAML anchors '&' and "
        f"aliases '*' are not allowed; write the value out); got anchor '&a' on line "
        f"{line}."
    )
    assert refused(lambda: load_session(path)) == expected
    assert expected in validate_refuses(capsys, path)


def test_alias_without_anchor_is_refused(tmp_path):
    path = write_text(tmp_path / "s.yaml", "raw_path: x.raw\nbad_channels: *x\n")
    assert refused(lambda: read_yaml(path)) == (
        f"{path}: 'bad_channels': expected a plain value (YAML anchors '&' and aliases '*' are "
        f"not allowed; write the value out); got alias '*x' on line 2."
    )


def test_alias_bomb_in_the_workflow_config_is_refused_at_once(tiny_session, tmp_path, capsys):
    text = f"sessions:\n  tiny: {tiny_session}\nlfpdict:\n  lambda_fractions: {bomb()}\n"
    config = write_text(tmp_path / "config.yaml", text)
    expected = (
        f"{config}: 'lfpdict.lambda_fractions[0]': expected a plain value (YAML anchors "
        f"'&' and aliases '*' are not allowed; write the value out); got anchor '&a' on "
        f"line 4."
    )
    assert refused(lambda: load_config(config)) == expected
    assert expected in validate_refuses(capsys, tiny_session, config)
    # The Snakefile's start-up check: Snakemake read the file itself (aliases shared, not
    # expanded); the file and the built configuration are both refused before jsonschema.
    built = yaml.safe_load(text)
    assert refused(lambda: check_workflow_config(built, [config])) == expected
    msg = refused(lambda: check_workflow_config(yaml.safe_load(text), []))
    assert msg.splitlines()[0] == (
        "the workflow configuration: 'lfpdict.lambda_fractions[1][0]': expected a value written "
        "out once (not shared with another key, as a YAML alias does); got 'a shared value'."
    )
    assert len(msg.splitlines()) == 8  # one per shared list: a .. h


def test_file_over_the_size_cap_is_refused_unread(tiny_session, tmp_path, capsys):
    text = session_text(tiny_session, tmp_path) + ("# padding\n" * 200_000)  # 2 MB
    path = write_text(tmp_path / "s.yaml", text)
    size = path.stat().st_size
    assert size > 2_000_000 > MAX_YAML_BYTES
    expected = (
        f"{path}: file of {size} bytes; expected a YAML file of at most {MAX_YAML_BYTES} bytes."
    )
    assert refused(lambda: load_session(path)) == expected
    assert expected in validate_refuses(capsys, path)
    config = write_text(tmp_path / "config.yaml", f"sessions: {{a: {path}}}\n" + "#" * size)
    assert refused(lambda: load_config(config)).startswith(f"{config}: file of ")


def test_duplicate_key_is_refused_with_both_lines(tiny_session, tmp_path, capsys):
    text = session_text(tiny_session, tmp_path) + "sampling_frequency_hz: 20000.0\n"
    path = write_text(tmp_path / "s.yaml", text)
    first = line_of(text, "sampling_frequency_hz:")
    last = len(text.splitlines())
    expected = (
        f"{path}: 'sampling_frequency_hz': expected each key once; got it again on line "
        f"{last} (first on line {first})."
    )
    assert refused(lambda: load_session(path)) == expected
    assert expected in validate_refuses(capsys, path)


def test_duplicate_nested_key_names_its_path(tmp_path):
    path = write_text(
        tmp_path / "s.yaml", "groups:\n  - name: tt1\n    region: CA1\n    name: tt2\n"
    )
    assert refused(lambda: read_yaml(path)) == (
        f"{path}: 'groups[0].name': expected each key once; got it again on line 4 "
        f"(first on line 2)."
    )


@pytest.mark.parametrize(
    "key,value",
    [
        ("sampling_frequency_hz", ".nan"),
        ("gain_to_uv", ".inf"),
        ("offset_to_uv", "-.Inf"),
        ("sampling_frequency_hz", "1.0e+999"),
    ],
)
def test_non_finite_number_is_refused(tiny_session, tmp_path, capsys, key, value):
    data = yaml.safe_load(relocated_session(tiny_session, tmp_path).read_text())
    data.pop(key, None)
    text = yaml.safe_dump(data, sort_keys=False) + f"{key}: {value}\n"
    path = write_text(tmp_path / "s.yaml", text)
    line = len(text.splitlines())
    expected = f"{path}: '{key}': expected a finite number; got '{value}' on line {line}."
    assert refused(lambda: load_session(path)) == expected
    assert expected in validate_refuses(capsys, path)


def test_non_finite_window_bound_is_refused(tiny_session, tmp_path):
    text = session_text(tiny_session, tmp_path)
    text += "windows:\n- start_s: 0.0\n  end_s: .nan\n  condition: rest\n"
    path = write_text(tmp_path / "s.yaml", text)
    line = line_of(text, "- start_s: 0.0") + 1
    assert refused(lambda: load_session(path)) == (
        f"{path}: 'windows[0].end_s': expected a finite number; got '.nan' on line {line}."
    )


def test_non_finite_override_is_refused(tiny_session, tmp_path):
    config = write_yaml(tmp_path / "config.yaml", {"sessions": {"tiny": str(tiny_session)}})
    assert (
        refused(lambda: load_config(config, overrides={"lfp": {"fs_lfp_hz": float("nan")}}))
        == f"{config}: 'lfp.fs_lfp_hz': expected a finite number; got nan."
    )


def test_non_utf8_file_is_named(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_bytes(b"raw_path: caf\xe9.raw\nformat: binary\n")
    expected = f"{path}: not UTF-8 text (byte 0xe9 at offset 13); expected a UTF-8 YAML file."
    assert refused(lambda: load_session(path)) == expected
    assert expected in validate_refuses(capsys, path)
    config = tmp_path / "config.yaml"
    config.write_bytes(b"sessions: {caf\xe9: s.yaml}\n")
    assert refused(lambda: load_config(config)).startswith(f"{config}: not UTF-8 text")


def test_keys_that_are_not_text_are_refused(tmp_path):
    config = write_text(tmp_path / "config.yaml", "sessions:\n  2024: s.yaml\n")
    assert refused(lambda: load_config(config)) == (
        f"{config}: 'sessions': expected keys that are text (quote a number used as a key); "
        f"got 2024."
    )


def test_deep_nesting_is_refused(tmp_path):
    path = write_text(tmp_path / "s.yaml", "raw_path: " + "[" * 10_000 + "]" * 10_000 + "\n")
    assert refused(lambda: read_yaml(path)).startswith(
        f"{path}: 'raw_path{'[0]' * 19}': expected at "
        f"most 20 levels of nested mappings and lists; got deeper nesting on line 1."
    )


# ----------------------------------------------------------------------------------------------
# The schemas: names, ranges, integer channels


@pytest.mark.parametrize("name", ["-h", "..", ".", "a b", "tt1;ls", "t/1", "x\n"])
def test_hostile_group_name_is_refused(tiny_session, tmp_path, capsys, name):
    data = yaml.safe_load(relocated_session(tiny_session, tmp_path).read_text())
    data["groups"][1]["name"] = name
    path = write_yaml(tmp_path / "s.yaml", data)
    expected = f"{path}: 'groups[1].name': expected {NAME_TEXT}; got {name!r}."
    assert refused(lambda: load_session(path)) == expected
    assert expected in validate_refuses(capsys, path)


def test_group_names_differing_only_in_case_are_refused(tiny_session, tmp_path):
    data = yaml.safe_load(relocated_session(tiny_session, tmp_path).read_text())
    data["groups"][1]["name"] = data["groups"][0]["name"].upper()
    path = write_yaml(tmp_path / "s.yaml", data)
    assert (
        f"{path}: 'groups[1].name': expected group names that differ in more than case"
        in refused(lambda: load_session(path))
    )


@pytest.mark.parametrize(
    "name",
    [
        "../../escaped",
        "z`touch pwned`",
        "x&rm -rf x&",
        "",
        "a b",
        "-h",
        ".",
        "..",
        "a*",
        "q'uote",
        "x\n",
        "é",
    ],
)
def test_hostile_session_name_is_refused(tiny_session, tmp_path, capsys, name):
    config = write_yaml(tmp_path / "config.yaml", {"sessions": {name: str(tiny_session)}})
    expected = f"{config}: 'sessions': expected {NAME_TEXT}; got {name!r}."
    assert refused(lambda: load_config(config)) == expected
    assert expected in validate_refuses(capsys, tiny_session, config)
    built = yaml.safe_load(config.read_text())
    assert refused(lambda: check_workflow_config(built, [config])) == expected
    assert not list(tmp_path.parent.glob("escaped*")) and not Path("pwned`").exists()


def test_plain_session_names_are_accepted(tiny_session, tmp_path):
    names = ["demo", "rat_01.day-2", "A.b", "...", "x..y"]
    config = write_yaml(
        tmp_path / "config.yaml", {"sessions": {n: str(tiny_session) for n in names}}
    )
    assert list(load_config(config)["sessions"]) == names
    built = yaml.safe_load(config.read_text())
    assert check_workflow_config(built, [config])["lfp"]["fs_lfp_hz"] == 1000.0


def test_explicit_session_name_is_checked(tiny_session):
    assert refused(lambda: load_session(tiny_session, name="../up")) == (
        f"{tiny_session}: '<session name>': expected {NAME_TEXT}; got '../up'."
    )


@pytest.mark.parametrize("value", [1e-9, 0.0, -10000.0, 1e12])
def test_sampling_rate_out_of_range(tiny_session, tmp_path, capsys, value):
    path = relocated_session(tiny_session, tmp_path, sampling_frequency_hz=value)
    expected = (
        f"{path}: 'sampling_frequency_hz': expected a number >= 100 and <= 1000000; got {value!r}."
    )
    assert refused(lambda: load_session(path)) == expected
    assert expected in validate_refuses(capsys, path)


def test_channel_index_must_be_an_integer(tiny_session, tmp_path, capsys):
    data = yaml.safe_load(relocated_session(tiny_session, tmp_path).read_text())
    data["groups"][0]["channels"][1] = 1.0
    path = write_yaml(tmp_path / "s.yaml", data)
    expected = f"{path}: 'groups[0].channels[1]': expected a value of type integer; got 1.0."
    assert refused(lambda: load_session(path)) == expected
    assert expected in validate_refuses(capsys, path)


def test_integer_setting_given_as_float_is_refused_in_the_workflow_config(tiny_session, tmp_path):
    config = write_yaml(
        tmp_path / "config.yaml",
        {"sessions": {"tiny": str(tiny_session)}, "sorting": {"n_burn": 40.0}},
    )
    expected = f"{config}: 'sorting.n_burn': expected a value of type integer; got 40.0."
    assert refused(lambda: load_config(config)) == expected
    built = yaml.safe_load(config.read_text())
    assert refused(lambda: check_workflow_config(built, [config])) == expected


@pytest.mark.parametrize(
    "section,key,value,expected",
    [
        ("lfpdict", "seed", -1, "an integer >= 0 and <= 4294967295"),
        ("lfpdict", "jitter_min_s", 1e300, "a number > 0 and <= 1000000"),
        ("sorting", "epoch_s", 1e-6, "a number >= 1 and <= 10000000"),
        ("lfp", "freq_min_hz", 1e-9, "a number >= 0.01 and <= 10000"),
        ("report", "trace_s", 1e9, "a number > 0 and <= 60"),
    ],
)
def test_setting_out_of_range(tiny_session, tmp_path, section, key, value, expected):
    config = write_yaml(
        tmp_path / "config.yaml", {"sessions": {"tiny": str(tiny_session)}, section: {key: value}}
    )
    assert refused(lambda: load_config(config)) == (
        f"{config}: '{section}.{key}': expected {expected}; got {value!r}."
    )


def test_results_dir_starting_with_a_dash_is_refused(tiny_session, tmp_path):
    config = write_yaml(
        tmp_path / "config.yaml", {"sessions": {"tiny": str(tiny_session)}, "results_dir": "-rf"}
    )
    assert refused(lambda: load_config(config)) == (
        f"{config}: 'results_dir': expected a folder path that does not start with '-' and has "
        f"no control characters; got '-rf'."
    )


# ----------------------------------------------------------------------------------------------
# Settings that contradict each other or the recording


def test_spike_band_lower_corner_above_nyquist(tiny_session, tmp_path, capsys):
    path = relocated_session(tiny_session, tmp_path, params={"spikeband": {"freq_min_hz": 9000.0}})
    msg = refused(lambda: load_session(path))
    assert msg == (
        f"{path}: 'params.spikeband.freq_min_hz': expected a corner below spikeband.freq_max_hz "
        f"= 6000 Hz; got 9000.0.\n"
        f"{path}: 'params.spikeband.freq_min_hz': expected a corner below the spike band's "
        f"upper corner min(freq_max_hz, 0.45 x the sampling rate 10000 Hz) = 4500 Hz; got "
        f"9000.0."
    )
    assert msg in validate_refuses(capsys, path)
    path = relocated_session(tiny_session, tmp_path, params={"spikeband": {"freq_min_hz": 5000.0}})
    assert refused(lambda: load_session(path)) == (
        f"{path}: 'params.spikeband.freq_min_hz': expected a corner below the spike band's "
        f"upper corner min(freq_max_hz, 0.45 x the sampling rate 10000 Hz) = 4500 Hz; got "
        f"5000.0."
    )


def test_band_edges_out_of_order_in_the_workflow_config(tiny_session, tmp_path, capsys):
    config = write_yaml(
        tmp_path / "config.yaml",
        {"sessions": {"tiny": str(tiny_session)}, "lfp": {"freq_min_hz": 400.0}},
    )
    expected = (
        f"{config}: 'lfp.freq_min_hz': expected a corner below lfp.freq_max_hz = 300 Hz; got 400.0."
    )
    assert refused(lambda: load_config(config)) == expected
    assert expected in validate_refuses(capsys, tiny_session, config)


def test_lfp_rate_that_does_not_divide_the_sampling_rate(tiny_session, tmp_path, capsys):
    path = relocated_session(tiny_session, tmp_path, params={"lfp": {"fs_lfp_hz": 3000.0}})
    expected = (
        f"{path}: 'params.lfp.fs_lfp_hz': expected a rate that divides the recording's "
        f"sampling rate 10000 Hz a whole number of times (e.g. 2500 Hz = 10000 Hz / 4);"
        f" got 3000.0."
    )
    assert refused(lambda: load_session(path)) == expected
    assert expected in validate_refuses(capsys, path)
    # Set in the workflow configuration, the setting is named as its key there.
    config = write_yaml(
        tmp_path / "config.yaml",
        {
            "sessions": {"tiny": str(tiny_session)},
            "lfp": {"fs_lfp_hz": 20000.0, "freq_max_hz": 300.0},
        },
    )
    plain = relocated_session(tiny_session, tmp_path)
    assert (
        f"{plain}: 'lfp.fs_lfp_hz': expected a rate that divides the recording's sampling "
        f"rate 10000 Hz a whole number of times (e.g. 10000 Hz = 10000 Hz / 1); got 20000.0."
        in validate_refuses(capsys, plain, config)
    )


def test_lfp_rate_checked_when_the_format_carries_the_rate(tmp_path, capsys):
    """NWB carries its rate: the check runs when the recording is opened."""
    import spikeinterface.core as sc

    from tests.ingest.test_readers import write_nwb

    write_nwb(
        tmp_path / "rec.nwb",
        sc.generate_recording(num_channels=4, durations=[1.0], sampling_frequency=10000.0, seed=0),
    )
    path = write_yaml(
        tmp_path / "s.yaml",
        {
            "raw_path": "rec.nwb",
            "format": "nwb",
            "mains_hz": 50,
            "groups": [{"name": "tt1", "region": "CA1", "channels": [0, 1, 2, 3]}],
            "params": {"lfp": {"fs_lfp_hz": 3000.0}, "lfpdict": {"spikes": "truth"}},
        },
    )
    session = load_session(path)
    expected = (
        f"{path}: 'params.lfp.fs_lfp_hz': expected a rate that divides the recording's "
        f"sampling rate 10000 Hz a whole number of times (e.g. 2500 Hz = 10000 Hz / 4);"
        f" got 3000.0."
    )
    assert refused(lambda: open_recording(session)) == expected
    assert expected in validate_refuses(capsys, path)


def test_recording_shorter_than_twice_the_null_shift(tiny_session, tmp_path, capsys):
    path = relocated_session(tiny_session, tmp_path, params={"lfpdict": {"jitter_min_s": 15.0}})
    expected = (
        f"{path}: 'params.lfpdict.jitter_min_s': expected a minimum shift of the "
        f"dictionaries' null below half the recording (30.000 s long; or set "
        f"lfpdict.spikes: truth without a ground truth to skip the dictionaries); got "
        f"15.0."
    )
    session = load_session(path)
    assert refused(lambda: open_recording(session)) == expected
    assert expected in validate_refuses(capsys, path)


def test_recording_too_short_for_the_folds(tiny_session, tmp_path, capsys):
    path = relocated_session(tiny_session, tmp_path, params={"lfpdict": {"n_folds": 20}})
    expected = (
        f"{path}: 'params.lfpdict.n_folds': expected cross-validation folds of at least "
        f"4 filter lengths (4 x 401 = 1604 LFP samples, 1.604 s, set by "
        f"lfpdict.lag_minus_ms and lag_plus_ms): the 30.000 s recording gives folds of "
        f"1500 samples; got 20."
    )
    assert expected in validate_refuses(capsys, path)


def test_short_recording_passes_when_the_dictionaries_do_not_run(tiny_session, tmp_path):
    data = yaml.safe_load(relocated_session(tiny_session, tmp_path).read_text())
    del data["ground_truth_sorting"]
    data["params"] = {"lfpdict": {"spikes": "truth", "jitter_min_s": 100.0}}
    assert open_recording(load_session(write_yaml(tmp_path / "s.yaml", data))) is not None


@pytest.mark.parametrize(
    "n_bins,n_folds,lag_ms,jitter_s",
    [
        (2000, 5, 50.0, 0.999),
        (2000, 5, 50.0, 1.0),
        (2001, 5, 50.0, 1.0),
        (2020, 5, 50.0, 0.1),
        (2019, 5, 50.0, 0.1),
        (2021, 5, 50.0, 0.1),
        (8019, 5, 200.0, 1.0),
        (8020, 5, 200.0, 1.0),
        (8020, 5, 200.0, 4.01),
        (8023, 3, 200.0, 1.0),
    ],
)
def test_duration_check_agrees_with_the_estimator(tiny_session, n_bins, n_folds, lag_ms, jitter_s):
    """Validation refuses a length exactly when the dictionary estimator would fail on it."""
    session = load_session(tiny_session)
    lfpdict = dict(
        session.params["lfpdict"],
        n_folds=n_folds,
        lag_minus_ms=lag_ms,
        lag_plus_ms=lag_ms,
        jitter_min_s=jitter_s,
    )
    session = dataclasses.replace(session, params=dict(session.params, lfpdict=lfpdict))
    factor = 10  # 10 kHz to 1 kHz
    problems = duration_problems(session, 10000.0, n_bins * factor)
    n_lags = 2 * int(round(lag_ms)) + 1
    fails = []
    for check in (
        lambda: fold_cores(n_bins, n_folds, n_lags),
        lambda: circular_jitter(
            [np.array([1, 5])], n_bins, int(jitter_s * 1000), np.random.default_rng(0)
        ),
    ):
        try:
            check()
        except ValueError:
            fails.append(True)
    assert len(problems) == len(fails)


# ----------------------------------------------------------------------------------------------
# Samples that cannot be processed


def binary(tmp_path: Path, samples: np.ndarray, **extra) -> Path:
    """A short binary session over `samples` (dictionaries skipped: no ground truth)."""
    samples.tofile(tmp_path / "raw.bin")
    data = {
        "raw_path": "raw.bin",
        "format": "binary",
        "sampling_frequency_hz": 10000.0,
        "num_channels": samples.shape[1],
        "dtype": str(samples.dtype),
        "mains_hz": 50,
        "groups": [
            {"name": "tt1", "region": "CA1", "channels": [0, 1, 2, 3]},
            {"name": "tt2", "region": "PFC", "channels": [4, 5, 6, 7]},
        ],
        "params": {"lfpdict": {"spikes": "truth"}},
        **extra,
    }
    return write_yaml(tmp_path / "s.yaml", data)


def noise(n: int = 50_000, dtype="int16") -> np.ndarray:
    return np.random.default_rng(1).normal(0, 300, size=(n, 8)).astype(dtype)


WHERE = "3 stretches of 1 s at 0, 2, 4 s"


def test_all_zero_recording_is_refused(tmp_path, capsys):
    path = binary(tmp_path, np.zeros((50_000, 8), "int16"))
    expected = (
        f"the recording '{tmp_path / 'raw.bin'}' (from {path}) is all zero: every sample "
        f"read ({WHERE}) of channels [0, 1, 2, 3, 4, 5, 6, 7] is 0; expected a "
        f"recording with signal (check raw_path, dtype, num_channels and the channel "
        f"indices)."
    )
    assert ingest_refuses(capsys, path) == expected


def test_all_zero_relocated_synthetic_recording_is_refused(tiny_session, tmp_path, capsys):
    zeros = tmp_path / "zeros.raw"
    zeros.write_bytes(bytes(Path(tiny_session).parent.joinpath("recording.raw").stat().st_size))
    path = relocated_session(tiny_session, tmp_path, raw_path=str(zeros))
    assert (
        "is all zero: every sample read (3 stretches of 1 s at 0, 14.5, 29 s)"
        in validate_refuses(capsys, path)
    )


def test_dead_channels_are_named(tmp_path, capsys):
    x = noise()
    x[:, 2] = 0
    x[:, 5] = 7
    x[:, 6] = np.where(np.arange(len(x)) % 3 == 0, 32767, x[:, 6])
    path = binary(tmp_path, x)
    expected = (
        f"the recording '{tmp_path / 'raw.bin'}' (from {path}): channels 2 (tt1) are all "
        f"zero; channels 5 (tt2) are constant (at 7); channels 6 (tt2) are saturated "
        f"(33% of their samples at the int16 limits -32768 or 32767), in the {WHERE} "
        f"read; expected signal on every channel: list these channels under bad_channels "
        f"in {path} or check the recording."
    )
    assert ingest_refuses(capsys, path) == expected
    # Listed as bad, they are left out of everything and accepted.
    path = binary(tmp_path, x, bad_channels=[2, 5, 6])
    assert main(["validate", str(path)]) == 0


def test_non_finite_samples_are_named(tmp_path, capsys):
    x = noise(dtype="float32")
    x[25_000, 3] = np.nan  # in the middle stretch
    x[10, 4] = np.inf
    path = binary(tmp_path, x)
    expected = (
        f"the recording '{tmp_path / 'raw.bin'}' (from {path}): channels 3 (tt1), 4 (tt2) "
        f"have non-finite samples (NaN or infinite), in the {WHERE} read"
    )
    assert ingest_refuses(capsys, path).startswith(expected)


def test_non_finite_samples_between_the_stretches_are_named(tmp_path, capsys):
    """A NaN outside the stretches read is found by the whole read of floating-point data:
    named with its time, or, with bad_channels auto, its channel is bad (non-finite)."""
    x = noise(dtype="float32")
    x[15_000, 2] = np.nan  # 1.5 s: between the stretches at 0-1 and 2-3 s
    x[35_000:35_004, 6] = -np.inf
    path = binary(tmp_path, x)
    expected = (
        f"the recording '{tmp_path / 'raw.bin'}' (from {path}): channels 2 (tt1), 6 (tt2) "
        f"have NaN or infinite samples (the first at 1.5000, 3.5000 s); expected finite "
        f"samples: list these channels under bad_channels in {path} or check the recording."
    )
    assert ingest_refuses(capsys, path) == expected
    rec = open_recording(load_session(binary(tmp_path, x, bad_channels="auto")))
    assert np.flatnonzero(rec.get_property("bad")).tolist() == [2, 6]
    assert set(rec.get_property("bad_label")[[2, 6]]) == {"non-finite"}
    # one file per segment: each time within its segment
    x[30_000:].tofile(tmp_path / "run2.bin")
    path = binary(tmp_path, x[:30_000], raw_path=["raw.bin", "run2.bin"])
    expected = (
        f"the recording '{tmp_path / 'raw.bin'}' (from {path}): channels 2 (tt1), 6 (tt2) "
        f"have NaN or infinite samples (the first at 1.5000 s of segment 0, 0.5000 s of "
        f"segment 1); expected finite samples: list these channels under bad_channels in "
        f"{path} or check the recording."
    )
    assert ingest_refuses(capsys, path) == expected


def test_a_short_artefact_is_not_refused(tmp_path):
    """One 20 ms stretch at the rails is an artefact for later steps, not a dead channel."""
    x = noise()
    x[100:300, :] = 32767
    assert open_recording(load_session(binary(tmp_path, x))).get_num_channels() == 8


def test_messages_list_at_most_fifty_problems(tiny_session, tmp_path):
    data = yaml.safe_load(relocated_session(tiny_session, tmp_path).read_text())
    data["bad_channels"] = list(range(1000, 1200))
    path = write_yaml(tmp_path / "s.yaml", data)
    msg = refused(lambda: load_session(path))
    assert len(msg.splitlines()) == 51 and msg.endswith("... and 150 more problems.")
    assert re.search(
        r"'bad_channels': expected channels that belong to a group; got 1000\.$",
        msg.splitlines()[0],
    )
