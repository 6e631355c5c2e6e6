"""The dynamic HDP's cluster weights across epochs, given the labels.

Epoch `e`'s cluster weights are ``w_e = Σ_{j≤e} v_{e,j} π_j`` with
``v_{e,j} = ω_j Π_{l=j+1..e}(1-ω_l)`` (``ω_0 = 1``), ``π_j ~ Dir(α β)`` and
``ω_l ~ Beta(a_ω, b_ω)``; each spike of epoch `e` draws its component ``r_i = j`` with
probability ``v_{e,j}`` and then its cluster from ``π_j`` (MODELS.md §1, Ren, Carin, Dunson
2008).

Given the labels, ``(r, π, ω)`` is one block whose conditionals depend on the spikes only
through counts: ``n_{e,c}`` (the labels) and ``m_{e,c,j}``, how many of epoch `e`'s spikes of
cluster `c` drew component `j`. The Gibbs steps of that block, ``m | π, ω`` (multinomials)
and ``π, ω | m`` (Dirichlet and beta), cost ``O(E² H)`` however many spikes there are, so
:func:`sample_weights` iterates them many times a sweep. One pair of steps a sweep mixes
slowly: ``ω_l`` given ``m`` is as sure as its ``n`` spikes make it, and ``m`` given ``ω_l``
follows it, so at an epoch where a neuron stops firing ``ω_l`` took 16-43 sweeps from the
sampler's start to the posterior (measured: docs/benchmarks.md, "The dynamic HDP's
weights"), and until it got there the stopped neuron kept the previous epoch's weight.
"""

from __future__ import annotations

import numba
import numpy as np


def epoch_weights(omega: np.ndarray, pis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``w_{e,c} = Σ_{j≤e} v_{e,j} π_{j,c}`` and the mixing matrix ``v`` (E, E)."""
    v = _mixing_nb(omega.astype(np.float64))
    return v @ pis, v


@numba.njit(cache=True)
def _mixing_nb(omega):
    """``v_{e,j} = ω_j Π_{l=j+1..e}(1-ω_l)``, the products down each column."""
    E = omega.size
    v = np.zeros((E, E))
    for j in range(E):
        carried = 1.0
        for e in range(j, E):
            if e > j:
                carried *= 1.0 - omega[e]
            v[e, j] = carried * omega[j]
    return v


def sample_weights(
    rng: np.random.Generator,
    m: np.ndarray,
    alpha_beta: np.ndarray,
    innovation_a: float,
    innovation_b: float,
    iterations: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`iterations` Gibbs steps of ``(π, ω) | m`` then ``m | π, ω`` from the component counts
    `m` (E, H, E), the cluster counts ``n_{e,c} = Σ_j m_{e,c,j}`` fixed; returns ``π``
    (E, H), ``ω`` (E,) and the last ``m``, a draw given them (numba; its generator seeded from
    `rng`).

    ``π_j | m ~ Dir(α β + Σ_e m_{e,·,j})``; ``ω_l | m ~ Beta(a_ω + hits, b_ω + misses)``,
    hits the spikes that drew component `l`, misses those of epochs ``≥ l`` that drew an
    earlier one (``ω_0 = 1``); ``m_{e,c,·} ~ Multinomial(n_{e,c}, ∝ v_{e,j} π_{j,c})``, a
    cluster that no component of its epoch weighs (``π_{j,c} = 0`` to double precision)
    drawing its components by ``v`` alone. With one epoch `m` is `n`, whatever ``π``: one
    step.
    """
    E = m.shape[0]
    return _weights_nb(
        m.astype(np.int64),
        alpha_beta.astype(np.float64),
        float(innovation_a),
        float(innovation_b),
        iterations if E > 1 else 1,
        int(rng.integers(2**32)),
    )


@numba.njit(cache=True)
def _weights_nb(m, alpha_beta, a, b, iterations, seed):
    np.random.seed(seed)
    E, H = m.shape[:2]
    n = m.sum(2)
    m = m.copy()
    pis, omega = np.empty((E, H)), np.ones(E)
    p, rest = np.empty(E), np.empty(E)
    for _ in range(iterations):
        for j in range(E):  # π_j: a Dirichlet as normalised gammas
            total = 0.0
            for c in range(H):
                k = 0
                for e in range(j, E):
                    k += m[e, c, j]
                g = np.random.gamma(alpha_beta[c] + k + 1e-6, 1.0)
                pis[j, c] = g
                total += g
            for c in range(H):
                pis[j, c] /= total
        for l_ in range(1, E):
            hits = misses = 0
            for e in range(l_, E):
                for c in range(H):
                    hits += m[e, c, l_]
                    for j in range(l_):
                        misses += m[e, c, j]
            omega[l_] = np.random.beta(a + hits, b + misses)
        v = _mixing_nb(omega)
        for e in range(E):  # multinomials as binomials on each component's share of the rest
            for c in range(H):
                tail = 0.0
                for j in range(E - 1, -1, -1):
                    p[j] = v[e, j] * pis[j, c] + (1e-300 if v[e, j] > 0 else 0.0)
                    tail += p[j]
                    rest[j] = tail
                left = n[e, c]
                for j in range(E):
                    k = np.random.binomial(left, p[j] / rest[j]) if left > 0 and p[j] > 0 else 0
                    m[e, c, j] = k
                    left -= k
    return pis, omega, m
