"""How many FISTA iterations the coefficient fits of one spike->LFP fit take.

Iteration counts do not depend on the machine's load, so two versions of the solver can be
compared on a shared machine: run this script from each source tree on the same data. Also
the flops of their Gram products and the seconds the fits take (their rate, against the
machine's GEMM rate, says how far the coefficient fits are from their floor).

With ``--n-inner`` (several caps on the iterations of a coefficient fit, the estimator's
``n_inner``) the fit is also scored (nested cross-validation, the nulls) at each cap, and a
table says whether the cap decides what is reported: against the largest cap, the largest
change of a held-out R^2 (dictionary, every predictor set and region) and of a null mean, the
p-values that differ and the links significant at q < 0.05; a change of R^2 also over that
R^2's standard error across outer folds (the scale it is to be read against).

Usage::

    python benchmarks/lfpdict_iterations.py --generator links --size 4,20,5
    python benchmarks/lfpdict_iterations.py --size 4,30,5 --n-inner 200 1000
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import neurodict.lfpdict.model as model
from neurodict.lfpdict.estimator import SpikeLFPDictionary
from neurodict.lfpdict.scoring import heldout_scores

COUNTS = {"fits": 0, "iterations": 0, "stopped_at_n_inner": 0, "gram_gflop": 0.0, "fits_s": 0.0}
_FISTA = model.fista


def _counted(xp, x0, grad, prox, objective, step, n_iter, **kwargs):
    """model.fista, counting the iterations of the coefficient fits (`fit_coef_batch`'s), the
    flops of their Gram products (2 (N K)^2 R per problem, window and iteration) and the time
    they take."""
    clock = time.perf_counter()
    x, it = _FISTA(xp, x0, grad, prox, objective, step, n_iter, **kwargs)
    if grad.__qualname__.startswith("fit_coef"):
        P, W, N, K, R = x0.shape
        COUNTS["fits"] += P
        COUNTS["iterations"] += it * P
        COUNTS["stopped_at_n_inner"] += P * (it >= n_iter)
        COUNTS["gram_gflop"] += it * P * W * 2 * (N * K) ** 2 * R / 1e9
        COUNTS["fits_s"] += time.perf_counter() - clock
    return x, it


def main() -> None:
    from lfpdict import LAG, planted_data  # benchmarks/lfpdict.py, beside this script

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generator", choices=["families", "links"], default="families")
    ap.add_argument("--size", default="4,20,5", help="regions,units,minutes")
    ap.add_argument("--n-inner", type=int, nargs="+", help="caps to score the fit at")
    args = ap.parse_args()
    n_regions, n_units, minutes = (float(v) for v in args.size.split(","))
    spikes, y, _, unit_regions, regions = planted_data(
        args.generator, int(n_regions), int(n_units), minutes, 0
    )
    model.fista = _counted
    if not args.n_inner:
        clock = time.perf_counter()
        SpikeLFPDictionary(1000.0, backend="cpu", lag_minus_ms=LAG, lag_plus_ms=LAG).fit(
            spikes, y, unit_regions, regions
        )
        COUNTS["gram_gflop_per_s"] = COUNTS["gram_gflop"] / max(COUNTS["fits_s"], 1e-9)
        print(json.dumps(COUNTS | {"fit_s": round(time.perf_counter() - clock, 1)}))
        return
    scored = {n: scored_at(n, spikes, y, unit_regions, regions, LAG) for n in args.n_inner}
    ref = scored[max(args.n_inner)]
    print(
        f"\n{args.generator} {args.size}: against n_inner {max(args.n_inner)}\n\n"
        "| n_inner | fit and scoring s | coefficient fits | stopped at n_inner | "
        "max abs change of a held-out R^2 | max of a change over its standard error | "
        "of a null mean | p-values changed | links q < 0.05 |\n" + "|---" * 9 + "|"
    )
    for n, row in scored.items():
        change = np.abs(row["r2"] - ref["r2"])
        changed = int((~np.isclose(row["p"], ref["p"], rtol=0, atol=0, equal_nan=True)).sum())
        print(
            f"| {n} | {row['s']:.1f} | {row['fits']} | {row['stopped_at_n_inner']} | "
            f"{np.nanmax(change):.1e} | {np.nanmax(change / ref['r2_se']):.2f} | "
            f"{np.nanmax(np.abs(row['null_mean'] - ref['null_mean'])):.1e} | "
            f"{changed} of {row['p'].size} | {row['links']} |"
        )


def scored_at(n_inner: int, spikes, y, unit_regions, regions, lag_ms: float) -> dict:
    """One fit and its scoring with coefficient fits capped at `n_inner` iterations: its
    seconds and iteration counts, and the dictionary rows' held-out R^2 and its standard error,
    null means and p-values (every predictor set and region), and the links significant at
    q < 0.05."""
    for key in COUNTS:
        COUNTS[key] = 0
    clock = time.perf_counter()
    est = SpikeLFPDictionary(
        1000.0, backend="cpu", lag_minus_ms=lag_ms, lag_plus_ms=lag_ms, n_inner=n_inner
    ).fit(spikes, y, unit_regions, regions)
    evaluation = heldout_scores(est, spikes, y, regions)
    rows = [r for r in evaluation.scores if r["model"] == "dictionary"]
    return {
        "s": time.perf_counter() - clock,
        "fits": COUNTS["fits"],
        "stopped_at_n_inner": COUNTS["stopped_at_n_inner"],
        "r2": np.array([r["r2_heldout"] for r in rows]),
        "r2_se": np.array([r["r2_se"] for r in rows], float),
        "null_mean": np.array([r["null_mean"] for r in rows], float),
        "p": np.array([r["p_value"] for r in rows], float),
        "links": sum(int((q < 0.05).sum()) for q in evaluation.link_q.values()),
    }


if __name__ == "__main__":
    main()
