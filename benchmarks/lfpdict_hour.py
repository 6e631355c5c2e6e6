"""The length-dependent parts of a spike->LFP fit at 16 regions x 200 units x 1 hour: the
statistics pass over five folds and one fold's held-out prediction and coherence, with the
time and peak memory of each (random spike trains at 3-20 Hz and a random LFP: the cost does
not depend on the data's content).

Usage::

    python benchmarks/lfpdict_hour.py [--minutes 60] [--backend cpu|gpu]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from lfpdict import peak_rss_mb, reset_peak_rss  # benchmarks/lfpdict.py, beside this script

from neurodict.backend import get_backend
from neurodict.lfpdict.evaluate import coherence, predict
from neurodict.lfpdict.stats import Trains, segment_stats

N_UNITS, N_REGIONS, LAG, N_FOLDS = 200, 16, 200, 5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--backend", choices=["cpu", "gpu"], default="cpu")
    args = ap.parse_args()
    be = get_backend(args.backend)
    rng = np.random.default_rng(0)
    T = int(args.minutes * 60_000)
    spikes = [
        np.sort(rng.choice(T, size=int(rng.uniform(3, 20) * T / 1000), replace=False))
        for _ in range(N_UNITS)
    ]
    y = rng.standard_normal((N_REGIONS, T)).astype(np.float32)
    edges = np.linspace(0, T, N_FOLDS + 1).astype(int)
    gap = 2 * LAG + 1
    cores = [(int(a) + gap, int(b) - gap) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    print(f"| phase | s | peak MB | ({sum(map(len, spikes))} spikes, data {y.nbytes >> 20} MB) |")
    print("|---|---|---|---|")
    reset_peak_rss()
    clock = time.perf_counter()
    trains = Trains.of(spikes)  # sorted once for every fold, as the estimator does
    stats = [segment_stats(trains, y, a, b, LAG, LAG, backend=be) for a, b in cores]  # kept
    seconds = time.perf_counter() - clock
    print(f"| statistics, {len(stats)} folds | {seconds:.1f} | {peak_rss_mb():.0f} | |")
    F = be.asarray(rng.standard_normal((N_UNITS, 3 * N_REGIONS, 2 * LAG + 1)) * 1e-3, "float32")
    c = be.xp.zeros(3 * N_REGIONS, dtype="float32")
    a, b = cores[0]
    reset_peak_rss()
    clock = time.perf_counter()
    predicted = predict(be, spikes, F, c, a, b, LAG).reshape(3, N_REGIONS, -1)
    measured = be.asarray(y[:, a:b])
    float(predicted.sum())  # the device has finished
    mid = time.perf_counter()
    float(coherence(be, measured, predicted, 2000)[1].sum())
    end = time.perf_counter()
    peak = peak_rss_mb()
    print(f"| held-out prediction, one fold, 3 predictor sets | {mid - clock:.1f} | {peak:.0f} | |")
    print(f"| coherence, one fold | {end - mid:.1f} | | |")


if __name__ == "__main__":
    main()
