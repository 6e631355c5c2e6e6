"""How well a fitted dictionary predicts held-out LFP, against its baselines and its null.

All in the estimator's own folds (:attr:`SpikeLFPDictionary.folds_`):

- baselines: ridge filters (Wiener) with their own ridge path, and spike-triggered averages
  scaled by least squares;
- the null: the whole procedure (atoms, penalty path and its choice) rerun on spike trains
  circularly shifted by at least ``jitter_min_s`` (R^2 near 0);
- the held-out prediction of each fold's core: band coherence and an example stretch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.signal
from tqdm import tqdm

from neurodict.lfpdict import baselines, model
from neurodict.lfpdict.atoms import BANDS_HZ
from neurodict.lfpdict.estimator import PREDICTOR_SETS, SpikeLFPDictionary, circular_jitter
from neurodict.lfpdict.evaluate import ToeplitzGram, intercept, predict, sse, sst
from neurodict.lfpdict.stats import total


@dataclass
class Evaluation:
    """Held-out scores of a fitted dictionary.

    Attributes
    ----------
    scores : list of dict
        region, predictors, model (dictionary, wiener, sta, jitter), r2_heldout, penalty.
    coherence : list of dict
        region, predictors, band, coherence (held-out, dictionary model).
    heldout : dict
        A held-out stretch: t_s, measured and predicted (n_regions, n_samples).
    timings : dict
        Wall seconds of each phase: baselines, null, held-out.
    """

    scores: list
    coherence: list
    heldout: dict
    timings: dict = field(default_factory=dict)


def heldout_scores(
    est: SpikeLFPDictionary, spike_bins: list[np.ndarray], y: np.ndarray, regions
) -> Evaluation:
    """Score a fitted `est` on the data it was fitted on, fold by fold.

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
    total_sst, wiener, sta = baseline_sse(est, spike_bins, *y.shape)
    timings["baselines"] = time.perf_counter() - clock
    clock = time.perf_counter()
    null = null_r2(est, spike_bins, y, total_sst)
    timings["null"] = time.perf_counter() - clock
    clock = time.perf_counter()
    coherence, heldout = heldout_prediction(est, spike_bins, y, regions)
    timings["heldout"] = time.perf_counter() - clock
    fractions = np.asarray(est.lambda_fractions)
    scores = []
    for i, region in enumerate(regions):
        for name in PREDICTOR_SETS:
            best = int(np.argmax(np.nan_to_num(est.cv_r2_[name][:, i], nan=-np.inf)))
            jitter_best = int(np.argmax(np.nan_to_num(null[name][:, i], nan=-np.inf)))
            rows = {
                "dictionary": (est.cv_r2_[name][best, i], fractions[best]),
                "wiener": max(
                    (1 - wiener[name][j, i] / total_sst[i], a)
                    for j, a in enumerate(est.ridge_alphas)
                ),
                "sta": (1 - sta[name][i] / total_sst[i], np.nan),
                "jitter": (null[name][jitter_best, i], fractions[jitter_best]),
            }
            scores += [
                {
                    "region": region,
                    "predictors": name,
                    "model": model_name,
                    "r2_heldout": float(value),
                    "penalty": float(pen),
                }
                for model_name, (value, pen) in rows.items()
            ]
    return Evaluation(scores, coherence, heldout, timings)


def baseline_sse(
    est: SpikeLFPDictionary, spike_bins: list[np.ndarray], n_regions: int, n_bins: int
):
    """Pooled held-out total sum of squares, and the Wiener (per ridge alpha) and STA errors.

    Returns
    -------
    total_sst : ndarray of shape (n_regions,)
    wiener : dict
        Predictor set -> ndarray of shape (n_ridge_alphas, n_regions).
    sta : dict
        Predictor set -> ndarray of shape (n_regions,).
    """
    folds, be = est.folds_, est.folds_.backend
    R = n_regions
    scale = float(np.mean([len(s) for s in spike_bins])) / n_bins  # mean spikes per bin
    total_sst = np.zeros(R)
    wiener = {s: np.zeros((len(est.ridge_alphas), R)) for s in PREDICTOR_SETS}
    sta = {s: np.zeros(R) for s in PREDICTOR_SETS}
    for k in range(est.n_folds):
        train_all, test_all = total(folds.train(k)), total(folds.stats[k])
        total_sst += be.to_numpy(sst(test_all))
        gram_train, gram_test = ToeplitzGram(be, train_all), ToeplitzGram(be, test_all)
        for name, mask in folds.masks.items():
            F = None
            for i in np.argsort(est.ridge_alphas)[::-1]:  # strong to weak, warm-started
                a = est.ridge_alphas[i]
                F = baselines.wiener(
                    be, train_all, be.xp.full(R, a * scale, dtype=est.dtype), mask, gram_train, F0=F
                )
                wiener[name][i] += be.to_numpy(
                    sse(be, test_all, F, intercept(be, train_all, F), gram_test)
                )
            F = baselines.sta(be, train_all, mask, gram_train)
            sta[name] += be.to_numpy(sse(be, test_all, F, intercept(be, train_all, F), gram_test))
    return total_sst, wiener, sta


def null_r2(
    est: SpikeLFPDictionary, spike_bins: list[np.ndarray], y: np.ndarray, total_sst: np.ndarray
) -> dict:
    """Held-out R^2 along the penalty path of the whole procedure on circularly shifted spikes.

    Returns predictor set -> ndarray of shape (n_fractions, n_regions); the null's penalty is
    chosen on its own held-out error, as the model's is.
    """
    folds, be = est.folds_, est.folds_.backend
    rng = np.random.default_rng(est.random_state)
    shifted = circular_jitter(spike_bins, y.shape[1], int(est.jitter_min_s * est.fs_hz), rng)
    stats = est.fold_stats(be, shifted, y, folds.segments)
    by_window = folds.totals(stats)
    fractions = np.asarray(est.lambda_fractions)
    mid = float(np.median(fractions))
    path_sse = {s: np.zeros((fractions.size, y.shape[0])) for s in PREDICTOR_SETS}
    for k in tqdm(range(est.n_folds), desc="lfpdict: null", disable=not est.progress):
        train = folds.train(k, stats, by_window)
        D, *_ = est.learn(be, train, folds.atoms0, mid)
        for name, mask in folds.masks.items():
            path_sse[name] += est.path_sse(be, train, stats[k], D, mask, fractions)
    return {s: 1 - path_sse[s] / total_sst for s in PREDICTOR_SETS}


def heldout_prediction(
    est: SpikeLFPDictionary, spike_bins: list[np.ndarray], y: np.ndarray, regions
) -> tuple[list[dict], dict]:
    """Each fold's core predicted by coefficients refitted on the other folds (the fold's atoms,
    the chosen penalties): band coherence per region and predictor set, and a stretch of the
    first fold (t_s, measured, predicted)."""
    folds, be = est.folds_, est.folds_.backend
    N, R = folds.stats[0][0].S.shape[:2]
    coh = {s: {b: [] for b in BANDS_HZ} for s in PREDICTOR_SETS}
    n_heldout, stretch = 0, {}
    for k, fold in enumerate(folds.segments):
        t = np.concatenate([np.arange(wa, wb) for wa, wb in fold])  # samples in windows
        measured = y[:, t]
        train = folds.train(k)
        problems = [model.coef_problem(be, s, est.fold_atoms_[k]) for s in train]
        n_heldout += t.size
        for name, mask in folds.masks.items():
            lmax = model.lambda_max(be, total(train), est.fold_atoms_[k], est.alpha, mask)
            B = model.fit_coef(
                be,
                problems,
                lmax * be.asarray(est.penalty_[name], est.dtype),
                est.alpha,
                be.xp.zeros((len(train), N, est.n_atoms, R), est.dtype),
                mask=mask,
                mu=est.mu_,
                n_iter=est.n_inner,
            )
            F = model.filters_from(be.xp, B, est.fold_atoms_[k])
            pred = np.concatenate(
                [
                    predict(be, spike_bins, Fw, intercept(be, tr, Fw), wa, wb, est.lag_minus_bins)
                    for (wa, wb), Fw, tr in zip(fold, F, train, strict=True)
                    if wb > wa
                ],
                axis=1,
            )
            nperseg = int(min(t.size, 2 * est.fs_hz))
            freqs, c = scipy.signal.coherence(
                measured, pred, fs=est.fs_hz, nperseg=nperseg, axis=-1
            )
            for band, (lo, hi) in BANDS_HZ.items():
                sel = (freqs >= lo) & (freqs < hi)
                coh[name][band].append(t.size * c[:, sel].mean(axis=1))
            if k == 0 and name == "all":
                n_show = int(min(t.size, 10 * est.fs_hz))
                stretch = {
                    "t_s": t[:n_show] / est.fs_hz,
                    "measured": measured[:, :n_show],
                    "predicted": pred[:, :n_show],
                }
    coherence = [
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
    return coherence, stretch
