"""Load, complete and validate the workflow configuration and recording-session files.

The JSON Schemas shipped in ``neurodict/schemas/`` are the one registry of parameters: types,
ranges, defaults and descriptions. The Snakefile validates the workflow configuration against the
same schema with ``snakemake.utils.validate``; this module does so for the command line and adds the
checks a schema cannot express (a channel in two groups, a region with no good channels, a path
that does not exist). Every problem is reported as ``<file>: '<key>': expected ...; got ...``.

Files are read by :func:`read_yaml`, which refuses what could make a small file expensive or
ambiguous before any schema sees it: files over :data:`MAX_YAML_BYTES`, text that is not UTF-8,
YAML anchors and aliases (an alias bomb), duplicate keys, non-finite numbers (``.nan``, ``.inf``),
keys that are not text and nesting deeper than :data:`MAX_DEPTH`. The Snakefile's start-up check
goes through :func:`check_workflow_config`, which does the same for the workflow configuration
files and the configuration Snakemake built from them.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np
import yaml

from neurodict.common.errors import InputError

SCHEMA_DIR = resources.files("neurodict") / "schemas"
# Sections of the workflow configuration that a session may override under `params:`.
PARAM_SECTIONS = (
    "bad_channel_detection",
    "spikeband",
    "lfp",
    "detection",
    "sorting",
    "lfpdict",
    "clusters",
    "report",
)
# A configuration or session file is a few kB; anything larger is refused unread (parsing is
# pure Python, about a second per 100 kB on a busy machine: the cap bounds the time).
MAX_YAML_BYTES = 250_000
# Deepest nesting of mappings and lists in a file (the schemas need 4).
MAX_DEPTH = 20
# A message lists at most this many problems (and how many more there are).
MAX_PROBLEMS = 50
# Session and electrode group names become folder and file names and command-line arguments.
NAME_PATTERN = r"^(?!\.{1,2}$)(?!-)[A-Za-z0-9_.-]+$"
MAX_NAME_LENGTH = 64
NAME_TEXT = "a name of letters, digits, '_', '-', '.' (not starting with '-', not '.' or '..')"
# How `schema_problems` words the patterns of the schemas.
PATTERN_TEXT = {
    NAME_PATTERN: NAME_TEXT,
    "^[A-Za-z0-9_.-]+$": "a name of letters, digits, '_', '-', '.'",
    r"^[^\x00-\x1f\x7f]+$": "text without control characters (tabs, line breaks)",
    r"^(?!-)[^\x00-\x1f\x7f]+$": (
        "a folder path that does not start with '-' and has no control characters"
    ),
    "^[A-Z][a-z]+ [a-z]+$": "a Latin binomial such as 'Mus musculus'",
    (
        "^P(?!$)([0-9]+Y)?([0-9]+M)?([0-9]+W)?([0-9]+D)?"
        "(T(?=[0-9])([0-9]+H)?([0-9]+M)?([0-9]+S)?)?$"
    ): "an ISO 8601 duration such as 'P90D' (90 days) or 'P12W'",
    "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$": "a date written 'YYYY-MM-DD'",
    "^auto$": "a channel index or 'auto'",
}


class ConfigError(InputError):
    """A configuration or session file is invalid; the message lists every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        shown = self.problems[:MAX_PROBLEMS]
        if len(self.problems) > MAX_PROBLEMS:
            shown.append(f"... and {len(self.problems) - MAX_PROBLEMS} more problems.")
        super().__init__("\n".join(shown))


def _short_repr(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def problem(file: str | Path, key: str, expected: str, got: object) -> str:
    """Format one configuration problem in the project's single message form."""
    return f"{file}: '{key}': expected {expected}; got {_short_repr(got)}."


@dataclass(frozen=True)
class Group:
    """One electrode group: its name, the brain region it lies in (or, region None, its
    regions by depth: ``(from_um, to_um, region)`` ranges along the probe's y axis, or by
    channel: ``(channel, region)`` pairs from a table) and its channel indices."""

    name: str
    region: str | None
    channels: tuple[int, ...]
    regions_by_depth: tuple[tuple[float, float, str], ...] = ()
    regions_by_channel: tuple[tuple[int, str], ...] = ()

    @property
    def regions(self) -> list[str]:
        """Its region, or the regions of its depth ranges or channels in order."""
        if self.region:
            return [self.region]
        if self.regions_by_depth:
            return [r for _, _, r in self.regions_by_depth]
        return list(dict.fromkeys(r for _, r in self.regions_by_channel))


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
    auto_bad_channels: bool = False
    windows: tuple[Window, ...] = ()
    events: Path | None = None
    event_channel: dict | None = None  # events from the recording: channel, conditions, duration_s
    raw_paths: tuple[Path, ...] = ()  # binary: one file per segment (raw_path is the first)
    ground_truth_sorting: Path | None = None
    overrides: dict = field(default_factory=dict)  # the session file's own `params:`

    @property
    def regions(self) -> list[str]:
        """Brain regions in order of first appearance among the groups."""
        return list(dict.fromkeys(r for g in self.groups for r in g.regions))

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
            "raw_paths": [str(p) for p in self.raw_paths],
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
                {
                    "name": g.name,
                    "region": g.region,
                    "regions": g.regions,
                    "regions_by_depth": [
                        {"from_um": a, "to_um": b, "region": r} for a, b, r in g.regions_by_depth
                    ],
                    "regions_by_channel": {str(c): r for c, r in g.regions_by_channel},
                    "channels": list(g.channels),
                }
                for g in self.groups
            ],
            "bad_channels": list(self.bad_channels),
            "auto_bad_channels": self.auto_bad_channels,
            "mains_hz": self.mains_hz,
            "windows": [vars(w) for w in self.windows],
            "events": str(self.events) if self.events else None,
            "event_channel": self.event_channel,
            "ground_truth_sorting": (
                str(self.ground_truth_sorting) if self.ground_truth_sorting else None
            ),
            "params": self.params,
        }


def schema_path(name: str) -> Path:
    """The file of the packaged schema `name` (``config`` or ``session``)."""
    return Path(str(SCHEMA_DIR / f"{name}.schema.yaml"))


@functools.cache
def _schema(name: str) -> dict:
    return yaml.safe_load(schema_path(name).read_text())


def load_schema(name: str) -> dict:
    """The packaged JSON Schema ``neurodict/schemas/<name>.schema.yaml`` (a fresh copy: read
    once per process, 70 ms, and copied, under 1 ms)."""
    return copy.deepcopy(_schema(name))


def section_defaults(section: str) -> dict:
    """Every default of one section of the workflow configuration (``detection``, ...)."""
    return apply_defaults({}, load_schema("config")["properties"][section])


def section_descriptions(section: str) -> dict[str, str]:
    """Each key's description in one section of the workflow configuration."""
    props = load_schema("config")["properties"][section]["properties"]
    return {key: sub["description"] for key, sub in props.items()}


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses anchors and aliases, duplicate keys, non-finite numbers
    and deep nesting, naming the file, the key and the line."""

    def __init__(self, text: str, file: Path):
        super().__init__(text)
        self.name = str(file)
        self.file = file
        self.where: list = []  # key path of the node being composed

    def _here(self) -> str:
        return _key([p for p in self.where if p is not None])

    def compose_node(self, parent, index):
        event = self.peek_event()
        if parent is None or index is None:  # the document, or a mapping's key
            part = None
        elif isinstance(index, int):
            part = index
        else:
            part = index.value if isinstance(index, yaml.ScalarNode) else "<key>"
        self.where.append(part)
        try:
            line = event.start_mark.line + 1
            if isinstance(event, yaml.AliasEvent):
                raise ConfigError(
                    [
                        f"{self.file}: '{self._here()}': expected a plain value (YAML anchors "
                        f"'&' and aliases '*' are not allowed; write the value out); got alias "
                        f"'*{event.anchor}' on line {line}."
                    ]
                )
            if getattr(event, "anchor", None) is not None:
                raise ConfigError(
                    [
                        f"{self.file}: '{self._here()}': expected a plain value (YAML anchors "
                        f"'&' and aliases '*' are not allowed; write the value out); got anchor "
                        f"'&{event.anchor}' on line {line}."
                    ]
                )
            if len(self.where) > MAX_DEPTH:
                raise ConfigError(
                    [
                        f"{self.file}: '{self._here()}': expected at most {MAX_DEPTH} levels of "
                        f"nested mappings and lists; got deeper nesting on line {line}."
                    ]
                )
            node = super().compose_node(parent, index)
            node.where = self._here()
            return node
        finally:
            self.where.pop()

    def construct_mapping(self, node, deep=False):
        mapping = super().construct_mapping(node, deep=deep)
        first: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in first:
                where = getattr(node, "where", "<top level>")
                loc = str(key) if where == "<top level>" else f"{where}.{key}"
                raise ConfigError(
                    [
                        f"{self.file}: '{loc}': expected each key once; got it again on line "
                        f"{line} (first on line {first[key]})."
                    ]
                )
            first[key] = line
        return mapping

    def construct_yaml_float(self, node):
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise ConfigError(
                [
                    f"{self.file}: '{getattr(node, 'where', '<top level>')}': expected a finite "
                    f"number; got {node.value!r} on line {node.start_mark.line + 1}."
                ]
            )
        return value


_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, naming the file in any error.

    Refused, each with a message naming the file (and the key and line where there is one): a
    missing file or one that is not a regular file, a file over :data:`MAX_YAML_BYTES`, text that
    is not UTF-8, invalid YAML, anchors and aliases, duplicate keys, non-finite numbers, keys that
    are not text, nesting deeper than :data:`MAX_DEPTH` and a top level that is not a mapping.

    Raises
    ------
    ConfigError
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ConfigError([f"{path}: not a regular file; expected a YAML file."])
    if not path.is_file():
        raise ConfigError([f"{path}: file not found; expected a YAML file."])
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise ConfigError(
            [
                f"{path}: file of {size} bytes; expected a YAML file of at most "
                f"{MAX_YAML_BYTES} bytes."
            ]
        )
    with open(path, "rb") as f:
        raw = f.read(MAX_YAML_BYTES + 1)
    if len(raw) > MAX_YAML_BYTES:  # it grew after the size check
        raise ConfigError(
            [
                f"{path}: file of more than {MAX_YAML_BYTES} bytes; expected a YAML "
                f"file of at most {MAX_YAML_BYTES} bytes."
            ]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [
                f"{path}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset "
                f"{exc.start}); expected a UTF-8 YAML file."
            ]
        ) from None
    loader = _StrictLoader(text, path)
    try:
        data = loader.get_single_data()
    except ConfigError:
        raise
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    except RecursionError:
        raise ConfigError(
            [
                f"{path}: not valid YAML: nested too deeply; expected at most "
                f"{MAX_DEPTH} levels of mappings and lists."
            ]
        ) from None
    except ValueError as exc:  # an integer of too many digits, an impossible date
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError([problem(path, "<top level>", "a mapping of keys to values", data)])
    problems = plain_problems(data, path)
    if problems:
        raise ConfigError(problems)
    return data


def plain_problems(data: object, file: str | Path) -> list[str]:
    """Problems that make `data` unsafe or ambiguous to validate: non-text keys, non-finite
    numbers, a list or mapping reached twice (what a YAML alias builds) and deep nesting.

    Linear in the size of `data` (each list and mapping is visited once), so it is safe on what
    an alias bomb builds.
    """
    out: list[str] = []
    seen: set[int] = set()
    shared: set[int] = set()
    stack: list[tuple[object, list, int]] = [(data, [], 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict | list):
            if value and id(value) in seen:
                if id(value) not in shared:  # one message per shared value
                    shared.add(id(value))
                    out.append(
                        problem(
                            file,
                            _key(path),
                            "a value written out once (not shared "
                            "with another key, as a YAML alias "
                            "does)",
                            "a shared value",
                        )
                    )
                continue
            seen.add(id(value))
            if depth >= MAX_DEPTH:
                out.append(
                    problem(
                        file,
                        _key(path),
                        f"at most {MAX_DEPTH} levels of nested mappings and lists",
                        "deeper nesting",
                    )
                )
                continue
            if isinstance(value, dict):
                for key in value:
                    if not isinstance(key, str):
                        out.append(
                            problem(
                                file,
                                _key(path) if path else "<top level>",
                                "keys that are text (quote a number used as a key)",
                                key,
                            )
                        )
                items = [(k, v) for k, v in value.items() if isinstance(k, str)]
            else:
                items = list(enumerate(value))
            stack.extend((v, [*path, k], depth + 1) for k, v in reversed(items))
        elif isinstance(value, float) and not math.isfinite(value):
            out.append(problem(file, _key(path), "a finite number", value))
    return out


def _key(path) -> str:
    parts = []
    for p in path:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "<top level>"


def _strict_integer(_checker, value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _pattern(validator, pattern, instance, schema):
    """``pattern``, where ``$`` does not also match before a final line break (Python's ``re``)."""
    if not validator.is_type(instance, "string"):
        return
    if re.search(pattern, instance) is None or (pattern.endswith("$") and instance.endswith("\n")):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


# Draft 2020-12, except that 1.0 is not an integer (a channel index 1.0 is refused, not used).
Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    validators={"pattern": _pattern},
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer),
)


def _number(x) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _range_text(schema: dict) -> str:
    bounds = []
    for kind, sign in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if kind in schema:
            bounds.append(f"{sign} {_number(schema[kind])}")
    noun = "an integer" if schema.get("type") == "integer" else "a number"
    return f"{noun} {' and '.join(bounds)}"


def schema_problems(instance: dict, schema: dict, file: str | Path, prefix: str = "") -> list[str]:
    """Every violation of `schema` by `instance`, one message per problem.

    `instance` must have passed :func:`plain_problems` (no shared lists or mappings): jsonschema
    walks every path of it.
    """
    validator = Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path))):
        where = (
            prefix + _key(err.absolute_path)
            if err.absolute_path
            else (prefix.rstrip(".") or "<top level>")
        )
        kind = err.validator
        if kind == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            for key in sorted(set(err.instance) - set(allowed), key=str):
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
        elif kind == "pattern":
            text = PATTERN_TEXT.get(
                err.validator_value, f"text matching the pattern {err.validator_value}"
            )
            out.append(problem(file, where, text, err.instance))
        elif kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
            out.append(problem(file, where, _range_text(err.schema), err.instance))
        elif kind == "maxLength":
            out.append(
                problem(file, where, f"at most {err.validator_value} characters", err.instance)
            )
        elif kind == "maxItems":
            out.append(
                problem(
                    file,
                    where,
                    f"at most {err.validator_value} items",
                    f"{len(err.instance)} items",
                )
            )
        elif kind == "maxProperties":
            out.append(
                problem(
                    file,
                    where,
                    f"at most {err.validator_value} entries",
                    f"{len(err.instance)} entries",
                )
            )
        else:
            out.append(
                problem(
                    file,
                    where,
                    f"a value that satisfies {kind}={err.validator_value}",
                    err.instance,
                )
            )
    return out


def section_problems(values: dict, section: str, file: str) -> list[str]:
    """Every violation, by `values`, of the schema of the keys they give in one section of the
    workflow configuration (:func:`schema_problems`' messages, keys named as in `values`)."""
    schema = load_schema("config")["properties"][section]
    own = {"type": "object", "properties": {k: schema["properties"][k] for k in values}}
    return schema_problems(values, own, file)


def apply_defaults(instance: dict, schema: dict) -> dict:
    """A copy of `instance` with every missing key that has a schema default filled in."""
    out = copy.deepcopy(instance)
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if isinstance(out.get(key), dict) and sub.get("type") == "object":
            out[key] = apply_defaults(out[key], sub)
    return out


def _band_problems(params: dict, file: str | Path, key) -> list[str]:
    """Band edges in order and the LFP band below its Nyquist rate; `key(section, name)` names
    a setting in the messages."""
    out = []
    spike, lfp = params["spikeband"], params["lfp"]
    if spike["freq_min_hz"] >= spike["freq_max_hz"]:
        out.append(
            problem(
                file,
                key("spikeband", "freq_min_hz"),
                f"a corner below spikeband.freq_max_hz = {spike['freq_max_hz']:g} Hz",
                spike["freq_min_hz"],
            )
        )
    if lfp["freq_min_hz"] >= lfp["freq_max_hz"]:
        out.append(
            problem(
                file,
                key("lfp", "freq_min_hz"),
                f"a corner below lfp.freq_max_hz = {lfp['freq_max_hz']:g} Hz",
                lfp["freq_min_hz"],
            )
        )
    if lfp["freq_max_hz"] >= lfp["fs_lfp_hz"] / 2:
        out.append(
            problem(
                file,
                key("lfp", "freq_max_hz"),
                f"a value below fs_lfp_hz / 2 = {lfp['fs_lfp_hz'] / 2}",
                lfp["freq_max_hz"],
            )
        )
    return out


def _config_problems(config: dict, file: str | Path) -> list[str]:
    """The checks of a completed workflow configuration that its schema cannot express."""
    out = _band_problems(config, file, lambda section, name: f"{section}.{name}")
    seen: dict[str, str] = {}
    for name in config["sessions"]:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            out.append(
                problem(
                    file,
                    "sessions",
                    f"session names that differ in more than case "
                    f"(they name folders; '{other}' is one)",
                    name,
                )
            )
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
    problems = plain_problems(data, path) or schema_problems(data, schema, path)
    if problems:
        raise ConfigError(problems)
    config = apply_defaults(data, schema)
    problems = _config_problems(config, path)
    if problems:
        raise ConfigError(problems)
    return config


def check_workflow_config(config: dict, files=()) -> dict:
    """Check the configuration Snakemake built, before anything else reads it; fill defaults.

    Snakemake reads the configuration files itself and ``snakemake.utils.validate`` hands the
    result to jsonschema, which walks every path of it: an alias bomb, harmless as YAML, takes
    forever there. This reads each file again with :func:`read_yaml` (size cap, UTF-8, no anchors
    or aliases, no duplicate keys, finite numbers), checks the merged `config` (which may also
    hold ``--config`` values) for shared values, non-finite numbers and non-text keys, then
    validates it against the packaged schema and the checks a schema cannot express.

    Parameters
    ----------
    config : dict
        The workflow's ``config``; missing defaults are filled in, in place.
    files : sequence of str or Path
        The configuration files it was read from (``workflow.configfiles``).

    Returns
    -------
    dict
        `config` itself.

    Raises
    ------
    ConfigError
        Listing every problem, each naming the file (or the last configuration file) and key.
    """
    files = [Path(f) for f in files]
    for f in files:
        if f.is_file():  # not a pipe such as /dev/stdin, which Snakemake has read already
            read_yaml(f)
    label = files[-1] if files else "the workflow configuration"
    if not isinstance(config, dict):
        raise ConfigError([problem(label, "<top level>", "a mapping of keys to values", config)])
    schema = load_schema("config")
    problems = plain_problems(config, label) or schema_problems(config, schema, label)
    if problems:
        raise ConfigError(problems)
    config.update(apply_defaults(config, schema))
    problems = _config_problems(config, label)
    if problems:
        raise ConfigError(problems)
    return config


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


def param_key(overrides: dict):
    """A function naming a setting in messages: ``params.<section>.<key>`` when the session's
    own `overrides` (its ``params:``) set it, else the workflow configuration's
    ``<section>.<key>``."""
    own = overrides

    def key(section: str, name: str) -> str:
        return f"params.{section}.{name}" if name in own.get(section, {}) else f"{section}.{name}"

    return key


def _semantic_problems(data: dict, file: Path, params: dict) -> list[str]:
    """The checks a JSON Schema cannot express."""
    out = []
    owner: dict[int, str] = {}
    names: dict[str, str] = {}
    for i, g in enumerate(data["groups"]):
        if g["name"] in names.values():
            out.append(problem(file, f"groups[{i}].name", "a group name used once", g["name"]))
        elif g["name"].lower() in names:
            out.append(
                problem(
                    file,
                    f"groups[{i}].name",
                    "group names that differ in more "
                    "than case (they name files; "
                    f"'{names[g['name'].lower()]}' is one)",
                    g["name"],
                )
            )
        names.setdefault(g["name"].lower(), g["name"])
        for c in g["channels"]:
            if c in owner:
                out.append(
                    problem(
                        file,
                        f"groups[{i}].channels",
                        f"channels in one group only (channel {c} is already in "
                        f"group '{owner[c]}')",
                        c,
                    )
                )
            owner[c] = g["name"]
    if "num_channels" in data:
        for i, g in enumerate(data["groups"]):
            for c in g["channels"]:
                if c >= data["num_channels"]:
                    out.append(
                        problem(
                            file,
                            f"groups[{i}].channels",
                            f"channel indices below num_channels = {data['num_channels']}",
                            c,
                        )
                    )
    bad = set(listed_bad_channels(data.get("bad_channels", [])))
    for c in sorted(bad - set(owner)):
        out.append(problem(file, "bad_channels", "channels that belong to a group", c))
    for i, g in enumerate(data["groups"]):
        out.extend(_region_problems(g, f"groups[{i}]", file))
    # regions by depth or by channel table: checked when the recording is opened
    regions = dict.fromkeys(g["region"] for g in data["groups"] if "region" in g)
    for region in regions:
        good = [
            c
            for g in data["groups"]
            if g.get("region") == region
            for c in g["channels"]
            if c not in bad
        ]
        if not good:
            out.append(
                problem(
                    file,
                    "groups",
                    f"region '{region}' to have at least one good "
                    "channel (all of its channels are bad)",
                    region,
                )
            )
    paths = _as_list(data["raw_path"])
    for i, raw in enumerate(paths):
        key = "raw_path" if isinstance(data["raw_path"], str) else f"raw_path[{i}]"
        if not Path(raw).exists():
            out.append(problem(file, key, "an existing file or folder", str(raw)))
    if isinstance(data.get("events"), dict) and data["format"] not in EVENT_FORMATS:
        out.append(
            problem(
                file,
                "events.channel",
                f"a recording whose format has event channels ({', '.join(EVENT_FORMATS)}); "
                f"format {data['format']} has none here, use an events table",
                data["events"]["channel"],
            )
        )
    if len(paths) > 1 and data["format"] != "binary":
        out.append(
            problem(
                file,
                "raw_path",
                "one path (a list of files, one per segment, is read for format binary only)",
                paths,
            )
        )
    if data["format"] == "binary":
        for key in ("sampling_frequency_hz", "num_channels"):
            if key not in data:
                out.append(problem(file, key, "a value: raw binary does not carry it", None))
    for i, w in enumerate(data.get("windows", [])):
        if w["end_s"] <= w["start_s"]:
            out.append(problem(file, f"windows[{i}]", "end_s > start_s", w))
    truth = data.get("ground_truth_sorting")
    if truth is not None and not Path(truth).is_dir():
        out.append(
            problem(
                file, "ground_truth_sorting", "an existing spikeinterface sorting folder", truth
            )
        )
    probe = data.get("probe", {})
    if "file" in probe and not Path(probe["file"]).is_file():
        out.append(
            problem(file, "probe.file", "an existing probeinterface JSON file", str(probe["file"]))
        )
    if ("manufacturer" in probe) != ("probe_name" in probe):
        out.append(problem(file, "probe", "manufacturer and probe_name together", probe))
    if "file" in probe and "manufacturer" in probe:
        out.append(problem(file, "probe", "either file or manufacturer/probe_name", probe))
    key = param_key(data.get("params", {}))
    out += _band_problems(params, file, key)
    if "sampling_frequency_hz" in data:
        out += rate_problems(file, params, data["sampling_frequency_hz"], key)
    return out


def rate_problems(file: str | Path, params: dict, fs_hz: float, key=None) -> list[str]:
    """The settings that the recording's sampling rate `fs_hz` makes impossible.

    The LFP is the wideband signal decimated by a whole factor (``fs_hz / lfp.fs_lfp_hz``, see
    :func:`neurodict.preprocess.filters.lfp_band`) and the spike band's upper corner is clipped
    to 0.45 `fs_hz` (:func:`neurodict.preprocess.filters.spike_band`), so its lower corner must
    lie below that.
    """
    key = key or (lambda section, name: f"{section}.{name}")
    out = []
    lfp, spike = params["lfp"], params["spikeband"]
    factor = fs_hz / lfp["fs_lfp_hz"]
    if factor < 1 - 1e-9 or abs(factor - round(factor)) > 1e-9:
        n = max(1, math.ceil(factor))
        out.append(
            problem(
                file,
                key("lfp", "fs_lfp_hz"),
                f"a rate that divides the recording's sampling rate {fs_hz:g} Hz a "
                f"whole number of times (e.g. {fs_hz / n:g} Hz = {fs_hz:g} Hz / {n})",
                lfp["fs_lfp_hz"],
            )
        )
    top = min(spike["freq_max_hz"], 0.45 * fs_hz)
    if spike["freq_min_hz"] >= top:
        out.append(
            problem(
                file,
                key("spikeband", "freq_min_hz"),
                f"a corner below the spike band's upper corner min(freq_max_hz, 0.45 x "
                f"the sampling rate {fs_hz:g} Hz) = {top:g} Hz",
                spike["freq_min_hz"],
            )
        )
    return out


def dictionaries_run(session: Session) -> bool:
    """Whether the workflow fits the session's spike->LFP dictionaries (rules/common.smk)."""
    return (
        session.params["lfpdict"]["spikes"] == "sorted" or session.ground_truth_sorting is not None
    )


def duration_problems(session: Session, fs_hz: float, n_samples: int) -> list[str]:
    """The settings a recording of `n_samples` at `fs_hz` is too short for.

    When the dictionaries run, their LFP (``ceil(n_samples / factor)`` samples at
    ``lfp.fs_lfp_hz``, as spikeinterface's decimation gives) must hold ``lfpdict.n_folds`` folds
    of at least 4 filter lengths each
    (:func:`neurodict.lfpdict.estimator.fold_cores`) and be longer than twice the null's minimum
    shift ``lfpdict.jitter_min_s`` (:func:`neurodict.lfpdict.estimator.circular_jitter`).
    """
    p = session.params
    fs_lfp = p["lfp"]["fs_lfp_hz"]
    factor = round(fs_hz / fs_lfp)
    if not dictionaries_run(session) or factor < 1:
        return []
    key = param_key(session.overrides)
    out = []
    d = p["lfpdict"]
    n_bins = (n_samples + factor - 1) // factor
    duration = n_samples / fs_hz
    min_shift = int(d["jitter_min_s"] * fs_lfp)
    if n_bins <= 2 * min_shift:
        out.append(
            problem(
                session.file,
                key("lfpdict", "jitter_min_s"),
                f"a minimum shift of the dictionaries' null below half the recording "
                f"({duration:.3f} s long; or set lfpdict.spikes: truth without a "
                f"ground truth to skip the dictionaries)",
                d["jitter_min_s"],
            )
        )
    n_lags = (
        int(round(d["lag_minus_ms"] * fs_lfp / 1000.0))
        + int(round(d["lag_plus_ms"] * fs_lfp / 1000.0))
        + 1
    )
    edges = np.linspace(0, n_bins, d["n_folds"] + 1).astype(int)  # as fold_cores cuts them
    shortest = int(np.diff(edges).min())
    if shortest < 4 * n_lags:
        out.append(
            problem(
                session.file,
                key("lfpdict", "n_folds"),
                f"cross-validation folds of at least 4 filter lengths (4 x {n_lags} = "
                f"{4 * n_lags} LFP samples, {4 * n_lags / fs_lfp:g} s, set by "
                f"lfpdict.lag_minus_ms and lag_plus_ms): the {duration:.3f} s "
                f"recording gives folds of {shortest} samples",
                d["n_folds"],
            )
        )
    return out


# An events table's columns (the names, and BIDS's alternatives) and the size limit of
# the tables a session names.
EVENT_FORMATS = ("openephys", "spikeglx", "plexon2")  # formats whose event channels are read
EVENT_COLUMNS = {"onset_s": "onset", "duration_s": "duration", "condition": "trial_type"}
MAX_TABLE_BYTES = 2_000_000


def _session_value_ok(value: str, *path: str) -> bool:
    """Whether `value` satisfies the session schema's rule at `path` (the same rule as a value
    written in the session file)."""
    schema = load_schema("session")
    for key in path:
        schema = schema[key]
    return Validator(schema).is_valid(value)


def _table_rows(
    path: Path, file: Path, key: str, what: str, columns: dict[str, str | None]
) -> tuple[list[tuple[int, dict]], list[str]]:
    """The rows of a tab-separated table a session names (`key` in `file`) as (line number,
    {column: text}) for `columns` (each with an alternative name or None), and the problems
    found, each naming the table and its line."""
    where = f"{path} ({what} of {file})"
    if not path.is_file():
        return [], [problem(file, key, f"an existing tab-separated {what} table", str(path))]
    if path.stat().st_size > MAX_TABLE_BYTES:
        size = path.stat().st_size
        return [], [f"{where}: file of {size} bytes; expected at most {MAX_TABLE_BYTES} bytes."]
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        return [], [f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})."]
    header = lines[0].split("\t") if lines else []
    column = {}
    for ours, other in columns.items():
        name = ours if ours in header or other is None else other
        if name not in header:
            alternative = [c for c in columns.values() if c]
            also = f" (or {list(alternative)})" if alternative else ""
            return [], [
                f"{where}: line 1: expected a header with the columns {list(columns)}{also}; "
                f"got {_short_repr(header)}."
            ]
        column[ours] = header.index(name)
    rows, problems = [], []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(header):
            problems.append(
                f"{where}: line {n}: expected {len(header)} tab-separated cells; got {len(cells)}."
            )
            continue
        rows.append((n, {k: cells[i].strip() for k, i in column.items()}))
    return rows, problems


def event_windows(path: Path, file: Path) -> tuple[list[dict], list[str]]:
    """Windows (``start_s``, ``end_s``, ``condition``) from an events table, and the problems
    found, each naming the table, its line and column.

    The table is tab-separated with a header holding ``onset_s``, ``duration_s`` and
    ``condition`` (or BIDS's ``onset``, ``duration``, ``trial_type``); other columns are
    ignored. An onset is a number >= 0 (s from the recording start), a duration > 0, a
    condition a non-empty label without control characters.
    """
    where = f"{path} (events of {file})"
    rows, problems = _table_rows(path, file, "events", "events", EVENT_COLUMNS)
    out = []
    for n, row in rows:
        try:
            onset, duration = float(row["onset_s"]), float(row["duration_s"])
        except ValueError:
            onset = duration = np.nan
        if not (np.isfinite(onset) and onset >= 0 and np.isfinite(duration) and duration > 0):
            problems.append(
                f"{where}: line {n}: expected onset_s a number >= 0 and duration_s "
                f"a number > 0; got {row['onset_s']!r} and {row['duration_s']!r}."
            )
            continue
        condition_rule = ("properties", "windows", "items", "properties", "condition")
        if not _session_value_ok(row["condition"], *condition_rule):
            problems.append(
                f"{where}: line {n}: expected a condition label of 1-100 "
                f"characters without control characters; got "
                f"{_short_repr(row['condition'])}."
            )
            continue
        out.append({"start_s": onset, "end_s": onset + duration, "condition": row["condition"]})
    return out, problems


def channel_regions_table(
    path: Path, file: Path, key: str, channels: list[int]
) -> tuple[dict[int, str], list[str]]:
    """A group's channel -> region table (tab-separated, columns ``channel`` and ``region``;
    others ignored), and the problems found: a channel that is not the group's, twice in the
    table or missing from it, a region that is not a name of letters, digits, '_', '-', '.'."""
    where = f"{path} (regions of {file})"
    rows, problems = _table_rows(path, file, key, "regions", {"channel": None, "region": None})
    out = {}
    for n, row in rows:
        c = int(row["channel"]) if row["channel"].isdigit() else None
        if c not in channels or c in out:
            seen = "listed twice" if c in out else "not a channel of the group"
            problems.append(
                f"{where}: line {n}: expected a channel of the group ({channels[0]} .. "
                f"{channels[-1]}) once; got {row['channel']!r} ({seen})."
            )
        elif not _session_value_ok(
            row["region"], "properties", "groups", "items", "properties", "region"
        ):
            problems.append(
                f"{where}: line {n}: expected a region name of letters, digits, '_', '-', "
                f"'.'; got {_short_repr(row['region'])}."
            )
        else:
            out[c] = row["region"]
    missing = [c for c in channels if c not in out]
    if missing and not problems:
        problems.append(
            f"{where}: expected every channel of the group; missing {_short_repr(missing)}."
        )
    return out, problems


REGION_KEYS = ("region", "regions_by_depth", "regions_file")


def _region_problems(group: dict, key: str, file: Path) -> list[str]:
    """A group has exactly one of region, regions_by_depth and regions_file; depth ranges
    are increasing (from_um < to_um) and do not overlap."""
    given = sorted(k for k in REGION_KEYS if k in group)
    if len(given) != 1:
        return [problem(file, key, f"exactly one of {', '.join(REGION_KEYS)}", given or "none")]
    ranges = group.get("regions_by_depth", [])
    out = [
        problem(file, f"{key}.regions_by_depth[{j}]", "from_um < to_um", r)
        for j, r in enumerate(ranges)
        if not r["from_um"] < r["to_um"]
    ]
    ordered = sorted((r["from_um"], r["to_um"], j) for j, r in enumerate(ranges))
    for (_, b, j), (a, _, k) in zip(ordered, ordered[1:], strict=False):
        if a < b:
            out.append(
                problem(
                    file,
                    f"{key}.regions_by_depth",
                    "ranges that do not overlap",
                    f"ranges {j} and {k} overlap ({a:g} < {b:g} um)",
                )
            )
    return out


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def listed_bad_channels(value) -> list[int]:
    """The channel indices of a session's ``bad_channels`` (``auto``, a list, or both)."""
    return [c for c in _as_list(value) if c != "auto"]


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
        itself (channel count, the sampling rate of formats that carry it, duration, samples)
        are in :func:`neurodict.ingest.readers.open_recording`.
    """
    file = Path(path).resolve()
    if config is None:
        config = load_config()
    data = read_yaml(file)
    problems = schema_problems(data, load_schema("session"), file)
    if problems:
        raise ConfigError(problems)
    data = apply_defaults(data, load_schema("session"))
    raw_paths = [str((file.parent / p).resolve()) for p in _as_list(data["raw_path"])]
    data["raw_path"] = raw_paths[0] if isinstance(data["raw_path"], str) else raw_paths
    if "file" in data.get("probe", {}):
        data["probe"]["file"] = str((file.parent / data["probe"]["file"]).resolve())
    if "ground_truth_sorting" in data:
        data["ground_truth_sorting"] = str((file.parent / data["ground_truth_sorting"]).resolve())
    problems = []  # the tables the session names: every problem of every table at once
    for i, g in enumerate(data["groups"]):
        if "regions_file" in g and "region" not in g and "regions_by_depth" not in g:
            g["regions_file"] = str((file.parent / g["regions_file"]).resolve())
            table, found = channel_regions_table(
                Path(g["regions_file"]), file, f"groups[{i}].regions_file", g["channels"]
            )
            g["regions_by_channel"] = sorted(table.items())
            problems += found
    if isinstance(data.get("events"), str):
        data["events"] = str((file.parent / data["events"]).resolve())
        windows, found = event_windows(Path(data["events"]), file)
        data["windows"] = data["windows"] + windows
        problems += found
    if problems:
        raise ConfigError(problems)
    params, problems = _session_params(data, file, config)
    if problems:
        raise ConfigError(problems)
    problems = _semantic_problems(data, file, params)
    if problems:
        raise ConfigError(problems)
    if name is None:
        name = file.parent.name if file.stem == "session" else file.stem
    elif not Validator(
        {"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME_LENGTH}
    ).is_valid(name):
        raise ConfigError([problem(file, "<session name>", NAME_TEXT, name)])
    return Session(
        name=name,
        file=file,
        raw_path=Path(_as_list(data["raw_path"])[0]),
        raw_paths=tuple(Path(p) for p in _as_list(data["raw_path"])),
        format=data["format"],
        groups=tuple(
            Group(
                g["name"],
                g.get("region"),
                tuple(g["channels"]),
                tuple(
                    (r["from_um"], r["to_um"], r["region"]) for r in g.get("regions_by_depth", [])
                ),
                tuple(map(tuple, g.get("regions_by_channel", []))),
            )
            for g in data["groups"]
        ),
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
        bad_channels=tuple(listed_bad_channels(data["bad_channels"])),
        auto_bad_channels="auto" in _as_list(data["bad_channels"]),
        windows=tuple(Window(**w) for w in data["windows"]),
        events=Path(data["events"]) if isinstance(data.get("events"), str) else None,
        event_channel=data["events"] if isinstance(data.get("events"), dict) else None,
        ground_truth_sorting=(
            Path(data["ground_truth_sorting"]) if "ground_truth_sorting" in data else None
        ),
        overrides=copy.deepcopy(data.get("params", {})),
    )
