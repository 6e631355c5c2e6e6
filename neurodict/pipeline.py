"""The workflow's steps as plain functions: read inputs, compute, write outputs atomically.

Each step writes its outputs under a temporary name, renames them when complete and records
its resolved parameters, package versions and run time in ``<step>.provenance.json``. The
Snakemake rules and the command line call these functions; tests call them directly.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import spikeinterface as si
import spikeinterface.core as sc

from neurodict import detect, preprocess
from neurodict.config import load_config, load_session
from neurodict.io import open_recording
from neurodict.outputs import atomic_path, provenance, write_json


def session_info(results: Path) -> dict:
    """The session as resolved at ingest time (``results/<session>/session.json``)."""
    return json.loads((Path(results) / "session.json").read_text())


def ingest(session_file: str | Path, out_dir: str | Path, config: dict | None = None,
           name: str | None = None) -> sc.BaseRecording:
    """Validate a session, open its recording and record both.

    Writes ``session.json`` (the resolved session and workflow parameters) and
    ``recording.json`` (the lazy recording with probe and channel properties ``group``,
    ``region``, ``bad``; ``spikeinterface.load`` reopens it). Raw data are only read.
    """
    started = time.time()
    config = config or load_config()
    session = load_session(session_file, config=config, name=name)
    rec = open_recording(session)
    out_dir = Path(out_dir)
    with atomic_path(out_dir / "recording.json") as tmp:
        rec.dump_to_json(tmp, include_properties=True)
    info = session.to_dict() | {
        "num_channels_used": rec.get_num_channels(),
        "duration_s": rec.get_total_duration(),
        "sampling_frequency_hz": rec.sampling_frequency,
    }
    write_json(out_dir / "session.json", info)
    write_json(out_dir / "ingest.provenance.json", provenance("ingest", info, started))
    return rec


def preprocess_session(results: str | Path, n_jobs: int = 1) -> None:
    """Spike band, channel LFPs and region LFPs of an ingested session, saved as folders.

    Reads ``recording.json`` and ``session.json`` in `results`; writes ``spikeband/``,
    ``lfp/`` and ``region_lfp/`` (spikeinterface binary folders, float32 microvolts).
    """
    started = time.time()
    results = Path(results)
    session = session_info(results)
    rec = si.load(results / "recording.json")
    job = {"n_jobs": n_jobs, "chunk_duration": "10s", "progress_bar": True}
    p = session["params"]
    lfp = preprocess.lfp_band(rec, p["lfp"], session["mains_hz"])
    for name, out in (("spikeband", preprocess.spike_band(rec, p["spikeband"])), ("lfp", lfp)):
        with atomic_path(results / name) as tmp:
            out.save(folder=tmp, **job)
    lfp = si.load(results / "lfp")
    with atomic_path(results / "region_lfp") as tmp:
        preprocess.region_lfp(lfp, p["lfp"]["region_reference"]).save(folder=tmp, **job)
    write_json(results / "preprocess.provenance.json",
               provenance("preprocess", {k: p[k] for k in ("spikeband", "lfp")}
                          | {"mains_hz": session["mains_hz"]}, started))


def detect_session(results: str | Path, n_jobs: int = 1) -> np.ndarray:
    """Detect spikes per electrode group in ``spikeband/``.

    Writes ``peaks.npy`` (structured, :data:`neurodict.detect.PEAK_DTYPE`) and
    ``detection.tsv`` (group, region, n_channels, n_peaks, rate_hz).
    """
    started = time.time()
    results = Path(results)
    rec = si.load(results / "spikeband")
    params = session_info(results)["params"]["detection"]
    peaks = detect.detect_group_peaks(rec, params, n_jobs=n_jobs)
    with atomic_path(results / "peaks.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, peaks)
    write_tsv(results / "detection.tsv", detect.peak_counts(rec, peaks))
    write_json(results / "detect.provenance.json", provenance("detect", params, started))
    return peaks


def write_tsv(path: str | Path, rows: list[dict]) -> None:
    """Write dict rows as a tab-separated table with a header, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)


def read_tsv(path: str | Path) -> list[dict]:
    """Read a table written by :func:`write_tsv` (values as strings)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


class LFPDictInputError(ValueError):
    """The sorting and LFP given to the dictionary step do not fit together."""


def spike_bins_from_sorting(sorting, fs_lfp_hz: float) -> list[np.ndarray]:
    """Per unit, the LFP-rate bin of each spike: floor(t_s * fs_lfp_hz)."""
    fs = sorting.sampling_frequency
    return [np.floor(sorting.get_unit_spike_train(u) / fs * fs_lfp_hz).astype(np.int64)
            for u in sorting.unit_ids]


def load_lfpdict_inputs(sorting_dir: str | Path, lfp_dir: str | Path):
    """Spike bins, region LFPs and region labels, checked against each other.

    Returns
    -------
    spike_bins : list of ndarray
    y : ndarray of shape (n_targets, n_bins), float32
    targets : list of str
        One name per LFP channel: its region (with the channel id when a region has several).
    target_regions, unit_regions : ndarray of str
    unit_ids : ndarray
    fs_hz : float

    Raises
    ------
    LFPDictInputError
        A unit without a region, or whose region has no LFP; spikes beyond the LFP's end.
    """
    sorting, lfp = si.load(sorting_dir), si.load(lfp_dir)
    if "region" not in sorting.get_property_keys():
        raise LFPDictInputError(f"sorting '{sorting_dir}': expected the unit property 'region'; "
                                f"its units carry {sorting.get_property_keys()}.")
    if "region" not in lfp.get_property_keys():
        raise LFPDictInputError(f"LFP '{lfp_dir}': expected the channel property 'region'.")
    unit_regions = np.asarray(sorting.get_property("region")).astype(str).tolist()
    target_regions = np.asarray(lfp.get_property("region")).astype(str).tolist()
    for unit, region in zip(sorting.unit_ids, unit_regions, strict=True):
        if region not in target_regions:
            raise LFPDictInputError(
                f"sorting '{sorting_dir}': unit '{unit}' has region '{region}', which is not "
                f"among the LFP's regions {sorted(map(str, set(target_regions)))} "
                f"('{lfp_dir}').")
    fs = lfp.sampling_frequency
    spike_bins = spike_bins_from_sorting(sorting, fs)
    n_bins = lfp.get_num_samples()
    last = max((int(s.max()) for s in spike_bins if s.size), default=-1)
    if last >= n_bins:
        raise LFPDictInputError(
            f"sorting '{sorting_dir}' has spikes until {(last + 1) / fs:.3f} s but the LFP "
            f"'{lfp_dir}' lasts {n_bins / fs:.3f} s: expected the same recording.")
    counts = {r: target_regions.count(r) for r in set(target_regions)}
    targets = [r if counts[r] == 1 else f"{r}:{c}"
               for r, c in zip(target_regions, lfp.channel_ids, strict=True)]
    y = lfp.get_traces().T.astype("float32")
    return (spike_bins, y, targets, np.array(target_regions), np.array(unit_regions),
            sorting.unit_ids, fs)


def dictionary_windows(params: dict, session_windows: list[dict], duration_s: float):
    """The time windows of the dictionary model: (names, [(start_s, end_s), ...]).

    ``windows: none`` gives one window; ``fixed`` blocks of ``window_s``; ``session`` the
    session's condition windows (samples outside every window are left out of the fit).
    """
    if params["windows"] == "session" and session_windows:
        return ([f"{w['condition']}@{w['start_s']:g}s" for w in session_windows],
                [(w["start_s"], w["end_s"]) for w in session_windows])
    if params["windows"] == "fixed":
        edges = list(np.arange(0.0, duration_s, params["window_s"])) + [duration_s]
        return ([f"{a:g}-{b:g}s" for a, b in zip(edges[:-1], edges[1:], strict=True)],
                list(zip(edges[:-1], edges[1:], strict=True)))
    return ["all"], None


def lfpdict_step(sorting_dir: str | Path, lfp_dir: str | Path, out_dir: str | Path,
                 params: dict, session_windows: list[dict] | None = None):
    """Fit the spike->LFP dictionaries and write their outputs into `out_dir`.

    Writes ``lfp_dict.npz`` (atoms, coef (n_windows, n_units, n_regions, n_atoms), filters,
    unit_ids, unit_regions, regions, lags_ms, intercept, lambda, objective, held-out stretch),
    ``lfp_scores.tsv`` (region, predictors, model, r2_heldout, penalty), ``lfp_bands.tsv``
    (unit, unit_region, region, window, band, power) and ``lfp_coherence.tsv``.
    A region whose LFP is flat gets R^2 = nan (no variance to explain) and zero filters.
    """
    from neurodict.lfpdict.atoms import band_power
    from neurodict.lfpdict.estimator import SpikeLFPDictionary

    started = time.time()
    out_dir = Path(out_dir)
    spike_bins, y, targets, target_regions, unit_regions, unit_ids, fs = load_lfpdict_inputs(
        sorting_dir, lfp_dir)
    keys = ("lag_minus_ms", "lag_plus_ms", "n_atoms", "alpha", "lambda_fractions",
            "ridge_alphas", "n_folds", "n_outer", "n_inner", "jitter_min_s", "smoothness",
            "backend", "dtype")
    names, windows_s = dictionary_windows(params, session_windows or [], y.shape[1] / fs)
    est = SpikeLFPDictionary(fs, **{k: params[k] for k in keys}, windows_s=windows_s,
                             random_state=params["seed"], progress=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        est.fit(spike_bins, y, unit_regions, target_regions)
    with atomic_path(out_dir / "lfp_dict.npz") as tmp:
        np.savez(tmp, atoms=est.atoms_, coef=est.coef_, filters=est.filters_,
                 window_filters=est.window_filters_, windows=np.array(names),
                 unit_ids=np.asarray(unit_ids).astype(str), unit_regions=unit_regions,
                 regions=np.array(targets), region_of_target=target_regions,
                 lags_ms=est.lags_ms, intercept=est.intercept_, lam=est.lambda_,
                 objective=np.array(est.objective_), heldout_t_s=est.heldout_["t_s"],
                 heldout_measured=est.heldout_["measured"],
                 heldout_predicted=est.heldout_["predicted"])
    write_tsv(out_dir / "lfp_scores.tsv", [
        {**row, "r2_heldout": round(row["r2_heldout"], 5)} for row in est.scores_])
    power = band_power(est.window_filters_, fs)
    write_tsv(out_dir / "lfp_bands.tsv", [
        {"unit": str(u), "unit_region": unit_regions[n], "region": targets[r], "window": window,
         "band": band, "power": float(f"{power[band][w, n, r]:.6g}")}
        for w, window in enumerate(names) for n, u in enumerate(unit_ids)
        for r in range(len(targets)) for band in power])
    write_tsv(out_dir / "lfp_coherence.tsv", [{**row, "coherence": round(row["coherence"], 5)}
                                              for row in est.coherence_])
    write_json(out_dir / "lfpdict.provenance.json",
               provenance("lfpdict", dict(params) | {"n_atoms_used": est.n_atoms_used_},
                          started))
    return est


def _fold_mask_r2(be, stats, cores, D, lam, alpha, masks, n_iter):
    """Pooled held-out R^2 per region for each mask, coefficients refit per fold, atoms fixed."""
    from neurodict.lfpdict import model
    from neurodict.lfpdict.evaluate import intercept, sse, sst
    from neurodict.lfpdict.stats import total

    whole = total(stats)
    out = {name: np.zeros(len(lam)) for name in masks}
    sst_sum = np.zeros(len(lam))
    for k in range(len(cores)):
        train = whole - stats[k]
        problem = model.coef_problem(be, train, D)
        sst_sum += sst(stats[k])
        shape = (1, train.S.shape[0], D.shape[0], train.S.shape[1])
        for name, mask in masks.items():
            B = model.fit_coef(be, [problem], lam, alpha, np.zeros(shape, D.dtype), mask=mask,
                               n_iter=n_iter)
            F = model.filters_from(np, B[0], D)
            out[name] += sse(be, stats[k], F, intercept(be, train, F))
    return {name: 1 - v / sst_sum for name, v in out.items()}


def _lags(dict_params: dict, fs: float) -> tuple[int, int]:
    return (int(round(dict_params["lag_minus_ms"] * fs / 1000)),
            int(round(dict_params["lag_plus_ms"] * fs / 1000)))


def _half_split_ari(spike_bins, y, fs, d, active, dict_params, seed, cluster_kw) -> float:
    """ARI between the clusterings of dictionaries refitted on each half of the recording."""
    from neurodict import clusters as cl
    from neurodict.backend import CPU
    from neurodict.lfpdict import model
    from neurodict.lfpdict.stats import segment_stats

    lm, lp = _lags(dict_params, fs)
    T = y.shape[1]
    labels = []
    for a, b in ((0, T // 2), (T // 2, T)):
        st = segment_stats(spike_bins, y, a, b, lm, lp, dtype="float64")
        D, B, _, _ = model.learn(CPU, [st], d["atoms"].astype("float64"), d["lam"],
                                 float(dict_params["alpha"]), n_outer=dict_params["n_outer"],
                                 n_inner=dict_params["n_inner"])
        sig, _ = cl.signatures(model.filters_from(np, B[0], D), fs)
        labels.append(cl.cluster(sig[active], seed=seed, **cluster_kw).labels)
    return float(cl.adjusted_rand_score(*labels))


def _importance_rows(spike_bins, y, fs, d, labels, unit_ids, targets, dict_params) -> list[dict]:
    """Held-out R^2 of each region without each unit and without each cluster."""
    from neurodict.backend import CPU
    from neurodict.lfpdict.estimator import fold_cores
    from neurodict.lfpdict.stats import segment_stats

    lm, lp = _lags(dict_params, fs)
    cores = fold_cores(y.shape[1], dict_params["n_folds"], lm + lp + 1)
    stats = [segment_stats(spike_bins, y, a, b, lm, lp, dtype="float64") for a, b in cores]
    base = np.ones((len(unit_ids), len(targets)))
    drops = {"all": base}
    drops |= {f"unit:{u}": np.where(np.arange(len(unit_ids))[:, None] == i, 0.0, base)
              for i, u in enumerate(unit_ids)}
    drops |= {f"cluster:{g}": np.where((labels == g)[:, None], 0.0, base)
              for g in np.unique(labels[labels >= 0])}
    r2 = _fold_mask_r2(CPU, stats, cores, d["atoms"].astype("float64"),
                       d["lam"].astype("float64"), float(dict_params["alpha"]), drops,
                       dict_params["n_inner"])
    return [{"left_out": name.split(":", 1)[1], "kind": name.split(":", 1)[0], "region": region,
             "r2_full": round(float(r2["all"][r]), 5), "r2_without": round(float(v[r]), 5),
             "r2_drop": round(float(r2["all"][r] - v[r]), 5)}
            for name, v in r2.items() if name != "all" for r, region in enumerate(targets)]


def clusters_step(sorting_dir: str | Path, lfp_dir: str | Path, dict_npz: str | Path,
                  out_dir: str | Path, params: dict, dict_params: dict) -> dict:
    """Cluster units by signature, test stability, phase locking and functional importance.

    Writes ``clusters.tsv`` (unit_id, home_region, cluster, probability; cluster -1: a unit
    with no LFP link), ``clusters_summary.tsv`` (per cluster: size, units per home region, mean
    signature per region and band, and the session's stability figures and p-value),
    ``phase.tsv`` and ``importance.tsv`` (held-out R^2 drop per region when a unit or a cluster
    is left out; coefficients refit per fold from the statistics, atoms fixed).
    """
    from neurodict import clusters as cl
    from neurodict.phase import phase_table

    started = time.time()
    out_dir = Path(out_dir)
    spike_bins, y, targets, target_regions, unit_regions, unit_ids, fs = load_lfpdict_inputs(
        sorting_dir, lfp_dir)
    d = np.load(dict_npz)
    if list(d["unit_ids"]) != [str(u) for u in unit_ids]:
        raise LFPDictInputError(f"'{dict_npz}' was fitted on other units than '{sorting_dir}'.")
    sig, bands = cl.signatures(d["filters"], fs)
    units = cl.cluster_units(sig, unit_regions, params, str(dict_npz))
    fit, labels, prob, active = units.fit, units.labels, units.probability, units.active
    boot, p_value = units.bootstrap_ari, units.p_beyond_region
    ari_halves = _half_split_ari(spike_bins, y, fs, d, active, dict_params, params["seed"],
                                 cl.cluster_kwargs(params))
    stable = bool(ari_halves >= params["stability_ari"]
                  and np.median(boot) >= params["stability_ari"])
    write_tsv(out_dir / "clusters.tsv", [
        {"unit_id": str(u), "home_region": unit_regions[i], "cluster": int(labels[i]),
         "probability": round(float(prob[i]), 4)} for i, u in enumerate(unit_ids)])
    figures = {"n_clusters": int(np.unique(fit.labels).size), "pca_components": fit.n_components,
               "pca_variance_kept": round(fit.variance_kept, 4),
               "ari_halves": round(ari_halves, 4),
               "ari_bootstrap_median": round(float(np.median(boot)), 4),
               "p_beyond_region": round(p_value, 4), "stable": stable}
    write_tsv(out_dir / "clusters_summary.tsv", [
        row | figures for row in cl.summary_rows(sig[active], fit.labels, unit_regions[active],
                                                 targets, bands)])
    write_tsv(out_dir / "phase.tsv", [
        {k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()}
        for row in phase_table(spike_bins, unit_ids, unit_regions, y, targets, fs)])

    write_tsv(out_dir / "importance.tsv",
              _importance_rows(spike_bins, y, fs, d, labels, unit_ids, targets, dict_params))
    write_json(out_dir / "clusters.provenance.json",
               provenance("clusters", dict(params) | figures, started))
    return figures
