"""Stability of the unit clusters across the two halves of a recording."""

from __future__ import annotations

import numpy as np

from neurodict.backend import CPU
from neurodict.clusters import mixture as cl
from neurodict.lfpdict import model
from neurodict.lfpdict.inputs import lag_bins
from neurodict.lfpdict.stats import segment_stats


def half_split_ari(spike_bins, y, fs, d, active, dict_params, seed, cluster_kw) -> float:
    """ARI between the clusterings of dictionaries refitted on each half of the recording."""
    lm, lp = lag_bins(dict_params, fs)
    T = y.shape[1]
    labels = []
    for a, b in ((0, T // 2), (T // 2, T)):
        st = segment_stats(spike_bins, y, a, b, lm, lp, dtype="float64")
        D, B, _, _ = model.learn(
            CPU,
            [st],
            d["atoms"].astype("float64"),
            d["lam"],
            float(dict_params["alpha"]),
            n_outer=dict_params["n_outer"],
            n_inner=dict_params["n_inner"],
        )
        sig, _ = cl.signatures(model.filters_from(np, B[0], D), fs)
        labels.append(cl.cluster(sig[active], seed=seed, **cluster_kw).labels)
    return float(cl.adjusted_rand_score(*labels))
