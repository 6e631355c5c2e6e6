"""Across recording sessions: pooled unit clusters and a summary report with links.

Units of every session with dictionaries are pooled; their signatures are computed on the
regions all those sessions share (so they are comparable) and clustered together exactly as
within a session (:mod:`neurodict.clusters`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from neurodict import clusters as cl
from neurodict.outputs import provenance, write_json
from neurodict.pipeline import read_tsv, write_tsv
from neurodict.report import figures
from neurodict.report.figures import figure_block
from neurodict.report.session import render


def _mean_r2(rows: list[dict], model: str) -> float | str:
    """Mean held-out R^2 over regions of `model` with every unit as predictor ('' if none)."""
    scores = [float(r["r2_heldout"]) for r in rows
              if r["predictors"] == "all" and r["model"] == model]
    return round(float(np.nanmean(scores)), 4) if scores else ""


def session_row(results: Path, name: str) -> dict:
    """One session's line of the summary table; its report is linked relative to the summary.

    Columns: session (a link to ``../<name>/report.html``), n_units, n_regions, the mean
    held-out R^2 of the dictionary model and of the Wiener baseline, n_clusters and stability.
    Sessions without dictionaries (no sorting yet) have empty figures.
    """
    row = {"session": {"href": f"../{name}/report.html", "text": name}, "n_units": "",
           "n_regions": "", "r2_dictionary_all": "", "r2_wiener_all": "", "clusters": "",
           "stable": ""}
    if (results / name / "lfp_scores.tsv").exists():
        scores = read_tsv(results / name / "lfp_scores.tsv")
        d = np.load(results / name / "lfp_dict.npz")
        row |= {"n_units": len(d["unit_ids"]), "n_regions": len(d["regions"]),
                "r2_dictionary_all": _mean_r2(scores, "dictionary"),
                "r2_wiener_all": _mean_r2(scores, "wiener")}
    if (results / name / "clusters_summary.tsv").exists():
        s = read_tsv(results / name / "clusters_summary.tsv")[0]
        row |= {"clusters": s["n_clusters"], "stable": s["stable"]}
    return row


def summary_step(results: str | Path, sessions: list[str], params: dict,
                 out_dir: str | Path) -> dict:
    """Pool units of `sessions` (those with ``lfp_dict.npz``), cluster them, write the report.

    Writes ``clusters.tsv`` (session, unit_id, home_region, cluster, probability),
    ``clusters_summary.tsv`` and ``report.html`` in `out_dir`.
    """
    started = time.time()
    results, out_dir = Path(results), Path(out_dir)
    pooled = [(s, np.load(results / s / "lfp_dict.npz")) for s in sessions
              if (results / s / "lfp_dict.npz").exists()]
    common = [r for r in pooled[0][1]["regions"]
              if all(r in set(d["regions"]) for _, d in pooled)]
    sigs, rows = [], []
    for name, d in pooled:
        keep = [list(d["regions"]).index(r) for r in common]
        fs_hz = 1000.0 / float(d["lags_ms"][1] - d["lags_ms"][0])
        sig, bands = cl.signatures(d["filters"][:, keep], fs_hz)
        sigs.append(sig)
        rows += [{"session": name, "unit_id": str(u), "home_region": str(h)}
                 for u, h in zip(d["unit_ids"], d["unit_regions"], strict=True)]
    sig = np.concatenate(sigs)
    home = np.array([r["home_region"] for r in rows])
    units = cl.cluster_units(sig, home, params, str(results))
    fit, labels, prob, active = units.fit, units.labels, units.probability, units.active
    boot, p_value = units.bootstrap_ari, units.p_beyond_region
    figures_row = {"n_clusters": int(np.unique(fit.labels).size),
                   "ari_bootstrap_median": round(float(np.median(boot)), 4),
                   "p_beyond_region": round(p_value, 4),
                   "stable": bool(np.median(boot) >= params["stability_ari"]),
                   "regions_pooled": " ".join(map(str, common))}
    write_tsv(out_dir / "clusters.tsv", [
        r | {"cluster": int(labels[i]), "probability": round(float(prob[i]), 4)}
        for i, r in enumerate(rows)])
    summary = cl.summary_rows(sig[active], fit.labels, home[active], list(common), bands)
    write_tsv(out_dir / "clusters_summary.tsv", [r | figures_row for r in summary])
    session_rows = [session_row(results, s) for s in sessions]
    home_cols = [c for c in summary[0] if c.startswith("home_")]
    sections = [
        {"id": "sessions", "title": "Recording sessions", "blocks": [
            {"kind": "text", "text": "Held-out R^2: mean over regions, every unit as predictor, "
                                     "blocked cross-validation. Click a session for its report."},
            {"kind": "table", "id": "sessions-table", "rows": session_rows,
             "columns": list(session_rows[0])}]},
        {"id": "pooled", "title": "Pooled clusters", "blocks": [
            {"kind": "text", "text": f"{int(active.sum())} units from {len(pooled)} sessions, "
                                     f"signatures on the shared regions "
                                     f"{', '.join(map(str, common))}: "
                                     f"{figures_row['n_clusters']} clusters, median bootstrap "
                                     f"ARI {figures_row['ari_bootstrap_median']} "
                                     f"({'stable' if figures_row['stable'] else 'NOT stable'})"
                                     f", permutation p = {figures_row['p_beyond_region']}."},
            {"kind": "table", "id": "pooled-table", "rows": summary,
             "columns": ["cluster", "n_units", *home_cols]},
            figure_block(figures.cluster_signatures(summary, list(common), bands),
                    "Mean signature of each pooled cluster."),
        ]},
    ]
    render("neurodict: all recording sessions", sections, out_dir / "report.html")
    write_json(out_dir / "summary.provenance.json",
               provenance("summary", dict(params) | figures_row, started))
    return figures_row
