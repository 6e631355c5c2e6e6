"""Double-batch K-SVD: a waveform dictionary from every spike in bounded memory (MODELS.md §1b).

The problem is K-SVD's: unit-norm atoms ``D ∈ R^{T×K}`` and codes ``C`` with at most
``n_nonzero`` entries per row minimising ``‖X − C Dᵀ‖²_F`` over the rows ``x_i ∈ R^T`` (here the
per-channel waveforms of a group's spikes). The two batches of Valentin et al. (2025):

- **samples**: the rows stream through in chunks. Each chunk is coded by batch orthogonal
  matching pursuit (Rubinstein, Zibulevsky, Elad 2008: the correlations ``α⁰ = X D`` and the
  Gram ``G = DᵀD`` are all it needs, every row of the chunk advancing one atom at a time in one
  batched solve), and leaves only ``XᵀC`` (T×K), ``CᵀC`` (K×K) and ``‖X‖²``: memory does not grow
  with the number of spikes;
- **atoms**: the rank-1 updates of approximate K-SVD, ``d_k ∝ E_kᵀ c_k`` with ``E_k`` the residual
  without atom k, run in parallel over a batch of atoms; batches follow each other, each seeing
  the atoms the batches before it updated (``E_kᵀ c_k = XᵀC_k − D Q_k + d_k Q_kk`` with the
  accumulated ``Q = CᵀC``, so no second pass over the data).

An atom no row used is replaced by the worst-coded row seen in the pass. Everything runs
through the array backend (numpy on CPU, cupy on a GPU).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from neurodict.backend import CPU, Backend


@dataclass
class Dictionary:
    """A learned dictionary: unit-norm atoms (T, K) and the squared coding error
    ``‖X − C Dᵀ‖²_F`` of every pass (with that pass's codes and the atoms before its update)."""

    atoms: np.ndarray
    objective: np.ndarray


def chunks_of(x: np.ndarray, chunk_rows: int) -> Callable[[], Iterator[np.ndarray]]:
    """A restartable stream over the rows of `x` (n, T) in chunks of `chunk_rows`."""
    return lambda: (x[i : i + chunk_rows] for i in range(0, x.shape[0], chunk_rows))


def encode(d, x, n_nonzero: int, backend: Backend = CPU):
    """Batch OMP: each row's support (n, s) and coefficients (n, s) over atoms `d` (T, K).

    ``s = min(n_nonzero, K)`` atoms per row, chosen greedily by the largest correlation with
    the residual, the coefficients the least-squares fit on the support. Arrays on `backend`.
    """
    return _omp(d, x, n_nonzero, backend)[:2]


def dense_codes(support, coef, n_atoms: int, backend: Backend = CPU):
    """The codes of :func:`encode` as an (n, n_atoms) array, zero off each row's support."""
    xp = backend.xp
    c = xp.zeros((support.shape[0], n_atoms), dtype=coef.dtype)
    c[xp.arange(support.shape[0])[:, None], support] = coef
    return c


def _omp(d, x, n_nonzero: int, backend: Backend):
    """:func:`encode`'s support and coefficients, and each row's correlations with its support's
    atoms ``(X D)`` there (n, s): with the coefficients they give the coding error."""
    xp = backend.xp
    d = backend.asarray(d)
    x = backend.asarray(x, dtype=d.dtype)
    G = d.T @ d
    alpha0 = x @ d  # (n, K) correlations with the data
    n, K = alpha0.shape
    s = min(n_nonzero, K)
    rows = xp.arange(n)[:, None]
    support = xp.zeros((n, 0), dtype=xp.int64)
    coef = xp.zeros((n, 0), dtype=d.dtype)
    alpha = alpha0
    for _ in range(s):
        score = xp.abs(alpha)
        score[rows, support] = -1.0
        support = xp.concatenate([support, xp.argmax(score, axis=1)[:, None]], axis=1)
        Gs = G[support[:, :, None], support[:, None, :]]  # (n, j+1, j+1)
        Gs = Gs + 1e-10 * xp.eye(support.shape[1], dtype=d.dtype)  # duplicate atoms solvable
        coef = xp.linalg.solve(Gs, alpha0[rows, support][..., None])[..., 0]
        alpha = alpha0 - xp.einsum("nj,njk->nk", coef, G[support])
    return support, coef, alpha0[rows, support]


def learn(
    chunks: Callable[[], Iterable[np.ndarray]],
    n_atoms: int,
    n_nonzero: int = 3,
    n_iterations: int = 10,
    atom_batch: int = 8,
    seed: int = 0,
    start: np.ndarray | None = None,
    backend: Backend = CPU,
    progress: bool = False,
) -> Dictionary:
    """Learn `n_atoms` unit-norm atoms from the rows of every chunk.

    Parameters
    ----------
    chunks : callable
        Returns a fresh iterator over (n, T) arrays each time it is called (one call per
        pass; :func:`chunks_of` for an array in memory).
    n_atoms : int
        K.
    n_nonzero : int
        Atoms per row in the codes (the sparsity s of batch OMP).
    n_iterations : int
        Passes over the data, each: code every chunk, then update every atom.
    atom_batch : int
        Atoms updated in parallel from the same residual.
    seed : int
        Starting atoms: `n_atoms` rows of the first chunk drawn with this seed, normalised.
    start : numpy.ndarray, optional
        Starting atoms (T, n_atoms) instead.
    backend : Backend
        numpy or cupy; the atoms come back as numpy.
    """
    xp = backend.xp
    if start is None:
        first = np.asarray(next(iter(chunks())), dtype=np.float64)
        if first.shape[0] < n_atoms:
            raise ValueError(f"the first chunk has {first.shape[0]} rows, fewer than {n_atoms}")
        start = first[np.random.default_rng(seed).choice(first.shape[0], n_atoms, False)].T
    d = backend.asarray(_unit(np.asarray(start, np.float64), np))
    objective = []
    for _ in tqdm(range(n_iterations), desc="db-ksvd", disable=not progress, leave=False):
        xtc, Q, xx, worst = _pass(chunks, d, n_nonzero, n_atoms, backend)
        G = d.T @ d
        objective.append(float(xx - 2 * xp.sum(d * xtc) + xp.sum(G * Q)))
        d = _update_atoms(d, xtc, Q, worst, atom_batch, backend)
    return Dictionary(backend.to_numpy(d), np.array(objective))


def _pass(chunks, d, n_nonzero, n_atoms, backend):
    """Code every chunk; return ``XᵀC``, ``CᵀC``, ``‖X‖²`` and the `n_atoms` worst-coded rows."""
    xp = backend.xp
    T = d.shape[0]
    xtc = xp.zeros((T, n_atoms))
    Q = xp.zeros((n_atoms, n_atoms))
    xx = 0.0
    worst_err, worst_rows = np.zeros(0), np.zeros((0, T))
    d32 = d.astype(xp.float32)
    for chunk in chunks():
        x = backend.asarray(chunk, dtype=xp.float32)
        support, coef, alpha = _omp(d32, x, n_nonzero, backend)
        c = dense_codes(support, coef, n_atoms, backend)
        xtc += (x.T @ c).astype(xp.float64)
        Q += (c.T @ c).astype(xp.float64)
        x_sq = xp.sum(x * x, axis=1)
        xx += float(xp.sum(x_sq))
        err = x_sq - xp.sum(coef * alpha, axis=1)  # the least-squares fit's residual energy
        top = xp.argsort(err)[-n_atoms:]
        worst_err = np.r_[worst_err, backend.to_numpy(err[top])]
        worst_rows = np.r_[worst_rows, backend.to_numpy(x[top]).astype(np.float64)]
        keep = np.argsort(worst_err)[-n_atoms:]
        worst_err, worst_rows = worst_err[keep], worst_rows[keep]
    return xtc, Q, xx, worst_rows[::-1]


def _update_atoms(d, xtc, Q, worst, atom_batch, backend):
    """Rank-1 updates ``d_k ∝ E_kᵀ c_k`` in batches of `atom_batch` atoms; unused atoms become
    the worst-coded rows (largest error first)."""
    xp = backend.xp
    d = d.copy()
    K = d.shape[1]
    S = xtc - d @ Q  # Rᵀ C: the residual's correlation with each atom's codes
    for b0 in range(0, K, atom_batch):
        B = slice(b0, min(b0 + atom_batch, K))
        e = S[:, B] + d[:, B] * xp.diag(Q)[B]
        used = xp.diag(Q)[B] > 0
        new = xp.where(used, _unit(e, xp), d[:, B])
        S -= (new - d[:, B]) @ Q[B, :]
        d[:, B] = new
    unused = np.flatnonzero(backend.to_numpy(xp.diag(Q)) <= 0)
    unused = np.union1d(unused, _duplicates(backend.to_numpy(d)))
    if unused.size:
        d[:, xp.asarray(unused)] = xp.asarray(_unit(worst[: unused.size].T, np))
    return d


def _duplicates(d: np.ndarray, max_coherence: float = 0.99) -> np.ndarray:
    """Atoms whose direction an earlier atom already has (|cosine| above `max_coherence`)."""
    cos = np.abs(np.triu(d.T @ d, 1))
    return np.flatnonzero((cos > max_coherence).any(axis=0))


def _unit(a, xp):
    """Columns of `a` scaled to unit norm (zero columns stay zero)."""
    norm = xp.sqrt(xp.sum(a * a, axis=0))
    return a / xp.where(norm > 0, norm, 1.0)
