"""Every spike of a group assigned by its posterior predictive under the refractory mask.

:func:`sort_group` learns (:mod:`neurodict.sort.learn`) then assigns; :func:`relabel` follows
the units a matching pass gave. Batches of ``BATCH_SPIKES`` bound the memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurodict.sort import kernels
from neurodict.sort.join import join_units
from neurodict.sort.learn import Chain, Model, epochs_of, learn, log_posterior
from neurodict.sort.merges import residual_spread
from neurodict.sort.neighbourhoods import Neighbourhoods, whole_group
from neurodict.sort.params import SortParams

BATCH_SPIKES = 20000  # spikes whose posteriors are computed at once (bounds memory)


@dataclass
class GroupSorting:
    """One group's result. ``labels`` index the units; -1 marks spikes no unit may take.

    Units are the clusters with at least ``min_unit_spikes`` spikes, then (when there are any)
    one multi-unit that pools the smaller clusters. A unit whose snippets vary about their mean
    more than ``max_unit_variance`` per whitened coordinate is flagged multi-unit too."""

    labels: np.ndarray  # (n,) index into units, -1 unassigned
    probability: np.ndarray  # (n, U) posterior assignment probabilities (rows sum to 1)
    multi_unit: np.ndarray  # (U,) bool
    presence: np.ndarray  # (U, E) spike counts per epoch
    templates: np.ndarray  # (U, E, M, T) mean waveform per epoch, noise units
    dictionary: np.ndarray  # (T, K_active) atoms in use (all neighbourhoods), mean gain
    features: np.ndarray  # (n_learn, M_c·K_active) learning features for plots; each
    #                             neighbourhood's own space, zero-padded to the widest
    feature_labels: np.ndarray  # (n_learn,) unit index of each learning spike
    feature_centres: np.ndarray  # (n_learn,) neighbourhood of each learning spike
    centres: np.ndarray  # (C,) centre channel (index in the group) of each neighbourhood
    cluster_units: np.ndarray  # (C, H) unit of each neighbourhood's model cluster, -1 none
    trace: np.ndarray  # (n_sweeps,) joint log-likelihood per sweep (all chains)
    n_atoms: np.ndarray  # (n_sweeps,) atoms in use per sweep (all chains)


def sort_group(
    x: np.ndarray,
    samples: np.ndarray,
    fs_hz: float,
    duration_s: float,
    params: SortParams | None = None,
    nb: Neighbourhoods | None = None,
    progress: bool = False,
) -> GroupSorting:
    """Sort one group's aligned snippets: :func:`learn`, then :func:`assign` every spike.

    Parameters
    ----------
    x : ndarray (n, M, T)
        Snippets in whitened noise units (:mod:`neurodict.sort.snippets`), time order.
    samples : ndarray (n,)
        Their aligned peak samples, sorted.
    fs_hz, duration_s : float
        Sampling rate and recording length.
    params : SortParams, optional
        Default: the schema's defaults.
    nb : Neighbourhoods, optional
        The group's neighbourhoods; by default one holding every channel.
    progress : bool
        Show a progress bar over sweeps.
    """
    params = params if params is not None else SortParams()
    nb = nb if nb is not None else whole_group(x.shape[1])
    model = learn(x, samples, fs_hz, duration_s, params, nb, progress=progress)
    return assign(model, x, samples, fs_hz, duration_s, params)


def posteriors(
    chain: Chain, x: np.ndarray, epoch: np.ndarray, batch_spikes: int = BATCH_SPIKES
) -> tuple[np.ndarray, np.ndarray]:
    """Log posterior of each cluster under the point estimate (n, H), and the posterior
    probabilities averaged over the kept samples (n, H), computed in batches of spikes."""
    n, H = x.shape[0], chain.best.mu.shape[0]
    logp, prob = np.empty((n, H)), np.zeros((n, H))
    for start in range(0, n, batch_spikes):
        sl = slice(start, start + batch_spikes)
        xb = x[sl].astype(np.float64)
        logp[sl] = log_posterior(xb, epoch[sl], chain.best)
        for st in chain.kept:
            lp = log_posterior(xb, epoch[sl], st)
            p = np.exp(lp - lp.max(1, keepdims=True))
            prob[sl] += p / p.sum(1, keepdims=True)
    return logp, prob / len(chain.kept)


def _by_neighbourhood(model: Model, x: np.ndarray, epoch: np.ndarray):
    """Per neighbourhood: its spikes' indices and their posterior (log point-estimate, mean
    probabilities) under its chain, on its channels."""
    centre = model.nb.of_spikes(x)
    for c, chain in enumerate(model.chains):
        idx = np.flatnonzero(centre == c)
        yield c, idx, *posteriors(chain, x[idx][:, model.nb.channels[c]], epoch[idx])


def assign(
    model: Model,
    x: np.ndarray,
    samples: np.ndarray,
    fs_hz: float,
    duration_s: float,
    params: SortParams,
) -> GroupSorting:
    """Posterior predictive labels of every spike (refractory mask), probabilities, summaries.

    Each spike is labelled by its neighbourhood's chain. Clusters with at least
    ``min_unit_spikes`` spikes become units (clusters that are one neuron join,
    :func:`join_units`), in cluster order; smaller ones pool into one
    multi-unit (``cluster_units`` records the map). A joined unit keeps the refractory
    guarantee: a spike closer than ``refractory_ms`` to the one before it is left unassigned.
    """
    ref = params.refractory_samples(fs_hz)
    epoch, E = epochs_of(samples, fs_hz, duration_s, params.epoch_s)
    C, H = model.nb.n_centres, params.max_clusters
    clusters, probs = np.full(x.shape[0], -1), []
    for c, idx, logp, prob in _by_neighbourhood(model, x, epoch):
        lo, hi = kernels.refractory_neighbours(samples[idx], ref)
        local = kernels.masked_labels(
            logp, kernels.colour_classes(samples[idx], ref), lo, hi, np.full(idx.size, -1, np.int64)
        )
        clusters[idx] = np.where(local >= 0, c * H + local, -1)
        probs.append((idx, prob))
    sizes = np.bincount(clusters[clusters >= 0], minlength=C * H)
    used = np.flatnonzero(sizes >= max(params.min_unit_spikes, 1))
    small = np.flatnonzero((sizes > 0) & (sizes < params.min_unit_spikes))
    cluster_units = np.full(C * H, -1)
    cluster_units[used] = join_units(
        x, samples, epoch, E, clusters, used, used // H, model.nb, ref, params
    )
    n_single = int(cluster_units.max()) + 1 if used.size else 0
    cluster_units[small] = n_single
    labels = _refractory(
        np.where(clusters >= 0, cluster_units[np.maximum(clusters, 0)], -1), samples, ref, n_single
    )
    n_units = n_single + int(small.size > 0)
    return _summary(
        model,
        x,
        epoch,
        labels,
        probs,
        cluster_units.reshape(C, H),
        np.arange(n_units) >= n_single,
        params,
    )


def relabel(
    model: Model,
    first: GroupSorting,
    x: np.ndarray,
    samples: np.ndarray,
    units: np.ndarray,
    fs_hz: float,
    duration_s: float,
    params: SortParams,
) -> GroupSorting:
    """`first`'s units given to new spikes (template matching), labels `units`, then joined
    once more (:func:`join_units` on the single units: matching gives every unit its
    overlapping spikes, which may show two pieces of a drifting neuron to be one); posterior
    probabilities from the chains through ``first.cluster_units``; units multi-unit in `first`
    stay so."""
    ref = params.refractory_samples(fs_hz)
    epoch, E = epochs_of(samples, fs_hz, duration_s, params.epoch_s)
    single = np.flatnonzero(~first.multi_unit)
    home = model.nb.of_spikes(first.templates.mean(axis=1))
    joined = join_units(x, samples, epoch, E, units, single, home[single], model.nb, ref, params)
    new = np.empty(first.multi_unit.size, np.int64)
    new[single] = joined
    new[first.multi_unit] = joined.max(initial=-1) + 1 + np.arange(first.multi_unit.sum())
    n_single = int(joined.max(initial=-1)) + 1
    labels = _refractory(
        np.where(units >= 0, new[np.maximum(units, 0)], -1), samples, ref, n_single
    )
    cluster_units = np.where(first.cluster_units >= 0, new[np.maximum(first.cluster_units, 0)], -1)
    probs = [(idx, prob) for _, idx, _, prob in _by_neighbourhood(model, x, epoch)]
    return _summary(
        model,
        x,
        epoch,
        labels,
        probs,
        cluster_units,
        np.arange(new.max(initial=-1) + 1) >= n_single,
        params,
    )


def _refractory(labels: np.ndarray, samples: np.ndarray, ref: int, n_single: int) -> np.ndarray:
    """`labels` with each spike of a single unit (``< n_single``) closer than ``Δ_ref`` to the
    one kept before it set to -1 (joined units keep the refractory guarantee)."""
    keep = kernels.refractory_free_units(samples, labels, np.arange(n_single), ref)
    return np.where(keep, labels, -1)


def _templates(
    x: np.ndarray, epoch: np.ndarray, labels: np.ndarray, n_units: int, n_epochs: int
) -> np.ndarray:
    """Mean snippet of each unit per epoch (U, E, M, T); the unit's overall mean in epochs
    where it has no spikes."""
    out = np.zeros((n_units, n_epochs) + x.shape[1:])
    for k in range(n_units):
        idx = np.flatnonzero(labels == k)
        if idx.size == 0:
            continue
        sums = np.zeros((n_epochs,) + x.shape[1:])
        np.add.at(sums, epoch[idx], x[idx])
        counts = np.bincount(epoch[idx], minlength=n_epochs)
        overall = sums.sum(0) / idx.size
        out[k] = np.where(
            counts[:, None, None] > 0, sums / np.maximum(counts, 1)[:, None, None], overall
        )
    return out


def _summary(
    model: Model, x, epoch, labels, probs, cluster_units, pooled, params: SortParams
) -> GroupSorting:
    n_units = pooled.size
    E = model.chains[0].n_epochs
    probability = np.zeros((x.shape[0], n_units))
    for c, (idx, prob) in enumerate(probs):
        for h in np.flatnonzero(cluster_units[c] >= 0):
            probability[idx, cluster_units[c, h]] += prob[:, h]
    probability /= np.maximum(probability.sum(1, keepdims=True), 1e-300)
    counts = np.zeros((n_units, E), np.int64)
    np.add.at(counts, (labels[labels >= 0], epoch[labels >= 0]), 1)
    templates = _templates(x, epoch, labels, n_units, E)
    home = model.nb.of_spikes(templates.mean(axis=1))
    spread = np.empty(n_units)
    for k in range(n_units):
        idx, chans = np.flatnonzero(labels == k), model.nb.channels[home[k]]
        spread[k] = residual_spread(x[idx][:, chans], templates[k, epoch[idx]][:, chans])
    atoms, features, centres = [], [], []
    for c, chain in enumerate(model.chains):
        best = chain.best
        active = np.flatnonzero(best.z)
        atoms.append(best.A[:, active] * best.w[:, active].mean(0))
        features.append(best.s[:, :, active].reshape(chain.learn_size, -1))
        centres.append(np.full(chain.learn_size, c))
    width = max(f.shape[1] for f in features)
    return GroupSorting(
        labels=labels,
        probability=probability.astype(np.float32),
        multi_unit=pooled | (spread > params.max_unit_variance),
        presence=counts,
        templates=templates.astype(np.float32),
        dictionary=np.concatenate(atoms, axis=1).astype(np.float32),
        features=np.concatenate(
            [np.pad(f, ((0, 0), (0, width - f.shape[1]))) for f in features]
        ).astype(np.float32),
        feature_labels=np.concatenate(
            [cluster_units[c][ch.best.labels] for c, ch in enumerate(model.chains)]
        ),
        feature_centres=np.concatenate(centres),
        centres=model.nb.centres,
        cluster_units=cluster_units,
        trace=np.sum([ch.trace for ch in model.chains], axis=0),
        n_atoms=np.sum([ch.n_atoms for ch in model.chains], axis=0),
    )
