"""Do unit signatures have cluster structure beyond their home region? A rotation test.

Question. Units are clustered by their signatures (:mod:`neurodict.clusters.mixture`). Part of
what the clusters find is the home region: units of one region link to the LFPs alike. The
question a lab asks is whether there is more: groups of units that share a pattern of links
across regions, whatever their home region. The test below answers it without looking at the
reported cluster labels, so it cannot be circular: the clustering it uses is refitted on every
null draw.

Null hypothesis (H0). A unit's signature is its home region's mean direction plus noise, the
noise independent across units, Gaussian in the tangent plane of the unit sphere at the region's
mean direction, with one covariance shared by all regions (any covariance: correlated features,
any scale). Under H0 there is exactly one cluster per region and nothing beyond it. The
alternative is that the region-centred deviations come from a mixture: units of several regions
share a family effect.

Procedure.

1. Signatures are unit vectors (directions). Each unit's deviation from its region's mean
   direction ``m_r`` is taken in the tangent plane at ``m_r`` by the gnomonic projection
   ``v = s / (s . m_r) - m_r``, which maps great circles to straight lines. Measured along the
   sphere instead of across it, bounded noise on the sphere no longer looks like clusters
   (chordal differences pile up at the edge of a cap).
2. Region means are removed exactly: with ``Q`` an orthonormal basis of the vectors orthogonal
   to the home-region indicators (``n - G`` columns for ``n`` units in ``G`` regions), the
   residuals are ``R = Q W`` with ``W = Q' V``. Under H0 the rows of ``W`` are independent
   ``N(0, Sigma)`` whatever the region means.
3. Statistic: the share of the residual variance explained by the best split of the units in two
   (2-means, started from the split of the first principal axis and from random splits), the
   cluster index of SigClust (Liu et al. 2008) turned into a share explained. Large when the
   deviations fall into separated groups.
4. Null: random rotations (Langsrud 2005). With ``W = U S V'`` (thin SVD), a draw is
   ``R* = Q U* S V'`` with ``U*`` uniform on the Stiefel manifold (Haar; QR of a Gaussian
   matrix with the signs of R's diagonal, Mezzadri 2007). Rows of a Gaussian matrix with
   independent rows are rotation invariant, so under H0 ``R*`` has the same distribution as
   ``R`` given ``R'R``: every draw keeps the residuals' sample covariance exactly (and the
   region means), and the cluster structure, if any, is mixed away. The 2-means split is
   refitted on every draw.
5. p = (1 + #{null >= observed}) / (1 + n_rotations) (Phipson & Smyth 2010).

Assumptions and calibration. The test is exact (p < alpha with probability at most alpha) when
the tangent-plane deviations are Gaussian with a shared covariance: no covariance or eigenvalue
is estimated, so it does not drift with the number of units or features as tests that simulate
from an estimated covariance do (those are conservative here: p near 1 on Gaussian noise).
Noise that is not Gaussian makes it approximate: heavy tails make it conservative, bounded or
skewed noise can make it liberal. ``benchmarks/statistics.py`` measures the false-positive rate
on Gaussian noise around region directions, on signatures uniform on the positive orthant (pure
noise, no region structure) and on signatures from noisy sparse dictionary coefficients, and
the power against planted cross-region families. A region with a single unit adds nothing (its
deviation is zero by construction). With fewer than 3 residual degrees of freedom the test
returns p = nan.

References
----------
Langsrud, O. (2005). Rotation tests. Statistics and Computing 15, 53-60.
Liu, Y., Hayes, D. N., Nobel, A., Marron, J. S. (2008). Statistical significance of clustering
for high-dimension, low-sample size data. JASA 103, 1281-1293.
Mezzadri, F. (2007). How to generate random matrices from the classical compact groups.
Notices of the AMS 54, 592-604.
Phipson, B., Smyth, G. K. (2010). Permutation p-values should never be zero. Statistical
Applications in Genetics and Molecular Biology 9(1), 39.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEST_NAME = "rotation_2means"


@dataclass
class BeyondRegion:
    """The beyond-home-region test of one set of signatures.

    Attributes
    ----------
    p_value : float
        nan when there are fewer than 3 residual degrees of freedom.
    statistic : float
        Share of the region-centred variance explained by the best split in two.
    null : ndarray of shape (n_rotations,)
        The statistic on every rotation draw.
    n_units : int
        Units in regions with at least two units (the others carry no deviation).
    dof : int
        Residual degrees of freedom, units minus regions.
    test : str
    """

    p_value: float
    statistic: float
    null: np.ndarray
    n_units: int
    dof: int
    test: str = TEST_NAME


def tangent_deviations(sig: np.ndarray, home: np.ndarray) -> np.ndarray:
    """Gnomonic projection of each signature on the tangent plane at its region's mean direction.

    Rows are scaled to unit norm first. Returns ``s / (s . m) - m`` per unit, with ``m`` the unit
    mean direction of its home region (every signature of a region is non-negative, or at least
    has a positive product with its region's mean, so the projection is finite).
    """
    x = sig / np.linalg.norm(sig, axis=1, keepdims=True)
    out = np.zeros_like(x)
    for region in np.unique(home):
        m = home == region
        mean = x[m].mean(axis=0)
        mean /= np.linalg.norm(mean)
        cos = np.maximum(x[m] @ mean, 1e-12)
        out[m] = x[m] / cos[:, None] - mean
    return out


def residual_basis(home: np.ndarray) -> np.ndarray:
    """Orthonormal basis (n_units, n_units - n_regions) of vectors with zero sum in every region."""
    indicators = (home[:, None] == np.unique(home)[None, :]).astype(float)
    u, _, _ = np.linalg.svd(indicators, full_matrices=True)
    return u[:, indicators.shape[1] :]


def two_means_share(x: np.ndarray, rng: np.random.Generator, n_init: int = 4) -> float:
    """Share of the total sum of squares of `x` explained by its best split in two (2-means).

    Lloyd iterations from the sign of the first principal axis and from ``n_init - 1`` random
    splits; the best within-cluster sum of squares wins.
    """
    n = x.shape[0]
    xc = x - x.mean(axis=0)
    total = float((xc**2).sum())
    if n < 2 or total <= 0:
        return 0.0
    u, _, _ = np.linalg.svd(xc, full_matrices=False)
    starts = [u[:, 0] > 0] + [rng.random(n) < 0.5 for _ in range(n_init - 1)]
    best = np.inf
    for labels in starts:
        for _ in range(50):
            if labels.all() or not labels.any():
                break
            c1, c0 = xc[labels].mean(axis=0), xc[~labels].mean(axis=0)
            new = ((xc - c1) ** 2).sum(axis=1) < ((xc - c0) ** 2).sum(axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
        if labels.all() or not labels.any():
            continue
        within = ((xc[labels] - xc[labels].mean(axis=0)) ** 2).sum() + (
            (xc[~labels] - xc[~labels].mean(axis=0)) ** 2
        ).sum()
        best = min(best, float(within))
    return 0.0 if not np.isfinite(best) else 1.0 - best / total


def haar_stiefel(rng: np.random.Generator, d: int, m: int) -> np.ndarray:
    """A (d, m) matrix with orthonormal columns, uniform (Haar) on the Stiefel manifold."""
    q, r = np.linalg.qr(rng.standard_normal((d, m)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def beyond_region_test(
    sig: np.ndarray, home: np.ndarray, n_rotations: int = 500, seed: int = 0
) -> BeyondRegion:
    """Rotation test of cluster structure in the signatures beyond their home region.

    Parameters
    ----------
    sig : ndarray of shape (n_units, n_features)
        Signatures with non-zero rows (scaled to unit norm here).
    home : ndarray of shape (n_units,)
        Home region of each unit.
    n_rotations : int
        Null draws.
    seed : int

    Returns
    -------
    BeyondRegion
    """
    home = np.asarray(home)
    regions, counts = np.unique(home, return_counts=True)
    keep = np.isin(home, regions[counts >= 2])
    sig, home = np.asarray(sig, dtype=float)[keep], home[keep]
    dof = int(sig.shape[0] - np.unique(home).size)
    if dof < 3:
        return BeyondRegion(np.nan, np.nan, np.zeros(0), int(keep.sum()), max(dof, 0))
    rng = np.random.default_rng(seed)
    q = residual_basis(home)
    w = q.T @ tangent_deviations(sig, home)
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    sv = s[:, None] * vt
    observed = two_means_share(q @ w, rng)
    null = np.array(
        [two_means_share(q @ (haar_stiefel(rng, *u.shape) @ sv), rng) for _ in range(n_rotations)]
    )
    p = (1 + int((null >= observed - 1e-12).sum())) / (1 + n_rotations)
    return BeyondRegion(float(p), float(observed), null, int(sig.shape[0]), dof)
