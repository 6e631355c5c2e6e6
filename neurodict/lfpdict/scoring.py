"""How well a fitted dictionary predicts held-out LFP, against its baselines and its null.

All in the estimator's own folds (:attr:`SpikeLFPDictionary.folds_`):

- baselines: ridge filters (Wiener) with their own ridge path, and spike-triggered averages
  scaled by least squares;
- the null: spike trains circularly shifted by at least ``jitter_min_s``, scored as the data
  were with the data's atoms and penalty choice of each outer training set (R^2 near 0);
- the held-out prediction of each fold's core: band coherence and an example stretch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.stats
from tqdm import tqdm

from neurodict.common.timeline import pieces, segment_of
from neurodict.lfpdict import baselines, model
from neurodict.lfpdict.atoms import BANDS_HZ, band_power
from neurodict.lfpdict.estimator import (
    PREDICTOR_SETS,
    PathErrors,
    SpikeLFPDictionary,
    circular_jitter,
    standard_error,
)
from neurodict.lfpdict.evaluate import ToeplitzGram, coherence, intercept, predict, sse
from neurodict.lfpdict.stats import Trains, total


@dataclass
class Evaluation:
    """Held-out scores of a fitted dictionary, every one from nested cross-validation.

    Attributes
    ----------
    scores : list of dict
        region, predictors, model (dictionary, wiener, sta, jitter), r2_heldout (pooled over
        outer folds), r2_se (standard error across outer folds), n_folds, penalty (the median
        over outer folds of the value each chose on its inner folds: a fraction of lambda_max,
        or a ridge alpha), n_atoms (dictionary rows: the median over outer folds of the size
        each chose), null_mean, null_p95 and p_value (dictionary rows: against the
        null distribution; the jitter row is the null's mean).
    fold_r2 : dict
        Model -> ndarray of shape (n_sets, n_folds, n_regions), sets in PREDICTOR_SETS order.
    null_r2 : ndarray of shape (n_sets, n_null, n_regions)
        The nested R^2 of each null.
    chosen : dict
        Model -> ndarray of shape (n_sets, n_folds, n_regions): the value each outer fold chose.
    coherence : list of dict
        region, predictors, band, coherence (held-out, dictionary model).
    heldout : dict
        A held-out stretch: t_s, measured and predicted (n_regions, n_samples).
    link_p, link_q : dict
        Band -> ndarray of shape (n_windows, n_units, n_regions): each link's statistic
        (:func:`fold_link_power`) against the nulls' (p) and its Benjamini–Hochberg q over all
        links, bands and windows.
    timings : dict
        Wall seconds of each phase: baselines, null, held-out.
    """

    scores: list
    fold_r2: dict
    null_r2: np.ndarray
    chosen: dict
    coherence: list
    heldout: dict
    link_p: dict
    link_q: dict
    timings: dict = field(default_factory=dict)


def p_value(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """(1 + #{null >= observed}) / (1 + N) along the first axis of `null` (N nulls).

    A NaN observation (a flat region) gives NaN."""
    p = (1 + np.sum(null >= observed, axis=0)) / (1 + null.shape[0])
    return np.where(np.isnan(observed), np.nan, p)


def heldout_scores(
    est: SpikeLFPDictionary, spike_bins: list[np.ndarray], y: np.ndarray, regions
) -> Evaluation:
    """Score a fitted `est` on the data it was fitted on, by nested cross-validation.

    Parameters
    ----------
    est : SpikeLFPDictionary
        Fitted on (`spike_bins`, `y`).
    spike_bins : list of ndarray of int
    y : ndarray of shape (n_regions, n_bins)
    regions : sequence of str, length n_regions
    """
    timings = {}
    clock = time.perf_counter()
    wiener, sta = baselines_cv(est, spike_bins, *y.shape)
    timings["baselines"] = time.perf_counter() - clock
    clock = time.perf_counter()
    null, null_power = nulls(est, spike_bins, y)
    timings["null"] = time.perf_counter() - clock
    nested = {s: est.paths_[s].nested() for s in PREDICTOR_SETS}
    clock = time.perf_counter()
    coherence, heldout = heldout_prediction(est, spike_bins, y, regions, nested)
    timings["heldout"] = time.perf_counter() - clock
    models = {
        "dictionary": (nested, np.asarray(est.lambda_fractions)),
        "wiener": ({s: wiener[s].nested() for s in PREDICTOR_SETS}, np.asarray(est.ridge_alphas)),
    }
    fold_r2 = {m: np.stack([v[s][1] for s in PREDICTOR_SETS]) for m, (v, _) in models.items()}
    chosen = {m: np.stack([v[s][2] for s in PREDICTOR_SETS]) for m, (v, _) in models.items()}
    fold_r2["sta"] = np.stack([1 - sta[s] / est.paths_[s].sst for s in PREDICTOR_SETS])
    r2 = {m: np.stack([v[s][0] for s in PREDICTOR_SETS]) for m, (v, _) in models.items()}
    r2["sta"] = np.stack([1 - sta[s].sum(0) / est.paths_[s].sst.sum(0) for s in PREDICTOR_SETS])
    p = p_value(r2["dictionary"], np.swapaxes(null, 0, 1))
    scores = []
    for i, region in enumerate(regions):
        for si, name in enumerate(PREDICTOR_SETS):
            null_i = null[si, :, i]
            for m in ("dictionary", "wiener", "sta", "jitter"):
                row = {"region": region, "predictors": name, "model": m}
                if m == "jitter":  # the null distribution's mean and spread
                    row |= {"r2_heldout": float(np.mean(null_i)), "r2_se": np.nan}
                else:
                    row |= {
                        "r2_heldout": float(r2[m][si, i]),
                        "r2_se": float(standard_error(fold_r2[m][si, :, i])),
                    }
                values = models[m][1][chosen[m][si, :, i]] if m in chosen else [np.nan]
                tested = m == "dictionary"
                scores.append(
                    row
                    | {
                        "n_folds": est.n_folds,
                        "penalty": float(np.median(values)),
                        "n_atoms": float(np.median(est.fold_sizes_)) if tested else np.nan,
                        "null_mean": float(np.mean(null_i)) if tested else np.nan,
                        "null_p95": float(np.quantile(null_i, 0.95)) if tested else np.nan,
                        "p_value": float(p[si, i]) if tested else np.nan,
                    }
                )
    chosen_all = np.asarray(est.lambda_fractions)[est.paths_["all"].nested()[2]]
    link_p, link_q = link_tests(fold_link_power(est, est.folds_.stats, chosen_all), null_power)
    return Evaluation(scores, fold_r2, null, chosen, coherence, heldout, link_p, link_q, timings)


def baselines_cv(
    est: SpikeLFPDictionary, spike_bins: list[np.ndarray], n_regions: int, n_bins: int
):
    """The baselines in the estimator's folds: Wiener filters with their ridge alpha chosen on
    inner folds, and scaled spike-triggered averages (no hyper-parameter).

    Returns
    -------
    wiener : dict
        Predictor set -> :class:`PathErrors` over ``ridge_alphas``.
    sta : dict
        Predictor set -> ndarray of shape (n_folds, n_regions): each outer fold's error.
    """
    folds, be = est.folds_, est.folds_.backend
    R, K, A, n_sets = n_regions, est.n_folds, len(est.ridge_alphas), len(PREDICTOR_SETS)
    scale = float(np.mean([len(s) for s in spike_bins])) / n_bins  # mean spikes per bin
    outer = np.zeros((K, A, n_sets * R))
    inner = np.zeros((K, A, n_sets * R))
    sta = np.zeros((K, n_sets * R))
    stats = folds.stacked([total(fold) for fold in folds.stats])
    whole = total(stats)
    for k in range(K):
        train = whole - stats[k]
        outer[k] = ridge_path(est, train, stats[k], folds.mask, scale)
        for j in range(K):
            if j != k:
                inner[k] += ridge_path(est, train - stats[j], stats[j], folds.mask, scale)
        F = baselines.sta(be, train, folds.mask, ToeplitzGram(be, train))
        sta[k] = be.to_numpy(
            sse(be, stats[k], F, intercept(be, train, F), ToeplitzGram(be, stats[k]))
        )
    sst_fold = est.paths_["all"].sst
    inner_sst = sst_fold.sum(axis=0) - sst_fold
    outer = outer.reshape(K, A, n_sets, R)
    inner = inner.reshape(K, A, n_sets, R)
    sta = sta.reshape(K, n_sets, R)
    wiener = {
        s: PathErrors(outer[:, :, i], inner[:, :, i], sst_fold, inner_sst)
        for i, s in enumerate(PREDICTOR_SETS)
    }
    return wiener, {s: sta[:, i] for i, s in enumerate(PREDICTOR_SETS)}


def ridge_path(est, train, test, mask, scale: float) -> np.ndarray:
    """Test error of Wiener filters fitted on `train` for each ridge alpha, (n_alphas, R);
    strong to weak, each warm-started from the one before."""
    be = est.folds_.backend
    n_regions = mask.shape[1]
    gram_train, gram_test = ToeplitzGram(be, train), ToeplitzGram(be, test)
    out = [None] * len(est.ridge_alphas)
    F = None
    for i in np.argsort(est.ridge_alphas)[::-1]:
        a = be.xp.full(n_regions, est.ridge_alphas[i] * scale, dtype=est.dtype)
        F = baselines.wiener(be, train, a, mask, gram_train, F0=F)
        out[i] = sse(be, test, F, intercept(be, train, F), gram_test)
    return be.to_numpy(be.xp.stack(out)).astype(float)


def nulls(
    est: SpikeLFPDictionary, spike_bins: list[np.ndarray], y: np.ndarray
) -> tuple[np.ndarray, dict]:
    """``n_null`` circular-shift nulls, each scored as the data were.

    Each null shifts every unit's train independently by at least ``jitter_min_s`` (keeping
    each train's statistics, breaking its timing to the LFP). Its held-out R^2: for each outer
    fold k, coefficients fitted on the other folds with the atoms the data learned there
    (:attr:`SpikeLFPDictionary.fold_atoms_`) at the penalty fold k chose on its inner folds
    (per predictor set and region, a fraction of the null's own lambda_max), scored on fold k.
    Its links: :func:`fold_link_power` of its trains.

    What the nulls reuse from the data, the atoms and the penalty of each outer training set,
    never saw that outer fold: with no coupling it carries nothing about the fold, so the
    null's held-out R^2 and the data's share their distribution (the size is measured by
    ``benchmarks/statistics.py``). A null costs one statistics pass and two coefficient fits
    per outer fold (all predictor sets at once; all units on the fold alone), instead of the
    whole nested search.

    Returns
    -------
    r2 : ndarray of shape (n_sets, n_null, n_regions)
        Each null's held-out R^2, pooled over outer folds.
    power : dict
        Band -> ndarray of shape (n_null, n_windows, n_units, n_regions): each null's link
        statistic (:func:`fold_link_power`).
    """
    folds, be = est.folds_, est.folds_.backend
    rng = np.random.default_rng(est.random_state)
    K, R, n_sets = est.n_folds, y.shape[0], len(PREDICTOR_SETS)
    fractions = np.asarray(est.lambda_fractions)
    # the penalty each outer fold chose on its inner folds, (n_folds, n_sets * n_regions)
    chosen = fractions[np.concatenate([est.paths_[s].nested()[2] for s in PREDICTOR_SETS], 1)]
    chosen_all = fractions[est.paths_["all"].nested()[2]]
    sst_total = est.paths_["all"].sst.sum(axis=0)
    r2 = np.zeros((n_sets, est.n_null, R))
    power = []
    trains = Trains.of(spike_bins)  # sorted once; each null rotates them
    for n in tqdm(range(est.n_null), desc="lfpdict: nulls", disable=not est.progress):
        shifted = circular_jitter(trains, y.shape[1], int(est.jitter_min_s * est.fs_hz), rng)
        stats = est.fold_stats(be, shifted, y, folds.segments)
        by_window = folds.totals(stats)
        sse_folds = est.path_sse(
            be,
            [folds.stacked(folds.train(k, stats, by_window)) for k in range(K)],
            [folds.stacked(stats[k]) for k in range(K)],
            est.fold_atoms_,
            folds.mask,
            chosen[None],
        )[:, 0].sum(axis=0)
        r2[:, n] = 1 - sse_folds.reshape(n_sets, R) / sst_total
        power.append(fold_link_power(est, stats, chosen_all))
    return r2, {band: np.stack([p[band] for p in power]) for band in BANDS_HZ}


def fold_link_power(est: SpikeLFPDictionary, stats: list, fractions: np.ndarray) -> dict:
    """The link statistic: each link's band power fitted on each outer fold alone, averaged.

    On fold k, all units' coefficients are fitted on fold k's statistics alone with the atoms
    learned without it (:attr:`SpikeLFPDictionary.fold_atoms_`), at the penalty fold k chose
    for all units (`fractions`, (n_folds, n_regions), of fold k's own lambda_max). With no
    coupling, fold k's spike timing is independent of atoms learned on the other folds, so the
    data's statistic and a null's (its shifted trains, the same atoms) share a distribution: the
    atoms are learned once, never per null. (The final fit's filters, learned on the whole
    recording, have seen the data's trains: they are what is reported, not what is tested.)

    Parameters
    ----------
    stats : list (n_folds) of list (n_windows) of SegmentStats

    Returns
    -------
    dict
        Band -> ndarray of shape (n_windows, n_units, n_regions).
    """
    be = est.folds_.backend
    coefs = est.refit(be, stats, est.fold_atoms_, fractions)
    out = [
        band_power(model.filters_from(be.xp, B, D), est.fs_hz, be)
        for B, D in zip(coefs, est.fold_atoms_, strict=True)
    ]
    return {band: np.mean([p[band] for p in out], axis=0) for band in BANDS_HZ}


def link_tests(observed: dict, null: dict) -> tuple[dict, dict]:
    """Each link's band power against the same link in the nulls: p-values and
    Benjamini–Hochberg q-values over every link, band and window.

    Parameters
    ----------
    observed : dict
        Band -> ndarray of shape (n_windows, n_units, n_regions).
    null : dict
        Band -> ndarray of shape (n_null, n_windows, n_units, n_regions).

    Returns
    -------
    p, q : dict
        Band -> ndarray of shape (n_windows, n_units, n_regions).
    """
    p = {band: p_value(observed[band], null[band]) for band in observed}
    flat = np.concatenate([p[band].ravel() for band in observed])
    q_flat = scipy.stats.false_discovery_control(flat, method="bh")
    q, start = {}, 0
    for band in observed:
        q[band] = q_flat[start : start + p[band].size].reshape(p[band].shape)
        start += p[band].size
    return p, q


def segment_pieces(spike_bins: list[np.ndarray], a: int, b: int, bounds: list[int]):
    """``[a, b)`` cut at the recording's segment starts `bounds`: (lo, hi, the spikes of the
    piece's recording segment) for each piece, so that a prediction uses no spike across a
    pause."""
    ends = list(bounds[1:]) + [np.iinfo(np.int64).max]
    for lo, hi in pieces(a, b, bounds):
        i = int(segment_of(lo, bounds))
        s0, s1 = bounds[i], ends[i]
        yield lo, hi, [np.asarray(s)[(s >= s0) & (s < s1)] for s in spike_bins]


def heldout_prediction(
    est: SpikeLFPDictionary, spike_bins: list[np.ndarray], y: np.ndarray, regions, nested: dict
) -> tuple[list[dict], dict]:
    """Each fold's core predicted by coefficients refitted on the other folds (the fold's atoms,
    the penalty its inner folds chose, `nested`: predictor set -> :meth:`PathErrors.nested`;
    the sets as one stacked problem): band coherence per region and predictor set, and a
    stretch of the first fold (t_s, measured, predicted with all units)."""
    folds, be = est.folds_, est.folds_.backend
    fractions = np.asarray(est.lambda_fractions)
    R = folds.stats[0][0].S.shape[1]
    coh = {s: {b: [] for b in BANDS_HZ} for s in PREDICTOR_SETS}
    n_heldout, stretch = 0, {}
    trains = [folds.stacked(folds.train(k)) for k in range(est.n_folds)]
    chosen = np.concatenate([fractions[nested[s][2]] for s in PREDICTOR_SETS], axis=1)
    coefs = est.refit(be, trains, est.fold_atoms_, chosen, folds.mask)
    for k, fold in enumerate(folds.segments):
        t = np.concatenate([np.arange(wa, wb) for wa, wb in fold])  # samples in windows
        measured = be.asarray(y[:, t], dtype=est.dtype)
        train = trains[k]
        F = model.filters_from(be.xp, coefs[k], est.fold_atoms_[k])
        pred = be.xp.concatenate(
            [
                predict(be, own, Fw, intercept(be, tr, Fw), lo, hi, est.lag_minus_bins)
                for (wa, wb), Fw, tr in zip(fold, F, train, strict=True)
                for lo, hi, own in segment_pieces(spike_bins, wa, wb, est.segment_bounds)
            ],
            axis=1,
        ).reshape(len(PREDICTOR_SETS), R, -1)
        n_heldout += t.size
        freqs, c = coherence(be, measured, pred, int(min(t.size, 2 * est.fs_hz)))
        freqs = freqs * est.fs_hz
        for band, (lo, hi) in BANDS_HZ.items():
            in_band = be.to_numpy(c[..., be.asarray((freqs >= lo) & (freqs < hi))].mean(axis=-1))
            for i, name in enumerate(PREDICTOR_SETS):
                coh[name][band].append(t.size * in_band[i])
        if k == 0:
            n_show = int(min(t.size, 10 * est.fs_hz))
            stretch = {
                "t_s": t[:n_show] / est.fs_hz,
                "measured": y[:, t[:n_show]],
                "predicted": be.to_numpy(pred[PREDICTOR_SETS.index("all"), :, :n_show]).astype(
                    float
                ),
            }
    rows = [
        {
            "region": region,
            "predictors": name,
            "band": band,
            "coherence": float(np.sum(coh[name][band], axis=0)[i] / n_heldout),
        }
        for i, region in enumerate(regions)
        for name in PREDICTOR_SETS
        for band in BANDS_HZ
    ]
    return rows, stretch
