"""Sorting one electrode group: learn on a bounded subsample per epoch, assign every spike.

The chain starts from SVD features and k-means, alternates Gibbs sweeps with merge moves (two
clusters whose spikes the model cannot tell apart, measured by the separation ``d'`` of their
log-likelihood ratios, become one), then samples: the highest-likelihood sample is the point
estimate and the last ``n_keep`` samples give each spike's posterior assignment probabilities.
Every spike is then assigned by its posterior predictive under the refractory mask, in batches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from neurodict.sorter import kernels
from neurodict.sorter.model import Data, Sampler, State, epoch_weights, marginal_log_lik

log = logging.getLogger(__name__)
BATCH_SPIKES = 20000  # spikes whose posteriors are computed at once (bounds memory)


@dataclass(frozen=True)
class SortParams:
    """The sorter's parameters: the ``sorting`` section of the configuration (described, with
    the same defaults, in config/schemas/config.schema.yaml)."""

    ms_before: float = 0.6
    ms_after: float = 1.0
    align_ms: float = 0.2
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
        return int(round(self.refractory_ms * fs_hz / 1000))

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

    labels: np.ndarray          # (n,) index into units, -1 unassigned
    probability: np.ndarray     # (n, U) posterior assignment probabilities (rows sum to 1)
    multi_unit: np.ndarray      # (U,) bool
    presence: np.ndarray        # (U, E) spike counts per epoch
    templates: np.ndarray       # (U, E, M, T) mean waveform per epoch, noise units
    dictionary: np.ndarray      # (T, K_active) atoms in use, scaled by mean gain
    features: np.ndarray        # (n_learn, M·K_active) learning features for plots
    feature_labels: np.ndarray  # (n_learn,) unit index of each learning spike
    cluster_units: np.ndarray   # (H,) unit of each model cluster, -1 for none
    trace: np.ndarray           # (n_sweeps,) joint log-likelihood per sweep
    n_atoms: np.ndarray         # (n_sweeps,) atoms in use per sweep


def epochs_of(samples: np.ndarray, fs_hz: float, duration_s: float, epoch_s: float):
    """Epoch index of each spike and the number of epochs (a last short epoch joins the one
    before when under half an epoch)."""
    n_epochs = max(1, int(round(duration_s / epoch_s)))
    return np.minimum((samples / fs_hz / epoch_s).astype(np.int64), n_epochs - 1), n_epochs


def subsample(epoch: np.ndarray, n_epochs: int, per_epoch: int,
              rng: np.random.Generator) -> np.ndarray:
    """Sorted indices: at most `per_epoch` spikes drawn at random from each epoch."""
    keep = [rng.choice(idx, size=min(per_epoch, idx.size), replace=False)
            for idx in (np.flatnonzero(epoch == e) for e in range(n_epochs))]
    return np.sort(np.concatenate(keep))


@dataclass
class Chain:
    """What the sampler learned on one group: the point estimate and the kept samples."""

    best: State
    kept: list[State]
    n_epochs: int
    learn_size: int
    trace: np.ndarray      # joint log-likelihood per sweep
    n_atoms: np.ndarray    # atoms in use per sweep


def sort_group(x: np.ndarray, samples: np.ndarray, fs_hz: float, duration_s: float,
               params: SortParams = SortParams(), progress: bool = False) -> GroupSorting:
    """Sort one group's aligned snippets: :func:`learn`, then :func:`assign` every spike.

    Parameters
    ----------
    x : ndarray (n, M, T)
        Snippets in whitened noise units (:mod:`neurodict.sorter.snippets`), time order.
    samples : ndarray (n,)
        Their aligned peak samples, sorted.
    fs_hz, duration_s : float
        Sampling rate and recording length.
    params : SortParams
    progress : bool
        Show a progress bar over sweeps.
    """
    chain = learn(x, samples, fs_hz, duration_s, params, progress)
    return assign(chain, x, samples, fs_hz, duration_s, params)


def learn(x: np.ndarray, samples: np.ndarray, fs_hz: float, duration_s: float,
          params: SortParams = SortParams(), progress: bool = False) -> Chain:
    """Run the chain on a bounded subsample per epoch (arguments as :func:`sort_group`)."""
    rng = np.random.default_rng(params.seed)
    ref = params.refractory_samples(fs_hz)
    epoch, E = epochs_of(samples, fs_hz, duration_s, params.epoch_s)
    subset = subsample(epoch, E, params.max_spikes_per_epoch, rng)
    data = _data(x[subset].astype(np.float64), samples[subset], epoch[subset], E, ref)
    K = min(params.max_atoms, x.shape[2])
    sampler = Sampler(data, K, params.max_clusters, params.drift, params.drift_sd,
                      params.n_init_clusters, rng)
    trace, atoms = [], []
    bar = tqdm(total=params.n_burn + params.n_samples, desc="gibbs", disable=not progress,
               leave=False)

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
        kept = (kept + [st.copy()])[-params.n_keep:]
    bar.close()
    return Chain(best, kept, E, subset.size, np.array(trace), np.array(atoms))


def _data(x, samples, epoch, n_epochs, ref) -> Data:
    lo, hi = kernels.refractory_neighbours(samples, ref)
    return Data(x=x, epoch=epoch, n_epochs=n_epochs,
                classes=kernels.colour_classes(samples, ref), lo=lo, hi=hi)


def _log_posterior(x, epoch, state: State) -> np.ndarray:
    weights, _ = epoch_weights(state.omega, state.pis)
    return marginal_log_lik(x, epoch, state) + np.log(weights[epoch] + 1e-300)


def separation(xa: np.ndarray, xb: np.ndarray, bins: int = 40) -> tuple[float, float, float]:
    """How distinct two sets of whitened snippets are along the line joining their means.

    Returns ``d'`` (distance of the projected means over their pooled SD), the ratio of the
    larger projected SD to the smaller, and the dip ratio: the lowest smoothed density between
    the two medians over the lower of the two side peaks (about 1 for one unimodal cloud split
    in two, near 0 for two units).
    """
    u = xa.mean(0) - xb.mean(0)
    u /= np.linalg.norm(u) + 1e-12
    pa, pb = xa @ u, xb @ u
    sa, sb = pa.std() + 1e-12, pb.std() + 1e-12
    dprime = float((pa.mean() - pb.mean()) / np.sqrt(0.5 * (sa ** 2 + sb ** 2)))
    ratio = float(max(sa, sb) / min(sa, sb))
    both = np.r_[pa, pb]
    h, edges = np.histogram(both, bins=bins, range=tuple(np.percentile(both, [1, 99])))
    h = np.convolve(h, np.ones(3) / 3, "same")
    centre = 0.5 * (edges[1:] + edges[:-1])
    lo, hi = sorted((np.median(pa), np.median(pb)))
    between = (centre >= lo) & (centre <= hi)
    left, right = centre <= lo, centre >= hi
    if not (between.any() and left.any() and right.any()):
        return dprime, ratio, 1.0
    return dprime, ratio, float(h[between].min() / max(min(h[left].max(), h[right].max()), 1e-12))


def _merge(sampler: Sampler, data: Data, params: SortParams) -> int:
    """Merge pairs of clusters the data cannot tell apart, least separated first.

    A pair merges when its projected means lie under ``merge_dprime`` pooled SDs apart, with
    similar spreads (SD ratio under ``merge_spread_ratio``: a broad cluster of overlapping
    spikes or noise never absorbs a unit) and no dip between them (ratio over ``merge_dip``),
    over the whole recording or within two adjacent epochs.
    Each cluster merges at most once per move. Returns the number of merges.
    """
    st = sampler.state
    x = data.x.reshape(data.x.shape[0], -1)
    occupied = np.flatnonzero(np.bincount(st.labels, minlength=sampler.H) >= 5)
    # compared over the whole recording and within each pair of adjacent epochs, so that a
    # unit whose waveform drifted is recognised where its pieces meet
    windows = [np.ones(data.epoch.size, bool)] + [
        (data.epoch == e) | (data.epoch == e + 1) for e in range(data.n_epochs - 1)]
    scored = []
    for i, a in enumerate(occupied):
        for b in occupied[i + 1:]:
            best = np.inf
            for w in windows:
                ia, ib = w & (st.labels == a), w & (st.labels == b)
                if ia.sum() < 5 or ib.sum() < 5:
                    continue
                dprime, ratio, dip = separation(x[ia], x[ib])
                if (dprime < params.merge_dprime and ratio < params.merge_spread_ratio
                        and dip > params.merge_dip):
                    best = min(best, dprime)
            if np.isfinite(best):
                scored.append((best, a, b))
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


def _spread(x: np.ndarray) -> float:
    """Mean variance per whitened coordinate of a unit's snippets about their mean (1 for a
    single unit in white noise; overlapping spikes and mixtures give more)."""
    return float(x.reshape(x.shape[0], -1).astype(np.float64).var(0).mean()) if len(x) > 1 \
        else np.inf


def posteriors(chain: Chain, x: np.ndarray, epoch: np.ndarray,
               batch_spikes: int = BATCH_SPIKES) -> tuple[np.ndarray, np.ndarray]:
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


def assign(chain: Chain, x: np.ndarray, samples: np.ndarray, fs_hz: float, duration_s: float,
           params: SortParams) -> GroupSorting:
    """Posterior predictive labels of every spike (refractory mask), probabilities, summaries.

    Clusters with at least ``min_unit_spikes`` spikes become units, in cluster order; smaller
    ones pool into one multi-unit (``cluster_units`` records the map).
    """
    ref = params.refractory_samples(fs_hz)
    epoch, _ = epochs_of(samples, fs_hz, duration_s, params.epoch_s)
    logp, prob = posteriors(chain, x, epoch)
    lo, hi = kernels.refractory_neighbours(samples, ref)
    clusters = kernels.masked_labels(logp, kernels.colour_classes(samples, ref), lo, hi,
                                     np.full(x.shape[0], -1, np.int64))
    sizes = np.bincount(clusters[clusters >= 0], minlength=logp.shape[1])
    used = np.flatnonzero(sizes >= max(params.min_unit_spikes, 1))
    small = np.flatnonzero((sizes > 0) & (sizes < params.min_unit_spikes))
    cluster_units = np.full(logp.shape[1], -1)
    cluster_units[used] = np.arange(used.size)
    cluster_units[small] = used.size
    labels = np.where(clusters >= 0, cluster_units[np.maximum(clusters, 0)], -1)
    D = chain.best.A[None] * (chain.best.w * chain.best.z)[:, None, :]   # (M, T, K)
    templates = np.einsum("mtk,cmek->cemt", D, chain.best.mu)
    pooled = (sizes[small, None, None, None] * templates[small]).sum(0, keepdims=True) \
        / max(sizes[small].sum(), 1)
    templates = np.concatenate([templates[used], pooled[:int(small.size > 0)]])
    return _summary(chain, x, epoch, labels, prob, cluster_units, templates,
                    np.arange(templates.shape[0]) >= used.size, params)


def relabel(chain: Chain, first: GroupSorting, x: np.ndarray, samples: np.ndarray,
            units: np.ndarray, fs_hz: float, duration_s: float,
            params: SortParams) -> GroupSorting:
    """`first`'s units given to new spikes (template matching): labels `units`, posterior
    probabilities from the chain through ``first.cluster_units``; units multi-unit in `first`
    stay so."""
    epoch, _ = epochs_of(samples, fs_hz, duration_s, params.epoch_s)
    _, prob = posteriors(chain, x, epoch)
    return _summary(chain, x, epoch, units, prob, first.cluster_units, first.templates,
                    first.multi_unit, params)


def _summary(chain: Chain, x, epoch, labels, prob, cluster_units, templates, pooled,
             params: SortParams) -> GroupSorting:
    n_units = templates.shape[0]
    probability = np.zeros((x.shape[0], n_units))
    for c in np.flatnonzero(cluster_units >= 0):
        probability[:, cluster_units[c]] += prob[:, c]
    probability /= np.maximum(probability.sum(1, keepdims=True), 1e-300)
    counts = np.zeros((n_units, chain.n_epochs), np.int64)
    np.add.at(counts, (labels[labels >= 0], epoch[labels >= 0]), 1)
    spread = np.array([_spread(x[labels == k]) for k in range(n_units)])
    best = chain.best
    active = np.flatnonzero(best.z)
    return GroupSorting(
        labels=labels, probability=probability.astype(np.float32),
        multi_unit=pooled | (spread > params.max_unit_variance), presence=counts,
        templates=templates.astype(np.float32),
        dictionary=(best.A[:, active] * best.w[:, active].mean(0)).astype(np.float32),
        features=best.s[:, :, active].reshape(chain.learn_size, -1).astype(np.float32),
        feature_labels=cluster_units[best.labels], cluster_units=cluster_units,
        trace=chain.trace, n_atoms=chain.n_atoms)
