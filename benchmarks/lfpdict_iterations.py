"""How many FISTA iterations the coefficient fits of one spike->LFP fit take.

Iteration counts do not depend on the machine's load, so two versions of the solver can be
compared on a shared machine: run this script from each source tree on the same data. Also
the flops of their Gram products and the seconds the fits take (their rate, against the
machine's GEMM rate, says how far the coefficient fits are from their floor).

Usage::

    python benchmarks/lfpdict_iterations.py --generator links --size 4,20,5
"""

from __future__ import annotations

import argparse
import json
import time

import neurodict.lfpdict.model as model
from neurodict.lfpdict.estimator import SpikeLFPDictionary

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
    args = ap.parse_args()
    n_regions, n_units, minutes = (float(v) for v in args.size.split(","))
    spikes, y, _, unit_regions, regions = planted_data(
        args.generator, int(n_regions), int(n_units), minutes, 0
    )
    model.fista = _counted
    clock = time.perf_counter()
    SpikeLFPDictionary(1000.0, backend="cpu", lag_minus_ms=LAG, lag_plus_ms=LAG).fit(
        spikes, y, unit_regions, regions
    )
    COUNTS["gram_gflop_per_s"] = COUNTS["gram_gflop"] / max(COUNTS["fits_s"], 1e-9)
    print(json.dumps(COUNTS | {"fit_s": round(time.perf_counter() - clock, 1)}))


if __name__ == "__main__":
    main()
