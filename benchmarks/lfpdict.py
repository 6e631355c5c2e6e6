"""Spike->LFP dictionaries: accuracy and speed by size, and the atom step against its peers.

Usage:
    python benchmarks/lfpdict.py                 # sizes up to 16 regions x 200 units x 10 min
    python benchmarks/lfpdict.py --max           # adds 16 regions x 200 units x 60 min
    python benchmarks/lfpdict.py --peers-only
    python benchmarks/lfpdict.py --backend gpu   # the same table on a GPU (cupy)

Data: planted filters (MODELS.md section 5: prototype families across regions) driven by random
spike trains at 3-20 Hz, plus theta, gamma and 1/f background, at 1 kHz. Each size runs in a
child process so its peak memory is its own.

Table 1, per size: wall time of one complete fit (statistics for data and null, blocked
cross-validation with baselines, final fit, held-out predictions) and its phases, peak RSS and,
with --backend gpu, the most cupy's memory pool held; held-out R^2 (mean over regions, all units)
of the dictionary model, Wiener, STA and the jitter null, and the median correlation of learned
and planted filters.

Table 2, the dictionary step with known codes (the same problem for every solver): starting from
the same wavelet atoms, time until a solver's atoms reach 99 % of the objective decrease ours
reach, evaluated by one exact evaluator. Peers: sporco's ConvCnstrMOD (ADMM in the FFT domain)
and alphacsc's dictionary step (its ztz/ztX constants and its FISTA).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from neurodict.backend import CPU
from neurodict.lfpdict import evaluate, model
from neurodict.lfpdict.atoms import wavelet_atoms
from neurodict.lfpdict.estimator import SpikeLFPDictionary
from neurodict.lfpdict.scoring import heldout_scores
from neurodict.lfpdict.stats import segment_stats
from neurodict.synth import SynthSpec, background_lfp, bin_spikes, family_filters, spike_lfp

SIZES = [(4, 20, 10), (8, 50, 10), (16, 200, 10)]
MAX_SIZE = (16, 200, 60)
LAG = 200  # ms, each side


def planted(n_regions: int, n_units: int, minutes: float, seed: int = 0):
    """Spike bins, region LFPs (float32), planted filters and region labels."""
    rng = np.random.default_rng(seed)
    T = int(minutes * 60_000)
    spec = SynthSpec(n_regions=n_regions, n_families=3, lag_ms=LAG)
    h = family_filters(spec, rng)
    F = rng.uniform(0.7, 1.3, n_units)[:, None, None] * h[rng.integers(3, size=n_units)]
    spikes = [
        np.sort(rng.choice(T, size=int(rng.uniform(3, 20) * T / 1000), replace=False))
        for _ in range(n_units)
    ]
    y = np.empty((n_regions, T), dtype="float32")
    chunk = 600_000  # spike_lfp in chunks keeps the dense trains small; chunks run in threads

    def block(a):
        b = min(T, a + chunk + 2 * LAG)
        part = [s[(s >= a) & (s < b)] - a for s in spikes]
        return spike_lfp(bin_spikes(part, 1000.0, 1000.0, b - a), F)[:, : min(T, a + chunk) - a]

    with ThreadPoolExecutor(min(6, os.cpu_count() or 1)) as pool:
        for a, part in zip(range(0, T, chunk), pool.map(block, range(0, T, chunk)), strict=True):
            y[:, a : a + part.shape[1]] = part
    y += background_lfp(spec, T, rng).astype("float32")
    regions = [f"R{i}" for i in range(n_regions)]
    return spikes, y, F, [regions[n % n_regions] for n in range(n_units)], regions


def one_size(n_regions: int, n_units: int, minutes: float, backend: str = "cpu") -> dict:
    """Fit one size; return timings, memory (host RSS; on a GPU also cupy's pool) and scores."""
    spikes, y, F, unit_regions, regions = planted(n_regions, n_units, minutes)
    t0 = time.perf_counter()
    est = SpikeLFPDictionary(1000.0, backend=backend, lag_minus_ms=LAG, lag_plus_ms=LAG)
    est.fit(spikes, y, unit_regions, regions)
    scored = heldout_scores(est, spikes, y, regions)
    wall = time.perf_counter() - t0
    gpu_mb = None
    if backend == "gpu":  # the pool keeps freed blocks: its total is the most held at once
        import cupy

        gpu_mb = cupy.get_default_memory_pool().total_bytes() / 2**20
    scores = {}
    for model_name in ("dictionary", "wiener", "sta", "jitter"):
        vals = [
            r["r2_heldout"]
            for r in scored.scores
            if r["predictors"] == "all" and r["model"] == model_name
        ]
        scores[model_name] = float(np.mean(vals))
    corr = [
        np.corrcoef(est.filters_[n, r], F[n, r])[0, 1]
        for n in range(n_units)
        for r in range(n_regions)
        if np.abs(F[n, r]).any()
    ]
    return {
        "size": f"{n_regions} x {n_units} x {minutes:g} min",
        "backend": backend,
        "wall_s": wall,
        "gpu_mb": gpu_mb,
        "phases": est.timings_ | scored.timings,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "r2": scores,
        "filter_corr": float(np.median(corr)),
    }


def atom_step_peers(
    peers=("sporco", "alphacsc"), n_regions: int = 4, n_units: int = 20, minutes: float = 5
) -> list[dict]:
    """Time to reach the same objective in the dictionary step with known codes."""
    spikes, y, F_true, unit_regions, regions = planted(n_regions, n_units, minutes)
    T, K = y.shape[1], 12
    stats = segment_stats(spikes, y, 0, T, LAG, LAG, dtype="float64")
    # codes: the final model's coefficients on these data (a realistic sparsity pattern)
    est = SpikeLFPDictionary(
        1000.0,
        backend="cpu",
        n_outer=5,
        n_folds=2,
        dtype="float64",
        lambda_fractions=(0.02,),
        ridge_alphas=(0.01,),
    )
    est.fit(spikes, y, unit_regions, regions)
    B = est.coef_[0].transpose(0, 2, 1)  # (N, K, R), one window
    D0 = wavelet_atoms(K, np.arange(-LAG, LAG + 1) / 1000.0)
    c = model.coef_problem(CPU, stats, D0).intercept(B)
    n = stats.n_samples

    def J(D):
        return float(evaluate.sse(CPU, stats, model.filters_from(np, B, D), c).sum() / (2 * n))

    rows = []
    t0 = time.perf_counter()
    st = segment_stats(spikes, y, 0, T, LAG, LAG, dtype="float64")
    t_stats = time.perf_counter() - t0
    t0 = time.perf_counter()
    D_ours = model.fit_atoms(CPU, [st], B[None], c[None], D0, n_iter=2000)
    t_ours = time.perf_counter() - t0
    J0, J_star = J(D0), J(D_ours)
    target = J_star + 0.01 * (J0 - J_star)
    rows.append(
        {
            "solver": "neurodict (statistics pass + atom step)",
            "s": t_stats + t_ours,
            "objective_gap": 0.0,
            "note": f"pass {t_stats:.2f} s, step {t_ours:.2f} s",
        }
    )

    # coefficient maps x_{k,r}(t) = sum_n b_{n,k,r} u_n(t + LAG) (causal layout for the peers)
    u = bin_spikes(spikes, 1000.0, 1000.0, T)
    maps = np.einsum("nkr,nt->rkt", B, u)
    maps = np.concatenate([maps[:, :, LAG:], np.zeros_like(maps[:, :, :LAG])], axis=2)
    target_y = (y - c[:, None]).astype(np.float64)
    runners = {"sporco": _sporco, "alphacsc": _alphacsc}
    rows += [runners[p](maps, target_y, D0, J, target, J0, J_star) for p in peers]
    return rows


def _time_to_target(solver_chunk, J, target, J0, J_star, chunk: int = 10, max_iter: int = 400):
    """Run `solver_chunk(n)` (n more iterations, returns the atoms) until J reaches `target`.

    Only the solver's time is counted, not the exact objective evaluations between chunks.
    """
    wall, done, gap = 0.0, 0, 1.0
    while done < max_iter:
        t0 = time.perf_counter()
        D = solver_chunk(chunk)
        wall += time.perf_counter() - t0
        done += chunk
        value = J(D)
        gap = (value - J_star) / (J0 - J_star)
        if value <= target:
            return wall, gap, f"{done} iterations"
    return wall, gap, f"not reached in {max_iter} iterations"


def _sporco(maps, y, D0, J, target, J0, J_star) -> dict:
    from sporco.admm import ccmod

    R, K, T = maps.shape
    Z = maps.transpose(2, 0, 1)[:, None, :, :]  # (T, 1, R signals, K filters)
    L = D0.shape[1]
    Y0 = np.zeros((T, 1, 1, K))
    Y0[:L, 0, 0, :] = D0.T  # the same starting atoms, zero-padded as sporco holds them
    opt = ccmod.ConvCnstrMOD_IterSM.Options(
        {
            "MaxMainIter": 10,
            "AutoRho": {"Enabled": False},
            "Verbose": False,
            "RelStopTol": 0.0,
            "Y0": Y0,
        }
    )
    t0 = time.perf_counter()
    solver = ccmod.ConvCnstrMOD_IterSM(Z, y.T, (L, K), opt=opt, dimK=1, dimN=1)
    setup = time.perf_counter() - t0

    def chunk(n):
        solver.opt["MaxMainIter"] = n  # solve() continues from the current iterate
        solver.solve()
        return solver.getdict().reshape(L, K).T

    wall, gap, note = _time_to_target(chunk, J, target, J0, J_star)
    return {
        "solver": "sporco ConvCnstrMOD (ADMM)",
        "s": setup + wall,
        "objective_gap": gap,
        "note": note,
    }


def _alphacsc(maps, y, D0, J, target, J0, J_star) -> dict:
    from alphacsc.loss_and_gradient import compute_objective, gradient_d
    from alphacsc.update_d_multi import _get_d_update_constants, prox_d
    from alphacsc.utils.optim import fista

    L = D0.shape[1]
    X = y[:, None, :]  # (trials = regions, 1 channel, T)
    z = np.ascontiguousarray(maps[:, :, : y.shape[1] - L + 1])  # (trials, K, T - L + 1)
    t0 = time.perf_counter()
    constants = _get_d_update_constants(X, z)
    setup = time.perf_counter() - t0
    state = {"D": D0[:, None, :].copy()}  # alphacsc convolves like numpy: no flip

    def chunk(n):
        state["D"], _ = fista(
            lambda D, full=False: compute_objective(D=D, constants=constants),
            lambda D: gradient_d(D=D, constants=constants),
            lambda D, step_size=None: prox_d(D),
            None,
            state["D"],
            n,
            adaptive_step_size=True,
            momentum=True,
        )
        return state["D"][:, 0, :]

    wall, gap, note = _time_to_target(chunk, J, target, J0, J_star)
    return {
        "solver": "alphacsc d-step (ztz constants + FISTA, restarted every 10)",
        "s": setup + wall,
        "objective_gap": gap,
        "note": note,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max", action="store_true", help="add 16 x 200 x 60 min")
    ap.add_argument("--peers-only", action="store_true")
    ap.add_argument("--peers", nargs="+", default=["sporco", "alphacsc"])
    ap.add_argument(
        "--backend",
        choices=["cpu", "gpu"],
        default="cpu",
        help="where the fits of table 1 run (gpu: cupy)",
    )
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        regions, units, minutes = args.one.split(",")
        print(json.dumps(one_size(int(regions), int(units), float(minutes), args.backend)))
        return
    if not args.peers_only:
        rows = []
        for size in SIZES + ([MAX_SIZE] if args.max else []):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    ",".join(map(str, size)),
                    "--backend",
                    args.backend,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"done {rows[-1]['size']}", file=sys.stderr)
        print(
            "\n| regions x units x length | backend | fit s | stats s | CV s | null s | "
            "final s | held-out s | peak MB | GPU pool MB | R2 dictionary | R2 wiener | R2 sta | "
            "R2 jitter | filter corr |"
        )
        print("|---" * 15 + "|")
        for r in rows:
            p, s = r["phases"], r["r2"]
            gpu_mb = "" if r["gpu_mb"] is None else f"{r['gpu_mb']:.0f}"
            cv_s = p["cross_validation"] + p["baselines"]
            print(
                f"| {r['size']} | {r['backend']} | {r['wall_s']:.1f} | {p['statistics']:.1f} | "
                f"{cv_s:.1f} | {p['null']:.1f} | {p['final_fit']:.1f} | "
                f"{p['heldout']:.1f} | {r['peak_mb']:.0f} | {gpu_mb} | {s['dictionary']:.3f} | "
                f"{s['wiener']:.3f} | {s['sta']:.3f} | {s['jitter']:.3f} | "
                f"{r['filter_corr']:.3f} |"
            )
    peers = atom_step_peers(args.peers)
    ours = peers[0]["s"]
    print(
        "\n| dictionary step, 4 regions x 20 units x 5 min | s | ratio to neurodict | "
        "gap left | note |\n|---|---|---|---|---|"
    )
    for r in peers:
        print(
            f"| {r['solver']} | {r['s']:.2f} | {r['s'] / ours:.1f} | "
            f"{r['objective_gap']:.4f} | {r['note']} |"
        )


if __name__ == "__main__":
    main()
