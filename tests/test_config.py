"""Every configuration problem is an error naming the file, the key and what was expected."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from neurodict.config import (
    ConfigError,
    apply_defaults,
    check_workflow_config,
    load_config,
    load_schema,
    load_session,
    section_defaults,
)
from tests.conftest import write_yaml


@pytest.fixture
def valid(tmp_path) -> dict:
    """A valid binary session (8 channels, 2 tetrodes in CA1 and PFC) with its raw file."""
    np.zeros((1000, 8), dtype="int16").tofile(tmp_path / "raw.bin")
    return {
        "raw_path": "raw.bin",
        "format": "binary",
        "sampling_frequency_hz": 10000.0,
        "num_channels": 8,
        "dtype": "int16",
        "groups": [
            {"name": "tt1", "region": "CA1", "channels": [0, 1, 2, 3]},
            {"name": "tt2", "region": "PFC", "channels": [4, 5, 6, 7]},
        ],
        "mains_hz": 50,
    }


def errors_of(tmp_path, data: dict) -> str:
    path = write_yaml(tmp_path / "s.yaml", data)
    with pytest.raises(ConfigError) as info:
        load_session(path)
    return str(info.value)


def test_valid_session_loads_with_defaults(tmp_path, valid):
    s = load_session(write_yaml(tmp_path / "s.yaml", valid))
    assert s.name == "s"
    assert s.regions == ["CA1", "PFC"]
    assert s.channels == list(range(8))
    assert s.raw_path == (tmp_path / "raw.bin").resolve()
    assert s.params["lfp"]["fs_lfp_hz"] == 1000.0
    assert s.bad_channels == ()


def test_unknown_key(tmp_path, valid):
    valid["sampling_rate"] = 3
    msg = errors_of(tmp_path, valid)
    assert f"{tmp_path / 's.yaml'}: 'sampling_rate': expected a known key" in msg
    assert "got 'unknown key'" in msg


def test_unknown_nested_key(tmp_path, valid):
    valid["groups"][1]["depth"] = 3
    assert (
        "'groups[1].depth': expected a known key (one of ['channels', 'name', 'region', "
        "'regions_by_depth', 'regions_file'])" in errors_of(tmp_path, valid)
    )


def test_wrong_type(tmp_path, valid):
    valid["num_channels"] = "eight"
    assert "'num_channels': expected a value of type integer; got 'eight'." in errors_of(
        tmp_path, valid
    )


def test_missing_required_key(tmp_path, valid):
    del valid["mains_hz"]
    assert "'mains_hz': expected this required key; got 'nothing'." in errors_of(tmp_path, valid)


def test_channel_in_two_groups(tmp_path, valid):
    valid["groups"][1]["channels"] = [3, 4, 5, 6]
    assert (
        "'groups[1].channels': expected channels in one group only (channel 3 is already "
        "in group 'tt1'); got 3."
    ) in errors_of(tmp_path, valid)


def test_region_with_no_good_channels(tmp_path, valid):
    valid["bad_channels"] = [4, 5, 6, 7]
    assert "'groups': expected region 'PFC' to have at least one good channel" in errors_of(
        tmp_path, valid
    )


def test_path_that_does_not_exist(tmp_path, valid):
    valid["raw_path"] = "missing.bin"
    assert (
        f"'raw_path': expected an existing file or folder; got '{tmp_path / 'missing.bin'}'."
    ) in errors_of(tmp_path, valid)


def test_unsupported_format(tmp_path, valid):
    valid["format"] = "abf"
    assert "'format': expected one of ['binary', 'openephys', 'spikeglx'" in errors_of(
        tmp_path, valid
    )


def test_sampling_rate_missing_for_binary(tmp_path, valid):
    del valid["sampling_frequency_hz"]
    assert (
        "'sampling_frequency_hz': expected a value: raw binary does not carry it; got None."
        in errors_of(tmp_path, valid)
    )


def test_window_with_end_before_start(tmp_path, valid):
    valid["windows"] = [{"start_s": 2.0, "end_s": 1.0, "condition": "run"}]
    assert "'windows[0]': expected end_s > start_s" in errors_of(tmp_path, valid)


def test_param_override_validated_with_the_workflow_schema(tmp_path, valid):
    valid["params"] = {"lfp": {"fs_lfp_hz": -1}, "spiking": {}}
    msg = errors_of(tmp_path, valid)
    assert "'params.lfp.fs_lfp_hz': expected a number >= 10 and <= 100000; got -1." in msg
    assert "'params.spiking': expected a known key" in msg


def test_param_override_merges_over_defaults(tmp_path, valid):
    valid["params"] = {"lfp": {"freq_max_hz": 200.0}}
    s = load_session(write_yaml(tmp_path / "s.yaml", valid))
    assert s.params["lfp"]["freq_max_hz"] == 200.0
    assert s.params["lfp"]["fs_lfp_hz"] == 1000.0


def test_lfp_corner_above_nyquist(tmp_path, valid):
    valid["params"] = {"lfp": {"freq_max_hz": 600.0}}
    assert (
        "'params.lfp.freq_max_hz': expected a value below fs_lfp_hz / 2 = 500.0; got 600.0."
        in errors_of(tmp_path, valid)
    )


def test_every_problem_reported_at_once(tmp_path, valid):
    valid["groups"][1]["channels"] = [3]
    valid["raw_path"] = "missing.bin"
    msg = errors_of(tmp_path, valid)
    assert "'groups[1].channels'" in msg and "'raw_path'" in msg


def test_workflow_config_unknown_key(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", {"sessions": {"a": "a.yaml"}, "lfp": {"fs": 3}})
    with pytest.raises(ConfigError, match=r"c.yaml: 'lfp.fs': expected a known key"):
        load_config(path)


def test_config_yaml_repeats_every_schema_default():
    """config/config.yaml and the schema's defaults are one registry: they must agree."""
    schema = load_schema("config")
    with open(Path(__file__).resolve().parents[1] / "config" / "config.yaml") as f:
        written = yaml.safe_load(f)
    defaults = apply_defaults({"sessions": written["sessions"]}, schema)
    for section, values in schema["properties"].items():
        if section == "sessions":
            continue
        expected = defaults[section]
        if isinstance(expected, dict):
            expected = apply_defaults(expected, values)
        assert written[section] == expected, section


def _walk(schema: dict, where: str):
    yield where, schema
    for key, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{where}.{key}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{where}[]")


@pytest.mark.parametrize("name", ["config", "session"])
def test_every_schema_key_is_described_and_closed(name):
    for where, sub in _walk(load_schema(name), name):
        assert "description" in sub or where.endswith("[]"), f"{where} has no description"
        if sub.get("type") == "object" and "properties" in sub:
            assert sub.get("additionalProperties") is False, f"{where} accepts unknown keys"


def test_defaults_are_not_shared_between_loads(tmp_path, valid):
    s1 = load_session(write_yaml(tmp_path / "s.yaml", copy.deepcopy(valid)))
    s1.params["lfp"]["fs_lfp_hz"] = 1.0
    s2 = load_session(tmp_path / "s.yaml")
    assert s2.params["lfp"]["fs_lfp_hz"] == 1000.0


@pytest.mark.parametrize(
    "function, section",
    [
        ("neurodict.lfpdict.estimator:SpikeLFPDictionary", "lfpdict"),
        ("neurodict.clusters.mixture:cluster", "clusters"),
        ("neurodict.clusters.mixture:bootstrap_ari", "clusters"),
    ],
)
def test_code_defaults_are_the_schema_defaults(function, section):
    """Keyword defaults in the code repeat the schema's (the one registry) wherever they share
    a name."""
    import importlib
    import inspect

    module, name = function.split(":")
    target = getattr(importlib.import_module(module), name)
    params = inspect.signature(target).parameters
    schema = section_defaults(section)
    shared = {
        k: p.default
        for k, p in params.items()
        if k in schema and p.default is not inspect.Parameter.empty
    }
    assert shared, f"{function} shares no parameter with the '{section}' section"
    for key, default in shared.items():
        assert (list(default) if isinstance(default, tuple) else default) == schema[key], key


def test_packaged_config_passes_the_workflow_check():
    """The Snakefile's start-up check accepts config/config.yaml as Snakemake reads it."""
    path = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    assert check_workflow_config(config, [path]) is config
    assert config == load_config(path)


def test_range_violation_names_the_range(tmp_path, valid):
    valid["params"] = {"lfpdict": {"n_folds": 1}}
    assert "'params.lfpdict.n_folds': expected an integer >= 2 and <= 100; got 1." in errors_of(
        tmp_path, valid
    )


def test_not_a_regular_file(tmp_path):
    with pytest.raises(
        ConfigError, match=re.escape(f"{tmp_path}: not a regular file; expected a YAML file.")
    ):
        load_session(tmp_path)


def test_each_schema_load_is_a_fresh_copy():
    """The schema is parsed once per process: a caller that changes its copy changes no
    later one."""
    schema = load_schema("config")
    schema["properties"]["sorting"]["properties"]["epoch_s"]["default"] = 1.0
    del schema["properties"]["lfp"]
    again = load_schema("config")
    assert again["properties"]["sorting"]["properties"]["epoch_s"]["default"] == 60.0
    assert "lfp" in again["properties"]
