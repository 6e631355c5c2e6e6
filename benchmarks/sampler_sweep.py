"""Where one Gibbs sweep of the sorter's sampler spends its time, step by step.

A neighbourhood's learning subsample is generated (``--spikes`` snippets of ``--channels``
channels and ``--samples`` samples, eight units of distinct widths and footprints in unit
noise, one epoch), the sampler is burnt in for a few sweeps with split–merge, and then each
step of ``--sweeps`` further sweeps (split–merge included) is timed. The table gives seconds
per sweep and the share of each step. Run it from two trees (``PYTHONPATH=<tree>``) to compare
them on the same data.

Usage::

    python benchmarks/sampler_sweep.py
    python benchmarks/sampler_sweep.py --spikes 10000 --channels 12
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

from neurodict.sort import kernels
from neurodict.sort.model import Data, Sampler
from neurodict.sort.params import SortParams

STEPS = (
    "_sample_z",
    "_sample_pi",
    "_sample_w",
    "_sample_labels",
    "_split_merge",
    "_sample_sticks",
    "_sample_clusters",
    "_sample_features",
    "_sample_atoms",
    "_sample_ard",
    "_sample_noise",
)


def subsample(n: int, channels: int, samples: int, seed: int = 0) -> Data:
    """Eight units' snippets in unit noise, spread over 60 s at 30 kHz, one epoch."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples)
    shapes = [
        np.outer(
            rng.uniform(0.0, 12.0, channels),
            -np.exp(-0.5 * ((t - samples / 3) / (1.5 + 0.3 * j)) ** 2),
        )
        for j in range(8)
    ]
    labels = rng.integers(0, 8, n)
    x = np.stack([shapes[c] for c in labels]) + rng.normal(size=(n, channels, samples))
    spike_samples = np.sort(rng.choice(60 * 30000, n, replace=False))
    ref = SortParams().refractory_samples(30000.0)
    lo, hi = kernels.refractory_neighbours(spike_samples, ref)
    return Data(
        x=x,
        epoch=np.zeros(n, np.int64),
        n_epochs=1,
        classes=kernels.colour_classes(spike_samples, ref),
        lo=lo,
        hi=hi,
        samples=spike_samples,
        refractory_samples=ref,
    )


def timed_sweeps(data: Data, n_burn: int, n_sweeps: int) -> dict[str, float]:
    """Seconds per sweep of each step, over `n_sweeps` sweeps after `n_burn`."""
    p = SortParams()
    K = min(p.max_atoms, data.x.shape[2])
    sampler = Sampler(
        data, K, p.max_clusters, p.drift, p.drift_sd, p.n_init_clusters,
        np.random.default_rng(1), p.priors,
    )  # fmt: skip
    for _ in range(n_burn):
        sampler.sweep(p.split_merge_proposals)
    seconds: dict[str, float] = defaultdict(float)
    for name in STEPS:
        step = getattr(sampler, name)

        def clocked(*args, _step=step, _name=name):
            start = time.perf_counter()
            out = _step(*args)
            seconds[_name] += time.perf_counter() - start
            return out

        setattr(sampler, name, clocked)
    start = time.perf_counter()
    for _ in range(n_sweeps):
        sampler.sweep(p.split_merge_proposals)
    seconds["sweep"] = time.perf_counter() - start
    return {k: v / n_sweeps for k, v in seconds.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spikes", type=int, default=1500)
    ap.add_argument("--channels", type=int, default=10)
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--burn", type=int, default=3)
    ap.add_argument("--sweeps", type=int, default=5)
    args = ap.parse_args()
    data = subsample(args.spikes, args.channels, args.samples)
    seconds = timed_sweeps(data, args.burn, args.sweeps)
    total = seconds["sweep"]
    print(f"{args.spikes} spikes x {args.channels} channels x {args.samples} samples")
    print("| step | s / sweep | share |\n|---|---|---|")
    for name in (*STEPS, "sweep"):
        print(f"| {name.lstrip('_')} | {seconds[name]:.3f} | {seconds[name] / total:.0%} |")


if __name__ == "__main__":
    main()
