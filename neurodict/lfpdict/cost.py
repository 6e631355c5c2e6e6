"""``backend: auto`` for the dictionaries: the backend a fit is expected to finish first on, by a
cost model measured on this machine at the fit's own size.

A fit's time is, to first order, its solver iterations and its statistics passes::

    expected_s(backend) = n_iterations x iteration_s(backend) + n_pass_bins x bin_s(backend)

The counts come from the estimator's settings (the most iterations each fit may run, so an
upper bound shared by both backends); the unit costs are timed here, once per fit, on the
fit's shapes: a block of coefficient iterations (Gram product, sparse-group prox, momentum) on
the largest dictionary with the predictor sets stacked, and one batch of the statistics pass.
Small problems are bound by the host's issuing of kernels on a GPU and lose there; large ones
are bound by flops and bytes and win there: the crossover depends on the GPU and the CPU, so
it is measured rather than written down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from neurodict.backend import CPU, Backend, get_backend
from neurodict.lfpdict.solvers import fista, prox_sparse_group
from neurodict.lfpdict.stats import fft_length, segment_stats

log = logging.getLogger(__name__)


def fit_counts(est, n_bins: int) -> tuple[int, int]:
    """(solver iterations, bins through the statistics pass) of one fit and its scoring, at
    most: the learning of each outer fold and the final fit (coefficients and atoms per
    alternation), each size's penalty path on the outer and inner folds, the held-out
    refits and link fits of the data and of each null, and one statistics pass for the data and
    one per null. The Wiener baseline's conjugate gradients (a few per penalty) are not counted."""
    K, n_sizes = est.n_folds, len(est.atom_counts)
    learn = 2 * est.n_outer * est.n_inner
    paths = K * n_sizes * K * len(est.lambda_fractions) * est.n_inner
    refits = 2 * K * est.n_inner * (1 + est.n_null)
    return (K + 2) * learn + paths + refits, (1 + est.n_null) * n_bins


def coefficient_run(
    be: Backend,
    n_units: int,
    n_atoms: int,
    n_columns: int,
    dtype,
    n_iter: int,
    n_problems: int = 1,
) -> Callable:
    """A function running `n_iter` coefficient iterations (Gram product, sparse-group prox,
    momentum; no stopping) on `be` from zero, `n_problems` at once as in
    :func:`neurodict.lfpdict.model.fit_coef_batch`, on a random well-posed problem of this
    size made once here; it returns the iterate, on the device."""
    xp = be.xp
    rng = np.random.default_rng(0)
    size = n_units * n_atoms
    A = rng.standard_normal((n_problems, size, size), dtype=np.float32)
    H = A + A.transpose(0, 2, 1)  # symmetric with eigenvalues in 1 +- 1/2: well posed
    del A
    H *= 1 / (8 * np.sqrt(size))
    H[:, np.arange(size), np.arange(size)] += 1
    H = be.asarray(H, dtype=dtype)
    Z = be.asarray(rng.standard_normal((n_problems, size, n_columns)), dtype=dtype)
    lam = xp.full(n_columns, 1e-3, dtype=dtype)

    def run():
        x, _ = fista(
            xp,
            xp.zeros((n_problems, n_units, n_atoms, n_columns), dtype=dtype),
            lambda B: (H @ B.reshape(n_problems, size, -1) - Z).reshape(B.shape),
            lambda V: prox_sparse_group(xp, V, 0.5 * lam, 0.5 * lam),
            lambda B: np.zeros(n_problems),
            0.5,
            n_iter,
            tol=0.0,
            check_every=be.sync_every,
            batch_ndim=1,
            replay=be.replayable,
        )
        return x

    return run


def iteration_s(be: Backend, n_units: int, n_atoms: int, n_columns: int, dtype, n_iter=16):
    """Seconds per coefficient iteration on `be` at this size (:func:`coefficient_run`, after
    one untimed run, which compiles a GPU's kernels)."""
    run = coefficient_run(be, n_units, n_atoms, n_columns, dtype, n_iter)
    float(run().sum())
    clock = time.perf_counter()
    float(run().sum())  # a host read: the device has finished
    return (time.perf_counter() - clock) / n_iter


def bin_s(be: Backend, n_units: int, n_regions: int, lag_minus: int, lag_plus: int, dtype):
    """Seconds per bin of the statistics pass on `be` at this size (one batch of blocks at
    10 spikes per unit per 1000 bins, after one untimed run)."""
    rng = np.random.default_rng(0)
    n_bins = 4 * fft_length(lag_minus + lag_plus)
    spikes = [np.sort(rng.integers(0, n_bins, n_bins // 100)) for _ in range(n_units)]
    y = rng.standard_normal((n_regions, n_bins)).astype(dtype)

    def run():
        st = segment_stats(spikes, y, 0, n_bins, lag_minus, lag_plus, backend=be, dtype=dtype)
        return float(st.R.sum())

    run()
    clock = time.perf_counter()
    run()
    return (time.perf_counter() - clock) / n_bins


def expected_s(be: Backend, est, n_units: int, n_regions: int, n_bins: int) -> float:
    """The cost model's seconds for fitting and scoring `est` on `be`."""
    iterations, pass_bins = fit_counts(est, n_bins)
    per_iteration = iteration_s(be, n_units, est.atom_counts[-1], 3 * n_regions, est.dtype)
    per_bin = bin_s(be, n_units, n_regions, est.lag_minus_bins, est.lag_plus_bins, est.dtype)
    return iterations * per_iteration + pass_bins * per_bin


def choose(est, n_units: int, n_regions: int, n_bins: int) -> tuple[Backend, dict]:
    """The backend for ``backend: auto``: the CPU without a GPU; else the one the cost model
    expects to finish first (one log line with both estimates).

    Returns
    -------
    Backend
    dict
        Backend name -> expected seconds (empty without a GPU).
    """
    gpu = get_backend("auto")
    if gpu.name == "cpu":
        return CPU, {}
    expected = {be.name: expected_s(be, est, n_units, n_regions, n_bins) for be in (gpu, CPU)}
    best = gpu if expected["gpu"] < expected["cpu"] else CPU
    log.info(
        "backend auto: expected %.0f s on the GPU, %.0f s on the CPU (cost model timed here at "
        "%d units x %d regions x %d bins); using the %s",
        expected["gpu"],
        expected["cpu"],
        n_units,
        n_regions,
        n_bins,
        best.name.upper(),
    )
    return best, expected
