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

Table 2, one fit of REGIONS,UNITS,MINUTES (the families data of ``benchmarks/lfpdict.py``) run
under cProfile for at most --limit-s seconds: the phases it finished, every FISTA call grouped
by its batch's shape (calls, iterations, seconds including the final host read), and the
functions with the most time of their own.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import signal
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lfpdict import LAG, planted  # noqa: E402

from neurodict.backend import CPU, get_backend  # noqa: E402
from neurodict.lfpdict import cost, estimator, model, solvers  # noqa: E402

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


def fit_profile(size: str, backend: str, limit_s: float, top: int, graphs: bool) -> None:
    n_regions, n_units, minutes = size.split(",")
    spikes, y, _, unit_regions, regions = planted(int(n_regions), int(n_units), float(minutes))
    calls = defaultdict(lambda: [0, 0, 0.0])  # batch shape -> calls, iterations, seconds
    fista = solvers.fista

    def counted(xp, x0, *args, **kwargs):
        clock = time.perf_counter()
        x, n = fista(xp, x0, *args, **kwargs)
        c = calls[x0.shape]
        c[0], c[1], c[2] = c[0] + 1, c[1] + n, c[2] + time.perf_counter() - clock
        return x, n

    model.fista = counted
    if not graphs:  # the GPU's blocks issued kernel by kernel
        estimator.get_backend = lambda choice: replace(get_backend(choice), graphs=False)
    est = estimator.SpikeLFPDictionary(1000.0, backend=backend, lag_minus_ms=LAG, lag_plus_ms=LAG)

    def stop(*_):
        raise Deadline

    signal.signal(signal.SIGALRM, stop)
    profile = cProfile.Profile()
    clock = time.perf_counter()
    signal.alarm(int(limit_s))
    profile.enable()
    try:
        est.fit(spikes, y, unit_regions, regions)
        ended = "finished"
    except Deadline:
        ended = f"stopped at {limit_s:g} s"
    profile.disable()
    signal.alarm(0)
    wall = time.perf_counter() - clock
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in getattr(est, "timings_", {}).items())
    how = "" if backend == "cpu" else (", blocks replayed as graphs" if graphs else ", issued")
    print(
        f"\n## fit {size} on {backend}{how}: {ended}, {wall:.1f} s under cProfile; phases: {phases}"
    )
    print("\n| FISTA batch shape | calls | iterations | s (with the final host read) |")
    print("|---|---|---|---|")
    for shape, (n, iters, s) in sorted(calls.items(), key=lambda kv: -kv[1][2]):
        print(f"| {shape} | {n} | {iters} | {s:.1f} |")
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
    ap.add_argument("--top", type=int, default=25, help="functions listed in table 2")
    ap.add_argument(
        "--issued", action="store_true", help="table 2: the GPU's kernels issued one by one"
    )
    args = ap.parse_args()
    if args.iterations:
        iteration_table(args.on)
    if args.fit:
        fit_profile(args.fit, args.backend, args.limit_s, args.top, not args.issued)


if __name__ == "__main__":
    main()
