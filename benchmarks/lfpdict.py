"""Spike->LFP dictionaries: accuracy and speed by size and by length; the atom step against peers.

Usage:
    python benchmarks/lfpdict.py                 # sizes up to 16 regions x 200 units x 10 min
    python benchmarks/lfpdict.py --max           # adds 16 regions x 200 units x 60 min
    python benchmarks/lfpdict.py --generator links   # the size table on the second generator
    python benchmarks/lfpdict.py --peers-only
    python benchmarks/lfpdict.py --backend gpu   # the size table on a GPU (cupy)
    python benchmarks/lfpdict.py --compare --sizes 4,20,10 8,50,10 --limit-s 240 \
        --gpu-only-sizes 16,200,60               # GPU and CPU side by side, and what
                                                 # backend auto chooses (gpu_check.sh)
    python benchmarks/lfpdict.py --lengths       # only the length table (both generators)
    python benchmarks/lfpdict.py --lengths --lengths-size 2,6 --lengths-min 1 2 --n-null 3

Data, two generators at 1 kHz:
- families (``planted``): filters from a few prototype families shared across units
  (MODELS.md section 5) driven by random spike trains at 3-20 Hz, plus theta, gamma and 1/f
  background;
- links (:func:`neurodict.synth_links.planted_links`): an independent filter per existing link
  (damped oscillations, causal or anti-causal exponential and biphasic kernels, log-normal
  gains), links in one direction between regions, most unit-region pairs empty and some regions
  reached by nobody; gamma-renewal trains at 1-30 Hz with a refractory period and a shared slow
  modulation; AR(2) and 1/f^beta background with region-specific spectra.
Each size or length runs in a child process so its peak memory is its own. --n-null sets the
estimator's number of nulls (default its own, 20).

Table 1, per size (on --generator, default families): wall time of one complete fit (statistics
for data and null, blocked cross-validation with baselines, final fit, held-out predictions) and
its phases, peak RSS (of the process, and of the fit alone: data generation excluded) and,
with --backend gpu, the most cupy's memory pool held; held-out R^2
(mean over regions, all units) of the dictionary model, Wiener and STA with the standard error
of that mean across outer folds, the jitter null's mean, the number of regions k/R where the
dictionary is at least Wiener minus Wiener's standard error (per region), and the median
correlation of learned and planted filters over the planted links (a link learned as zero: 0).

Table 2 (--lengths), per generator and recording length (1, 2, 5, 10, 20 min at
--lengths-size, default 4 regions x 30 units; --lengths-min chooses other lengths): the same
R^2 columns, standard errors and k/R count as table 1, and the fit's wall time (on --backend).

Table 3, the dictionary step with known codes (the same problem for every solver, families
data): starting from the same wavelet atoms, time until a solver's atoms reach 99 % of the
objective decrease ours reach, evaluated by one exact evaluator. Peers: sporco's ConvCnstrMOD
(ADMM in the FFT domain) and alphacsc's dictionary step (its ztz/ztX constants and its FISTA).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from neurodict.backend import CPU
from neurodict.lfpdict import cost, evaluate, model
from neurodict.lfpdict.atoms import wavelet_atoms
from neurodict.lfpdict.estimator import PREDICTOR_SETS, SpikeLFPDictionary, standard_error
from neurodict.lfpdict.scoring import heldout_scores
from neurodict.lfpdict.stats import segment_stats
from neurodict.synth import SynthSpec, background_lfp, bin_spikes, family_filters
from neurodict.synth_links import planted_links, spike_lfp_chunked

SIZES = [(4, 20, 10), (8, 50, 10), (16, 200, 10)]
MAX_SIZE = (16, 200, 60)
LENGTHS_MIN = (1, 2, 5, 10, 20)
LENGTHS_SIZE = (4, 30)
LAG = 200  # ms, each side
MODELS = ("dictionary", "wiener", "sta")
N_WORKERS = min(6, os.cpu_count() or 1)  # threads for the spike-driven LFP


def planted(n_regions: int, n_units: int, minutes: float, seed: int = 0):
    """Spike bins, region LFPs (float32), planted filters and region labels (families)."""
    rng = np.random.default_rng(seed)
    T = int(minutes * 60_000)
    spec = SynthSpec(n_regions=n_regions, n_families=3, lag_ms=LAG)
    h = family_filters(spec, rng)
    F = rng.uniform(0.7, 1.3, n_units)[:, None, None] * h[rng.integers(3, size=n_units)]
    spikes = [
        np.sort(rng.choice(T, size=int(rng.uniform(3, 20) * T / 1000), replace=False))
        for _ in range(n_units)
    ]
    y = spike_lfp_chunked(spikes, F, T, n_workers=N_WORKERS)  # dense trains a chunk long
    y += background_lfp(spec, T, rng).astype("float32")
    regions = [f"R{i}" for i in range(n_regions)]
    return spikes, y, F, [regions[n % n_regions] for n in range(n_units)], regions


def planted_data(generator: str, n_regions: int, n_units: int, minutes: float, seed: int = 0):
    """`planted` (generator "families") or `planted_links` ("links"): the same five outputs."""
    if generator == "links":
        return planted_links(n_regions, n_units, minutes, seed, lag_ms=LAG, n_workers=N_WORKERS)
    return planted(n_regions, n_units, minutes, seed)


def fit_scored(spikes, y, unit_regions, regions, backend: str = "cpu", settings=None):
    """Fit the estimator (`settings`: estimator arguments other than the defaults) and score it
    held out; return both and the wall time."""
    t0 = time.perf_counter()
    est = SpikeLFPDictionary(
        1000.0, backend=backend, lag_minus_ms=LAG, lag_plus_ms=LAG, **(settings or {})
    )
    est.fit(spikes, y, unit_regions, regions)
    scored = heldout_scores(est, spikes, y, regions)
    return est, scored, time.perf_counter() - t0


def r2_summary(scored) -> dict:
    """Mean held-out R^2 over regions (all units) per model, its standard error, and k/R.

    ``r2``: model -> mean over regions of ``r2_heldout`` (dictionary, wiener, sta, jitter).
    ``r2_se``: model -> standard error across outer folds of the per-fold mean over regions
    (the same formula as each row's ``r2_se``, applied to the mean, so regions that share folds
    are not counted as independent). ``k_ge_wiener``: regions where the dictionary's R^2 is at
    least Wiener's minus Wiener's ``r2_se``.
    """
    rows = {(r["region"], r["model"]): r for r in scored.scores if r["predictors"] == "all"}
    regions = list(dict.fromkeys(region for region, _ in rows))
    r2 = {
        m: float(np.mean([rows[region, m]["r2_heldout"] for region in regions]))
        for m in MODELS + ("jitter",)
    }
    i = PREDICTOR_SETS.index("all")
    se = {m: float(standard_error(scored.fold_r2[m][i].mean(axis=1))) for m in MODELS}
    k = sum(
        rows[region, "dictionary"]["r2_heldout"]
        >= rows[region, "wiener"]["r2_heldout"] - rows[region, "wiener"]["r2_se"]
        for region in regions
    )
    return {"r2": r2, "r2_se": se, "k_ge_wiener": int(k), "n_regions": len(regions)}


def reset_peak_rss() -> None:
    """Start this process's peak resident memory (VmHWM, which `ru_maxrss` also reports)
    afresh (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mb() -> float:
    """This process's peak resident memory since the last :func:`reset_peak_rss`, MB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def one_size(
    n_regions: int,
    n_units: int,
    minutes: float,
    backend: str = "cpu",
    generator: str = "families",
    settings: dict | None = None,
) -> dict:
    """Fit one size; return timings, memory (host RSS; on a GPU also cupy's pool) and scores."""
    spikes, y, F, unit_regions, regions = planted_data(generator, n_regions, n_units, minutes)
    generation_peak_mb = peak_rss_mb()
    reset_peak_rss()  # the fit's own peak, not the data generation's
    est, scored, wall = fit_scored(spikes, y, unit_regions, regions, backend, settings)
    fit_peak_mb = peak_rss_mb()
    gpu_mb = None
    if backend == "gpu":  # the pool keeps freed blocks: its total is the most held at once
        import cupy

        gpu_mb = cupy.get_default_memory_pool().total_bytes() / 2**20
    corr = [  # a planted link learned as exactly zero counts as no correlation
        np.corrcoef(est.filters_[n, r], F[n, r])[0, 1] if np.abs(est.filters_[n, r]).any() else 0.0
        for n in range(n_units)
        for r in range(n_regions)
        if np.abs(F[n, r]).any()
    ]
    return {
        "size": f"{n_regions} x {n_units} x {minutes:g} min",
        "generator": generator,
        "backend": backend,
        "wall_s": wall,
        "gpu_mb": gpu_mb,
        "phases": est.timings_ | scored.timings,
        "peak_mb": max(generation_peak_mb, fit_peak_mb),
        "fit_peak_mb": fit_peak_mb,
        "filter_corr": float(np.median(corr)),
    } | r2_summary(scored)


def one_length(
    n_regions: int,
    n_units: int,
    minutes: float,
    generator: str,
    backend: str = "cpu",
    settings: dict | None = None,
) -> dict:
    """Fit one recording length; return the held-out R^2 summary and the wall time."""
    spikes, y, _, unit_regions, regions = planted_data(generator, n_regions, n_units, minutes)
    _, scored, wall = fit_scored(spikes, y, unit_regions, regions, backend, settings)
    return {
        "generator": generator,
        "size": f"{n_regions} x {n_units}",
        "minutes": minutes,
        "backend": backend,
        "wall_s": wall,
    } | r2_summary(scored)


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


def child(*args: str, limit_s: float | None = None) -> dict:
    """Run this script with `args` in a child process; return the JSON its last line holds
    (``{"timed_out": limit_s}`` when it ran past `limit_s` seconds, ``{"failed": ...}`` with
    the last line of its error when it failed and `limit_s` is given)."""
    try:
        out = subprocess.run(
            [sys.executable, __file__, *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=limit_s,
        )
    except subprocess.TimeoutExpired:
        return {"timed_out": limit_s}
    except subprocess.CalledProcessError as err:
        if limit_s is None:
            raise
        return {"failed": (err.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def wall_cell(run: dict) -> str:
    """A :func:`child` run's wall time, or why there is none (failed, past the limit)."""
    if "failed" in run:
        return f"failed: {run['failed'][:80]}"
    return f"> {run['timed_out']:g} s" if "timed_out" in run else f"{run['wall_s']:.1f}"


def auto_choice(n_regions: int, n_units: int, minutes: float, settings: dict | None) -> dict:
    """What ``backend: auto`` chooses for this size (the cost model alone: no data, no fit)."""
    est = SpikeLFPDictionary(
        1000.0, backend="auto", lag_minus_ms=LAG, lag_plus_ms=LAG, **(settings or {})
    )
    clock = time.perf_counter()
    be, expected = cost.choose(est, n_units, n_regions, int(minutes * 60_000))
    return {"backend": be.name, "expected_s": expected, "model_s": time.perf_counter() - clock}


def compare_table(args) -> None:
    """Each of `args.sizes` on the GPU and on the CPU, one child process each (at most
    `args.limit_s` seconds; `args.gpu_only_sizes` on the GPU alone), side by side: wall time,
    fit phases on the GPU, the GPU/CPU ratio, what ``backend: auto`` chooses (the cost model's
    expected seconds and whether its choice was the faster measured), host peak RSS, the cupy
    pool and the held-out R^2 of the dictionary on each."""
    print(
        "\n| regions x units x length | GPU s | GPU stats / CV / null / final / held-out s | "
        "CPU s | GPU / CPU | auto: expected GPU, CPU s (model s) | auto's choice | "
        "host peak MB of the fit (GPU, CPU) | GPU pool MB | R2 dictionary (GPU, CPU) |\n"
        + "|---" * 10
        + "|"
    )
    for size in args.sizes + args.gpu_only_sizes:
        backends = ("gpu",) if size in args.gpu_only_sizes else ("gpu", "cpu")
        runs = {
            b: child("--one", size, "--backend", b, *settings_args(args), limit_s=args.limit_s)
            for b in backends
        }
        g, c = runs["gpu"], runs.get("cpu", {"failed": "not run"})
        auto = child("--choose", size, *settings_args(args), limit_s=args.limit_s)
        ratio = f"{g['wall_s'] / c['wall_s']:.2f}" if "wall_s" in g and "wall_s" in c else ""
        r2 = ", ".join("" if "r2" not in r else f"{r['r2']['dictionary']:.3f}" for r in (g, c))
        peak = ", ".join(
            "" if "fit_peak_mb" not in r else f"{r['fit_peak_mb']:.0f}" for r in (g, c)
        )
        pool = "" if g.get("gpu_mb") is None else f"{g['gpu_mb']:.0f}"
        phases = ""
        if "phases" in g:
            p = g["phases"]
            phases = " / ".join(
                f"{x:.1f}"
                for x in (
                    p["statistics"],
                    p["cross_validation"] + p["baselines"],
                    p["null"],
                    p["final_fit"],
                    p["heldout"],
                )
            )
        expected, choice = "", wall_cell(auto) if "backend" not in auto else auto["backend"]
        if "expected_s" in auto and auto["expected_s"]:
            e = auto["expected_s"]
            expected = f"{e['gpu']:.0f}, {e['cpu']:.0f} ({auto['model_s']:.1f})"
            walls = {
                b: r.get("wall_s", np.inf if "timed_out" in r else np.nan) for b, r in runs.items()
            }
            known = np.array(list(walls.values()))
            if len(walls) == 2 and not np.isnan(known).any() and np.isfinite(known).any():
                faster = min(walls, key=walls.get)
                choice += " (the faster)" if faster == auto["backend"] else f" ({faster} faster)"
        print(
            f"| {size.replace(',', ' x ')} min | {wall_cell(g)} | {phases} | "
            f"{wall_cell(c) if 'cpu' in runs else ''} | {ratio} | {expected} | {choice} | "
            f"{peak} | {pool} | {r2} |",
            flush=True,
        )


def r2_cells(r: dict) -> str:
    """``R2 | SE`` cells for dictionary, wiener and sta, then the k/R count."""
    cells = [f"{r['r2'][m]:.3f} | {r['r2_se'][m]:.3f}" for m in MODELS]
    return " | ".join(cells) + f" | {r['k_ge_wiener']}/{r['n_regions']}"


R2_HEADER = "R2 dictionary | SE | R2 wiener | SE | R2 sta | SE | dictionary >= wiener - SE"


def size_table(args) -> None:
    """Table 1: one child process per size."""
    rows = []
    for size in SIZES + ([MAX_SIZE] if args.max else []):
        rows.append(
            child(
                "--one",
                ",".join(map(str, size)),
                "--backend",
                args.backend,
                "--generator",
                args.generator,
                *settings_args(args),
            )
        )
        print(f"done {rows[-1]['size']}", file=sys.stderr)
    print(
        "\n| regions x units x length | generator | backend | fit s | stats s | CV s | null s | "
        f"final s | held-out s | peak MB | fit peak MB | GPU pool MB | {R2_HEADER} | R2 jitter | "
        "filter corr |"
    )
    print("|---" * 21 + "|")
    for r in rows:
        p = r["phases"]
        gpu_mb = "" if r["gpu_mb"] is None else f"{r['gpu_mb']:.0f}"
        cv_s = p["cross_validation"] + p["baselines"]
        print(
            f"| {r['size']} | {r['generator']} | {r['backend']} | {r['wall_s']:.1f} | "
            f"{p['statistics']:.1f} | {cv_s:.1f} | {p['null']:.1f} | {p['final_fit']:.1f} | "
            f"{p['heldout']:.1f} | {r['peak_mb']:.0f} | {r['fit_peak_mb']:.0f} | {gpu_mb} | "
            f"{r2_cells(r)} | "
            f"{r['r2']['jitter']:.3f} | {r['filter_corr']:.3f} |"
        )


def length_table(args) -> None:
    """Table 2: one child process per generator and length."""
    n_regions, n_units = map(int, args.lengths_size.split(","))
    rows = []
    for generator in ("families", "links"):
        for minutes in args.lengths_min:
            rows.append(
                child(
                    "--one-length",
                    f"{n_regions},{n_units},{minutes:g},{generator}",
                    "--backend",
                    args.backend,
                    *settings_args(args),
                )
            )
            print(f"done {generator} {minutes:g} min", file=sys.stderr)
    print(f"\n| generator | regions x units | length min | backend | fit s | {R2_HEADER} |")
    print("|---" * 12 + "|")
    for r in rows:
        print(
            f"| {r['generator']} | {r['size']} | {r['minutes']:g} | {r['backend']} | "
            f"{r['wall_s']:.1f} | "
            f"{r2_cells(r)} |"
        )


def settings_of(args) -> dict:
    """The estimator settings given on the command line (the rest: its defaults)."""
    out = {} if args.n_null is None else {"n_null": args.n_null}
    return out | ({} if args.n_atoms is None else {"n_atoms": tuple(args.n_atoms)})


def settings_args(args) -> list[str]:
    """The same settings as arguments for a child process."""
    out = [] if args.n_null is None else ["--n-null", str(args.n_null)]
    return out + ([] if args.n_atoms is None else ["--n-atoms", *map(str, args.n_atoms)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max", action="store_true", help="add 16 x 200 x 60 min")
    ap.add_argument("--peers-only", action="store_true")
    ap.add_argument("--peers", nargs="+", default=["sporco", "alphacsc"])
    ap.add_argument(
        "--backend",
        choices=["cpu", "gpu", "auto"],
        default="cpu",
        help="where the fits of tables 1 and 2 run (gpu: cupy; auto: the estimator's choice)",
    )
    ap.add_argument(
        "--generator",
        choices=["families", "links"],
        default="families",
        help="the data of table 1: prototype families (neurodict.synth) or independent links "
        "(neurodict.synth_links)",
    )
    ap.add_argument(
        "--lengths",
        action="store_true",
        help="only table 2: held-out R^2 against recording length, both generators",
    )
    ap.add_argument(
        "--lengths-size", default="{},{}".format(*LENGTHS_SIZE), help="REGIONS,UNITS of table 2"
    )
    ap.add_argument(
        "--lengths-min",
        nargs="+",
        type=float,
        default=list(LENGTHS_MIN),
        help="recording lengths of table 2, minutes",
    )
    ap.add_argument(
        "--n-null", type=int, default=None, help="nulls per fit (default: the estimator's, 20)"
    )
    ap.add_argument(
        "--n-atoms",
        type=int,
        nargs="+",
        default=None,
        help="dictionary sizes chosen on inner folds (default: the estimator's, 12 24)",
    )
    ap.add_argument(
        "--compare",
        action="store_true",
        help="only the GPU/CPU table of --sizes (benchmarks/gpu_check.sh)",
    )
    ap.add_argument(
        "--sizes",
        nargs="*",
        default=[",".join(map(str, s)) for s in SIZES + [MAX_SIZE]],
        help="REGIONS,UNITS,MINUTES of --compare",
    )
    ap.add_argument(
        "--limit-s", type=float, default=None, help="--compare: seconds allowed per run"
    )
    ap.add_argument(
        "--gpu-only-sizes",
        nargs="+",
        default=[],
        help="REGIONS,UNITS,MINUTES of --compare fitted on the GPU only (too long on the CPU)",
    )
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--choose", help=argparse.SUPPRESS)
    ap.add_argument("--one-length", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        regions, units, minutes = args.one.split(",")
        out = one_size(
            int(regions),
            int(units),
            float(minutes),
            args.backend,
            args.generator,
            settings_of(args),
        )
        print(json.dumps(out))
        return
    if args.choose:
        regions, units, minutes = args.choose.split(",")
        print(json.dumps(auto_choice(int(regions), int(units), float(minutes), settings_of(args))))
        return
    if args.one_length:
        regions, units, minutes, generator = args.one_length.split(",")
        print(
            json.dumps(
                one_length(
                    int(regions),
                    int(units),
                    float(minutes),
                    generator,
                    args.backend,
                    settings_of(args),
                )
            )
        )
        return
    if args.lengths:
        length_table(args)
        return
    if args.compare:
        compare_table(args)
        return
    if not args.peers_only:
        size_table(args)
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
