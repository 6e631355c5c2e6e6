"""Units whose spikes are two other units' spikes at once.

Two neurons near each other on the probe that fire within the detection's dead time give one
detection, its snippet the sum of their waveforms. Where that happens often (synchrony; or
chance over a long recording: 11 of the 16 single-unit false positives of the 10-minute
Neuropixels benchmark were 31-51 such sums each, of nine neurons' spikes with one partner
each 0-80 um away), the first learning makes a cluster of the sums; in the overlap pass its template
matches each such event as one spike of its own, and neither neuron's spike is found there.
Left out of the overlap pass's templates, each such event is matched by one neuron's
template and the other's spike is found in the residual (docs/benchmarks.md, "Synchronous
spikes").

Unit f is a superposition when its spikes are more probable as one spike of another unit g
plus one of a third unit p, each at a lag of its own, than as spikes of f. In the whitened
snippets, with the sampler's white noise of unit variance (``φ = 1``), each unit's mean
snippet ``t`` over the recording as its template and ``S_a`` a delay by ``a`` samples
(:func:`delay_operators`)::

    log B = log mean_{g<p} Π_i mean_{a,b} N(x_i; S_a t_g + S_b t_p, I) − Σ_i log N(x_i; t_f, I)

a uniform prior over the pairs of the other units and over the lags ``a, b`` of each spike
(every delay that keeps the template's peak inside the snippet), the pair shared by all of
f's spikes. The mean snippets are the spikes' sample means (the model's waveforms, its
dHDP walk's posterior mean where its model saw, made the same decisions: measured in
docs/benchmarks.md), over the recording, not per epoch (a small cluster's means per epoch are
of a handful of spikes each: fitted to them, f's own term was ahead by the snippet's
dimension for every few spikes, and a cluster of sums at one lag was kept). ``t_f`` is the
mean of f's spikes, an in-sample fit, ahead by half the snippet's dimension in all: the test
leans towards keeping f. f is a superposition where ``log B > 0``.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.special import logsumexp

from neurodict.sort import snippets
from neurodict.sort.assign import GroupSorting
from neurodict.sort.local import LocalSnippets
from neurodict.sort.params import SortParams

log = logging.getLogger(__name__)
STEPS = 4  # the delays' grid, per sample: a whole-sample grid misplaces a spike by up to half
#            a sample, and a large unit's template by hundreds in energy


def delay_operators(delays: np.ndarray, whiten: np.ndarray, unwhiten: np.ndarray) -> np.ndarray:
    """``S_a`` (L, T', T') for each of `delays` (L,) in samples, whole or not: a whitened
    template (T' coordinates, ``W`` (T', T) and ``W⁺`` (T, T') of
    :func:`neurodict.sort.snippets.noise_whitener`) delayed by ``a`` samples,
    ``S_a = W C Z_a E W⁺``. ``E`` continues the waveform past each end of the window by its
    value there, tapered to zero over as many samples as the largest delay and a window more
    (a spike's edges are its slow parts: a step where a delay brings in what lay outside the
    window has power at every frequency, which whitening amplifies where the noise has
    little), ``Z_a`` delays it by ``a`` (each frequency's phase turned by ``−2π f a``; the
    ends of the continued waveform meet at zero, so what wraps around is smooth and stays in
    the continuation) and ``C`` cuts the window again."""
    T = unwhiten.shape[0]
    pad = int(np.ceil(np.abs(delays).max(initial=0.0))) + T
    n = T + 2 * pad
    taper = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, pad + 1) / (pad + 1))  # 1 -> 0 outwards
    E = np.eye(T)[np.clip(np.arange(n) - pad, 0, T - 1)]  # (n, T): the edges continued
    E[:pad] *= taper[::-1, None]
    E[pad + T :] *= taper[:, None]
    turn = np.exp(-2j * np.pi * np.fft.rfftfreq(n)[None] * np.asarray(delays, float)[:, None])
    if n % 2 == 0:
        turn[:, -1] = np.cos(np.pi * np.asarray(delays, float))  # the Nyquist term, real
    Z = np.fft.irfft(np.fft.rfft(E, axis=0)[None] * turn[:, :, None], n=n, axis=1)  # (L, n, T)
    return whiten @ Z[:, pad : pad + T] @ unwhiten


def log_bayes_factor(
    x: np.ndarray, own: np.ndarray, others: np.ndarray, delays: np.ndarray, steps: int
) -> float:
    """A lower bound of ``log B`` of the module docstring: "each spike is one of g's and one
    of p's" against "a spike of f".

    The pair's and the lags' sums are dominated by their largest terms (a lag off by a
    fraction of a sample costs a large spike hundreds in energy), so each is bounded below by
    the terms about its largest: the pair is the most probable one on whole-sample delays (the
    others' terms, left out, add at most ``log`` of their number); each spike's lags, the
    delays within a sample of its most probable pair of whole-sample delays.

    Parameters
    ----------
    x : numpy.ndarray (n, C, T')
        Whitened snippets of unit f's spikes on its channels.
    own : numpy.ndarray (C, T')
        f's template on the same channels.
    others : numpy.ndarray (V, C, T')
        The other units' templates there (-inf when fewer than two).
    delays : numpy.ndarray (L, T', T')
        ``S_a`` for each delay ``a`` of an evenly spaced grid (:func:`delay_operators`).
    steps : int
        Delays of the grid per sample: ``delays[::steps]`` are whole samples apart.
    """
    V, n, L = len(others), len(x), len(delays)
    if V < 2:
        return -np.inf
    X = x.reshape(n, -1)
    log_own = float((X @ own.ravel()).sum() - 0.5 * n * np.sum(own**2))  # + ½ Σ_i ‖x_i‖²
    g, p = np.triu_indices(V, 1)
    S = np.einsum("lst,vct->vlcs", delays[::steps], others).reshape(V, -1, X.shape[1])
    lin = _linear_terms(S, X)
    scores = [
        _most_probable(lin[g[q]], lin[p[q]], S[g[q]] @ S[p[q]].T)[0].sum() for q in range(g.size)
    ]
    best = int(np.argmax(scores))
    S = np.einsum("lst,vct->vlcs", delays, others[[g[best], p[best]]]).reshape(2, L, -1)
    lin = _linear_terms(S, X)
    cross = S[0] @ S[1].T  # (L, L)
    _, (a, b) = _most_probable(lin[0][:, ::steps], lin[1][:, ::steps], cross[::steps, ::steps])
    near = np.arange(-steps, steps + 1)
    a, b = a[:, None] * steps + near, b[:, None] * steps + near  # (n, 2 steps + 1)
    inside = ((a >= 0) & (a < L))[:, :, None] & ((b >= 0) & (b < L))[:, None, :]
    a, b = np.clip(a, 0, L - 1), np.clip(b, 0, L - 1)
    rows = np.arange(n)[:, None]
    terms = lin[0][rows, a][:, :, None] + lin[1][rows, b][:, None, :]
    terms -= cross[a[:, :, None], b[:, None, :]]
    # log Π_i mean_{a,b} N(x_i; S_a t_g + S_b t_p, I) + ½ Σ_i ‖x_i‖², bounded below
    log_mixed = float(logsumexp(np.where(inside, terms, -np.inf), axis=(1, 2)).sum())
    log_mixed -= n * 2 * np.log(L) + np.log(g.size)
    return log_mixed - log_own


def _linear_terms(S: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``⟨x_i, S_a t⟩ − ½‖S_a t‖²`` (V, n, L) of delayed templates `S` (V, L, D) and spikes
    `X` (n, D): with ``⟨S_a t_g, S_b t_p⟩`` subtracted, ``−½‖x_i − S_a t_g − S_b t_p‖² +
    ½‖x_i‖²``."""
    return np.matmul(S, X.T).transpose(0, 2, 1) - 0.5 * np.einsum("vld,vld->vl", S, S)[:, None]


def _most_probable(lin_g: np.ndarray, lin_p: np.ndarray, cross: np.ndarray):
    """Each spike's largest ``lin_g[a] + lin_p[b] − cross[a, b]`` over the delays (n,), and
    where (its ``a`` and ``b``, each (n,))."""
    terms = lin_g[:, :, None] + lin_p[:, None, :] - cross
    flat = terms.reshape(len(terms), -1)
    k = flat.argmax(axis=1)
    return flat[np.arange(len(flat)), k], np.unravel_index(k, cross.shape)


def superposed(
    x: LocalSnippets,
    result: GroupSorting,
    units: np.ndarray,
    fs_hz: float,
    params: SortParams,
    whiten: np.ndarray,
    unwhiten: np.ndarray,
) -> np.ndarray:
    """Which of `units` (single units of the first learning, `result`) are superpositions of
    two others of `units` (``log B > 0``): (len(units),) bool.

    Each unit f is tested on at most ``superposition_spikes`` of its spikes drawn at random,
    their whitened snippets `x` (of the spikes `result` labels) on the channels its model saw
    that all of them hold; the pairs are of the units seen by a model whose channels any of
    those spikes holds. The delays: every shift that keeps a template's peak inside the
    snippet (``ms_before`` and ``ms_after`` of it at the sampling rate `fs_hz`); `whiten` and
    `unwhiten`: the snippets' whitening (:func:`delay_operators`).
    """
    before, after = snippets.window_samples(fs_hz, params.ms_before, params.ms_after)
    delays = delay_operators(np.arange(-before * STEPS, after * STEPS) / STEPS, whiten, unwhiten)
    rng = np.random.default_rng(params.seed)
    rows = result.drift_channels[units]
    weights = result.counts[units] / np.maximum(result.counts[units].sum(1, keepdims=True), 1)
    out = np.zeros(units.size, bool)
    for j, f in enumerate(units):
        idx = np.flatnonzero(result.labels == f)
        pick = np.sort(
            rng.choice(idx, size=min(idx.size, params.superposition_spikes), replace=False)
        )
        held = x.held(pick)
        on = np.intersect1d(rows[j][rows[j] >= 0], held)
        near = [k for k in range(units.size) if k != j and np.isin(rows[k], held).any()]
        if on.size == 0 or len(near) < 2:
            continue
        # each unit's mean snippet over the recording
        t = np.einsum(
            "ve,vect->vct", weights[[j, *near]], result.templates[units[[j, *near]]][:, :, on]
        )
        out[j] = log_bayes_factor(x.take(pick, on), t[0], t[1:], delays, STEPS) > 0
    log.info(
        "%d unit(s) whose spikes are two other units' at once: their templates left out of "
        "the overlap pass",
        int(out.sum()),
    )
    return out
