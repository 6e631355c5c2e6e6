"""Across recording sessions: pooled unit clusters and a summary report with links.

Units of every session with dictionaries are pooled; their signatures are computed on the
regions all those sessions share (so they are comparable) and clustered together exactly as
within a session (:mod:`neurodict.clusters`).

Sessions are listed by subject (the session file's ``subject.id``; :data:`NO_SUBJECT` for a
session without one, last) and by date (the day of session.json's ``session_start_time``, UTC;
:data:`UNKNOWN_DATE` without one), each linking its report.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import numpy as np

from neurodict.clusters import mixture as cl
from neurodict.common.files import read_tsv, write_json, write_tsv
from neurodict.common.layout import SESSION_JSON, session_info
from neurodict.common.provenance import provenance
from neurodict.report import figures
from neurodict.report.figures import figure_block
from neurodict.report.session import render

# The group of sessions whose file has no subject block (a subject id has no space in it).
NO_SUBJECT = "no subject"
# The date of a session whose session.json has no start time.
UNKNOWN_DATE = "unknown date"
# Subject fields shown per session and in a subject's heading.
SUBJECT_COLUMNS = ("species", "sex", "age", "genotype", "strain")


def _mean_r2(rows: list[dict], model: str) -> float | str:
    """Mean held-out R^2 over regions of `model` with every unit as predictor ('' if none)."""
    scores = [
        float(r["r2_heldout"]) for r in rows if r["predictors"] == "all" and r["model"] == model
    ]
    return round(float(np.nanmean(scores)), 4) if scores else ""


def session_subject(results: Path, name: str) -> dict:
    """Who and when: ``subject`` (its id or :data:`NO_SUBJECT`), ``date`` (``YYYY-MM-DD`` of
    ``session_start_time``, UTC, or :data:`UNKNOWN_DATE`) and the subject's
    :data:`SUBJECT_COLUMNS` ('' where not given), from the session's ``session.json``."""
    folder = results / name
    info = session_info(folder) if (folder / SESSION_JSON).is_file() else {}
    subject = info.get("subject") or {}
    start = info.get("session_start_time")
    date = (
        datetime.datetime.fromisoformat(start).astimezone(datetime.UTC).date().isoformat()
        if start
        else UNKNOWN_DATE
    )
    return {"subject": subject.get("id", NO_SUBJECT), "date": date} | {
        k: subject.get(k, "") for k in SUBJECT_COLUMNS
    }


def by_subject_and_date(rows: list[dict]) -> dict[str, list[dict]]:
    """`rows` (each with ``subject``, ``date`` and ``session``) grouped by subject, subjects in
    order of id with :data:`NO_SUBJECT` last, each group's rows by date (unknown last), then
    session name."""
    ordered = sorted(
        rows,
        key=lambda r: (
            r["subject"] == NO_SUBJECT,
            r["subject"],
            r["date"] == UNKNOWN_DATE,
            r["date"],
            r["session"]["text"],
        ),
    )
    groups: dict[str, list[dict]] = {}
    for row in ordered:
        groups.setdefault(row["subject"], []).append(row)
    return groups


def session_row(results: Path, name: str) -> dict:
    """One session's line of the summary table; its report is linked relative to the summary.

    Columns: subject, date and the subject's :data:`SUBJECT_COLUMNS` (:func:`session_subject`),
    session (a link to ``../<name>/report.html``), n_units, n_regions, the mean held-out R^2 of
    the dictionary model and of the Wiener baseline, n_clusters and stability. Sessions without
    dictionaries (no sorting yet) have empty figures.
    """
    row = session_subject(results, name) | {
        "session": {"href": f"../{name}/report.html", "text": name},
        "n_units": "",
        "n_regions": "",
        "r2_dictionary_all": "",
        "r2_wiener_all": "",
        "clusters": "",
        "stable": "",
    }
    if (results / name / "lfp_scores.tsv").exists():
        scores = read_tsv(results / name / "lfp_scores.tsv")
        d = np.load(results / name / "lfp_dict.npz")
        row |= {
            "n_units": len(d["unit_ids"]),
            "n_regions": len(d["regions"]),
            "r2_dictionary_all": _mean_r2(scores, "dictionary"),
            "r2_wiener_all": _mean_r2(scores, "wiener"),
        }
    if (results / name / "clusters_summary.tsv").exists():
        s = read_tsv(results / name / "clusters_summary.tsv")[0]
        row |= {"clusters": s["n_clusters"], "stable": s["stable"]}
    return row


def run(
    results: str | Path, sessions: list[str], params: dict, out_dir: str | Path | None = None
) -> dict:
    """Pool units of `sessions` (those with ``lfp_dict.npz``), cluster them, write the report.

    Writes ``clusters.tsv`` (session, unit_id, home_region, cluster, probability),
    ``clusters_summary.tsv``, ``sessions.tsv`` (every session of `sessions` by subject and date,
    :func:`sessions_table`) and ``report.html`` in `out_dir` (default ``<results>/summary``).
    """
    started = time.time()
    results = Path(results)
    out_dir = results / "summary" if out_dir is None else Path(out_dir)
    pooled = [s for s in sessions if (results / s / "lfp_dict.npz").exists()]
    sig, rows, common, bands = pooled_signatures(results, pooled)
    home = np.array([r["home_region"] for r in rows])
    units = cl.cluster_units(sig, home, params, str(results))
    figures_row = {
        "n_clusters": int(np.unique(units.fit.labels).size),
        "ari_bootstrap_median": round(float(np.median(units.bootstrap_ari)), 4),
        "p_beyond_region": round(units.p_beyond_region, 4),
        "stable": bool(np.median(units.bootstrap_ari) >= params["stability_ari"]),
        "regions_pooled": " ".join(map(str, common)),
    }
    write_tsv(
        out_dir / "clusters.tsv",
        [
            r
            | {
                "cluster": int(units.labels[i]),
                "probability": round(float(units.probability[i]), 4),
            }
            for i, r in enumerate(rows)
        ],
    )
    summary = cl.summary_rows(
        sig[units.active], units.fit.labels, home[units.active], common, bands
    )
    write_tsv(out_dir / "clusters_summary.tsv", [r | figures_row for r in summary])
    groups = by_subject_and_date([session_row(results, s) for s in sessions])
    write_tsv(out_dir / "sessions.tsv", sessions_table(groups))
    sections = summary_sections(
        groups,
        summary,
        figures_row,
        common,
        bands,
        f"{int(units.active.sum())} units from {len(pooled)} sessions",
    )
    render("neurodict: all recording sessions", sections, out_dir / "report.html")
    write_json(
        out_dir / "summary.provenance.json",
        provenance("summary", dict(params) | figures_row, started),
    )
    return figures_row


def pooled_signatures(results: Path, sessions: list[str]):
    """Signatures of every unit of `sessions` on the regions they all share.

    Returns
    -------
    sig : ndarray of shape (n_units, n_common_regions * n_bands)
    rows : list of dict
        Per unit: session, unit_id, home_region.
    common : list of str
        The shared regions, in the first session's order.
    bands : list of str
    """
    dicts = [(s, np.load(results / s / "lfp_dict.npz")) for s in sessions]
    common = [
        str(r) for r in dicts[0][1]["regions"] if all(r in set(d["regions"]) for _, d in dicts)
    ]
    sigs, rows = [], []
    for name, d in dicts:
        keep = [list(d["regions"]).index(r) for r in common]
        fs_hz = 1000.0 / float(d["lags_ms"][1] - d["lags_ms"][0])
        sig, bands = cl.signatures(d["filters"][:, keep], fs_hz)
        sigs.append(sig)
        rows += [
            {"session": name, "unit_id": str(u), "home_region": str(h)}
            for u, h in zip(d["unit_ids"], d["unit_regions"], strict=True)
        ]
    return np.concatenate(sigs), rows, common, bands


def sessions_table(groups: dict[str, list[dict]]) -> list[dict]:
    """The rows of ``sessions.tsv``: :func:`by_subject_and_date`'s groups in order, the session
    as its name and ``report`` its page relative to the summary folder."""
    return [
        {"subject": r["subject"], "date": r["date"], "session": r["session"]["text"]}
        | {"report": r["session"]["href"]}
        | {k: v for k, v in r.items() if k not in ("subject", "date", "session")}
        for rows in groups.values()
        for r in rows
    ]


def _subject_text(subject: str, rows: list[dict]) -> str:
    """A subject group's heading: id, what its sessions say of it, sessions and days."""
    days = {r["date"] for r in rows}
    count = (
        f"{len(rows)} session{'s' * (len(rows) != 1)} on {len(days)} day{'s' * (len(days) != 1)}"
    )
    if subject == NO_SUBJECT:
        return f"No subject (session files without a subject block): {count}."
    facts = []
    for key in ("species", "sex", "strain", "genotype"):
        values = list(dict.fromkeys(str(r[key]) for r in rows if r[key]))
        if values:
            facts.append(f"{key} {' / '.join(values)}")
    return f"Subject {subject} ({', '.join(facts)}): {count}."


def _session_blocks(groups: dict[str, list[dict]]) -> list[dict]:
    """Per subject, a heading and a table of its sessions by date (links to their reports)."""
    blocks = [
        {
            "kind": "text",
            "text": "By subject, then by date (the day the session started, UTC: the raw "
            "file's modification time, as session files carry no recording date). Held-out "
            "R^2: mean over regions, every unit as predictor, blocked cross-validation. "
            "Click a session for its report.",
        }
    ]
    for k, (subject, rows) in enumerate(groups.items()):
        columns = [c for c in rows[0] if c not in ("subject", *SUBJECT_COLUMNS)]
        if subject != NO_SUBJECT:
            columns.insert(columns.index("session") + 1, "age")
        blocks += [
            {"kind": "text", "text": _subject_text(subject, rows)},
            {"kind": "table", "id": f"sessions-{k}", "rows": rows, "columns": columns},
        ]
    return blocks


def summary_sections(
    groups: dict[str, list[dict]],
    summary: list[dict],
    figures_row: dict,
    common: list[str],
    bands: list[str],
    pooled_text: str,
) -> list[dict]:
    """The summary page: the sessions by subject and date with links, then the pooled
    clusters."""
    home_cols = [c for c in summary[0] if c.startswith("home_")]
    stable = "stable" if figures_row["stable"] else "NOT stable"
    return [
        {
            "id": "sessions",
            "title": "Recording sessions",
            "blocks": _session_blocks(groups),
        },
        {
            "id": "pooled",
            "title": "Pooled clusters",
            "blocks": [
                {
                    "kind": "text",
                    "text": f"{pooled_text}, signatures on the shared regions "
                    f"{', '.join(common)}: {figures_row['n_clusters']} "
                    f"clusters, median bootstrap ARI "
                    f"{figures_row['ari_bootstrap_median']} ({stable}), "
                    f"rotation test p = {figures_row['p_beyond_region']}.",
                },
                {
                    "kind": "table",
                    "id": "pooled-table",
                    "rows": summary,
                    "columns": ["cluster", "n_units", *home_cols],
                },
                figure_block(
                    figures.cluster_signatures(summary, common, bands),
                    "Mean signature of each pooled cluster.",
                ),
            ],
        },
    ]
