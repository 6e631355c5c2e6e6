"""Learning one group's model on a bounded subsample (MODELS.md section 1): at most
``max_spikes_per_epoch`` spikes per epoch and ``max_learn_spikes`` in all, drawn at random, so
that learning holds the same memory however long the recording.

The chain starts from SVD features and k-means; burn-in sweeps carry split–merge moves
(:mod:`neurodict.sort.splitmerge`), which change which cluster slot holds a unit and so are
left out of the sweeps that are kept (the Gibbs sweeps alone keep the same posterior). The
highest-likelihood sample is the point estimate and the last ``n_keep`` samples give each
spike's posterior assignment probabilities, presence and drift.
A wide group is learned per channel neighbourhood, one chain each, in parallel processes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
from tqdm.auto import tqdm

from neurodict.common.jobs import worker_pool
from neurodict.sort import dbksvd, kernels
from neurodict.sort.dhdp import epoch_weights
from neurodict.sort.kbp import Kernel
from neurodict.sort.local import LocalSnippets
from neurodict.sort.model import Data, Sampler, State, marginal_log_lik
from neurodict.sort.neighbourhoods import Neighbourhoods
from neurodict.sort.params import SortParams

log = logging.getLogger(__name__)
_DBKSVD_CHUNK_ROWS = 65536  # rows coded at once: memory, not results


def epochs_of(samples: np.ndarray, fs_hz: float, duration_s: float, epoch_s: float):
    """Epoch index of each spike and the number of epochs (a last short epoch joins the one
    before when under half an epoch)."""
    n_epochs = max(1, int(round(duration_s / epoch_s)))
    return np.minimum((samples / fs_hz / epoch_s).astype(np.int64), n_epochs - 1), n_epochs


def subsample(
    epoch: np.ndarray, n_epochs: int, per_epoch: int, rng: np.random.Generator
) -> np.ndarray:
    """Sorted indices: at most `per_epoch` spikes drawn at random from each epoch."""
    keep = [
        rng.choice(idx, size=min(per_epoch, idx.size), replace=False)
        for idx in (np.flatnonzero(epoch == e) for e in range(n_epochs))
    ]
    return np.sort(np.concatenate(keep))


def per_epoch_cap(params: SortParams, n_epochs: int) -> int:
    """Spikes a chain learns from in each epoch at most: ``max_spikes_per_epoch``, and
    ``max_learn_spikes`` in all."""
    return min(params.max_spikes_per_epoch, -(-params.max_learn_spikes // n_epochs))


@dataclass
class Chain:
    """What the sampler learned on one neighbourhood: the point estimate and the kept samples."""

    best: State
    kept: list[State]
    n_epochs: int
    learn_size: int
    trace: np.ndarray  # joint log-likelihood per sweep
    n_atoms: np.ndarray  # atoms in use at the start and after each sweep


@dataclass
class Model:
    """What the sampler learned on a group: one chain per neighbourhood."""

    chains: list[Chain]
    nb: Neighbourhoods


def learn(
    x: LocalSnippets,
    samples: np.ndarray,
    channels: np.ndarray,
    fs_hz: float,
    duration_s: float,
    params: SortParams,
    nb: Neighbourhoods,
    n_jobs: int = 1,
    progress: bool = False,
    learnable: np.ndarray | None = None,
) -> Model:
    """One chain per neighbourhood, on its spikes and channels (arguments as
    :func:`sort_group`; each spike in the neighbourhood nearest its channel; `n_jobs`
    processes run neighbourhoods in parallel). Neighbourhood ``c`` is seeded ``seed + c``.
    `learnable` (n,) bool, optional: the spikes a chain's subsample is drawn from (all by
    default); the others are only labelled."""
    centre = nb.of_channels(channels)
    if learnable is None:
        learnable = np.ones(samples.size, bool)

    def job(c: int) -> tuple:
        return chain_inputs(
            x,
            np.flatnonzero(centre == c),
            nb.channels[c],
            samples,
            learnable,
            fs_hz,
            duration_s,
            replace(params, seed=params.seed + c),
            progress and nb.n_centres == 1,
            None if nb.locations_um is None else nb.locations_um[nb.channels[c]],
        )

    if n_jobs > 1 and nb.n_centres > 1:
        # the largest chains first, so that the last to start are the shortest and the
        # workers finish together; each chain is seeded by its neighbourhood, so the order
        # changes no result
        epoch, E = epochs_of(samples, fs_hz, duration_s, params.epoch_s)
        counts = np.zeros((nb.n_centres, E), np.int64)
        np.add.at(counts, (centre[learnable], epoch[learnable]), 1)
        learned = np.minimum(counts, per_epoch_cap(params, E)).sum(axis=1)
        order = np.argsort(-learned * [c.size for c in nb.channels], kind="stable")
        chains = [None] * nb.n_centres
        with worker_pool(min(n_jobs, nb.n_centres)) as pool:
            done = pool.map(_learn_chain, *zip(*map(job, order), strict=True))
            bar = tqdm(done, total=nb.n_centres, desc="neighbourhoods", disable=not progress)
            for c, chain in zip(order, bar, strict=True):
                chains[c] = chain
    else:  # one neighbourhood's snippets at a time
        chains = [_learn_chain(*job(c)) for c in range(nb.n_centres)]
    return Model(chains, nb)


def chain_inputs(
    x: LocalSnippets,
    rows: np.ndarray,
    channels: np.ndarray,
    samples: np.ndarray,
    learnable: np.ndarray,
    fs_hz: float,
    duration_s: float,
    params: SortParams,
    progress: bool,
    channel_um: np.ndarray | None = None,
) -> tuple:
    """The arguments of :func:`_learn_chain` for the neighbourhood of the spikes `rows` on
    `channels` (at `channel_um`, None where the group is one neighbourhood): its subsample's
    snippets (the others are never copied, nor sent to a worker)
    drawn with the chain's generator (seeded ``params.seed``) and, for DB-KSVD, every one of
    its spikes' snippets."""
    rng = np.random.default_rng(params.seed)
    subset = rows[
        learning_subsample(samples[rows], learnable[rows], fs_hz, duration_s, params, rng)
    ]
    every = None if params.init_dictionary == "svd" else x.take(rows, channels)
    return (
        x.take(subset, channels),
        samples[subset],
        every,
        rng,
        fs_hz,
        duration_s,
        params,
        progress,
        channel_um,
    )


def learning_subsample(
    samples: np.ndarray,
    learnable: np.ndarray,
    fs_hz: float,
    duration_s: float,
    params: SortParams,
    rng: np.random.Generator,
) -> np.ndarray:
    """Sorted indices of one neighbourhood's spikes (at `samples`) that its chain learns from:
    at most :func:`per_epoch_cap` per epoch, drawn from the `learnable` ones (from all where
    fewer than ``min_learn_spikes`` are)."""
    epoch, E = epochs_of(samples, fs_hz, duration_s, params.epoch_s)
    if learnable.sum() < params.min_learn_spikes:
        learnable = np.ones_like(learnable)
    return np.flatnonzero(learnable)[subsample(epoch[learnable], E, per_epoch_cap(params, E), rng)]


def _learn_chain(
    x: np.ndarray,
    samples: np.ndarray,
    every: np.ndarray | None,
    rng: np.random.Generator,
    fs_hz: float,
    duration_s: float,
    params: SortParams,
    progress: bool,
    channel_um: np.ndarray | None = None,
) -> Chain:
    """The chain of one neighbourhood on its subsample's snippets `x` (n, M_c, T) at `samples`
    (:func:`learning_subsample`, drawn with `rng`, which the chain goes on with); `every`: all
    the neighbourhood's snippets, which DB-KSVD learns its atoms from (None for ``svd``);
    `channel_um` (M_c, 2): where its channels are, for the kernel beta process
    (:meth:`neurodict.sort.kbp.Kernel.of_chain`; None: the beta–Bernoulli process)."""
    ref = params.refractory_samples(fs_hz)
    epoch, E = epochs_of(samples, fs_hz, duration_s, params.epoch_s)
    data = _data(x.astype(np.float64), samples, epoch, E, ref)
    K = min(params.max_atoms, x.shape[2], x.shape[0] * x.shape[1])  # at most the data's rank
    sampler = Sampler(
        data,
        K,
        params.max_clusters,
        params.drift,
        params.drift_sd,
        params.n_init_clusters,
        rng,
        params.priors,
        params.split_merge_axes,
        params.split_merge_two_means_iterations,
        params.split_merge_min_allocation,
        params.split_merge_neighbours,
        _start(every, x, K, params),
        params.heavy_tails,
        None if channel_um is None else Kernel.of_chain(channel_um, params.kernel_widths_um),
        params.dhdp_iterations,
    )
    trace, atoms = [], [int(sampler.state.z.sum())]
    bar = tqdm(
        total=params.n_burn + params.n_samples, desc="gibbs", disable=not progress, leave=False
    )

    def sweep(split_merge=0):
        st = sampler.sweep(split_merge)
        trace.append(st.log_lik)
        atoms.append(int(st.z.sum()))
        bar.update()
        return st

    moves = {"split": 0, "merge": 0}
    for _ in range(params.n_burn):
        sweep(params.split_merge_proposals)
        moves = {k: v + sampler.accepted[k] for k, v in moves.items()}
    log.info(
        "burn-in: %d splits and %d merges accepted; %d atoms and %d clusters in use; "
        "clusters' degrees of freedom ν = %.3g",
        moves["split"],
        moves["merge"],
        int(sampler.state.z.sum()),
        np.unique(sampler.state.labels).size,
        sampler.state.nu,
    )
    best, kept = None, []
    for _ in range(params.n_samples):
        st = sweep()
        if best is None or st.log_lik > best.log_lik:
            best = st.predictive(labelled=True)
        kept = (kept + [st.predictive()])[-params.n_keep :]
    bar.close()
    return Chain(best, kept, E, x.shape[0], np.array(trace), np.array(atoms))


def _start(every: np.ndarray | None, x: np.ndarray, K: int, params: SortParams):
    """``init_dictionary: dbksvd``: DB-KSVD's K atoms learned from every channel of `every`
    spike and the sparse codes of the subsample's snippets `x` as features, ((T, K), (n, M,
    K)); None for ``svd`` (the sampler starts from the SVD of its subsample)."""
    if every is None:
        return None
    N, M, T = every.shape
    atoms = dbksvd.learn(
        dbksvd.chunks_of(every.reshape(N * M, T), _DBKSVD_CHUNK_ROWS),
        K,
        params.dbksvd_nonzero,
        params.dbksvd_iterations,
        params.dbksvd_atom_batch,
        seed=params.seed,
    ).atoms
    rows = x.reshape(-1, T)
    codes = dbksvd.dense_codes(*dbksvd.encode(atoms, rows, params.dbksvd_nonzero), K)
    return atoms, codes.reshape(x.shape[0], M, K)


def _data(x, samples, epoch, n_epochs, ref) -> Data:
    lo, hi = kernels.refractory_neighbours(samples, ref)
    return Data(
        x=x,
        epoch=epoch,
        n_epochs=n_epochs,
        classes=kernels.colour_classes(samples, ref),
        lo=lo,
        hi=hi,
        samples=samples,
        refractory_samples=ref,
    )


def log_posterior(x, epoch, state: State) -> np.ndarray:
    weights, _ = epoch_weights(state.omega, state.pis)
    return marginal_log_lik(x, epoch, state) + np.log(weights[epoch] + 1e-300)
