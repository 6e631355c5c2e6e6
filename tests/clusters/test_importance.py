"""Functional importance: the stacked refit of every predictor set equals fitting each alone."""

from __future__ import annotations

import numpy as np

from neurodict.backend import CPU
from neurodict.clusters.importance import fold_mask_r2
from neurodict.lfpdict import model
from neurodict.lfpdict.evaluate import intercept, sse, sst
from neurodict.lfpdict.stats import segment_stats, total
from tests.clusters.test_mixture import planted


def separate_r2(stats, fold_atoms, fractions, alpha, mask, n_iter):
    """Reference: each fold's coefficients fitted from zero with the mask alone."""
    whole = total(stats)
    err, tot = 0.0, 0.0
    for k, D in enumerate(fold_atoms):
        train = whole - stats[k]
        problem = model.coef_problem(CPU, train, D)
        lam = fractions[k] * model.lambda_max(CPU, train, D, alpha)
        shape = (1, stats[k].S.shape[0], D.shape[0], stats[k].S.shape[1])
        B = model.fit_coef(CPU, [problem], lam, alpha, np.zeros(shape), mask=mask, n_iter=n_iter)
        F = model.filters_from(np, B[0], D)
        err = err + sse(CPU, stats[k], F, intercept(CPU, train, F))
        tot = tot + sst(stats[k])
    return 1 - err / tot


def test_stacked_refits_equal_each_mask_fitted_alone():
    spikes, y, F, *_ = planted(seed=3, N=6, T=60_000)
    lm = lp = (F.shape[-1] - 1) // 2
    cores = [(100, 19_900), (20_100, 39_900), (40_100, 59_900)]
    stats = [segment_stats(spikes, y, a, b, lm, lp, dtype="float64") for a, b in cores]
    shapes = np.linalg.svd(F.reshape(-1, F.shape[-1]), full_matrices=False)[2][:4]
    atoms = np.stack([shapes, shapes[::-1], shapes])  # each fold its own atoms
    fractions = np.array([[0.05, 0.1, 0.02], [0.05, 0.1, 0.02], [0.08, 0.05, 0.05]])
    base = np.ones((6, 3))
    masks = {
        "all": base,
        "unit:0": np.where(np.arange(6)[:, None] == 0, 0.0, base),
        "one link": np.where((np.arange(6)[:, None] == 3) & (np.arange(3) == 1), 0.0, base),
        "cluster": np.where(np.isin(np.arange(6), [1, 4])[:, None], 0.0, base),
    }
    r2 = fold_mask_r2(CPU, stats, atoms, fractions, 0.5, masks, n_iter=3000)
    for name, mask in masks.items():
        expected = separate_r2(stats, atoms, fractions, 0.5, mask, n_iter=3000)
        np.testing.assert_allclose(r2[name], expected, atol=2e-4, err_msg=name)
    assert np.all(r2["all"] > 0.15)
    assert np.all(r2["all"] - r2["unit:0"] > 0.01)
