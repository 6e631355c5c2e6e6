"""Functional importance: held-out R^2 of each region without one unit or one cluster.

For each outer fold k, the atoms learned without fold k and the penalty chosen on fold k's
inner folds (both saved by the dictionary step: ``fold_atoms``, ``fold_fraction_all``) are
held fixed, and the coefficients are refitted on the other folds with and without the unit or
cluster; fold k is then scored. Nothing fitted on fold k enters its score, and the full model is
refitted the same way, so the difference is like for like.
"""

from __future__ import annotations

import numpy as np

from neurodict.backend import CPU
from neurodict.lfpdict import model
from neurodict.lfpdict.estimator import fold_cores
from neurodict.lfpdict.evaluate import intercept, sse, sst
from neurodict.lfpdict.inputs import lag_bins
from neurodict.lfpdict.stats import segment_stats, total


def importance_rows(
    spike_bins, y, fs, d, labels, unit_ids, targets, dict_params, bounds=()
) -> list[dict]:
    """Held-out R^2 of each region without each unit and without each cluster (`bounds`: the
    recording's segment starts in bins, as the dictionaries were fitted)."""
    lm, lp = lag_bins(dict_params, fs)
    cores = fold_cores(y.shape[1], dict_params["n_folds"], lm + lp + 1)
    stats = [
        segment_stats(spike_bins, y, a, b, lm, lp, dtype="float64", bounds=bounds) for a, b in cores
    ]
    base = np.ones((len(unit_ids), len(targets)))
    drops = {"all": base}
    drops |= {
        f"unit:{u}": np.where(np.arange(len(unit_ids))[:, None] == i, 0.0, base)
        for i, u in enumerate(unit_ids)
    }
    drops |= {
        f"cluster:{g}": np.where((labels == g)[:, None], 0.0, base)
        for g in np.unique(labels[labels >= 0])
    }
    r2 = fold_mask_r2(
        CPU,
        stats,
        d["fold_atoms"].astype("float64"),
        d["fold_fraction_all"].astype("float64"),
        float(dict_params["alpha"]),
        drops,
        dict_params["n_inner"],
    )
    return [
        {
            "left_out": name.split(":", 1)[1],
            "kind": name.split(":", 1)[0],
            "region": region,
            "r2_full": round(float(r2["all"][r]), 5),
            "r2_without": round(float(v[r]), 5),
            "r2_drop": round(float(r2["all"][r] - v[r]), 5),
        }
        for name, v in r2.items()
        if name != "all"
        for r, region in enumerate(targets)
    ]


def fold_mask_r2(be, stats, fold_atoms, fold_fractions, alpha, masks, n_iter):
    """Pooled held-out R^2 per region for each mask; per fold k, coefficients refitted on the
    other folds with fold k's atoms and penalty (a fraction of lambda_max of its training set).

    Parameters
    ----------
    stats : list (n_folds) of SegmentStats
    fold_atoms : ndarray of shape (n_folds, n_atoms, n_lags)
    fold_fractions : ndarray of shape (n_folds, n_regions)
    masks : dict
        Name -> ndarray of shape (n_units, n_regions) (1: the unit predicts the region).
    """
    whole = total(stats)
    n_regions = stats[0].S.shape[1]
    out = {name: np.zeros(n_regions) for name in masks}
    sst_sum = np.zeros(n_regions)
    for k, D in enumerate(fold_atoms):
        train = whole - stats[k]
        problem = model.coef_problem(be, train, D)
        lam = fold_fractions[k] * model.lambda_max(be, train, D, alpha)
        sst_sum += sst(stats[k])
        shape = (1, train.S.shape[0], D.shape[0], n_regions)
        for name, mask in masks.items():
            B = model.fit_coef(
                be, [problem], lam, alpha, np.zeros(shape, D.dtype), mask=mask, n_iter=n_iter
            )
            F = model.filters_from(np, B[0], D)
            out[name] += sse(be, stats[k], F, intercept(be, train, F))
    return {name: 1 - v / sst_sum for name, v in out.items()}
