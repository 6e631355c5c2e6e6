"""Sorting one electrode group: learn on a bounded subsample per epoch, assign every spike.

The chain starts from SVD features and k-means, alternates Gibbs sweeps with merge moves (two
clusters whose spikes the model cannot tell apart, measured by the separation ``d'`` of their
log-likelihood ratios, become one), then samples: the highest-likelihood sample is the point
estimate and the last ``n_keep`` samples give each spike's posterior assignment probabilities.
Every spike is then assigned by its posterior predictive under the refractory mask, in batches.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
from scipy.cluster.hierarchy import DisjointSet
from tqdm.auto import tqdm

from neurodict.common.units import ms_to_samples
from neurodict.sort import kernels
from neurodict.sort.model import Data, Sampler, State, epoch_weights, marginal_log_lik
from neurodict.sort.neighbourhoods import Neighbourhoods, whole_group

log = logging.getLogger(__name__)
BATCH_SPIKES = 20000  # spikes whose posteriors are computed at once (bounds memory)


@dataclass(frozen=True)
class SortParams:
    """The sorter's parameters: the ``sorting`` section of the configuration (described, with
    the same defaults, in config/schemas/config.schema.yaml)."""

    ms_before: float = 0.6
    ms_after: float = 1.0
    align_ms: float = 0.2
    neighbourhood_um: float = 50.0
    epoch_s: float = 60.0
    refractory_ms: float = 1.5
    max_atoms: int = 40
    max_clusters: int = 40
    n_init_clusters: int = 30
    drift: bool = True
    drift_sd: float = 0.5
    max_spikes_per_epoch: int = 1500
    n_burn: int = 40
    n_samples: int = 20
    n_keep: int = 10
    merge_every: int = 5
    merge_dprime: float = 4.0
    merge_spread_ratio: float = 2.0
    merge_dip: float = 0.3
    min_unit_spikes: int = 30
    max_unit_variance: float = 1.5
    template_matching: bool = True
    seed: int = 0

    def refractory_samples(self, fs_hz: float) -> int:
        """Δ_ref in samples: two spikes of one group closer than this never share a unit."""
        return ms_to_samples(self.refractory_ms, fs_hz)

    @classmethod
    def from_config(cls, section: dict) -> SortParams:
        """From the configuration's ``sorting`` section (keys as the fields)."""
        return cls(**section)


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


@dataclass
class Chain:
    """What the sampler learned on one neighbourhood: the point estimate and the kept samples."""

    best: State
    kept: list[State]
    n_epochs: int
    learn_size: int
    trace: np.ndarray  # joint log-likelihood per sweep
    n_atoms: np.ndarray  # atoms in use per sweep


@dataclass
class Model:
    """What the sampler learned on a group: one chain per neighbourhood."""

    chains: list[Chain]
    nb: Neighbourhoods


def sort_group(
    x: np.ndarray,
    samples: np.ndarray,
    fs_hz: float,
    duration_s: float,
    params: SortParams = SortParams(),
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
    params : SortParams
    nb : Neighbourhoods, optional
        The group's neighbourhoods; by default one holding every channel.
    progress : bool
        Show a progress bar over sweeps.
    """
    nb = nb if nb is not None else whole_group(x.shape[1])
    model = learn(x, samples, fs_hz, duration_s, params, nb, progress=progress)
    return assign(model, x, samples, fs_hz, duration_s, params)


def learn(
    x: np.ndarray,
    samples: np.ndarray,
    fs_hz: float,
    duration_s: float,
    params: SortParams,
    nb: Neighbourhoods,
    n_jobs: int = 1,
    progress: bool = False,
) -> Model:
    """One chain per neighbourhood, on its spikes and channels (arguments as
    :func:`sort_group`; `n_jobs` processes run neighbourhoods in parallel). Neighbourhood ``c``
    is seeded ``seed + c``."""
    centre = nb.of_spikes(x)
    jobs = [
        (
            x[centre == c][:, nb.channels[c]],
            samples[centre == c],
            fs_hz,
            duration_s,
            replace(params, seed=params.seed + c),
            progress and nb.n_centres == 1,
        )
        for c in range(nb.n_centres)
    ]
    if n_jobs > 1 and nb.n_centres > 1:
        with ProcessPoolExecutor(min(n_jobs, nb.n_centres)) as pool:
            chains = list(
                tqdm(
                    pool.map(_learn_chain, *zip(*jobs, strict=True)),
                    total=len(jobs),
                    desc="neighbourhoods",
                    disable=not progress,
                )
            )
    else:
        chains = [_learn_chain(*job) for job in jobs]
    return Model(chains, nb)


def _learn_chain(
    x: np.ndarray,
    samples: np.ndarray,
    fs_hz: float,
    duration_s: float,
    params: SortParams,
    progress: bool,
) -> Chain:
    """The chain of one neighbourhood, on a bounded subsample per epoch."""
    rng = np.random.default_rng(params.seed)
    ref = params.refractory_samples(fs_hz)
    epoch, E = epochs_of(samples, fs_hz, duration_s, params.epoch_s)
    subset = subsample(epoch, E, params.max_spikes_per_epoch, rng)
    data = _data(x[subset].astype(np.float64), samples[subset], epoch[subset], E, ref)
    K = min(params.max_atoms, x.shape[2])
    sampler = Sampler(
        data, K, params.max_clusters, params.drift, params.drift_sd, params.n_init_clusters, rng
    )
    trace, atoms = [], []
    bar = tqdm(
        total=params.n_burn + params.n_samples, desc="gibbs", disable=not progress, leave=False
    )

    def sweep():
        st = sampler.sweep()
        trace.append(st.log_lik)
        atoms.append(int(st.z.sum()))
        bar.update()
        return st

    for it in range(params.n_burn):
        sweep()
        if it % params.merge_every == params.merge_every - 1:
            n = _merge(sampler, data, params)
            if n:
                log.info("sweep %d: merged %d pairs of clusters", it + 1, n)
    best, kept = None, []
    for _ in range(params.n_samples):
        st = sweep()
        if best is None or st.log_lik > best.log_lik:
            best = st.copy()
        kept = (kept + [st.copy()])[-params.n_keep :]
    bar.close()
    return Chain(best, kept, E, subset.size, np.array(trace), np.array(atoms))


def _data(x, samples, epoch, n_epochs, ref) -> Data:
    lo, hi = kernels.refractory_neighbours(samples, ref)
    return Data(
        x=x,
        epoch=epoch,
        n_epochs=n_epochs,
        classes=kernels.colour_classes(samples, ref),
        lo=lo,
        hi=hi,
    )


def _log_posterior(x, epoch, state: State) -> np.ndarray:
    weights, _ = epoch_weights(state.omega, state.pis)
    return marginal_log_lik(x, epoch, state) + np.log(weights[epoch] + 1e-300)


def separation(
    xa: np.ndarray, xb: np.ndarray, ra: np.ndarray, rb: np.ndarray
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """How distinct two sets of whitened snippets are along the line joining their means.

    Returns ``d'`` (distance of the projected means over their pooled SD), the ratio of the
    larger SD of the projected residuals `ra`, `rb` (each snippet less its epoch's mean, so
    that drift does not count as spread) to the smaller, and the two projections (for
    :func:`dip`).
    """
    u = xa.mean(0) - xb.mean(0)
    u /= np.linalg.norm(u) + 1e-12
    pa, pb = xa @ u, xb @ u
    sa, sb = pa.std() + 1e-12, pb.std() + 1e-12
    dprime = float((pa.mean() - pb.mean()) / np.sqrt(0.5 * (sa**2 + sb**2)))
    qa, qb = (ra @ u).std() + 1e-12, (rb @ u).std() + 1e-12
    return dprime, float(max(qa, qb) / min(qa, qb)), pa, pb


def _less_epoch_means(x: np.ndarray, epoch: np.ndarray) -> np.ndarray:
    """Each row of `x` less the mean of its epoch's rows."""
    _, inverse, counts = np.unique(epoch, return_inverse=True, return_counts=True)
    sums = np.zeros((counts.size, x.shape[1]))
    np.add.at(sums, inverse, x)
    return x - sums[inverse] / counts[inverse, None]


def dip(pa: np.ndarray, pb: np.ndarray, n_grid: int = 64) -> float:
    """The lowest density of two projections between their medians over the lower of the two
    side peaks (about 1 for one unimodal cloud split in two, near 0 for two units).

    The density is a Gaussian kernel estimate (Silverman's bandwidth), which stays smooth for
    the few tens of spikes a cluster may hold in one epoch, where a histogram shows empty bins.
    """
    both = np.r_[pa, pb]
    grid = np.linspace(*np.percentile(both, [1, 99]), n_grid)
    bandwidth = 1.06 * both.std() * both.size**-0.2 + 1e-12
    density = np.exp(-0.5 * ((grid[:, None] - both[None]) / bandwidth) ** 2).sum(1)
    lo, hi = sorted((np.median(pa), np.median(pb)))
    between = (grid >= lo) & (grid <= hi)
    left, right = grid <= lo, grid >= hi
    if not (between.any() and left.any() and right.any()):
        return 1.0
    return float(
        density[between].min() / max(min(density[left].max(), density[right].max()), 1e-12)
    )


def _dprime_if_mergeable(xa, ea, xb, eb, n_epochs: int, params: SortParams) -> float:
    """The smallest ``d'`` at which two sets of flattened snippets (epochs `ea`, `eb`) pass the
    merge test, over the whole recording or within two adjacent epochs (where the pieces of a
    unit whose waveform drifted meet); ``inf`` when they never pass.

    The test: projected means under ``merge_dprime`` pooled SDs apart, similar spreads about
    their epoch means (SD ratio under ``merge_spread_ratio``: a broad cluster of overlapping
    spikes or noise never absorbs a unit, while a drifting unit's pieces qualify) and no dip
    between them (ratio over ``merge_dip``)."""
    best = np.inf
    ra, rb = _less_epoch_means(xa, ea), _less_epoch_means(xb, eb)
    windows = [None] + [(e, e + 1) for e in range(n_epochs - 1)]
    for w in windows:
        ia = np.ones(ea.size, bool) if w is None else np.isin(ea, w)
        ib = np.ones(eb.size, bool) if w is None else np.isin(eb, w)
        if ia.sum() < 5 or ib.sum() < 5:
            continue
        dprime, ratio, pa, pb = separation(xa[ia], xb[ib], ra[ia], rb[ib])
        if (
            dprime < min(params.merge_dprime, best)
            and ratio < params.merge_spread_ratio
            and dip(pa, pb) > params.merge_dip
        ):
            best = dprime
    return best


def _merge(sampler: Sampler, data: Data, params: SortParams) -> int:
    """Merge pairs of clusters the data cannot tell apart (:func:`_dprime_if_mergeable`),
    least separated first; each cluster merges at most once per move. Returns the number of
    merges."""
    st = sampler.state
    x = data.x.reshape(data.x.shape[0], -1)
    occupied = np.flatnonzero(np.bincount(st.labels, minlength=sampler.H) >= 5)
    scored = []
    for i, a in enumerate(occupied):
        for b in occupied[i + 1 :]:
            ia, ib = st.labels == a, st.labels == b
            d = _dprime_if_mergeable(
                x[ia], data.epoch[ia], x[ib], data.epoch[ib], data.n_epochs, params
            )
            if np.isfinite(d):
                scored.append((d, a, b))
    done: set = set()
    merged = 0
    for _, a, b in sorted(scored):
        if a in done or b in done:
            continue
        st.labels[st.labels == b] = a
        done |= {a, b}
        merged += 1
    if merged:
        sampler._sample_clusters(st)
    return merged


def _join_units(
    x,
    samples,
    epoch,
    n_epochs,
    clusters,
    used,
    centre,
    nb: Neighbourhoods,
    ref: int,
    params: SortParams,
) -> np.ndarray:
    """The unit of each cluster in `used` (neighbourhood `centre`) once clusters that are one
    neuron are joined.

    The final merge, on every spike's label: a neuron between two centres, or one that
    drifts from one to the next, is found by both neighbourhoods' models, and a drifting
    neuron may leave two clusters of one model (pieces that no merge move met while learning
    on the subsample). Two clusters of one neighbourhood or of adjacent ones join when they
    pass the merge test (:func:`_dprime_if_mergeable`) on the channels of both neighbourhoods
    and their joint spike train has almost no refractory violations (at most 0.2 %: two
    neurons firing independently at 10 Hz would give about 3 %). Least separated pairs first;
    joins are transitive.
    """
    units = DisjointSet(range(used.size))
    members = [np.flatnonzero(clusters == k) for k in used]
    scored = []
    for i in range(used.size):
        for j in range(i + 1, used.size):
            ci, cj = centre[i], centre[j]
            if not nb.adjacent[ci, cj]:
                continue
            chans = np.union1d(nb.channels[ci], nb.channels[cj])
            xa = x[members[i]][:, chans].reshape(members[i].size, -1)
            xb = x[members[j]][:, chans].reshape(members[j].size, -1)
            d = _dprime_if_mergeable(xa, epoch[members[i]], xb, epoch[members[j]], n_epochs, params)
            if np.isfinite(d):
                scored.append((d, i, j))
    for _, i, j in sorted(scored):
        if units.connected(i, j):
            continue
        joint = units.subset(i) | units.subset(j)
        spikes = np.sort(np.concatenate([samples[members[k]] for k in joint]))
        if np.sum(np.diff(spikes) < ref) <= 0.002 * spikes.size:
            units.merge(i, j)
    roots = np.array([min(units.subset(i)) for i in range(used.size)])
    return np.unique(roots, return_inverse=True)[1]


def _spread(x: np.ndarray, means: np.ndarray) -> float:
    """Median over spikes of the mean squared residual per whitened coordinate about the
    spike's epoch mean (`means`, one row per snippet) scaled to its amplitude: about 1 for a
    single unit in white noise, however it drifts and whatever its amplitude jitter, and for
    a unit with a minority of overlapping spikes; a mixture of units gives more."""
    if len(x) < 2:
        return np.inf
    x, means = x.reshape(len(x), -1), means.reshape(len(x), -1)
    scale = np.einsum("id,id->i", x, means) / np.maximum(np.einsum("id,id->i", means, means), 1e-12)
    return float(np.median(((x - scale[:, None] * means) ** 2).mean(1)))


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
        logp[sl] = _log_posterior(xb, epoch[sl], chain.best)
        for st in chain.kept:
            lp = _log_posterior(xb, epoch[sl], st)
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
    :func:`_join_units`), in cluster order; smaller ones pool into one
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
    cluster_units[used] = _join_units(
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
    once more (:func:`_join_units` on the single units: matching gives every unit its
    overlapping spikes, which may show two pieces of a drifting neuron to be one); posterior
    probabilities from the chains through ``first.cluster_units``; units multi-unit in `first`
    stay so."""
    ref = params.refractory_samples(fs_hz)
    epoch, E = epochs_of(samples, fs_hz, duration_s, params.epoch_s)
    single = np.flatnonzero(~first.multi_unit)
    home = model.nb.of_spikes(first.templates.mean(axis=1))
    joined = _join_units(x, samples, epoch, E, units, single, home[single], model.nb, ref, params)
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
        spread[k] = _spread(x[idx][:, chans], templates[k, epoch[idx]][:, chans])
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
