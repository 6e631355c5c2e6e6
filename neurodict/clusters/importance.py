"""Functional importance: held-out R^2 of each region without one unit or one cluster.

For each outer fold k, the atoms learned without fold k and the penalty chosen on fold k's
inner folds (both saved by the dictionary step: ``fold_atoms``, ``fold_fraction_all``) are
held fixed, and the coefficients are refitted on the other folds with and without the unit or
cluster; fold k is then scored. Nothing fitted on fold k enters its score, and the full model is
refitted the same way, so the difference is like for like.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tqdm import tqdm

from neurodict.backend import CPU
from neurodict.lfpdict import model
from neurodict.lfpdict.estimator import fold_cores
from neurodict.lfpdict.evaluate import ToeplitzGram, intercept, sse, sst
from neurodict.lfpdict.inputs import lag_bins
from neurodict.lfpdict.stats import Trains, segment_stats, total


def importance_rows(
    spike_bins, y, fs, d, labels, unit_ids, targets, dict_params, bounds=(), progress=False
) -> list[dict]:
    """Held-out R^2 of each region without each unit and without each cluster (`bounds`: the
    recording's segment starts in bins, as the dictionaries were fitted; `progress`: a bar over
    the folds)."""
    lm, lp = lag_bins(dict_params, fs)
    cores = fold_cores(y.shape[1], dict_params["n_folds"], lm + lp + 1)
    trains = Trains.of(spike_bins)  # sorted once for every fold
    stats = [
        segment_stats(trains, y, a, b, lm, lp, dtype="float64", bounds=bounds) for a, b in cores
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
        progress,
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


def fold_mask_r2(be, stats, fold_atoms, fold_fractions, alpha, masks, n_iter, progress=False):
    """Pooled held-out R^2 per region for each mask; per fold k, coefficients refitted on the
    other folds with fold k's atoms and penalty (a fraction of lambda_max of its training set).

    Per fold, the full model is fitted from zero, then every mask (the full one included, so
    each is fitted the same way) continues from that fit in one stacked problem: the masks
    share the Gram H, so their regions are columns of one problem whose products are single
    GEMMs (the sparse-group penalty is separable by region, so the minimiser of each column
    block is that of its mask's own problem).

    Parameters
    ----------
    stats : list (n_folds) of SegmentStats
    fold_atoms : ndarray of shape (n_folds, n_atoms, n_lags)
    fold_fractions : ndarray of shape (n_folds, n_regions)
    masks : dict
        Name -> ndarray of shape (n_units, n_regions) (1: the unit predicts the region).
    progress : bool
        A bar over the folds.
    """
    xp = be.xp
    whole = total(stats)
    n_units, n_regions = stats[0].S.shape[:2]
    names = list(masks)
    out = xp.zeros((len(names), n_regions))
    sst_sum = np.zeros(n_regions)
    stacked_mask = xp.concatenate([xp.asarray(masks[m], dtype=fold_atoms.dtype) for m in names], 1)
    bar = tqdm(fold_atoms, desc=f"importance: {len(names)} predictor sets", disable=not progress)
    for k, D in enumerate(bar):
        train = whole - stats[k]
        problem = model.coef_problem(be, train, D)
        lam = fold_fractions[k] * model.lambda_max(be, train, D, alpha)
        sst_sum += sst(stats[k])
        shape = (1, n_units, D.shape[0], n_regions)
        full = model.fit_coef(be, [problem], lam, alpha, xp.zeros(shape, D.dtype), n_iter=n_iter)
        stacked = replace(
            problem, Z=xp.tile(problem.Z, (1, len(names))), var=xp.tile(problem.var, len(names))
        )
        B = model.fit_coef(
            be,
            [stacked],
            xp.tile(lam, len(names)),
            alpha,
            xp.tile(full, (1, 1, 1, len(names))),
            mask=stacked_mask,
            n_iter=n_iter,
        )[0]
        gram = ToeplitzGram(be, stats[k])
        for i in range(len(names)):
            F = model.filters_from(xp, B[..., i * n_regions : (i + 1) * n_regions], D)
            out[i] += sse(be, stats[k], F, intercept(be, train, F), gram)
    return {name: 1 - be.to_numpy(out[i]) / sst_sum for i, name in enumerate(names)}
