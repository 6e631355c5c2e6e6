"""Units clustered across regions by their spike->LFP signatures (MODELS.md section 3).

A unit's signature is the amplitude of its filters in each region and band,
``sqrt(band power of f_{n,r})`` flattened over (region, band) and scaled to unit norm, so units
with the same pattern of links and bands but different gains share a signature, and signatures
of different recording sessions with the same regions are comparable. Signatures are reduced by
PCA (the components explaining ``variance_kept`` of the variance, reported) and clustered by a
variational Dirichlet-process Gaussian mixture, which infers the number of clusters.

Stability: the adjusted Rand index (ARI) between clusterings of signatures fitted on the two
halves of the recording (:mod:`neurodict.clusters.stability`), and between the full clustering
and refits on bootstrap resamples of units. Structure beyond home region: a rotation test on the
signatures' deviations from their region's mean direction, with the split refitted on every
null draw (:mod:`neurodict.clusters.beyond`), calibrated in ``benchmarks/statistics.py``.

References
----------
Blei & Jordan, "Variational inference for Dirichlet process mixtures", Bayesian Analysis 2006.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import BayesianGaussianMixture

from neurodict.clusters.beyond import BeyondRegion, beyond_region_test
from neurodict.common.errors import InputError
from neurodict.lfpdict.atoms import band_power


def signatures(filters: np.ndarray, fs_hz: float) -> tuple[np.ndarray, list[str]]:
    """Unit-norm band-amplitude signatures, shape (n_units, n_regions * n_bands), and band names.

    Units whose filters are all zero get a zero signature.
    """
    power = band_power(filters, fs_hz)
    bands = list(power)
    sig = np.sqrt(np.stack([power[b] for b in bands], axis=-1)).reshape(filters.shape[0], -1)
    norm = np.linalg.norm(sig, axis=1, keepdims=True)
    return np.where(norm > 0, sig / np.where(norm > 0, norm, 1), 0.0), bands


@dataclass
class Clustering:
    """A fitted clustering: labels, membership probabilities and the reduction used."""

    labels: np.ndarray
    probability: np.ndarray
    n_components: int
    variance_kept: float


def cluster(
    sig: np.ndarray,
    *,
    max_clusters: int = 10,
    variance_kept: float = 0.9,
    weight_concentration: float = 0.1,
    seed: int = 0,
) -> Clustering:
    """PCA then a variational DP Gaussian mixture; labels renumbered 0.. by decreasing size.

    Parameters
    ----------
    sig : ndarray of shape (n_units, n_features)
    max_clusters : int
        Truncation of the stick-breaking prior (an upper bound, not the answer).
    variance_kept : float
        Share of the signature variance the PCA components keep.
    weight_concentration : float
        Concentration of the DP prior on the weights (small favours few clusters).
    seed : int
    """
    n = sig.shape[0]
    pca = PCA(n_components=min(n - 1, sig.shape[1]), random_state=seed).fit(sig)
    k = int(np.searchsorted(np.cumsum(pca.explained_variance_ratio_), variance_kept) + 1)
    k = min(k, pca.n_components_)
    x = pca.transform(sig)[:, :k]
    gmm = BayesianGaussianMixture(
        n_components=min(max_clusters, n),
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=weight_concentration,
        covariance_type="diag",
        max_iter=1000,
        n_init=3,
        random_state=seed,
    ).fit(x)
    prob = gmm.predict_proba(x)
    raw = prob.argmax(axis=1)
    order = np.argsort(-np.bincount(raw, minlength=prob.shape[1]), kind="stable")
    relabel = np.empty_like(order)
    relabel[order] = np.arange(order.size)
    labels = relabel[raw]
    used = np.unique(labels)
    return Clustering(
        labels=labels,
        probability=prob.max(axis=1),
        n_components=k,
        variance_kept=float(np.cumsum(pca.explained_variance_ratio_)[k - 1]) if used.size else 0.0,
    )


def bootstrap_ari(
    sig: np.ndarray, labels: np.ndarray, n_boot: int = 20, seed: int = 0, **kwargs
) -> np.ndarray:
    """ARI between `labels` and refits on bootstrap resamples of units (on the units drawn)."""
    rng = np.random.default_rng(seed)
    out = []
    for b in range(n_boot):
        idx = np.unique(rng.integers(0, sig.shape[0], sig.shape[0]))
        if idx.size < 3:
            continue
        refit = cluster(sig[idx], seed=seed + b + 1, **kwargs)
        out.append(adjusted_rand_score(labels[idx], refit.labels))
    return np.array(out)


def summary_rows(
    sig: np.ndarray, labels: np.ndarray, home: np.ndarray, regions: list[str], bands: list[str]
) -> list[dict]:
    """Per cluster: size, units per home region, and the mean signature per region and band."""
    rows = []
    for g in np.unique(labels):
        m = labels == g
        mean = sig[m].mean(axis=0).reshape(len(regions), len(bands))
        row = {"cluster": int(g), "n_units": int(m.sum())}
        row |= {f"home_{r}": int((home[m] == r).sum()) for r in dict.fromkeys(home)}
        row |= {
            f"sig_{r}_{b}": round(float(mean[i, j]), 4)
            for i, r in enumerate(regions)
            for j, b in enumerate(bands)
        }
        rows.append(row)
    return rows


@dataclass
class UnitClusters:
    """Clusters of every unit with their tests.

    Attributes
    ----------
    labels : ndarray of int, shape (n_units,)
        -1 for a unit with no LFP link (zero signature).
    probability : ndarray of shape (n_units,)
    fit : Clustering
        The clustering of the linked units.
    active : ndarray of bool, shape (n_units,)
    bootstrap_ari : ndarray
    beyond : BeyondRegion
        The test of structure beyond home region on the linked units.
    """

    labels: np.ndarray
    probability: np.ndarray
    fit: Clustering
    active: np.ndarray
    bootstrap_ari: np.ndarray
    beyond: BeyondRegion

    @property
    def p_beyond_region(self) -> float:
        """p-value of the test of structure beyond home region (nan when untestable)."""
        return self.beyond.p_value


def cluster_kwargs(params: dict) -> dict:
    """The mixture settings of the ``clusters`` configuration section."""
    return {k: params[k] for k in ("max_clusters", "variance_kept", "weight_concentration")}


def cluster_units(sig: np.ndarray, home: np.ndarray, params: dict, source: str) -> UnitClusters:
    """Cluster the linked units, then the bootstrap and the beyond-home-region test.

    ``params["n_perm"]`` is the number of null draws (random rotations) of that test.

    Raises
    ------
    ValueError
        Naming `source` when fewer than 3 units have LFP links.
    """
    active = np.linalg.norm(sig, axis=1) > 0
    if active.sum() < 3:
        raise InputError(
            f"'{source}': {int(active.sum())} units have LFP links; expected at least 3 to cluster."
        )
    kw = cluster_kwargs(params)
    fit = cluster(sig[active], seed=params["seed"], **kw)
    labels = np.full(sig.shape[0], -1)
    labels[active] = fit.labels
    probability = np.zeros(sig.shape[0])
    probability[active] = fit.probability
    boot = bootstrap_ari(
        sig[active], fit.labels, n_boot=params["n_boot"], seed=params["seed"], **kw
    )
    beyond = beyond_region_test(
        sig[active], np.asarray(home)[active], n_rotations=params["n_perm"], seed=params["seed"]
    )
    return UnitClusters(labels, probability, fit, active, boot, beyond)
