"""``neurodict lfpdict``: the spike->LFP dictionaries of a session, with held-out scores."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from neurodict.common import timeline
from neurodict.common.files import atomic_path, write_json, write_tsv
from neurodict.common.layout import session_info, spike_source
from neurodict.common.provenance import provenance
from neurodict.lfpdict.atoms import band_power
from neurodict.lfpdict.estimator import PREDICTOR_SETS, SpikeLFPDictionary
from neurodict.lfpdict.inputs import (
    despiked_targets,
    dictionary_windows,
    load_lfpdict_inputs,
)
from neurodict.lfpdict.scoring import heldout_scores

ROUNDED = ("r2_heldout", "r2_se", "null_mean", "null_p95", "p_value")


def run(results: str | Path, sorting_dir: str | Path | None = None) -> SpikeLFPDictionary:
    """Fit the dictionaries of an ingested, preprocessed session in `results`.

    Reads ``session.json`` (parameters and condition windows), ``region_lfp/`` and the spike
    trains (`sorting_dir`, default: the sorter's ``sorting/`` or the session's ground truth, as
    ``lfpdict.spikes`` says); writes into `results` (see :func:`write_dictionaries`).
    """
    results = Path(results)
    info = session_info(results)
    sorting_dir = sorting_dir or spike_source(results, info)
    return write_dictionaries(
        sorting_dir,
        results / "region_lfp",
        results,
        info["params"]["lfpdict"],
        info.get("windows", []),
        timeline.starts_s(info),
    )


def fold_atoms_padded(est: SpikeLFPDictionary) -> np.ndarray:
    """Each outer fold's atoms at its chosen size, zero rows up to the largest size (a zero
    atom takes no coefficient), shape (n_folds, max size, n_lags)."""
    atoms = [est.folds_.backend.to_numpy(D) for D in est.fold_atoms_]
    out = np.zeros((len(atoms), est.atom_counts[-1], atoms[0].shape[1]), dtype=atoms[0].dtype)
    for k, D in enumerate(atoms):
        out[k, : D.shape[0]] = D
    return out


def write_dictionaries(
    sorting_dir: str | Path,
    lfp_dir: str | Path,
    out_dir: str | Path,
    params: dict,
    session_windows: list[dict] | None = None,
    segment_starts_s: list[float] | None = None,
) -> SpikeLFPDictionary:
    """Fit the spike->LFP dictionaries and write their outputs into `out_dir`.

    The targets are the region LFPs despiked of their own units (:func:`despiked_targets`).

    Writes ``lfp_dict.npz`` (atoms, coef (n_windows, n_units, n_regions, n_atoms), filters,
    unit_ids, unit_regions, regions, lags_ms, intercept, lambda, objective, held-out stretch),
    ``lfp_scores.tsv`` (region, predictors, model, r2_heldout, r2_se, n_folds, penalty,
    n_atoms, null_mean, null_p95, p_value), ``lfp_bands.tsv`` (unit, unit_region, region,
    window, band, power of the final fit, p_value and Benjamini–Hochberg q_value of the link
    statistic against the nulls, :func:`neurodict.lfpdict.scoring.fold_link_power`) and
    ``lfp_coherence.tsv``.
    A region whose LFP is flat gets R^2 = nan (no variance to explain) and zero filters.
    `segment_starts_s`: the recording's segments on the timeline (no filter reaches across a
    pause; ``windows: segments`` gives each its own coefficients).
    """
    started = time.time()
    out_dir = Path(out_dir)
    spike_bins, y, targets, target_regions, unit_regions, unit_ids, fs, excluded = (
        load_lfpdict_inputs(sorting_dir, lfp_dir, units=params["units"], return_excluded=True)
    )
    y = despiked_targets(sorting_dir, lfp_dir, y, target_regions)
    keys = (
        "lag_minus_ms",
        "lag_plus_ms",
        "n_atoms",
        "alpha",
        "lambda_fractions",
        "ridge_alphas",
        "n_folds",
        "n_outer",
        "n_inner",
        "jitter_min_s",
        "n_null",
        "smoothness",
        "backend",
        "dtype",
    )
    names, windows_s = dictionary_windows(
        params, session_windows or [], y.shape[1] / fs, segment_starts_s
    )
    est = SpikeLFPDictionary(
        fs,
        **{k: params[k] for k in keys},
        windows_s=windows_s,
        segment_starts_s=segment_starts_s,
        random_state=params["seed"],
        progress=True,
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        est.fit(spike_bins, y, unit_regions, target_regions)
        scored = heldout_scores(est, spike_bins, y, target_regions)
    with atomic_path(out_dir / "lfp_dict.npz") as tmp:
        np.savez(
            tmp,
            atoms=est.atoms_,
            coef=est.coef_,
            filters=est.filters_,
            window_filters=est.window_filters_,
            windows=np.array(names),
            unit_ids=np.asarray(unit_ids).astype(str),
            unit_regions=unit_regions,
            regions=np.array(targets),
            region_of_target=target_regions,
            lags_ms=est.lags_ms,
            intercept=est.intercept_,
            lam=est.lambda_,
            objective=np.array(est.objective_),
            heldout_t_s=scored.heldout["t_s"],
            heldout_measured=scored.heldout["measured"],
            heldout_predicted=scored.heldout["predicted"],
            predictor_sets=np.array(PREDICTOR_SETS),
            excluded_unit_ids=np.array(list(excluded), dtype=str),
            excluded_reasons=np.array(list(excluded.values()), dtype=str),
            **{f"fold_r2_{m}": v for m, v in scored.fold_r2.items()},
            **{f"fold_choice_{m}": v for m, v in scored.chosen.items()},
            null_r2=scored.null_r2,
            fold_atoms=fold_atoms_padded(est),
            fold_sizes=est.fold_sizes_,
            fold_fraction_all=np.asarray(est.lambda_fractions)[scored.chosen["dictionary"][0]],
        )
    write_tsv(
        out_dir / "lfp_scores.tsv",
        [{k: round(v, 5) if k in ROUNDED else v for k, v in row.items()} for row in scored.scores],
    )
    power = band_power(est.window_filters_, fs)
    write_tsv(
        out_dir / "lfp_bands.tsv",
        [
            {
                "unit": str(u),
                "unit_region": unit_regions[n],
                "region": targets[r],
                "window": window,
                "band": band,
                "power": float(f"{power[band][w, n, r]:.6g}"),
                "p_value": round(float(scored.link_p[band][w, n, r]), 5),
                "q_value": round(float(scored.link_q[band][w, n, r]), 5),
            }
            for w, window in enumerate(names)
            for n, u in enumerate(unit_ids)
            for r in range(len(targets))
            for band in power
        ],
    )
    write_tsv(
        out_dir / "lfp_coherence.tsv",
        [{**row, "coherence": round(row["coherence"], 5)} for row in scored.coherence],
    )
    write_json(
        out_dir / "lfpdict.provenance.json",
        provenance(
            "lfpdict",
            dict(params) | {"n_atoms_chosen": est.size_, "n_atoms_used": est.n_atoms_used_},
            started,
        ),
    )
    return est
