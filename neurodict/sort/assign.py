"""Every spike of a group labelled by the model's posterior, and the posterior's summaries.

:func:`sort_group` learns (:mod:`neurodict.sort.learn`) then assigns. A spike's label is its
marginal posterior mode over the kept samples (the posterior probabilities averaged over them),
under the refractory constraint: spikes are labelled in colour classes
(:mod:`neurodict.sort.kernels`), and a spike whose mode is taken by a neighbour closer than
``Δ_ref`` gets its next most probable cluster. Batches of ``BATCH_SPIKES`` bound the memory.

Units are the clusters with at least ``min_unit_spikes`` spikes (clusters of the same or adjacent
neighbourhoods that are one neuron joined by :func:`neurodict.sort.join.join_units`), then one
multi-unit that pools the smaller clusters. No spike is dropped: each has a reason code
(:data:`REASONS`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from neurodict.sort import kernels, snippets
from neurodict.sort.dhdp import epoch_weights
from neurodict.sort.disk import DiskArray
from neurodict.sort.epoch_sums import EpochSums
from neurodict.sort.join import delay_grid, join_units
from neurodict.sort.learn import Chain, Model, epochs_of, learn, log_posterior
from neurodict.sort.local import LocalSnippets
from neurodict.sort.model import dictionary, in_use
from neurodict.sort.neighbourhoods import Neighbourhoods, peak_channels, whole_group
from neurodict.sort.params import SortParams

log = logging.getLogger(__name__)
BATCH_SPIKES = 20000  # spikes whose posteriors are computed at once (bounds memory)
TINY = np.finfo(np.float32).tiny
#: Why a spike is where it is: in a single unit, in a multi-unit (a cluster under
#: ``min_unit_spikes``, a unit broader than ``max_unit_variance``, a unit whose template peaks
#: under the detection threshold or whose detected peaks noise crossings would give:
#: :func:`neurodict.sort.run.made_multi_units`), or in no unit (two clusters joined as one
#: neuron both held it and a spike closer than ``Δ_ref``).
REASONS = ("single_unit", "multi_unit", "refractory_conflict")


@dataclass
class GroupSorting:
    """One group's result. ``labels`` index the units; -1 marks spikes left in no unit."""

    labels: np.ndarray  # (n,) index into units, -1 unassigned
    reason: np.ndarray  # (n,) int8 index into REASONS
    probability: sparse.csr_array  # (n, U) posterior assignment probabilities (rows sum to
    #                                 1), on the units of the spike's neighbourhood's clusters
    multi_unit: np.ndarray  # (U,) bool
    counts: np.ndarray  # (U, E) spikes per epoch
    presence: np.ndarray  # (U, E) posterior P(epoch weight > presence_weight)
    templates: np.ndarray  # (U, E, M, T) mean snippet per epoch, noise units
    drift: np.ndarray  # (S, U, E, C, T) kept posterior samples of each unit's mean waveform
    #                     on its drift_channels (its model's; padding past them)
    drift_channels: np.ndarray  # (U, C) the group's channel of each, padded with -1
    dictionary: np.ndarray  # (T, K_active) atoms in use (all neighbourhoods), mean gain
    features: np.ndarray  # (n_learn, M_c·K_active) learning features for plots; each
    #                             neighbourhood's own space, zero-padded to the widest
    feature_labels: np.ndarray  # (n_learn,) unit index of each learning spike
    feature_centres: np.ndarray  # (n_learn,) neighbourhood of each learning spike
    centres: np.ndarray  # (C,) centre channel (index in the group) of each neighbourhood
    cluster_units: np.ndarray  # (C, H) unit of each neighbourhood's model cluster, -1 none
    trace: np.ndarray  # (n_sweeps,) joint log-likelihood per sweep (all chains)
    n_atoms: np.ndarray  # (n_sweeps + 1,) atoms in use at the start and after each sweep


def sort_group(
    x: np.ndarray,
    samples: np.ndarray,
    fs_hz: float,
    duration_s: float,
    params: SortParams | None = None,
    nb: Neighbourhoods | None = None,
    progress: bool = False,
    channels: np.ndarray | None = None,
) -> GroupSorting:
    """Sort one group's aligned snippets: :func:`learn`, then :func:`assign` every spike.

    Parameters
    ----------
    x : ndarray (n, M, T)
        Snippets in noise units, one coordinate per sample (the joins' delays re-cut them
        sample by sample; :func:`neurodict.sort.run.sort_recording_group` sorts whitened
        ones), time order.
    samples : ndarray (n,)
        Their aligned peak samples, sorted.
    fs_hz, duration_s : float
        Sampling rate and recording length.
    params : SortParams, optional
        Default: the schema's defaults.
    nb : Neighbourhoods, optional
        The group's neighbourhoods; by default one holding every channel.
    progress : bool
        Show progress bars over sweeps and the join's pairs.
    channels : ndarray (n,), optional
        The channel each spike was found on, which places it in the neighbourhood nearest
        that channel; by default the channel of its snippet's largest energy
        (:func:`neurodict.sort.neighbourhoods.peak_channels`).
    """
    params = params if params is not None else SortParams()
    nb = nb if nb is not None else whole_group(x.shape[1])
    channels = channels if channels is not None else peak_channels(x)
    x = LocalSnippets.full(x)
    model = learn(x, samples, channels, fs_hz, duration_s, params, nb, progress=progress)
    T = x.shape[2]
    delays = snippets.delay_operators(delay_grid(params, fs_hz), np.eye(T), np.eye(T))
    return assign(model, x, samples, channels, fs_hz, duration_s, params, delays, progress=progress)


def posterior_probabilities(
    chain: Chain,
    x: LocalSnippets,
    idx: np.ndarray,
    channels: np.ndarray,
    epoch: np.ndarray,
    batch_spikes: int = BATCH_SPIKES,
) -> np.ndarray:
    """The posterior cluster probabilities of the spikes `idx` of `x` on their neighbourhood's
    `channels`, averaged over the kept samples (len(idx), H) float32, in batches of spikes (each
    batch's snippets gathered alone: the group's snippets are never copied whole)."""
    H = chain.best.mu.shape[0]
    prob = np.zeros((idx.size, H), np.float32)
    for start in range(0, idx.size, batch_spikes):
        sl = slice(start, start + batch_spikes)
        xb = x.take(idx[sl], channels).astype(np.float64)
        for st in chain.kept:
            p = log_posterior(xb, epoch[idx[sl]], st)
            p -= p.max(1, keepdims=True)
            np.exp(p, out=p)
            prob[sl] += p / p.sum(1, keepdims=True)
    prob /= len(chain.kept)
    return prob


def assign(
    model: Model,
    x: LocalSnippets,
    samples: np.ndarray,
    channels: np.ndarray,
    fs_hz: float,
    duration_s: float,
    params: SortParams,
    delays: np.ndarray,
    n_jobs: int = 1,
    progress: bool = False,
) -> GroupSorting:
    """Posterior labels of every spike (refractory constraint; each spike in the neighbourhood
    nearest its channel of `channels`), probabilities, summaries; `delays`: the joins' delay
    operators in the snippets' coordinates (:func:`neurodict.sort.join.log_bayes_factor`);
    `n_jobs`: the join's processes; `progress`: the join's progress bar."""
    ref = params.refractory_samples(fs_hz)
    epoch, E = epochs_of(samples, fs_hz, duration_s, params.epoch_s)
    C, H = model.nb.n_centres, params.max_clusters
    centre = model.nb.of_channels(channels)
    clusters = np.full(x.shape[0], -1)
    probs = []
    for c, chain in enumerate(model.chains):
        idx = np.flatnonzero(centre == c)
        prob = posterior_probabilities(chain, x, idx, model.nb.channels[c], epoch)
        lo, hi = kernels.refractory_neighbours(samples[idx], ref)
        local = kernels.masked_labels(  # greedy: the most probable cluster the mask allows
            prob, kernels.colour_classes(samples[idx], ref), lo, hi, np.full(idx.size, -1, np.int64)
        )
        clusters[idx] = np.where(local >= 0, c * H + local, -1)
        held = DiskArray(prob.shape)  # as they are reported, in a file through the join
        held[...] = prob
        probs.append((idx, held))
    sizes = np.bincount(clusters[clusters >= 0], minlength=C * H)
    used = np.flatnonzero(sizes >= max(params.min_unit_spikes, 1))
    small = np.flatnonzero((sizes > 0) & (sizes < params.min_unit_spikes))
    cluster_units = np.full(C * H, -1)
    bins, n_bins = epochs_of(samples, fs_hz, duration_s, params.join_epoch_s)
    cluster_units[used] = join_units(
        x, bins, n_bins, clusters, used, used // H, model.nb, params, delays, n_jobs, progress
    )
    n_single = int(cluster_units.max()) + 1 if used.size else 0
    cluster_units[small] = n_single
    cluster_units = cluster_units.reshape(C, H)
    n_units = n_single + int(small.size > 0)
    probability = unit_probabilities(probs, cluster_units, x.shape[0], n_units)
    labels = np.where(clusters >= 0, cluster_units.ravel()[np.maximum(clusters, 0)], -1)
    labels = _joined_conflicts(labels, samples, probability, ref, n_single)
    return _summary(model, x, epoch, labels, probability, cluster_units, n_single, params)


def unit_probabilities(probs, cluster_units: np.ndarray, n: int, n_units: int):
    """Each spike's posterior probability of each unit, (n, `n_units`) sparse: the sum of its
    probabilities of the clusters that are the unit (`probs`: per neighbourhood its spikes and
    their cluster probabilities (n_c, H); `cluster_units` (C, H), -1 for a cluster in no unit),
    normalised to sum to 1 (a row of zeros where none of its clusters is in a unit). A spike's
    entries are the units of its neighbourhood's clusters, a few of the group's: held dense,
    the probabilities of a 384-channel shank's ten minutes were 3.2 GB."""
    counts = np.zeros(n, np.int64)
    parts = []
    for c, (idx, held) in enumerate(probs):
        on = np.flatnonzero(cluster_units[c] >= 0)
        units, column = np.unique(cluster_units[c, on], return_inverse=True)
        gather = np.zeros((on.size, units.size), np.float32)
        gather[np.arange(on.size), column] = 1  # clusters joined as one unit summed
        parts.append((idx, units, held[:, on] @ gather if on.size else None))
        counts[idx] = units.size
    indptr = np.r_[0, np.cumsum(counts)]
    indices = np.empty(indptr[-1], np.int64)
    data = np.empty(indptr[-1], np.float32)
    for idx, units, p in parts:
        if units.size:
            at = indptr[idx][:, None] + np.arange(units.size)
            indices[at], data[at] = units, p / np.maximum(p.sum(1, keepdims=True), TINY)
    probability = sparse.csr_array((data, indices, indptr), shape=(n, n_units))
    probability.eliminate_zeros()
    return probability


def _joined_conflicts(labels, samples, probability, ref: int, n_single: int) -> np.ndarray:
    """`labels` with, of two spikes closer than ``Δ_ref`` in one unit (they came from two
    joined clusters, each free of conflicts), the less probable one left in no unit."""
    labels = labels.copy()
    for k in range(n_single):
        idx = np.flatnonzero(labels == k)
        close = np.flatnonzero(np.diff(samples[idx]) < ref)
        if close.size == 0:
            continue
        pair = np.c_[idx[close], idx[close + 1]]
        of_k = probability[pair.ravel(), np.full(pair.size, k)].reshape(pair.shape)
        worse = pair[np.arange(len(pair)), of_k.argmin(1)]
        labels[worse] = -1
        log.info(
            "unit %d: %d spikes left in no unit (refractory conflict after a join)",
            k,
            np.unique(worse).size,
        )
    return labels


def residual_spread(x: LocalSnippets, idx: np.ndarray, channels: np.ndarray, means, epoch) -> float:
    """Median over the spikes `idx` of the mean squared residual per whitened coordinate of their
    snippets (`x` on `channels`, those of them each holds) about their epoch's mean (`means`
    (E, M, T)) scaled to its amplitude: about 1 for a single unit in white noise, however it
    drifts and whatever its amplitude jitter; a mixture of units or of overlapping spikes gives
    more; infinite for a spike that holds none of `channels` (found too far away to be the
    unit's). In batches of spikes of one store (the unit's snippets are never copied
    whole)."""
    if idx.size < 2:
        return np.inf
    values, store = np.full(idx.size, np.inf), x.store[idx]
    for s in np.unique(store):
        mine = np.flatnonzero(store == s)
        on = np.intersect1d(channels, x.held(idx[mine]))
        for i in range(0, mine.size if on.size else 0, BATCH_SPIKES):
            at = mine[i : i + BATCH_SPIKES]
            xb = x.take(idx[at], on).reshape(at.size, -1)
            mb = means[:, on][epoch[idx[at]]].reshape(at.size, -1)  # never on every channel
            scale = np.einsum("id,id->i", xb, mb) / np.maximum(np.einsum("id,id->i", mb, mb), 1e-12)
            mb *= -scale[:, None]
            mb += xb  # the residual, in place
            values[at] = np.einsum("id,id->i", mb, mb) / mb.shape[1]
    return float(np.median(values))


def reasons(labels: np.ndarray, multi_unit: np.ndarray) -> np.ndarray:
    """Each spike's index into :data:`REASONS` from its unit and the units' multi-unit flags."""
    return np.where(labels < 0, 2, multi_unit[np.maximum(labels, 0)]).astype(np.int8)


def dhdp_posterior(model: Model, cluster_units: np.ndarray, n_units: int, presence_weight: float):
    """Presence and drift of each unit from the kept samples of the chains.

    Presence: the posterior probability that the unit's epoch weight ``w_{e,c}`` (summed over
    the clusters that make it up) exceeds `presence_weight`. Drift: ``D_m μ_{c,m,e}``, the
    model's mean waveform, of the unit's largest cluster on its neighbourhood's channels, one
    per kept sample, and those channels (:func:`on_every_channel` spreads them over the
    group's). Returns (U, E), (S, U, E, C, T) and (U, C) (C the widest neighbourhood).
    """
    chains = model.chains
    E, T = chains[0].n_epochs, chains[0].best.A.shape[0]
    S = min(len(ch.kept) for ch in chains)
    weight = np.zeros((S, n_units, E))
    width = max(c.size for c in model.nb.channels)
    waves = np.zeros((S, n_units, E, width, T), np.float32)
    channels = np.full((n_units, width), -1, np.int64)
    sizes = [np.bincount(ch.best.labels, minlength=cluster_units.shape[1]) for ch in chains]
    largest = {}  # unit -> (size, chain, cluster)
    for c, h in zip(*np.nonzero(cluster_units >= 0), strict=True):
        u = cluster_units[c, h]
        largest[u] = max(largest.get(u, (-1, 0, 0)), (sizes[c][h], c, h))
    for c, chain in enumerate(chains):
        for s, st in enumerate(chain.kept[-S:]):
            w, _ = epoch_weights(st.omega, st.pis)  # (E, H)
            for h in np.flatnonzero(cluster_units[c] >= 0):
                weight[s, cluster_units[c, h]] += w[:, h]
    for u, (_, c, h) in largest.items():
        chans = model.nb.channels[c]
        channels[u, : chans.size] = chans
        for s, st in enumerate(chains[c].kept[-S:]):
            mu = st.mu[h][..., st.z]  # (M_c, E, Ka)
            if st.consider is not None:  # the atoms the cluster considers
                mu = mu * st.consider[h][st.z]
            waves[s, u, :, : chans.size] = np.einsum("mtk,mek->emt", dictionary(st), mu)
    return (weight > presence_weight).mean(0), waves, channels


def on_every_channel(values: np.ndarray, channels: np.ndarray, n_channels: int) -> np.ndarray:
    """Values per unit on its channels (..., U, E, C, T), `channels` (U, C) padded with -1,
    spread over the group's `n_channels` (..., U, E, M, T): NaN on the channels a unit's
    model did not see."""
    out = np.full((*values.shape[:-2], n_channels, values.shape[-1]), np.nan, values.dtype)
    for u, row in enumerate(channels):
        on = np.flatnonzero(row >= 0)
        out[..., u, :, :, :][..., row[on], :] = values[..., u, :, :, :][..., on, :]
    return out


def learning_features(chains) -> np.ndarray:
    """The features of every chain's learning spikes in its best sample, on the atoms it uses
    (n_learn, M_c·K_active), each chain's zero-padded to the widest: written chain by chain
    into one float32 array (a float64 copy of all of them, padded, held 2.5 times its size
    at the end of a 64-channel sort). Zero on an atom a spike's cluster does not consider
    (the kernel beta process's ``c``: the sampler's features there are its conditional's
    draws, which explain nothing of the spike)."""
    widths = [ch.best.s.shape[1] * int(ch.best.z.sum()) for ch in chains]
    out = np.zeros((sum(ch.learn_size for ch in chains), max(widths)), np.float32)
    start = 0
    for chain, width in zip(chains, widths, strict=True):
        best, c = chain.best, in_use(chain.best)
        s = best.s if c is None else best.s * c[:, None, :]
        out[start : start + chain.learn_size, :width] = s[:, :, best.z].reshape(
            chain.learn_size, width
        )
        start += chain.learn_size
    return out


def _summary(
    model: Model, x, epoch, labels, probability, cluster_units, n_single: int, params: SortParams
) -> GroupSorting:
    n_units = probability.shape[1]
    E = model.chains[0].n_epochs
    sums = EpochSums.zeros(x.stores, x.store, labels, n_units, E, *x.shape[1:])
    kernels.add_epoch_sums(sums, x, epoch, labels)
    templates = sums.means()  # mean snippet per unit and epoch (U, E, M, T)
    home = model.nb.of_spikes(templates.mean(axis=1, dtype=float))
    spread = np.empty(n_units)
    for k in range(n_units):
        idx = np.flatnonzero(labels == k)
        spread[k] = residual_spread(x, idx, model.nb.channels[home[k]], templates[k], epoch)
    multi_unit = (np.arange(n_units) >= n_single) | (spread > params.max_unit_variance)
    reason = reasons(labels, multi_unit)
    presence, drift, drift_channels = dhdp_posterior(
        model, cluster_units, n_units, params.presence_weight
    )
    for r, name in enumerate(REASONS):
        log.info("%d spikes: %s", int(np.sum(reason == r)), name)
    atoms, centres = [], []
    for c, chain in enumerate(model.chains):
        best = chain.best
        active = np.flatnonzero(best.z)
        atoms.append(best.A[:, active] * best.w[:, active].mean(0))
        centres.append(np.full(chain.learn_size, c))
    return GroupSorting(
        labels=labels,
        reason=reason,
        probability=probability,
        multi_unit=multi_unit,
        counts=sums.counts,
        presence=presence.astype(np.float32),
        templates=templates,
        drift=drift,
        drift_channels=drift_channels,
        dictionary=np.concatenate(atoms, axis=1).astype(np.float32),
        features=learning_features(model.chains),
        feature_labels=np.concatenate(
            [cluster_units[c][ch.best.labels] for c, ch in enumerate(model.chains)]
        ),
        feature_centres=np.concatenate(centres),
        centres=model.nb.centres,
        cluster_units=cluster_units,
        trace=np.sum([ch.trace for ch in model.chains], axis=0),
        n_atoms=np.sum([ch.n_atoms for ch in model.chains], axis=0),
    )
