"""Where a dictionary fit's time goes on a backend: the solvers' iterations against their floors,
and one fit's calls.

Usage:
    python benchmarks/gpu_profile.py --iterations            # table 1 on every backend here
    python benchmarks/gpu_profile.py --fit 8,50,10 --backend gpu --limit-s 90   # table 2

Table 1, one coefficient iteration (the batched FISTA of ``model.fit_coef_batch``: Gram
product, difference, sparse-group prox, restart test, momentum) at the estimator's shapes, P
problems at once: milliseconds per iteration with every kernel issued by the host and (on a
GPU) with the part after the gradient replayed as a CUDA graph, the same for the Gram product
alone (its floor in flops) and for a 1-coefficient problem (its floor in kernels issued), and
the Gram product's GFLOP/s. An iteration near the product's time is bound by flops; near the
1-coefficient time, by the host issuing kernels.

Table 2, one fit of REGIONS,UNITS,MINUTES (the families data of ``benchmarks/lfpdict.py``) and
its scoring, for at most --limit-s seconds: wall seconds per phase (statistics, cross-validation
and its learning and paths, final fit, baselines, nulls, held-out prediction; nested phases
joined by "/") and per part inside it (the FISTA calls grouped by their batch's shape with
their iterations, the statistics passes, the coefficient problems' builds, step sizes,
lambda_max, the Wiener baseline's conjugate gradients), the device synchronised at each end so
that its work is counted where it was issued; with --top, also the functions with the most
time of their own under cProfile; then what the fit decided (the size chosen, the held-out R^2,
the links significant at q < 0.05), to compare runs. --tf32 lets cuBLAS round float32 and
complex64 products' inputs to TensorFloat-32 on the tensor cores (``CUPY_TF32=1``).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import signal
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lfpdict import LAG, peak_rss_mb, planted, reset_peak_rss  # noqa: E402

from neurodict.backend import CPU, get_backend  # noqa: E402
from neurodict.lfpdict import baselines, cost, estimator, model, scoring, solvers  # noqa: E402

SHAPES = [(20, 12, 12), (50, 24, 24), (200, 12, 48), (200, 24, 48)]  # N, K, R (3 sets x regions)


def backends() -> list:
    """The CPU, and the GPU where there is one."""
    gpu = get_backend("auto")
    return [CPU] + ([gpu] if gpu.name == "gpu" else [])


def per_iteration_ms(be, P: int, N: int, K: int, R: int, n_iter: int) -> dict:
    """Milliseconds per iteration for P problems at once (:func:`cost.coefficient_run`): the
    coefficient iteration with its kernels issued one by one and (on a GPU) replayed as CUDA
    graphs, the Gram product alone, the 1-coefficient iteration both ways; and how far the
    replayed iterate is from the issued one (largest difference over the largest value)."""
    xp = be.xp

    def timed(run):
        float(run().sum())  # compiles a GPU's kernels
        clock = time.perf_counter()
        float(run().sum())  # a host read: the device has finished
        return 1e3 * (time.perf_counter() - clock) / n_iter

    H, C = xp.ones((P, N * K, N * K), np.float32), xp.ones((P, N * K, R), np.float32)

    def products():
        for _ in range(n_iter):
            product = H @ C
        return product

    ways = {"issued": replace(be, graphs=False)} | ({"graph": be} if be.graphs else {})
    runs = {
        way: cost.coefficient_run(on, N, K, R, "float32", n_iter, P) for way, on in ways.items()
    }
    out = {way: timed(run) for way, run in runs.items()}
    for way, on in ways.items():
        out[f"1-coefficient {way}"] = timed(cost.coefficient_run(on, 1, 1, 1, "float32", n_iter, P))
    out["product"] = timed(products)
    if be.graphs:
        issued, graph = (run() for run in runs.values())
        out["difference"] = float(abs(graph - issued).max() / abs(issued).max())
    return out


def iteration_table(on: list[str]) -> None:
    print(
        "\n| backend | P problems | units x atoms x columns | iteration ms: issued, graph | "
        "Gram product ms | 1-coefficient iteration ms: issued, graph | product GFLOP/s | "
        "best iteration / product | graph vs issued |\n" + "|---" * 9 + "|"
    )
    for be in (be for be in backends() if be.name in on):
        for P in (1, 16):
            for N, K, R in SHAPES:
                t = per_iteration_ms(be, P, N, K, R, n_iter=8 if be.name == "cpu" else 64)
                gflops = 2 * P * (N * K) ** 2 * R / (t["product"] * 1e-3) / 1e9
                best = min(t["issued"], t.get("graph", np.inf))
                print(
                    f"| {be.name} | {P} | {N} x {K} x {R} | {t['issued']:.3f}, "
                    f"{t.get('graph', np.nan):.3f} | {t['product']:.3f} | "
                    f"{t['1-coefficient issued']:.3f}, {t.get('1-coefficient graph', np.nan):.3f} "
                    f"| {gflops:.0f} | {best / t['product']:.1f} | "
                    f"{t.get('difference', np.nan):.1e} |",
                    flush=True,
                )


class Deadline(Exception):
    pass


# what the fit and its scoring do, as a stack of labels: (object, attribute) wrapped
PHASES = {
    "statistics": (estimator.SpikeLFPDictionary, "_folds"),
    "cv": (estimator.SpikeLFPDictionary, "cross_validate"),
    "learning": (estimator.SpikeLFPDictionary, "learn_ordered"),
    "paths": (estimator.SpikeLFPDictionary, "path_sse"),
    "final": (estimator.SpikeLFPDictionary, "_final_fit"),
    "refits": (estimator.SpikeLFPDictionary, "refit"),
    "baselines": (scoring, "baselines_cv"),
    "nulls": (scoring, "nulls"),
    "held-out": (scoring, "heldout_prediction"),
    "link power": (scoring, "fold_link_power"),
}
# the parts whose time is counted under the phase that called them
PARTS = {
    "statistics pass": (estimator, "segment_stats"),
    "coefficient problems": (model, "coef_problem"),
    "lambda_max": (model, "lambda_max"),
    "step sizes": (model, "power_iteration"),
    "wiener CG": (baselines, "wiener"),
}


def fit_profile(size: str, backend: str, limit_s: float, top: int, graphs: bool) -> None:
    """One fit of `size` and its scoring on `backend`: wall seconds, FISTA calls and iterations
    per phase and part (the device synchronised at each part's end, so its work is counted
    where it was issued), and with `top` the functions with the most time of their own."""
    n_regions, n_units, minutes = size.split(",")
    spikes, y, _, unit_regions, regions = planted(int(n_regions), int(n_units), float(minutes))
    be = get_backend(backend)
    sync = be.xp.cuda.Device().synchronize if be.name == "gpu" else lambda: None
    stack, rows = [], defaultdict(lambda: [0, 0, 0.0])  # (phase, part) -> calls, iterations, s
    spent = defaultdict(float)  # phase -> s, inclusive

    def labelled(name, f):
        def run(*args, **kwargs):
            stack.append(name)
            clock = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                sync()
                spent["/".join(stack)] += time.perf_counter() - clock
                stack.pop()

        return run

    def counted(part, f, iterations=False):
        def run(*args, **kwargs):
            clock = time.perf_counter()
            out = f(*args, **kwargs)
            sync()
            row = rows["/".join(stack), part(args) if callable(part) else part]
            row[0] += 1
            row[1] += out[1] if iterations else 0
            row[2] += time.perf_counter() - clock
            return out

        return run

    for name, (owner, attr) in PHASES.items():
        setattr(owner, attr, labelled(name, getattr(owner, attr)))
    for name, (owner, attr) in PARTS.items():
        setattr(owner, attr, counted(name, getattr(owner, attr)))

    def fista_part(args):
        x0 = args[1]
        what = "FISTA atoms" if x0.ndim == 3 else "FISTA coefficients"
        return f"{what} {tuple(x0.shape)}"

    model.fista = counted(fista_part, solvers.fista, iterations=True)
    if not graphs:  # the GPU's blocks issued kernel by kernel
        estimator.get_backend = lambda choice: replace(get_backend(choice), graphs=False)
    est = estimator.SpikeLFPDictionary(1000.0, backend=backend, lag_minus_ms=LAG, lag_plus_ms=LAG)

    def stop(*_):
        raise Deadline

    signal.signal(signal.SIGALRM, stop)
    profile = cProfile.Profile() if top else None
    reset_peak_rss()  # the fit's own peak, not the data generation's
    clock = time.perf_counter()
    signal.alarm(int(limit_s))
    if profile:
        profile.enable()
    try:
        est.fit(spikes, y, unit_regions, regions)
        scored = scoring.heldout_scores(est, spikes, y, regions)
        ended = "finished"
    except Deadline:
        ended = f"stopped at {limit_s:g} s in {'/'.join(stack)}"
    if profile:
        profile.disable()
    signal.alarm(0)
    wall = time.perf_counter() - clock
    memory = f"host peak {peak_rss_mb():.0f} MB"
    if be.name == "gpu":  # the pool keeps freed blocks: its total is the most held at once
        memory += f", cupy pool {be.xp.get_default_memory_pool().total_bytes() / 2**20:.0f} MB"
    how = "" if backend == "cpu" else (", blocks replayed as graphs" if graphs else ", issued")
    how += ", TF32 products" if be.name == "gpu" and os.environ.get("CUPY_TF32") == "1" else ""
    print(
        f"\n## fit and scoring of {size} on {backend}{how}: {ended}, {wall:.1f} s"
        f"{' under cProfile' if profile else ''}; {memory}"
    )
    print("\n| phase | s (inclusive) | part | calls | FISTA iterations | s |\n" + "|---" * 6 + "|")
    for phase in sorted(spent, key=lambda p: -spent[p]):
        parts = sorted(
            ((k[1], v) for k, v in rows.items() if k[0] == phase), key=lambda r: -r[1][2]
        )
        print(f"| {phase} | {spent[phase]:.1f} | | | | |")
        for part, (n, iters, s) in parts:
            print(f"| | | {part} | {n} | {iters or ''} | {s:.1f} |")
    if ended == "finished":
        r2 = [
            row["r2_heldout"]
            for row in scored.scores
            if row["model"] == "dictionary" and row["predictors"] == "all"
        ]
        links = sum(int((q < 0.05).sum()) for q in scored.link_q.values())
        print(
            f"\ndecided: {est.size_} atoms; held-out R^2 (all predictors) mean {np.mean(r2):.4f},"
            f" by region {np.round(r2, 4).tolist()}; links at q < 0.05 over bands {links}"
        )
    if profile:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(top)
        print("\n```\n" + out.getvalue().strip() + "\n```")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", action="store_true", help="table 1")
    ap.add_argument("--on", nargs="+", default=["cpu", "gpu"], help="table 1's backends")
    ap.add_argument("--fit", help="table 2: REGIONS,UNITS,MINUTES")
    ap.add_argument("--backend", choices=["cpu", "gpu"], default="gpu")
    ap.add_argument("--limit-s", type=float, default=90.0)
    ap.add_argument(
        "--top", type=int, default=0, help="table 2: the functions listed (under cProfile)"
    )
    ap.add_argument(
        "--issued", action="store_true", help="table 2: the GPU's kernels issued one by one"
    )
    ap.add_argument(
        "--tf32", action="store_true", help="float32 products on the tensor cores (CUPY_TF32=1)"
    )
    args = ap.parse_args()
    if args.tf32:  # cupy reads it at its first product
        os.environ["CUPY_TF32"] = "1"
    if args.iterations:
        iteration_table(args.on)
    if args.fit:
        fit_profile(args.fit, args.backend, args.limit_s, args.top, not args.issued)


if __name__ == "__main__":
    main()
