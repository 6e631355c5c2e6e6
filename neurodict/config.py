"""Load, complete and validate the workflow configuration and recording-session files.

The JSON Schemas shipped in ``neurodict/schemas/`` are the one registry of parameters: types,
ranges, defaults and descriptions. The Snakefile validates the workflow configuration against the
same schema with ``snakemake.utils.validate``; this module does so for the command line and adds the
checks a schema cannot express (a channel in two groups, a region with no good channels, a path
that does not exist). Every problem is reported as ``<file>: '<key>': expected ...; got ...``.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from neurodict.common.errors import InputError

SCHEMA_DIR = resources.files("neurodict") / "schemas"
# Sections of the workflow configuration that a session may override under `params:`.
PARAM_SECTIONS = ("spikeband", "lfp", "detection", "sorting", "lfpdict", "clusters", "report")


class ConfigError(InputError):
    """A configuration or session file is invalid; the message lists every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def problem(file: str | Path, key: str, expected: str, got: object) -> str:
    """Format one configuration problem in the project's single message form."""
    return f"{file}: '{key}': expected {expected}; got {got!r}."


@dataclass(frozen=True)
class Group:
    """One electrode group: its name, the brain region it lies in and its channel indices."""

    name: str
    region: str
    channels: tuple[int, ...]


@dataclass(frozen=True)
class Window:
    """A time window of the recording with a behavioural condition label."""

    start_s: float
    end_s: float
    condition: str


@dataclass(frozen=True)
class Session:
    """A validated recording session; paths are absolute, `params` holds every default."""

    name: str
    file: Path
    raw_path: Path
    format: str
    groups: tuple[Group, ...]
    mains_hz: int
    params: dict
    stream: str | None = None
    segment_index: int | None = None
    sampling_frequency_hz: float | None = None
    num_channels: int | None = None
    dtype: str = "int16"
    gain_to_uv: float = 1.0
    offset_to_uv: float = 0.0
    probe: dict = field(default_factory=dict)
    bad_channels: tuple[int, ...] = ()
    windows: tuple[Window, ...] = ()
    ground_truth_sorting: Path | None = None

    @property
    def regions(self) -> list[str]:
        """Brain regions in order of first appearance among the groups."""
        return list(dict.fromkeys(g.region for g in self.groups))

    @property
    def channels(self) -> list[int]:
        """Every grouped channel index, in group order."""
        return [c for g in self.groups for c in g.channels]

    def to_dict(self) -> dict:
        """A JSON-ready description of the resolved session."""
        return {
            "name": self.name,
            "file": str(self.file),
            "raw_path": str(self.raw_path),
            "format": self.format,
            "stream": self.stream,
            "segment_index": self.segment_index,
            "sampling_frequency_hz": self.sampling_frequency_hz,
            "num_channels": self.num_channels,
            "dtype": self.dtype,
            "gain_to_uv": self.gain_to_uv,
            "offset_to_uv": self.offset_to_uv,
            "probe": self.probe,
            "groups": [
                {"name": g.name, "region": g.region, "channels": list(g.channels)}
                for g in self.groups
            ],
            "bad_channels": list(self.bad_channels),
            "mains_hz": self.mains_hz,
            "windows": [vars(w) for w in self.windows],
            "ground_truth_sorting": (str(self.ground_truth_sorting)
                                     if self.ground_truth_sorting else None),
            "params": self.params,
        }


def schema_path(name: str) -> Path:
    """The file of the packaged schema `name` (``config`` or ``session``)."""
    return Path(str(SCHEMA_DIR / f"{name}.schema.yaml"))


@functools.cache
def _schema_text(name: str) -> str:
    return (SCHEMA_DIR / f"{name}.schema.yaml").read_text()


def load_schema(name: str) -> dict:
    """The packaged JSON Schema ``neurodict/schemas/<name>.schema.yaml`` (a fresh copy)."""
    return yaml.safe_load(_schema_text(name))


def section_defaults(section: str) -> dict:
    """Every default of one section of the workflow configuration (``detection``, ...)."""
    return apply_defaults({}, load_schema("config")["properties"][section])


def section_descriptions(section: str) -> dict[str, str]:
    """Each key's description in one section of the workflow configuration."""
    props = load_schema("config")["properties"][section]["properties"]
    return {key: sub["description"] for key, sub in props.items()}


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, naming the file in any error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: file not found; expected a YAML file."])
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([problem(path, "<top level>", "a mapping of keys to values", data)])
    return data


def _key(path) -> str:
    parts = []
    for p in path:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "<top level>"


def schema_problems(instance: dict, schema: dict, file: str | Path, prefix: str = "") -> list[str]:
    """Every violation of `schema` by `instance`, one message per problem."""
    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path))):
        where = prefix + _key(err.absolute_path) if err.absolute_path else (
            prefix.rstrip(".") or "<top level>")
        kind = err.validator
        if kind == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            for key in sorted(set(err.instance) - set(allowed)):
                loc = key if where == "<top level>" else f"{where}.{key}"
                out.append(problem(file, loc, f"a known key (one of {allowed})", "unknown key"))
        elif kind == "required":
            missing = err.message.split("'")[1]
            loc = f"{where}.{missing}".replace("<top level>.", "")
            out.append(problem(file, loc, "this required key", "nothing"))
        elif kind == "type":
            out.append(problem(file, where, f"a value of type {err.validator_value}", err.instance))
        elif kind == "enum":
            out.append(problem(file, where, f"one of {err.validator_value}", err.instance))
        else:
            out.append(problem(file, where, f"a value that satisfies {kind}={err.validator_value}",
                               err.instance))
    return out


def apply_defaults(instance: dict, schema: dict) -> dict:
    """A copy of `instance` with every missing key that has a schema default filled in."""
    out = copy.deepcopy(instance)
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if isinstance(out.get(key), dict) and sub.get("type") == "object":
            out[key] = apply_defaults(out[key], sub)
    return out


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Read, validate and complete the workflow configuration.

    Parameters
    ----------
    path : str or Path, optional
        The workflow configuration YAML; without one, the schema's defaults and no sessions.
    overrides : dict, optional
        Keys replacing those of the file (as Snakemake's ``--config`` would).

    Returns
    -------
    dict
        The configuration with every default filled in.

    Raises
    ------
    ConfigError
        Listing every problem, each naming the file and key.
    """
    schema = load_schema("config")
    if path is None:
        return apply_defaults({"sessions": {}}, schema)
    data = read_yaml(path)
    data.update(overrides or {})
    problems = schema_problems(data, schema, path)
    if problems:
        raise ConfigError(problems)
    return apply_defaults(data, schema)


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _session_params(data: dict, file: Path, config: dict) -> tuple[dict, list[str]]:
    """Merge a session's `params:` over the workflow's and validate them with the same schema."""
    schema = load_schema("config")
    sections = {k: config[k] for k in PARAM_SECTIONS}
    param_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {k: schema["properties"][k] for k in PARAM_SECTIONS},
    }
    problems = schema_problems(data.get("params", {}), param_schema, file, prefix="params.")
    return _merge(sections, data.get("params", {})), problems


def _semantic_problems(data: dict, file: Path, params: dict) -> list[str]:
    """The checks a JSON Schema cannot express."""
    out = []
    owner: dict[int, str] = {}
    names = set()
    for i, g in enumerate(data["groups"]):
        if g["name"] in names:
            out.append(problem(file, f"groups[{i}].name", "a group name used once", g["name"]))
        names.add(g["name"])
        for c in g["channels"]:
            if c in owner:
                out.append(problem(file, f"groups[{i}].channels",
                                   f"channels in one group only (channel {c} is already in "
                                   f"group '{owner[c]}')", c))
            owner[c] = g["name"]
    bad = set(data.get("bad_channels", []))
    for c in sorted(bad - set(owner)):
        out.append(problem(file, "bad_channels", "channels that belong to a group", c))
    regions = dict.fromkeys(g["region"] for g in data["groups"])
    for region in regions:
        good = [c for g in data["groups"] if g["region"] == region for c in g["channels"]
                if c not in bad]
        if not good:
            out.append(problem(file, "groups", f"region '{region}' to have at least one good "
                                                "channel (all of its channels are bad)", region))
    raw = Path(data["raw_path"])
    if not raw.exists():
        out.append(problem(file, "raw_path", "an existing file or folder", str(raw)))
    if data["format"] == "binary":
        for key in ("sampling_frequency_hz", "num_channels"):
            if key not in data:
                out.append(problem(file, key, "a value: raw binary does not carry it", None))
    for i, w in enumerate(data.get("windows", [])):
        if w["end_s"] <= w["start_s"]:
            out.append(problem(file, f"windows[{i}]", "end_s > start_s", w))
    truth = data.get("ground_truth_sorting")
    if truth is not None and not Path(truth).is_dir():
        out.append(problem(file, "ground_truth_sorting", "an existing spikeinterface sorting "
                                                         "folder", truth))
    probe = data.get("probe", {})
    if "file" in probe and not Path(probe["file"]).is_file():
        out.append(problem(file, "probe.file", "an existing probeinterface JSON file",
                           str(probe["file"])))
    if ("manufacturer" in probe) != ("probe_name" in probe):
        out.append(problem(file, "probe", "manufacturer and probe_name together", probe))
    if "file" in probe and "manufacturer" in probe:
        out.append(problem(file, "probe", "either file or manufacturer/probe_name", probe))
    lfp = params["lfp"]
    if lfp["freq_max_hz"] >= lfp["fs_lfp_hz"] / 2:
        out.append(problem(file, "params.lfp.freq_max_hz", f"a value below fs_lfp_hz / 2 = "
                                                            f"{lfp['fs_lfp_hz'] / 2}",
                           lfp["freq_max_hz"]))
    return out


def load_session(path: str | Path, config: dict | None = None, name: str | None = None) -> Session:
    """Read and validate one recording-session file.

    Parameters
    ----------
    path : str or Path
        The session YAML. Relative paths inside it are relative to its folder.
    config : dict, optional
        The completed workflow configuration (default: the schema's defaults).
    name : str, optional
        Session name (default: the file's stem, or its folder's name for ``session.yaml``).

    Returns
    -------
    Session

    Raises
    ------
    ConfigError
        Listing every problem, each naming the file and key. Checks that need the recording
        itself (channel count, duration) are in
        :func:`neurodict.ingest.readers.open_recording`.
    """
    file = Path(path).resolve()
    if config is None:
        config = load_config()
    data = read_yaml(file)
    problems = schema_problems(data, load_schema("session"), file)
    if problems:
        raise ConfigError(problems)
    data = apply_defaults(data, load_schema("session"))
    data["raw_path"] = str((file.parent / data["raw_path"]).resolve())
    if "file" in data.get("probe", {}):
        data["probe"]["file"] = str((file.parent / data["probe"]["file"]).resolve())
    if "ground_truth_sorting" in data:
        data["ground_truth_sorting"] = str((file.parent / data["ground_truth_sorting"]).resolve())
    params, problems = _session_params(data, file, config)
    if problems:
        raise ConfigError(problems)
    problems = _semantic_problems(data, file, params)
    if problems:
        raise ConfigError(problems)
    if name is None:
        name = file.parent.name if file.stem == "session" else file.stem
    return Session(
        name=name,
        file=file,
        raw_path=Path(data["raw_path"]),
        format=data["format"],
        groups=tuple(Group(g["name"], g["region"], tuple(g["channels"])) for g in data["groups"]),
        mains_hz=data["mains_hz"],
        params=params,
        stream=data.get("stream"),
        segment_index=data.get("segment_index"),
        sampling_frequency_hz=data.get("sampling_frequency_hz"),
        num_channels=data.get("num_channels"),
        dtype=data.get("dtype", "int16"),
        gain_to_uv=data.get("gain_to_uv", 1.0),
        offset_to_uv=data.get("offset_to_uv", 0.0),
        probe=data.get("probe", {}),
        bad_channels=tuple(data["bad_channels"]),
        windows=tuple(Window(**w) for w in data["windows"]),
        ground_truth_sorting=(Path(data["ground_truth_sorting"])
                              if "ground_truth_sorting" in data else None),
    )
