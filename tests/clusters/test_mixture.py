"""Units clustered by spike->LFP signature; stability; beyond-region test; importance."""

from __future__ import annotations

import numpy as np
import pytest
import spikeinterface.core as sc
from sklearn.metrics import adjusted_rand_score

from neurodict.clusters import mixture as cl
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
    # families are spread across home regions: clusters carry information beyond region
    assert cl.permutation_beyond_region(sig, fit.labels, np.array(home), n_perm=200) < 0.05


def test_no_structure_gives_one_cluster_or_unstable():
    rng = np.random.default_rng(1)
    sig = np.abs(rng.standard_normal((40, 12)))
    sig /= np.linalg.norm(sig, axis=1, keepdims=True)
    fit = cl.cluster(sig)
    n_clusters = np.unique(fit.labels).size
    boot = cl.bootstrap_ari(sig, fit.labels, n_boot=10)
    assert n_clusters == 1 or np.median(boot) < 0.5, (n_clusters, boot)


def test_clusters_equal_to_regions_carry_nothing_beyond_region():
    rng = np.random.default_rng(2)
    home = np.repeat(["A", "B", "C"], 10)
    labels = np.repeat([0, 1, 2], 10)
    sig = rng.standard_normal((30, 6)) + labels[:, None]
    assert cl.permutation_beyond_region(sig, labels, home, n_perm=100) == 1.0


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
        "stable",
    }
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
