"""``neurodict clusters``: cluster units by signature; stability, phase locking, importance."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from neurodict.clusters import mixture as cl
from neurodict.clusters.importance import importance_rows
from neurodict.clusters.phase import phase_table
from neurodict.clusters.stability import half_split_ari
from neurodict.common import timeline
from neurodict.common.files import write_json, write_tsv
from neurodict.common.layout import session_info, spike_source
from neurodict.common.provenance import provenance
from neurodict.lfpdict.inputs import (
    LFPDictInputError,
    despiked_targets,
    load_clean_targets,
    load_lfpdict_inputs,
)


def run(results: str | Path, sorting_dir: str | Path | None = None) -> dict:
    """Cluster the units of a session whose dictionaries are fitted (``lfp_dict.npz``).

    Reads ``session.json``, ``region_lfp/``, ``lfp_dict.npz`` and the spike trains
    (`sorting_dir`, default as the dictionaries chose them); writes into `results` (see
    :func:`write_clusters`). Returns the session's cluster figures.
    """
    results = Path(results)
    info = session_info(results)
    sorting_dir = sorting_dir or spike_source(results, info)
    return write_clusters(
        sorting_dir,
        results / "region_lfp",
        results / "lfp_dict.npz",
        results,
        info["params"]["clusters"],
        info["params"]["lfpdict"],
        clean_dir=results / "region_lfp_clean",
        segment_starts_s=timeline.starts_s(info),
    )


def write_clusters(
    sorting_dir: str | Path,
    lfp_dir: str | Path,
    dict_npz: str | Path,
    out_dir: str | Path,
    params: dict,
    dict_params: dict,
    clean_dir: str | Path | None = None,
    segment_starts_s: list[float] | None = None,
) -> dict:
    """Cluster units by signature, test stability, phase locking and functional importance.

    Writes ``clusters.tsv`` (unit_id, home_region, cluster, probability; cluster -1: a unit
    with no LFP link), ``clusters_summary.tsv`` (per cluster: size, units per home region, mean
    signature per region and band, and the session's stability figures and p-value),
    ``phase.tsv`` (a unit's locking to its own region read on the LFP without its electrode
    group, or despiked, from `clean_dir`: ``region_lfp_clean/``) and ``importance.tsv``
    (held-out R^2 drop per region when a unit or a cluster is left out; per fold, the atoms and
    penalty fitted without that fold). `segment_starts_s`: the recording's segments on the
    timeline; filters, phases and statistics stay within each.
    """
    started = time.time()
    out_dir = Path(out_dir)
    spike_bins, y, targets, target_regions, unit_regions, unit_ids, fs = load_lfpdict_inputs(
        sorting_dir, lfp_dir, units=dict_params["units"]
    )
    y_dict = despiked_targets(sorting_dir, lfp_dir, y, target_regions)  # as lfpdict fits
    bounds = timeline.in_bins(segment_starts_s, fs)
    home = (
        None if clean_dir is None else load_clean_targets(sorting_dir, clean_dir, unit_ids, lfp_dir)
    )
    d = np.load(dict_npz)
    if list(d["unit_ids"]) != [str(u) for u in unit_ids]:
        raise LFPDictInputError(f"'{dict_npz}' was fitted on other units than '{sorting_dir}'.")
    sig, bands = cl.signatures(d["filters"], fs)
    units = cl.cluster_units(sig, unit_regions, params, str(dict_npz))
    ari_halves = half_split_ari(
        spike_bins,
        y_dict,
        fs,
        unit_regions,
        target_regions,
        dict_params,
        params["seed"],
        cl.cluster_kwargs(params),
        segment_starts_s,
        progress=True,
    )
    figures = cluster_figures(units, ari_halves, params["stability_ari"])
    write_tsv(
        out_dir / "clusters.tsv",
        [
            {
                "unit_id": str(u),
                "home_region": unit_regions[i],
                "cluster": int(units.labels[i]),
                "probability": round(float(units.probability[i]), 4),
            }
            for i, u in enumerate(unit_ids)
        ],
    )
    write_tsv(
        out_dir / "clusters_summary.tsv",
        [
            row | figures
            for row in cl.summary_rows(
                sig[units.active], units.fit.labels, unit_regions[units.active], targets, bands
            )
        ],
    )
    write_tsv(
        out_dir / "phase.tsv",
        [
            {k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()}
            for row in phase_table(
                spike_bins,
                unit_ids,
                unit_regions,
                y,
                targets,
                fs,
                home=home,
                target_regions=target_regions,
                bounds=bounds,
            )
        ],
    )
    write_tsv(
        out_dir / "importance.tsv",
        importance_rows(
            spike_bins,
            y_dict,
            fs,
            d,
            units.labels,
            unit_ids,
            targets,
            dict_params,
            bounds,
            progress=True,
        ),
    )
    write_json(
        out_dir / "clusters.provenance.json",
        provenance("clusters", dict(params) | figures, started),
    )
    return figures


def cluster_figures(units: cl.UnitClusters, ari_halves: float, stability_ari: float) -> dict:
    """The session's cluster figures: count, PCA, stability (halves and bootstrap), p-value.

    ``ari_halves``: each half of the recording fitted alone (nan when a half is too short or
    fewer than 3 units are linked in both). ``p_beyond_region``: the rotation test of structure
    beyond home region (:mod:`neurodict.clusters.beyond`), named in ``beyond_test``, with its
    statistic (share of the region-centred variance explained by the best split in two) and the
    95th percentile of that statistic over the null draws.
    """
    boot = units.bootstrap_ari
    beyond = units.beyond
    null_95 = float(np.quantile(beyond.null, 0.95)) if beyond.null.size else float("nan")
    return {
        "n_clusters": int(np.unique(units.fit.labels).size),
        "pca_components": units.fit.n_components,
        "pca_variance_kept": round(units.fit.variance_kept, 4),
        "ari_halves": round(ari_halves, 4),
        "ari_bootstrap_median": round(float(np.median(boot)), 4),
        "p_beyond_region": round(units.p_beyond_region, 4),
        "beyond_test": beyond.test,
        "beyond_statistic": round(beyond.statistic, 4),
        "beyond_null_95": round(null_95, 4),
        "stable": bool(ari_halves >= stability_ari and np.median(boot) >= stability_ari),
    }
