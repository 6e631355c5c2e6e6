"""Functional importance: held-out R^2 of each region without one unit or one cluster.

Coefficients are refitted per fold from the fold statistics with the final fit's atoms held
fixed; the full model is refitted the same way, so the difference is like for like.
"""

from __future__ import annotations

import numpy as np

from neurodict.backend import CPU
from neurodict.lfpdict import model
from neurodict.lfpdict.estimator import fold_cores
from neurodict.lfpdict.evaluate import intercept, sse, sst
from neurodict.lfpdict.inputs import lag_bins
from neurodict.lfpdict.stats import segment_stats, total


def importance_rows(spike_bins, y, fs, d, labels, unit_ids, targets, dict_params) -> list[dict]:
    """Held-out R^2 of each region without each unit and without each cluster."""
    lm, lp = lag_bins(dict_params, fs)
    cores = fold_cores(y.shape[1], dict_params["n_folds"], lm + lp + 1)
    stats = [segment_stats(spike_bins, y, a, b, lm, lp, dtype="float64") for a, b in cores]
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
        cores,
        d["atoms"].astype("float64"),
        d["lam"].astype("float64"),
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


def fold_mask_r2(be, stats, cores, D, lam, alpha, masks, n_iter):
    """Pooled held-out R^2 per region for each mask, coefficients refit per fold, atoms fixed."""
    whole = total(stats)
    out = {name: np.zeros(len(lam)) for name in masks}
    sst_sum = np.zeros(len(lam))
    for k in range(len(cores)):
        train = whole - stats[k]
        problem = model.coef_problem(be, train, D)
        sst_sum += sst(stats[k])
        shape = (1, train.S.shape[0], D.shape[0], train.S.shape[1])
        for name, mask in masks.items():
            B = model.fit_coef(
                be, [problem], lam, alpha, np.zeros(shape, D.dtype), mask=mask, n_iter=n_iter
            )
            F = model.filters_from(np, B[0], D)
            out[name] += sse(be, stats[k], F, intercept(be, train, F))
    return {name: 1 - v / sst_sum for name, v in out.items()}
