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
follows it, so an epoch where a neuron stops firing moved ``ω_l`` from its start to the
posterior over some 25 sweeps (measured: docs/benchmarks.md, "The dynamic HDP's weights"),
and until it got there the stopped neuron's weight stayed the previous epoch's.
"""

from __future__ import annotations

import numpy as np


def epoch_weights(omega: np.ndarray, pis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``w_{e,c} = Σ_{j≤e} v_{e,j} π_{j,c}`` and the mixing matrix ``v`` (E, E):
    ``v_{e,j} = ω_j Π_{l=j+1..e}(1-ω_l)``, the products down each column at once."""
    E = omega.size
    later = np.arange(E)[:, None] > np.arange(E)[None, :]  # l > j
    v = np.tril(np.cumprod(np.where(later, 1.0 - omega[:, None], 1.0), axis=0) * omega)
    return v @ pis, v


def component_counts(
    rng: np.random.Generator, n: np.ndarray, omega: np.ndarray, pis: np.ndarray
) -> np.ndarray:
    """``m_{e,c,·} ~ Multinomial(n_{e,c}, ∝ v_{e,j} π_{j,c})``: (E, H, E) from the counts `n`
    (E, H) of each epoch's spikes in each cluster (drawn where ``n_{e,c} > 0``). A cluster
    that no component of its epoch weighs (``π_{j,c} = 0`` to double precision) draws its
    components by ``v`` alone."""
    _, v = epoch_weights(omega, pis)
    e, c = np.nonzero(n)
    p = v[e] * pis[:, c].T + 1e-300 * (v[e] > 0)  # (pairs, E)
    m = np.zeros((*n.shape, omega.size), np.int64)
    m[e, c] = rng.multinomial(n[e, c], p / p.sum(1, keepdims=True))
    return m


def sample_weights(
    rng: np.random.Generator,
    n: np.ndarray,
    m: np.ndarray,
    alpha_beta: np.ndarray,
    innovation_a: float,
    innovation_b: float,
    iterations: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`iterations` Gibbs steps of ``(π, ω) | m`` then ``m | π, ω`` from the component counts
    `m` (E, H, E), the cluster counts `n` (E, H) fixed; returns ``π`` (E, H), ``ω`` (E,) and
    the last ``m``, a draw given them.

    ``π_j | m ~ Dir(α β + Σ_e m_{e,·,j})``; ``ω_l | m ~ Beta(a_ω + hits, b_ω + misses)``,
    hits the spikes that drew component `l`, misses those of epochs ``≥ l`` that drew an
    earlier one (``ω_0 = 1``).
    """
    E = n.shape[0]
    omega = np.ones(E)
    for _ in range(iterations if E > 1 else 1):  # one epoch: m is n, whatever π
        by_component = m.sum(0).T  # (E components, H)
        pis = np.stack([rng.dirichlet(alpha_beta + by_component[j] + 1e-6) for j in range(E)])
        drawn = m.sum(1)  # (E epochs, E components)
        hits = drawn.sum(0)[1:]
        from_later = np.cumsum(drawn[::-1], axis=0)[::-1]  # [l, j]: epochs ≥ l, component j
        misses = np.tril(from_later, -1).sum(1)[1:]  # components j < l
        omega[1:] = rng.beta(innovation_a + hits, innovation_b + misses)
        m = component_counts(rng, n, omega, pis)
    return pis, omega, m
