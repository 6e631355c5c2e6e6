"""``neurodict <step>``: a thin command line over the step functions.

Every stage takes ``--results DIR`` (the session's results folder) and what it alone needs.
Errors in the user's input (configuration, session files, raw data: :class:`InputError`) end
the command with exit status 2 and a message naming the file and key, never a traceback; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import sys
from pathlib import Path

from neurodict._version import __version__
from neurodict.common.errors import InputError
from neurodict.common.files import RESULTS_ROOT_ENV
from neurodict.config import load_config, load_session
from neurodict.ingest.readers import open_recording


def _validate(args) -> None:
    config = load_config(args.config)
    session = load_session(args.session, config=config)
    rec = open_recording(session)
    print(
        f"{args.session}: valid: {rec.get_num_channels()} channels in {len(session.groups)} "
        f"groups, regions {session.regions}, {rec.get_total_duration():.2f} s at "
        f"{rec.sampling_frequency:g} Hz."
    )


def _ingest(args) -> None:
    from neurodict.ingest import step

    step.run(args.results, args.session, config=load_config(args.config), name=args.name)


def _preprocess(args) -> None:
    from neurodict.preprocess import step

    step.run(args.results, n_jobs=args.threads)


def _detect(args) -> None:
    from neurodict.detect import step

    step.run(args.results, n_jobs=args.threads)


def _sort(args) -> None:
    from neurodict.sort import step

    step.run(args.results, args.group, n_jobs=args.threads)


def _merge_sorting(args) -> None:
    from neurodict.sort import step

    step.merge(args.results, n_jobs=args.threads)


def _lfpdict(args) -> None:
    from neurodict.lfpdict import step

    step.run(args.results, sorting_dir=args.sorting)


def _clusters(args) -> None:
    import json

    from neurodict.clusters import step

    print(json.dumps(step.run(args.results, sorting_dir=args.sorting)))


def _summary(args) -> None:
    from neurodict.summary import step

    step.run(args.results, args.sessions, load_config(args.config)["clusters"])


def _report(args) -> None:
    from neurodict.report import step

    step.run(args.results, benchmarks_dir=args.benchmarks)


def _export(args) -> None:
    from neurodict.export import step

    step.run(
        args.results,
        sorting_dir=args.sorting,
        probabilities=args.probabilities,
        n_jobs=args.threads,
    )


def _synth(args) -> None:
    from neurodict.synth import SynthSpec, generate_session

    fields = {f.name for f in dataclasses.fields(SynthSpec)}
    spec = SynthSpec(**{k: v for k, v in vars(args).items() if k in fields and v is not None})
    path = generate_session(args.out, spec)
    print(f"wrote {path}")


RESULTS_HELP = "results folder of the session (results/<session>)"
SORTING_HELP = "spikeinterface sorting folder (default: the session's, as lfpdict.spikes says)"


def _stage(sub, name: str, func, text: str, threads: bool = False) -> argparse.ArgumentParser:
    """A subcommand that works in one session's results folder: ``--results DIR``."""
    p = sub.add_parser(name, help=text)
    p.add_argument("--results", type=Path, required=True, help=RESULTS_HELP)
    if threads:
        p.add_argument("--threads", type=int, default=1, help="worker processes (n_jobs)")
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="neurodict", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"neurodict {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    config_help = "workflow configuration YAML (default: the packaged defaults)"

    p = sub.add_parser("validate", help="check a session file and its raw data, run nothing")
    p.add_argument("session", type=Path)
    p.add_argument("--config", type=Path, default=None, help=config_help)
    p.set_defaults(func=_validate)

    p = _stage(sub, "ingest", _ingest, "validate a session and record its recording")
    p.add_argument("--session", type=Path, required=True, help="the session YAML")
    p.add_argument("--name", default=None, help="session name (default: from the file name)")
    p.add_argument("--config", type=Path, default=None, help=config_help)

    _stage(sub, "preprocess", _preprocess, "spike band, LFP band, region LFPs", threads=True)
    _stage(sub, "detect", _detect, "spike detection per electrode group", threads=True)
    p = _stage(
        sub, "sort", _sort, "sort one electrode group (writes sort/<group>.npz)", threads=True
    )
    p.add_argument("--group", required=True, help="electrode group name")
    _stage(
        sub,
        "merge-sorting",
        _merge_sorting,
        "the session's sorting, spikes, units and metrics",
        threads=True,
    )

    p = _stage(
        sub, "lfpdict", _lfpdict, "spike->LFP convolutional dictionaries with held-out scores"
    )
    p.add_argument("--sorting", type=Path, default=None, help=SORTING_HELP)
    p = _stage(sub, "clusters", _clusters, "cluster units by signature; phase; importance")
    p.add_argument("--sorting", type=Path, default=None, help=SORTING_HELP)

    p = _stage(sub, "report", _report, "the session's HTML report (report.html)")
    p.add_argument(
        "--benchmarks",
        type=Path,
        default=None,
        help="Snakemake benchmark files of the session "
        "(default: <results>/../benchmarks/<session>)",
    )

    p = _stage(
        sub, "export", _export, "the session as NWB (session.nwb) and for phy (phy/)", threads=True
    )
    p.add_argument("--sorting", type=Path, default=None, help=SORTING_HELP)
    p.add_argument(
        "--probabilities",
        type=Path,
        default=None,
        help="the sorter's spikes.npz with per-spike posterior probabilities",
    )

    p = sub.add_parser(
        "summary", help="pooled clusters and the report across sessions (writes <results>/summary/)"
    )
    p.add_argument(
        "--results",
        type=Path,
        required=True,
        help="the results folder holding every session's folder",
    )
    p.add_argument("--sessions", nargs="+", required=True)
    p.add_argument("--config", type=Path, default=None, help=config_help)
    p.set_defaults(func=_summary)

    p = sub.add_parser("synth", help="a synthetic multi-region session with ground truth")
    p.add_argument("--out", type=Path, required=True, help="folder to create")
    p.add_argument("--n-regions", dest="n_regions", type=int)
    p.add_argument("--units-per-region", dest="units_per_region", type=int)
    p.add_argument("--duration-s", dest="duration_s", type=float)
    p.add_argument("--fs-hz", dest="fs_hz", type=float)
    p.add_argument("--n-families", dest="n_families", type=int)
    p.add_argument("--n-segments", dest="n_segments", type=int, help="runs with pauses")
    p.add_argument("--gap-s", dest="gap_s", type=float, help="pause between runs, in s")
    p.add_argument("--seed", type=int)
    p.set_defaults(func=_synth)
    return parser


@contextlib.contextmanager
def _writes_inside(results: Path | None):
    """While the command runs, its writes must lie inside `results` (unless the workflow set a
    results root already): :func:`neurodict.common.files.atomic_path` refuses any other."""
    if results is None or RESULTS_ROOT_ENV in os.environ:
        yield
        return
    os.environ[RESULTS_ROOT_ENV] = str(Path(results).resolve())
    try:
        yield
    finally:
        del os.environ[RESULTS_ROOT_ENV]


@contextlib.contextmanager
def _log_to_stderr():
    """While the command runs, neurodict's INFO lines (the backend chosen) go to its stderr."""
    logger = logging.getLogger("neurodict")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; return its exit status."""
    args = build_parser().parse_args(argv)
    try:
        with _log_to_stderr(), _writes_inside(getattr(args, "results", None)):
            args.func(args)
    except (InputError, FileNotFoundError) as exc:
        print(f"neurodict {args.command}: error:\n{exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
