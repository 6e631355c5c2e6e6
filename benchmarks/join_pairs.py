"""The cost of one pair in the join against the walk's time bins; prints a table.

The join (:mod:`neurodict.sort.join`) compares every pair of clusters of the same or adjacent
neighbourhoods, and each comparison integrates the clusters' random-walk means over the
recording's bins of ``join_epoch_s`` (30 bins in 5 minutes, 180 in 30): three walks per pair
(each cluster's and their union's, a Kalman filter over the bins). Columns: the conjugate walk
marginals of the sampler's split-merge moves on a batch of 64 clusters as
:func:`walk.log_marginal` computes them (the walk's tridiagonal posterior precision, O(E) per
marginal) and by the dense formula ``V = B (I + N B)^{-1}`` (O(E^3), the form before), their
largest difference, and the whole Bayes factor of one pair from its clusters' moments (two
clusters of 200 spikes on 14 channels x 48 samples). A second table: against the clusters'
size (30 bins, 20 channels x 22 whitened samples, as on a 64-channel probe, the second
cluster of half the spikes 0.3 SD away), the time to read both clusters' moments
(:class:`neurodict.sort.join.Moments`, once per cluster), to join two clusters' moments,
and one pair's Bayes factor from them, and the log Bayes factor. One BLAS thread, best of
five (of two above 10 000 spikes).

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/join_pairs.py
"""

from __future__ import annotations

import time

import numpy as np

from neurodict.sort import snippets, walk
from neurodict.sort.join import Moments, delay_grid, log_bayes_factor
from neurodict.sort.params import Priors, SortParams

K = 6  # join_axes


def dense_log_marginal(prior: walk.WalkPrior, stats: walk.Stats) -> np.ndarray:
    """``log p(S)`` through ``V = B (I + N B)^{-1}`` formed densely (the O(E^3) reference)."""
    B = prior.B()
    I_NB = np.eye(B.shape[0]) + stats.counts[..., :, None] * B
    ZR = stats.sums - stats.counts[..., None] * prior.mu0
    total, n = stats.sums.sum(-2), stats.counts.sum(-1)[..., None, None]
    RR = (
        stats.scatter
        - prior.mu0[:, None] * total[..., None, :]
        - total[..., :, None] * prior.mu0[None, :]
        + n * np.outer(prior.mu0, prior.mu0)
    )
    RCR = RR - np.swapaxes(ZR, -1, -2) @ (B @ np.linalg.inv(I_NB)) @ ZR
    nu_n = prior.nu0 + stats.spikes
    return (
        -0.5 * stats.spikes * K * np.log(np.pi)
        - 0.5 * K * (np.linalg.slogdet(I_NB)[1] - stats.log_weight)
        + walk._log_multigamma(nu_n / 2, K)
        - walk._log_multigamma(prior.nu0 / 2, K)
        + 0.5 * prior.nu0 * np.linalg.slogdet(prior.W0_inv)[1]
        - 0.5 * nu_n * np.linalg.slogdet(prior.W0_inv + RCR)[1]
    )


def best_ms(f, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return 1e3 * min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    params = SortParams()
    T, M, n = 48, 14, 200
    delays = snippets.delay_operators(delay_grid(params, 30000.0), np.eye(T), np.eye(T))
    batch = 64
    print(f"{'bins':>5} {'tridiagonal ms':>15} {'dense ms':>9} {'max |diff|':>11} {'pair ms':>8}")
    for E in (1, 6, 30, 180):
        prior = walk.WalkPrior.isotropic(np.zeros(K), 2.0, params.drift_sd**2, E, Priors())
        s = rng.normal(size=(2 * n, batch, K))
        stats = walk.Stats.of(s, rng.integers(0, E, 2 * n), E, rng.gamma(2.0, 0.5, 2 * n))
        new = best_ms(lambda: walk.log_marginal(prior, stats))  # noqa: B023
        old = best_ms(lambda: dense_log_marginal(prior, stats))  # noqa: B023
        diff = np.abs(walk.log_marginal(prior, stats) - dense_log_marginal(prior, stats)).max()
        xa = rng.standard_normal((n, M, T)).astype(np.float32)
        xb = xa + 0.3
        ea, eb = rng.integers(0, E, n), rng.integers(0, E, n)
        a, b = Moments.of(xa, ea, E), Moments.of(xb, eb, E)
        pair = best_ms(lambda: log_bayes_factor(a, b, params, delays))  # noqa: B023
        print(f"{E:5d} {new:15.2f} {old:9.2f} {diff:11.2e} {pair:8.2f}")
    print(f"\n{'spikes':>7} {'read ms':>8} {'union ms':>9} {'pair ms':>8} {'log BF':>10}")
    E, M, T = 30, 20, 22
    delays = snippets.delay_operators(delay_grid(params, 30000.0), np.eye(T), np.eye(T))
    for n in (500, 2000, 8000, 30000):
        xa = rng.standard_normal((n, M, T)).astype(np.float32)
        xb = rng.standard_normal((n // 2, M, T)).astype(np.float32) + 0.3
        ea, eb = rng.integers(0, E, n), rng.integers(0, E, n // 2)
        repeats = 5 if n <= 10000 else 2
        read = best_ms(lambda: (Moments.of(xa, ea, E), Moments.of(xb, eb, E)), repeats)  # noqa: B023
        a, b = Moments.of(xa, ea, E), Moments.of(xb, eb, E)
        union = best_ms(lambda: Moments.union(a, b), repeats)  # noqa: B023
        pair = best_ms(lambda: log_bayes_factor(a, b, params, delays), repeats)  # noqa: B023
        bf = log_bayes_factor(a, b, params, delays)
        print(f"{n:7d} {read:8.1f} {union:9.2f} {pair:8.2f} {bf:10.1f}")


if __name__ == "__main__":
    main()
