"""Proximal gradient machinery: FISTA with adaptive restart, the prox of the sparse group lasso,
the unit-ball projection of atoms, and power iteration for step sizes. Backend-agnostic.

References
----------
Beck & Teboulle, "A fast iterative shrinkage-thresholding algorithm", SIAM J. Imaging Sci. 2009.
O'Donoghue & Candes, "Adaptive restart for accelerated gradient schemes", FoCM 2015.
Simon, Friedman, Hastie & Tibshirani, "A sparse-group lasso", JCGS 2013 (its prox).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def power_iteration(
    xp, matvec: Callable, shape: tuple, dtype, n_iter: int = 50, seed: int = 0, batch_ndim=0
):
    """Largest eigenvalue of a symmetric positive semi-definite operator (overestimated by 1 %),
    for each of a batch of operators: the first `batch_ndim` axes of `shape` index them.

    The iterate stays on the device: one host read, at the end.

    Returns
    -------
    ndarray of shape ``shape[:batch_ndim]`` (a 0-d array for one operator)
    """
    axes = tuple(range(batch_ndim, len(shape)))
    rng = xp.random.default_rng(seed) if hasattr(xp.random, "default_rng") else xp.random
    x = rng.standard_normal(shape).astype(dtype)
    x /= xp.sqrt((x * x).sum(axis=axes, keepdims=True))
    value = xp.zeros(shape[:batch_ndim] + (1,) * len(axes), dtype=dtype)
    for _ in range(n_iter):
        y = matvec(x)
        value = xp.sqrt((y * y).sum(axis=axes, keepdims=True))
        x = y / xp.maximum(value, xp.finfo(dtype).tiny)
    return 1.01 * np.asarray(value.get() if hasattr(value, "get") else value).reshape(
        shape[:batch_ndim]
    )


def prox_sparse_group(xp, B, t_l1, t_group, mask=None):
    """Prox of ``t_l1 ||B||_1 + t_group sum_{n,r} ||B[..., n, :, r]||_2`` (then zero outside
    `mask`).

    Parameters
    ----------
    B : array of shape (..., n_units, n_atoms, n_regions)
    t_l1, t_group : float, or array broadcasting to (..., n_units, 1, n_regions)
        Step size times the penalties, per region (and per unit, problem, window).
    mask : array of shape (n_units, n_regions), optional
        Which unit-region links may be non-zero.
    """
    B = B - xp.clip(B, -t_l1, t_l1)  # soft threshold
    norm = xp.sqrt((B * B).sum(axis=-2, keepdims=True))
    B = B * xp.maximum(1 - t_group / xp.maximum(norm, 1e-30), 0)
    return B if mask is None else B * mask[:, None, :]


def project_unit_ball(xp, D):
    """Each row of D (..., K, L) (an atom) scaled into the unit ball: d_k / max(1, ||d_k||)."""
    return D / xp.maximum(1, xp.sqrt((D * D).sum(axis=-1, keepdims=True)))


def fista(
    xp,
    x0,
    grad: Callable,
    prox: Callable,
    objective: Callable,
    step,
    n_iter: int,
    tol: float = 1e-5,
    check_every: int = 1,
    batch_ndim: int = 0,
    replay: Callable | None = None,
):
    """Minimise ``smooth(x) + penalty(x)`` by FISTA with gradient-based adaptive restart, for
    one problem or a batch of independent problems (the first `batch_ndim` axes of x).

    The state (iterate, extrapolated point, gradient, iterations since the last restart, whether
    every problem has converged) is updated in place on the device: the restart test and the
    momentum stay there, and the stopping test (a host read, which on a GPU waits for the
    device's queue to drain) is read every `check_every` iterations. All of an iteration after
    its gradient (prox, restart test, momentum, stopping test) does the same work every time,
    so a GPU can replay it (`replay`) instead of issuing its kernels one by one; the gradient
    itself is issued (cupy does not record cuBLAS calls).

    Parameters
    ----------
    x0 : array
        Start; a problem whose `objective` is not lowered keeps it (so a call never
        increases the objective).
    grad : callable
        Gradient of the smooth part.
    prox : callable
        ``prox(v)``: the proximal operator of ``step * penalty``.
    objective : callable
        The whole objective (per problem: shape ``x.shape[:batch_ndim]``), evaluated at the
        start and the end only.
    step : float or array
        1 / Lipschitz constant of the gradient (per problem: broadcasting against x).
    n_iter : int
        Iterations allowed.
    tol : float
        A problem has converged when an iteration moves x by at most ``tol * ||x||``.
    check_every : int
        Iterations between stopping tests (1 on the CPU; more on a GPU,
        :attr:`neurodict.backend.Backend.sync_every`).
    batch_ndim : int
    replay : callable, optional
        ``replay(f)``: a callable doing what the zero-argument `f` (an iteration after its
        gradient) does (:meth:`neurodict.backend.Backend.replayable`); by default `f` itself.

    Returns
    -------
    x : array
    n_iter : int
        Iterations run.
    """
    axes = tuple(range(batch_ndim, x0.ndim))

    def per_problem(v):  # a value per problem, broadcasting against x
        return v.reshape(v.shape + (1,) * len(axes))

    # the momentum after m iterations without a restart: t_0 = 1, t_{m+1} = (1 + sqrt(1 +
    # 4 t_m^2)) / 2, beta_m = (t_m - 1) / t_{m+1}; per problem only m lives on the device
    t = [1.0]
    for _ in range(n_iter):
        t.append((1 + (1 + 4 * t[-1] ** 2) ** 0.5) / 2)
    beta = xp.asarray(np.subtract(t[:-1], 1) / np.asarray(t[1:]), dtype=x0.dtype)
    since = xp.full(x0.shape[:batch_ndim], -1, dtype=np.int64)
    x, z = x0.copy(), x0.copy()
    g = xp.empty_like(x0)  # the gradient at z
    converged = xp.zeros((), dtype=bool)

    def after_gradient():
        x_new = prox(z - step * g)
        change = x_new - x
        uphill = ((z - x_new) * change).sum(axis=axes) > 0  # momentum points uphill: restart
        since[...] = xp.where(uphill, 0, since + 1)
        z[...] = x_new + per_problem(beta[since]) * change
        x[...] = x_new
        moved = xp.sqrt((change * change).sum(axis=axes))
        size = xp.maximum(xp.sqrt((x * x).sum(axis=axes)), 1e-30)
        converged[...] = (moved <= tol * size).all()

    run = after_gradient if replay is None else replay(after_gradient)
    it = 0
    while it < n_iter:
        g[...] = grad(z)
        run()
        it += 1
        if (it % check_every == 0 or it == n_iter) and bool(converged):
            break
    rose = xp.asarray(np.asarray(objective(x)) > np.asarray(objective(x0)))
    return xp.where(per_problem(rose), x0, x), it
