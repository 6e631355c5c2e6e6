# Configuration checks and input functions shared by every rule.
import os
import re
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from neurodict.common import lock
from neurodict.common.errors import InputError
from neurodict.common.files import RESULTS_ROOT_ENV, inside
from neurodict.common.layout import check_name
from neurodict.config import (
    ConfigError,
    check_workflow_config,
    load_session,
    schema_path,
)

# The configuration file the steps read (parameters are not passed on the command line).
CONFIGFILE = workflow.configfiles[-1] if workflow.configfiles else "--config"


def refuse(problems):
    """Stop before any job runs, naming every problem."""
    sys.exit("neurodict: invalid configuration:\n" + "\n".join(problems))


def name_problems(names, what, where):
    """`where`: 'key': why, for every name in `names` that cannot name a folder."""
    problems = []
    for name in names:
        try:
            check_name(name, what)
        except InputError as exc:
            problems.append(f"{where}: {exc}")
    return problems


# Session names become folders and command-line arguments: checked here, before the schema and
# before anything else, so that no name reaches a path or a shell command.
if isinstance(config.get("sessions"), dict):
    _problems = name_problems(
        config["sessions"], "session", f"{CONFIGFILE}: 'sessions'"
    )
    if _problems:
        refuse(_problems)

# The configuration files read again strictly (no YAML aliases, duplicate keys, non-finite
# numbers, oversized files) before jsonschema sees them: an alias bomb must not reach it.
try:
    check_workflow_config(config, workflow.configfiles)
except ConfigError as exc:
    refuse([str(exc)])
validate(config, schema=str(schema_path("config")), set_default=True)

RESULTS = config["results_dir"]
SESSIONS = list(config["sessions"])
# Every step's writes must stay inside the results folder (neurodict.common.files.atomic_path);
# the jobs inherit this, locally and on SLURM (where each job reads this file again).
os.environ[RESULTS_ROOT_ENV] = os.path.abspath(RESULTS)

# Every session file is checked before any job starts, all of them before any refusal;
# problems name the file and key.
SESSION, _problems = {}, []
for _name, _path in config["sessions"].items():
    try:
        SESSION[_name] = load_session(_path, config=config, name=_name)
    except ConfigError as exc:
        _problems += exc.problems
if _problems:
    refuse([str(ConfigError(_problems))])
GROUPS = sorted({g.name for s in SESSION.values() for g in s.groups})
_problems = [
    p
    for s in SESSION.values()
    for p in name_problems(
        [g.name for g in s.groups], "electrode group", f"{s.file}: 'groups'"
    )
]
for _name in SESSIONS:
    try:
        inside(os.path.join(RESULTS, _name, "session.json"), RESULTS)
    except InputError as exc:
        _problems.append(f"{CONFIGFILE}: 'sessions': {exc}")
if _problems:
    refuse(_problems)
# Sessions whose spike trains can drive the LFP dictionaries: every session with
# lfpdict.spikes: sorted; with lfpdict.spikes: truth, those with a ground-truth sorting.
DICT_SESSIONS = [
    n
    for n, s in SESSION.items()
    if s.params["lfpdict"]["spikes"] == "sorted" or s.ground_truth_sorting is not None
]


wildcard_constraints:
    session="|".join(map(re.escape, SESSIONS)),
    group="|".join(map(re.escape, GROUPS)),


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


# --- one run per results folder -------------------------------------------------------------
# Snakemake locks the working directory; <results>/.neurodict.lock also refuses a second run
# from another working directory that shares the results folder. It is taken when the jobs are
# about to start (onstart, in the Snakefile; dry runs take none) and given back at the end.


def take_results_lock():
    """Take the results folder's lock for this run, or stop naming the run that holds it."""
    try:
        held = lock.acquire(RESULTS)
    except InputError as exc:
        raise WorkflowError(f"neurodict: {exc}") from None
    # Snakemake's lock files of this run, so that a run killed here can be unlocked later
    files = getattr(workflow.persistence, "_lockfile", {}) or {}
    recorded = {}
    for path in files.values():
        try:
            recorded[os.path.relpath(path)] = lock.file_digest(path)
        except OSError:
            pass
    held.update(local_exec=bool(workflow.local_exec), snakemake_locks=recorded)


def release_results_lock():
    lock.release_all()


# A run killed here (kill -9, a closed terminal) leaves Snakemake's lock, and the next run would
# stop with "Directory cannot be locked". When the results lock shows that run's process is gone,
# that it ran its jobs here and none of them still runs, its lock files are removed.
if workflow.is_main_process:
    _stale, _why = lock.stale_snakemake_locks(RESULTS)
    for _path in _stale:
        _path.unlink(missing_ok=True)
    if _stale:
        print(
            f"neurodict: removed Snakemake's lock left by a killed run in this folder "
            f"({', '.join(map(os.path.relpath, _stale))}).",
            file=sys.stderr,
        )
    elif _why:
        print(
            f"neurodict: Snakemake's lock of a killed run is kept: {_why}. Once no job of "
            f"it runs any more, run the same command with --unlock, then again without.",
            file=sys.stderr,
        )
