"""Units clustered by spike->LFP signature; stability; beyond-region test; importance."""

from __future__ import annotations

import numpy as np
import pytest
import spikeinterface.core as sc
from sklearn.metrics import adjusted_rand_score

from neurodict.clusters import mixture as cl
from neurodict.clusters.beyond import beyond_region_test
from neurodict.clusters.stability import fit_half, half_bounds, half_split_ari
from neurodict.clusters.step import write_clusters
from neurodict.common.files import read_tsv
from neurodict.config import apply_defaults, load_schema
from neurodict.lfpdict.estimator import SpikeLFPDictionary
from neurodict.lfpdict.step import write_dictionaries
from neurodict.synth import SynthSpec, background_lfp, bin_spikes, family_filters, spike_lfp

DEFAULTS = apply_defaults({"sessions": {}}, load_schema("config"))
FAST = {
    "lag_minus_ms": 100.0,
    "lag_plus_ms": 100.0,
    "n_atoms": 8,
    "n_outer": 4,
    "n_inner": 100,
    "n_folds": 3,
    "lambda_fractions": [0.05, 0.02],
    "ridge_alphas": [0.01],
    "jitter_min_s": 10.0,
    "n_null": 2,
    "backend": "cpu",
}


def planted(seed=0, N=24, R=3, T=240_000, strong_unit=None):
    rng = np.random.default_rng(seed)
    spec = SynthSpec(n_regions=R, n_families=3, lag_ms=100.0)
    h = family_filters(spec, rng)
    family = np.arange(N) % 3
    gain = rng.uniform(0.7, 1.3, N)
    if strong_unit is not None:
        gain[strong_unit] = 6.0
    F = gain[:, None, None] * h[family]
    spikes = [
        np.sort(rng.choice(T, size=int(rng.uniform(5, 15) * T / 1000), replace=False))
        for _ in range(N)
    ]
    y = spike_lfp(bin_spikes(spikes, 1000.0, 1000.0, T), F) + background_lfp(spec, T, rng)
    regions = [f"R{i}" for i in range(R)]
    home = [regions[(n // 3) % R] for n in range(N)]  # families mix home regions
    return spikes, y.astype("float32"), F, family, home, regions


def test_planted_clusters_recovered_from_learned_dictionaries():
    spikes, y, F, family, home, regions = planted()
    est = SpikeLFPDictionary(1000.0, **FAST).fit(spikes, y, home, regions)
    sig, bands = cl.signatures(est.filters_, 1000.0)
    assert sig.shape == (24, 3 * 4) and bands == ["delta", "theta", "beta", "gamma"]
    fit = cl.cluster(sig)
    assert adjusted_rand_score(family, fit.labels) >= 0.8
    assert np.unique(fit.labels).size == 3
    assert np.all(fit.probability > 0.5)
    boot = cl.bootstrap_ari(sig, fit.labels, n_boot=10)
    assert np.median(boot) >= 0.8
    # families are spread across home regions: structure beyond region
    assert beyond_region_test(sig, np.array(home), n_rotations=199).p_value < 0.05
    # each half of the recording fitted alone finds the same clusters
    kw = cl.cluster_kwargs(DEFAULTS["clusters"])
    dict_params = DEFAULTS["lfpdict"] | FAST
    assert half_split_ari(spikes, y, 1000.0, home, regions, dict_params, 0, kw) >= 0.8


def test_no_structure_gives_one_cluster_or_unstable():
    rng = np.random.default_rng(1)
    sig = np.abs(rng.standard_normal((40, 12)))
    sig /= np.linalg.norm(sig, axis=1, keepdims=True)
    fit = cl.cluster(sig)
    n_clusters = np.unique(fit.labels).size
    boot = cl.bootstrap_ari(sig, fit.labels, n_boot=10)
    assert n_clusters == 1 or np.median(boot) < 0.5, (n_clusters, boot)


def test_clusters_equal_to_regions_carry_nothing_beyond_region():
    # three regions, each its own signature direction plus noise: the clusters are the regions
    rng = np.random.default_rng(2)
    home = np.repeat(["A", "B", "C"], 10)
    sig = np.abs(np.repeat(np.eye(3, 6) * 3, 10, axis=0) + 0.3 * rng.standard_normal((30, 6)))
    sig /= np.linalg.norm(sig, axis=1, keepdims=True)
    units = cl.cluster_units(sig, home, DEFAULTS["clusters"] | {"n_perm": 199}, "test")
    assert adjusted_rand_score(home, units.labels) > 0.9
    assert units.p_beyond_region == units.beyond.p_value > 0.05


def test_signature_is_gain_invariant_and_zero_for_silent_units():
    F = np.random.default_rng(3).standard_normal((2, 3, 201))
    F[1] = 5 * F[0]
    F = np.concatenate([F, np.zeros((1, 3, 201))])
    sig, _ = cl.signatures(F, 1000.0)
    np.testing.assert_allclose(sig[0], sig[1], rtol=1e-10)
    assert not sig[2].any()


def write_folders(tmp_path, spikes, y, home, regions):
    sorting = sc.NumpySorting.from_unit_dict(
        [{f"u{n}": s * 20 for n, s in enumerate(spikes)}], 20000.0
    )
    sorting.set_property("region", np.array(home))
    sorting.save(folder=tmp_path / "sorting")
    lfp = sc.NumpyRecording([y.T.copy()], 1000.0, channel_ids=np.array(regions))
    lfp.set_property("region", np.array(regions))
    lfp.save(folder=tmp_path / "lfp")
    return tmp_path / "sorting", tmp_path / "lfp"


def test_step_outputs_and_importance_of_a_strong_unit(tmp_path):
    spikes, y, F, family, home, regions = planted(seed=4, N=12, T=150_000, strong_unit=5)
    sorting, lfp = write_folders(tmp_path, spikes, y, home, regions)
    dict_params = DEFAULTS["lfpdict"] | FAST
    write_dictionaries(sorting, lfp, tmp_path, dict_params)
    params = DEFAULTS["clusters"] | {"n_boot": 5, "n_perm": 50}
    figures = write_clusters(sorting, lfp, tmp_path / "lfp_dict.npz", tmp_path, params, dict_params)
    assert set(figures) >= {
        "n_clusters",
        "ari_halves",
        "ari_bootstrap_median",
        "p_beyond_region",
        "beyond_test",
        "beyond_statistic",
        "beyond_null_95",
        "stable",
    }
    assert 0 < figures["p_beyond_region"] <= 1 and figures["beyond_test"] == "rotation_2means"
    rows = read_tsv(tmp_path / "clusters.tsv")
    assert [r["unit_id"] for r in rows] == [f"u{n}" for n in range(12)]
    summary = read_tsv(tmp_path / "clusters_summary.tsv")
    assert sum(int(r["n_units"]) for r in summary) == sum(r["cluster"] != "-1" for r in rows)
    assert len(read_tsv(tmp_path / "phase.tsv")) == 12 * 3 * 4
    importance = [r for r in read_tsv(tmp_path / "importance.tsv") if r["kind"] == "unit"]
    reached = np.flatnonzero(np.abs(F[5]).max(axis=1) > 0)
    for r in reached:
        rows_r = [x for x in importance if x["region"] == regions[r]]
        top = max(rows_r, key=lambda x: float(x["r2_drop"]))
        assert top["left_out"] == "u5", (regions[r], top)
        assert float(top["r2_drop"]) > 0.05


def test_too_few_linked_units_is_an_error(tmp_path):
    rng = np.random.default_rng(5)
    T = 60_000
    spikes = [np.sort(rng.choice(T, 300, replace=False)) for _ in range(2)]
    y = rng.standard_normal((2, T)).astype("float32")
    sorting, lfp = write_folders(tmp_path, spikes, y, ["A", "B"], ["A", "B"])
    dict_params = DEFAULTS["lfpdict"] | FAST
    write_dictionaries(sorting, lfp, tmp_path, dict_params)
    with pytest.raises(ValueError, match=r"units have LFP links; expected at least 3"):
        write_clusters(
            sorting, lfp, tmp_path / "lfp_dict.npz", tmp_path, DEFAULTS["clusters"], dict_params
        )


def test_each_half_is_fitted_without_the_other(tmp_path):
    """By construction: the other half poisoned (NaN LFP, extra spikes) changes nothing."""
    spikes, y, F, family, home, regions = planted(seed=6, N=9, T=120_000)
    dict_params = DEFAULTS["lfpdict"] | FAST
    rng = np.random.default_rng(0)
    for k, (a, b) in enumerate(half_bounds(y.shape[1])):
        poisoned = y.copy()
        poisoned[:, :a] = np.nan
        poisoned[:, b:] = np.nan
        outside = rng.integers(0, y.shape[1] - (b - a), (len(spikes), 100))
        outside = np.where(outside < a, outside, outside + (b - a))
        extra = [np.unique(np.concatenate([s, o])) for s, o in zip(spikes, outside, strict=True)]
        clean = fit_half(spikes, y, 1000.0, home, regions, dict_params, (a, b))
        dirty = fit_half(extra, poisoned, 1000.0, home, regions, dict_params, (a, b))
        assert np.isfinite(dirty).all() and np.abs(clean).max() > 0, k
        np.testing.assert_array_equal(dirty, clean)
