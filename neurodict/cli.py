"""``neurodict <step>``: a thin command line over the step functions.

Errors in the user's input (configuration, session files, raw data) end the command with exit
status 2 and a message naming the file and key, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import sys
from pathlib import Path

from neurodict.config import ConfigError, load_config, load_session
from neurodict.io import IngestError, open_recording

USER_ERRORS = (ConfigError, IngestError, FileNotFoundError, ValueError)


def _validate(args) -> None:
    config = load_config(args.config)
    session = load_session(args.session, config=config)
    rec = open_recording(session)
    print(f"{args.session}: valid: {rec.get_num_channels()} channels in {len(session.groups)} "
          f"groups, regions {session.regions}, {rec.get_total_duration():.2f} s at "
          f"{rec.sampling_frequency:g} Hz.")


def _ingest(args) -> None:
    from neurodict.pipeline import ingest

    ingest(args.session, args.out, config=load_config(args.config), name=args.name)


def _preprocess(args) -> None:
    from neurodict.pipeline import preprocess_session

    preprocess_session(args.results, n_jobs=args.threads)


def _detect(args) -> None:
    from neurodict.pipeline import detect_session

    detect_session(args.results, n_jobs=args.threads)


def _sort(args) -> None:
    from neurodict.sorter.steps import sort_step

    sort_step(args.results, args.group, n_jobs=args.threads)


def _merge_sorting(args) -> None:
    from neurodict.sorter.steps import merge_sorting_step

    merge_sorting_step(args.results, n_jobs=args.threads)


def _lfpdict(args) -> None:
    import json

    from neurodict.pipeline import lfpdict_step

    if args.session_json is not None:
        info = json.loads(args.session_json.read_text())
        params, windows = info["params"]["lfpdict"], info["windows"]
    else:
        params, windows = load_config(args.config)["lfpdict"], []
    lfpdict_step(args.sorting, args.lfp, args.out, params, session_windows=windows)


def _clusters(args) -> None:
    import json

    from neurodict.pipeline import clusters_step

    params = json.loads(args.session_json.read_text())["params"]
    figures = clusters_step(args.sorting, args.lfp, args.dict, args.out, params["clusters"],
                            params["lfpdict"])
    print(json.dumps(figures))


def _summary(args) -> None:
    from neurodict.summary import summary_step

    summary_step(args.results, args.sessions, load_config(args.config)["clusters"], args.out)


def _report(args) -> None:
    from neurodict.report.session import build_session_report

    build_session_report(args.results, args.out, benchmarks_dir=args.benchmarks)


def _export(args) -> None:
    from neurodict.export.step import export_step

    export_step(args.results, args.sorting, probabilities=args.probabilities,
                n_jobs=args.threads)


def _synth(args) -> None:
    from neurodict.synth import SynthSpec, generate_session

    fields = {f.name for f in dataclasses.fields(SynthSpec)}
    spec = SynthSpec(**{k: v for k, v in vars(args).items() if k in fields and v is not None})
    path = generate_session(args.out, spec)
    print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="neurodict", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    config_help = "workflow configuration YAML (default: config/config.yaml)"

    p = sub.add_parser("validate", help="check a session file and its raw data, run nothing")
    p.add_argument("session", type=Path)
    p.add_argument("--config", type=Path, default=None, help=config_help)
    p.set_defaults(func=_validate)

    p = sub.add_parser("ingest", help="validate a session and record its recording")
    p.add_argument("--session", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="results folder of the session")
    p.add_argument("--name", default=None, help="session name (default: from the file name)")
    p.add_argument("--config", type=Path, default=None, help=config_help)
    p.set_defaults(func=_ingest)

    for name, func, text in (("preprocess", _preprocess, "spike band, LFP band, region LFPs"),
                             ("detect", _detect, "spike detection per electrode group")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--results", type=Path, required=True, help="results folder of the session")
        p.add_argument("--threads", type=int, default=1, help="worker processes (n_jobs)")
        p.set_defaults(func=func)

    p = sub.add_parser("sort", help="sort one electrode group (writes sort/<group>.npz)")
    p.add_argument("--results", type=Path, required=True, help="results folder of the session")
    p.add_argument("--group", required=True, help="electrode group name")
    p.add_argument("--threads", type=int, default=1, help="worker processes (n_jobs)")
    p.set_defaults(func=_sort)

    p = sub.add_parser("merge-sorting", help="the session's sorting, spikes, units and metrics")
    p.add_argument("--results", type=Path, required=True, help="results folder of the session")
    p.add_argument("--threads", type=int, default=1, help="worker processes (n_jobs)")
    p.set_defaults(func=_merge_sorting)

    p = sub.add_parser("lfpdict", help="spike->LFP convolutional dictionaries with held-out scores")
    p.add_argument("--sorting", type=Path, required=True,
                   help="spikeinterface sorting folder (unit property region)")
    p.add_argument("--lfp", type=Path, required=True,
                   help="spikeinterface recording folder of region LFPs (channel property region)")
    p.add_argument("--out", type=Path, required=True, help="folder for the outputs")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--config", type=Path, default=None, help=config_help)
    source.add_argument("--session-json", dest="session_json", type=Path, default=None,
                        help="a session.json written by ingest (its resolved parameters)")
    p.set_defaults(func=_lfpdict)

    p = sub.add_parser("clusters", help="cluster units by signature; phase; importance")
    p.add_argument("--sorting", type=Path, required=True)
    p.add_argument("--lfp", type=Path, required=True)
    p.add_argument("--dict", type=Path, required=True, help="lfp_dict.npz of the same data")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--session-json", dest="session_json", type=Path, required=True,
                   help="a session.json written by ingest (its resolved parameters)")
    p.set_defaults(func=_clusters)

    p = sub.add_parser("summary", help="pooled clusters and the report across sessions")
    p.add_argument("--results", type=Path, required=True, help="the results folder")
    p.add_argument("--sessions", nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--config", type=Path, default=None, help=config_help)
    p.set_defaults(func=_summary)

    p = sub.add_parser("report", help="the session's HTML report")
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--benchmarks", type=Path, default=None,
                   help="Snakemake benchmark files of the session "
                        "(default: <results>/../benchmarks/<session>)")
    p.set_defaults(func=_report)

    p = sub.add_parser("export", help="the session as NWB (session.nwb) and for phy (phy/)")
    p.add_argument("--results", type=Path, required=True, help="results folder of the session")
    p.add_argument("--sorting", type=Path, required=True,
                   help="spikeinterface sorting folder of the session's units")
    p.add_argument("--probabilities", type=Path, default=None,
                   help="the sorter's spikes.npz with per-spike posterior probabilities")
    p.add_argument("--threads", type=int, default=1, help="worker processes (n_jobs)")
    p.set_defaults(func=_export)

    p = sub.add_parser("synth", help="a synthetic multi-region session with ground truth")
    p.add_argument("--out", type=Path, required=True, help="folder to create")
    p.add_argument("--n-regions", dest="n_regions", type=int)
    p.add_argument("--units-per-region", dest="units_per_region", type=int)
    p.add_argument("--duration-s", dest="duration_s", type=float)
    p.add_argument("--fs-hz", dest="fs_hz", type=float)
    p.add_argument("--n-families", dest="n_families", type=int)
    p.add_argument("--seed", type=int)
    p.set_defaults(func=_synth)
    return parser


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
    if getattr(args, "config", "unset") is None:
        from neurodict.config import DEFAULT_CONFIG

        args.config = DEFAULT_CONFIG
    try:
        with _log_to_stderr():
            args.func(args)
    except USER_ERRORS as exc:
        print(f"neurodict {args.command}: error:\n{exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
