"""The beyond-home-region test holds its size on noise and detects cross-region families."""

from __future__ import annotations

import numpy as np
from scipy.stats import binom

from neurodict.clusters import beyond as bt
from neurodict.clusters.mixture import signatures
from neurodict.synth import SynthSpec, family_filters

N_DATASETS = 40
# With 40 datasets and a test of size 0.05, P(more than 5 rejections) = 0.014.
MAX_REJECTIONS = 5


def orthant_noise(seed, n=40, n_regions=3, n_features=12):
    """The issue's pure-noise signatures: |N(0, I)| scaled to unit norm, home regions arbitrary."""
    rng = np.random.default_rng(seed)
    sig = np.abs(rng.standard_normal((n, n_features)))
    return sig / np.linalg.norm(sig, axis=1, keepdims=True), np.arange(n) % n_regions


def region_only(seed, n=40, n_regions=3, n_features=12, noise=0.1):
    """Distinct region mean directions plus correlated Gaussian noise: nothing beyond region."""
    rng = np.random.default_rng(seed)
    home = np.arange(n) % n_regions
    means = np.abs(rng.standard_normal((n_regions, n_features))) + 0.2
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    mix = rng.standard_normal((n_features, n_features)) * noise / np.sqrt(n_features)
    x = means[home] + rng.standard_normal((n, n_features)) @ mix.T
    return x / np.linalg.norm(x, axis=1, keepdims=True), home


def planted_families(seed, n=36, n_regions=3, noise=0.15):
    """Signatures of filters: a home-region pattern plus one of 3 families shared across regions."""
    rng = np.random.default_rng(seed)
    spec = SynthSpec(n_regions=n_regions, n_families=3, lag_ms=100.0)
    region_filters = family_filters(spec, rng)  # one prototype per home region
    families = family_filters(spec, rng)
    home = np.arange(n) % n_regions
    family = rng.integers(3, size=n)
    F = 0.5 * region_filters[home] + rng.uniform(0.7, 1.3, (n, 1, 1)) * families[family]
    F += noise * spec.filter_peak_uv * rng.standard_normal(F.shape) / np.sqrt(F.shape[-1])
    sig, _ = signatures(F, 1000.0)
    return sig, home


def p_values(make, n_rotations=99):
    return np.array(
        [
            bt.beyond_region_test(*make(seed), n_rotations=n_rotations, seed=seed).p_value
            for seed in range(N_DATASETS)
        ]
    )


def test_pure_noise_signatures_hold_the_size():
    # the case: the old permutation test gave p = 0.005 for 2 of 3 such datasets
    p = p_values(orthant_noise)
    assert (p <= 0.05).sum() <= MAX_REJECTIONS, np.sort(p)[:8]
    assert 0.3 < p.mean() < 0.8, p.mean()


def test_region_structure_alone_is_not_beyond_region():
    p = p_values(region_only)
    assert (p <= 0.05).sum() <= MAX_REJECTIONS, np.sort(p)[:8]
    # the test is exact for this model: p is uniform (mean 1/2, sd of the mean 0.046)
    assert 0.35 < p.mean() < 0.65, p.mean()


def test_band_is_the_binomial_band():
    assert binom.sf(MAX_REJECTIONS, N_DATASETS, 0.05) < 0.02


def test_planted_cross_region_families_are_detected():
    p = np.array(
        [
            bt.beyond_region_test(*planted_families(seed), n_rotations=199, seed=seed).p_value
            for seed in range(8)
        ]
    )
    assert (p < 0.05).sum() >= 6, p


def test_rotation_keeps_region_means_and_residual_covariance():
    sig, home = region_only(0)
    q = bt.residual_basis(home)
    indicators = (home[:, None] == np.unique(home)[None, :]).astype(float)
    np.testing.assert_allclose(q.T @ q, np.eye(q.shape[1]), atol=1e-12)
    np.testing.assert_allclose(q.T @ indicators, 0, atol=1e-12)
    w = q.T @ bt.tangent_deviations(sig, home)
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    u_star = bt.haar_stiefel(np.random.default_rng(1), *u.shape)
    np.testing.assert_allclose(u_star.T @ u_star, np.eye(u.shape[1]), atol=1e-12)
    rotated = q @ (u_star @ (s[:, None] * vt))
    residual = q @ w
    np.testing.assert_allclose(rotated.T @ rotated, residual.T @ residual, atol=1e-10)
    np.testing.assert_allclose(indicators.T @ rotated, 0, atol=1e-10)  # region means stay 0
    assert not np.allclose(rotated, residual)


def test_tangent_deviation_is_zero_at_the_region_mean_and_gain_invariant():
    sig, home = region_only(2)
    v = bt.tangent_deviations(sig, home)
    np.testing.assert_allclose(bt.tangent_deviations(3.0 * sig, home), v, atol=1e-12)
    same = np.tile(sig[:1], (4, 1))
    np.testing.assert_allclose(bt.tangent_deviations(same, np.zeros(4)), 0, atol=1e-12)


def test_two_well_separated_groups_explain_most_variance():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(-5, 1, (20, 3)), rng.normal(5, 1, (20, 3))])
    assert bt.two_means_share(x, rng) > 0.8
    assert bt.two_means_share(np.zeros((5, 3)), rng) == 0.0


def test_too_few_units_per_region_is_untestable():
    sig, home = region_only(4, n=5, n_regions=3)
    res = bt.beyond_region_test(sig, home, n_rotations=10)
    assert np.isnan(res.p_value) and res.dof == 2
    # singleton regions carry no deviation and are left out
    sig, home = region_only(5, n=12, n_regions=3)
    home = np.concatenate([home[:11], ["alone"]]).astype(str)
    assert bt.beyond_region_test(sig, home, n_rotations=10).n_units == 11
