# Configuration checks and input functions shared by every rule.
import os
import re
import sys

from snakemake.utils import validate

from neurodict.config import ConfigError, load_session, schema_path

validate(config, schema=str(schema_path("config")), set_default=True)

RESULTS = config["results_dir"]
SESSIONS = list(config["sessions"])
# The configuration file the steps read (parameters are not passed on the command line).
CONFIGFILE = workflow.configfiles[-1]

# Every session file is checked before any job starts; problems name the file and key.
try:
    SESSION = {
        name: load_session(path, config=config, name=name)
        for name, path in config["sessions"].items()
    }
except ConfigError as exc:
    sys.exit(f"neurodict: invalid configuration:\n{exc}")
# Sessions whose spike trains can drive the LFP dictionaries: every session with
# lfpdict.spikes: sorted; with lfpdict.spikes: truth, those with a ground-truth sorting.
DICT_SESSIONS = [
    n
    for n, s in SESSION.items()
    if s.params["lfpdict"]["spikes"] == "sorted" or s.ground_truth_sorting is not None
]


wildcard_constraints:
    session="|".join(map(re.escape, SESSIONS)),
    group="[^/]+",


def session_file(wildcards):
    return config["sessions"][wildcards.session]


def session_params(wildcards):
    return SESSION[wildcards.session].params


def group_sortings(wildcards):
    return [
        f"{RESULTS}/{wildcards.session}/sort/{g.name}.npz"
        for g in SESSION[wildcards.session].groups
    ]


def spike_source(wildcards):
    session = SESSION[wildcards.session]
    if session.params["lfpdict"]["spikes"] == "sorted":
        return f"{RESULTS}/{wildcards.session}/sorting"
    return str(session.ground_truth_sorting)


def spike_probabilities(wildcards):
    """The sorter's per-spike probabilities, when the dictionaries use the sorted spikes."""
    if SESSION[wildcards.session].params["lfpdict"]["spikes"] == "sorted":
        return f"{RESULTS}/{wildcards.session}/spikes.npz"
    return []


def dictionary_outputs(wildcards):
    if wildcards.session not in DICT_SESSIONS:
        return []
    return [
        f"{RESULTS}/{wildcards.session}/lfp_dict.npz",
        f"{RESULTS}/{wildcards.session}/clusters.tsv",
    ]


def export_outputs():
    return expand(
        [f"{RESULTS}/{{session}}/session.nwb", f"{RESULTS}/{{session}}/phy"],
        session=DICT_SESSIONS,
    )


def summary_outputs():
    return [f"{RESULTS}/summary/report.html"] if DICT_SESSIONS else []
