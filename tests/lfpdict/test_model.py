"""Spike->LFP dictionaries: exact statistics, gradients, descent, recovery, baselines, null."""

from __future__ import annotations

import numpy as np
import pytest

from neurodict.backend import CPU
from neurodict.lfpdict import baselines, evaluate, model
from neurodict.lfpdict.atoms import band_power, wavelet_atoms
from neurodict.lfpdict.estimator import (
    PathErrors,
    SpikeLFPDictionary,
    best_size,
    circular_jitter,
    fold_cores,
)
from neurodict.lfpdict.scoring import heldout_scores, p_value
from neurodict.lfpdict.stats import segment_stats
from neurodict.synth import SynthSpec, background_lfp, bin_spikes, family_filters, spike_lfp
from tests.backends import BACKENDS, backend_of


# ---------------------------------------------------------------- small data and brute force
def small_data(seed=0, N=4, R=2, T=3000):
    rng = np.random.default_rng(seed)
    spikes = [np.sort(rng.integers(0, T, size=rng.integers(20, 80))) for _ in range(N)]
    return spikes, rng.standard_normal((R, T)), rng


def dense_u(spikes, T):
    u = np.zeros((len(spikes), T))
    for n, s in enumerate(spikes):
        np.add.at(u[n], s, 1)
    return u


def brute_design(spikes, y, a, b, lag_minus, lag_plus):
    """Full-convolution design of the segment [a, b) with data zero outside it.

    Returns X (rows t, columns (n, tau)), the target Y (rows t, R) and the intercept column."""
    T = y.shape[1]
    L = lag_minus + lag_plus + 1
    u = dense_u(spikes, T)
    u[:, :a] = 0
    u[:, b:] = 0
    ts = np.arange(-L - 2, T + L + 2)

    def shifted(x, t):
        out = np.zeros(t.shape)
        ok = (t >= 0) & (t < x.size)
        out[ok] = x[t[ok]]
        return out

    X = np.stack(
        [
            shifted(u[n], ts - tau)
            for n in range(len(spikes))
            for tau in range(-lag_minus, lag_plus + 1)
        ],
        axis=1,
    )
    yc = np.zeros_like(y)
    yc[:, a:b] = y[:, a:b]
    Y = np.stack([shifted(r, ts) for r in yc], axis=1)
    one = ((ts >= a) & (ts < b)).astype(float)
    return X, Y, one


# (50, 256 MB): one batch of blocks; (5, 1 kB): blocks shorter than both margins, one a batch
@pytest.mark.parametrize("block_bins, batch_mb", [(50, 256.0), (5, 1e-3)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_statistics_equal_brute_force(backend, block_bins, batch_mb):
    be = backend_of(backend)
    spikes, y, _ = small_data()
    spikes[0] = np.concatenate([spikes[0][::-1], spikes[0][:3]])  # unsorted, repeated bins
    a, b, lm, lp = 400, 2500, 7, 5
    L = lm + lp + 1
    st = segment_stats(
        spikes,
        y,
        a,
        b,
        lm,
        lp,
        backend=be,
        dtype="float64",
        block_bins=block_bins,
        batch_mb=batch_mb,
    )
    X, Y, one = brute_design(spikes, y, a, b, lm, lp)
    N, R = len(spikes), y.shape[0]
    G = X.T @ X
    idx = np.subtract.outer(np.arange(L), np.arange(L)) + L - 1
    Rm = be.to_numpy(st.R)
    G_stats = np.block([[Rm[n, m][idx] for m in range(N)] for n in range(N)])
    np.testing.assert_allclose(G_stats, G, atol=1e-9)
    np.testing.assert_allclose(
        be.to_numpy(st.S), (X.T @ Y).reshape(N, L, R).transpose(0, 2, 1), atol=1e-9
    )
    np.testing.assert_allclose(be.to_numpy(st.g), (X.T @ one).reshape(N, L), atol=1e-12)
    np.testing.assert_allclose(be.to_numpy(st.yy), (Y**2).sum(axis=0), rtol=1e-12)
    assert st.n_samples == b - a


def test_statistics_add_over_segments_and_blocks_do_not_matter():
    spikes, y, _ = small_data(1)
    whole = segment_stats(spikes, y, 0, 1000, 6, 6, dtype="float64", block_bins=37)
    other = segment_stats(spikes, y, 0, 1000, 6, 6, dtype="float64", block_bins=500)
    np.testing.assert_allclose(whole.R, other.R, atol=1e-9)
    np.testing.assert_allclose(whole.S, other.S, atol=1e-9)
    two = segment_stats(spikes, y, 0, 1000, 6, 6, dtype="float64") + segment_stats(
        spikes, y, 1500, 2500, 6, 6, dtype="float64"
    )
    assert two.n_samples == 2000
    assert two.R.shape == whole.R.shape


def test_float32_and_float64_agree():
    spikes, y, _ = small_data(2)
    s32 = segment_stats(spikes, y, 0, 3000, 10, 10, dtype="float32")
    s64 = segment_stats(spikes, y, 0, 3000, 10, 10, dtype="float64")
    assert s32.R.dtype == np.float32 and s64.R.dtype == np.float64
    np.testing.assert_allclose(s32.R, s64.R, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(s32.S, s64.S, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_heldout_error_and_prediction_equal_brute_force(backend):
    be = backend_of(backend)
    spikes, y, rng = small_data(3)
    a, b, lm, lp = 300, 2200, 6, 4
    L = lm + lp + 1
    st = segment_stats(spikes, y, a, b, lm, lp, backend=be, dtype="float64")
    F = rng.standard_normal((len(spikes), 2, L))
    c = rng.standard_normal(2)
    X, Y, one = brute_design(spikes, y, a, b, lm, lp)
    f = F.transpose(0, 2, 1).reshape(-1, 2)
    residual = Y - one[:, None] * c - X @ f
    np.testing.assert_allclose(
        be.to_numpy(evaluate.sse(be, st, be.asarray(F), be.asarray(c))),
        (residual**2).sum(axis=0),
        rtol=1e-9,
    )
    # time-domain prediction with every spike (not only the segment's)
    u = dense_u(spikes, y.shape[1])
    want = (
        np.stack(
            [
                sum(np.convolve(u[n], F[n, r])[lm : lm + y.shape[1]] for n in range(len(spikes)))
                for r in range(2)
            ]
        )
        + c[:, None]
    )
    got = evaluate.predict(be, spikes, be.asarray(F), be.asarray(c), a, b, lm, batch_mb=0.01)
    np.testing.assert_allclose(be.to_numpy(got), want[:, a:b], atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_coherence_on_the_device_equals_scipy(backend):
    """Welch coherence of one signal set against several, batched on the device: scipy's."""
    import scipy.signal

    be = backend_of(backend)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5003))
    y = 0.5 * x[None] + rng.standard_normal((2, 3, 5003)) + 2.0  # an offset per segment removed
    freqs, got = evaluate.coherence(be, be.asarray(x), be.asarray(y), 400, batch_segments=7)
    want_f, want = scipy.signal.coherence(x[None], y, fs=1.0, nperseg=400, axis=-1)
    np.testing.assert_allclose(freqs, want_f)
    np.testing.assert_allclose(be.to_numpy(got), want, rtol=1e-9, atol=1e-12)


def test_wiener_on_statistics_equals_the_design_matrix_solution():
    """Exactness: ridge on the sufficient statistics = ridge on the brute-force design."""
    spikes, y, _ = small_data(4)
    a, b, lm, lp = 0, 3000, 5, 5
    st = segment_stats(spikes, y, a, b, lm, lp, dtype="float64")
    alpha = np.array([0.01, 0.1])
    F = baselines.wiener(CPU, st, alpha, tol=1e-12, n_iter=2000)
    X, Y, one = brute_design(spikes, y, a, b, lm, lp)
    n = b - a
    Xc = X - np.outer(one, X.T @ one / n)  # intercept minimised out
    Yc = Y - np.outer(one, Y.T @ one / n)
    for r in range(2):
        f = np.linalg.solve(Xc.T @ Xc / n + alpha[r] * np.eye(X.shape[1]), Xc.T @ Yc[:, r] / n)
        np.testing.assert_allclose(F[:, r].reshape(-1), f, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------- gradients and descent
def test_coefficient_gradient_matches_finite_differences():
    spikes, y, rng = small_data(5)
    st = segment_stats(spikes, y, 0, 3000, 8, 8, dtype="float64")
    D = rng.standard_normal((3, 17))  # no symmetry in time (wavelets' would hide a transpose)
    problem = model.coef_problem(CPU, st, D)
    B = rng.standard_normal((4, 3, 2))
    grad = (problem.H @ B.reshape(12, 2) - problem.Z).reshape(B.shape)
    eps = 1e-6
    for idx in [(0, 0, 0), (3, 2, 1), (1, 1, 0)]:
        E = np.zeros_like(B)
        E[idx] = eps
        numeric = (problem.loss(B + E).sum() - problem.loss(B - E).sum()) / (2 * eps)
        assert numeric == pytest.approx(grad[idx], rel=1e-5, abs=1e-8)
    # the loss is the brute-force squared error / 2n with the optimal intercept
    X, Y, one = brute_design(spikes, y, 0, 3000, 8, 8)
    F = model.filters_from(np, B, D)
    c = problem.intercept(B)
    res = Y - one[:, None] * c - X @ F.transpose(0, 2, 1).reshape(-1, 2)
    np.testing.assert_allclose(problem.loss(B), (res**2).sum(axis=0) / (2 * 3000), rtol=1e-8)


def test_atom_gradient_matches_finite_differences():
    spikes, y, rng = small_data(6)
    st = segment_stats(spikes, y, 0, 3000, 8, 8, dtype="float64")
    B = rng.standard_normal((4, 3, 2))
    c = rng.standard_normal(2)
    D = rng.standard_normal((3, 17))
    n = st.n_samples
    Q = model.AtomHessian(CPU, st, B)
    E = (np.einsum("nkr,nrl->kl", B, st.S) - np.einsum("nkr,r,nl->kl", B, c, st.g)) / n
    grad = (Q @ D) / n - E

    def half_sse(D):
        F = model.filters_from(np, B, D)
        return evaluate.sse(CPU, st, F, c).sum() / (2 * n)

    eps = 1e-6
    for idx in [(0, 0), (2, 16), (1, 8)]:
        P = np.zeros_like(D)
        P[idx] = eps
        numeric = (half_sse(D + P) - half_sse(D - P)) / (2 * eps)
        assert numeric == pytest.approx(grad[idx], rel=1e-5, abs=1e-8)


# ---------------------------------------------------------------- planted recovery
N_NULL = 3  # nulls of the fitted fixture: enough to check the machinery, not a calibration


def planted(seed=1, N=8, R=2, T=180_000, lag_ms=100.0, noise=1.0):
    rng = np.random.default_rng(seed)
    spec = SynthSpec(
        n_regions=R,
        n_families=3,
        lag_ms=lag_ms,
        theta_uv=40 * noise,
        gamma_uv=10 * noise,
        pink_uv=20 * noise,
    )
    h = family_filters(spec, rng)
    family = rng.integers(3, size=N)
    F = rng.uniform(0.7, 1.3, N)[:, None, None] * h[family]
    rates = rng.uniform(3, 20, N)
    spikes = [np.sort(rng.choice(T, size=int(r * T / 1000), replace=False)) for r in rates]
    y = spike_lfp(bin_spikes(spikes, 1000.0, 1000.0, T), F) + background_lfp(spec, T, rng)
    regions = [f"R{i}" for i in range(R)]
    return spikes, y.astype("float32"), F, [regions[n % R] for n in range(N)], regions


@pytest.fixture(scope="module")
def fitted():
    spikes, y, F, unit_regions, regions = planted()
    est = SpikeLFPDictionary(
        1000.0,
        lag_minus_ms=100.0,
        lag_plus_ms=100.0,
        n_atoms=8,
        backend="cpu",
        jitter_min_s=10.0,
        n_null=N_NULL,
    )
    est.fit(spikes, y, unit_regions, regions)
    return est, F, regions, heldout_scores(est, spikes, y, regions)


def test_planted_filters_recovered(fitted):
    est, F, _, _ = fitted
    corr = [
        np.corrcoef(est.filters_[n, r], F[n, r])[0, 1]
        for n in range(F.shape[0])
        for r in range(F.shape[1])
        if np.abs(F[n, r]).max() > 0
    ]
    assert np.median(corr) >= 0.95 and np.min(corr) >= 0.9, corr
    absent = [
        np.abs(est.filters_[n, r]).max() / np.abs(F).max()
        for n in range(F.shape[0])
        for r in range(F.shape[1])
        if not np.abs(F[n, r]).any()
    ]
    assert max(absent, default=0) < 0.1  # links that do not exist stay (nearly) off


def test_objective_never_rises(fitted):
    est, _, _, _ = fitted
    trace = np.array(est.objective_)
    assert np.all(np.diff(trace) <= 1e-6 * np.abs(trace[:-1]))
    assert trace[-1] < trace[0]


def test_dictionary_beats_baselines_and_jitter_is_null(fitted):
    _, _, regions, scored = fitted
    score = {(r["region"], r["predictors"], r["model"]): r["r2_heldout"] for r in scored.scores}
    for region in regions:
        d = score[(region, "all", "dictionary")]
        assert d > 0.2
        assert d > score[(region, "all", "wiener")]
        assert d > score[(region, "all", "sta")]
        assert abs(score[(region, "all", "jitter")]) < 0.05
    assert {r["model"] for r in scored.scores} == {"dictionary", "wiener", "sta", "jitter"}
    assert {r["predictors"] for r in scored.scores} == {"all", "outside", "inside"}


def test_scores_are_nested_with_errors_and_the_null_distribution(fitted):
    """Every score has its standard error across outer folds; the planted links beat every
    null, so p is the smallest possible, 1 / (1 + n_null); the per-fold values are kept."""
    est, _, regions, scored = fitted
    rows = [r for r in scored.scores if r["model"] == "dictionary" and r["predictors"] == "all"]
    assert len(rows) == len(regions)
    for row in rows:
        assert row["n_folds"] == est.n_folds and 0 < row["r2_se"] < 0.1
        assert row["p_value"] == pytest.approx(1 / (1 + N_NULL))
        assert row["null_p95"] < 0.05 < row["r2_heldout"]
        assert row["penalty"] in est.lambda_fractions
    assert scored.null_r2.shape == (3, N_NULL, len(regions))
    assert scored.fold_r2["dictionary"].shape == (3, est.n_folds, len(regions))
    assert scored.chosen["wiener"].max() < len(est.ridge_alphas)


def test_planted_links_beat_their_nulls(fitted):
    """Per link: band power against the same link in the nulls. Planted links reach the
    smallest p possible in their strongest band; links that do not exist mostly do not."""
    est, F, _, scored = fitted
    true_power = band_power(F, 1000.0)
    bands = list(true_power)
    strongest = np.argmax(np.stack([true_power[b] for b in bands]), axis=0)  # (N, R)
    p = np.stack([scored.link_p[b][0] for b in bands])  # (bands, N, R)
    p_top = np.take_along_axis(p, strongest[None], axis=0)[0]
    planted = np.abs(F).max(axis=2) > 0
    assert np.mean(p_top[planted] == pytest.approx(1 / (1 + N_NULL))) > 0.8
    assert p[:, ~planted].mean() > 2 / (1 + N_NULL)
    q = np.stack([scored.link_q[b][0] for b in bands])
    assert (q >= p - 1e-12).all() and (q <= 1).all()


def test_nested_choice_never_looks_at_the_outer_fold():
    """By construction: the outer fold's own errors favour another value than its inner folds;
    the nested score takes the inner folds' choice (a poisoned outer fold cannot pick its own)."""
    outer = np.array([[[1.0], [9.0]], [[1.0], [9.0]]])  # (folds, values, regions): value 0 best
    inner = np.array([[[5.0], [2.0]], [[5.0], [2.0]]])  # inner folds prefer value 1
    sst = np.full((2, 1), 10.0)
    r2, r2_fold, chosen = PathErrors(outer, inner, sst, sst.sum(0) - sst).nested()
    assert chosen.tolist() == [[1], [1]]
    assert r2 == pytest.approx([0.1]) and r2_fold.ravel() == pytest.approx([0.1, 0.1])
    assert PathErrors(outer, inner, sst, sst).pooled_r2()[:, 0] == pytest.approx([0.9, 0.1])


def test_dictionary_size_chosen_by_its_best_penalties_over_regions():
    """best_size: each size's best R^2 over the path, averaged over regions (a flat region,
    NaN, is ignored)."""
    r2 = np.array(
        [
            [[0.50, 0.20, np.nan], [0.40, 0.30, np.nan]],  # size 0: best 0.5 and 0.3
            [[0.45, 0.10, np.nan], [0.10, 0.40, np.nan]],  # size 1: best 0.45 and 0.4
        ]
    )
    assert best_size(r2) == 1
    r2[1, :, 1] -= 0.2  # size 1's second region now best at 0.2
    assert best_size(r2) == 0


def test_too_few_atoms_lose_to_enough_on_inner_folds():
    """Three families with region-specific lags and phases need several atoms: offered 1 or 6
    atoms, every outer fold chooses 6 on its inner folds, and so does the final fit."""
    spikes, y, _, unit_regions, regions = planted(seed=2, N=6, T=90_000, noise=0.5)
    est = SpikeLFPDictionary(
        1000.0, lag_minus_ms=50.0, lag_plus_ms=50.0, n_atoms=(1, 6), n_outer=3, n_null=0
    ).fit(spikes, y, unit_regions, regions)
    assert est.fold_sizes_.tolist() == [6] * est.n_folds
    assert est.size_ == 6 and est.atoms_.shape[0] == 6
    assert all(D.shape[0] == 6 for D in est.fold_atoms_)


def test_p_value_counts_nulls_at_or_above():
    null = np.array([[0.1], [0.3], [0.2], [0.3]])
    assert p_value(np.array([0.3]), null) == pytest.approx([3 / 5])
    assert p_value(np.array([0.5]), null) == pytest.approx([1 / 5])
    assert np.isnan(p_value(np.array([np.nan]), null)).all()


def test_coherence_and_heldout_stretch(fitted):
    _, _, regions, scored = fitted
    assert len(scored.coherence) == len(regions) * 3 * 4
    assert all(0 <= row["coherence"] <= 1 for row in scored.coherence)
    assert scored.heldout["measured"].shape == scored.heldout["predicted"].shape


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_lambda_max_is_the_smallest_penalty_with_zero_coefficients(alpha):
    """Per region, B = 0 is optimal (the sparse-group prox of the target is zero) at lambda_max
    and not just below it, with and without a mask."""
    from neurodict.lfpdict.solvers import prox_sparse_group

    spikes, y, _ = small_data(seed=4, N=5, R=3, T=4000)
    st = segment_stats(spikes, y, 0, 4000, 10, 10, dtype="float64")
    D = wavelet_atoms(6, np.arange(-10, 11) / 1000.0)
    mask = np.ones((5, 3))
    mask[[0, 2], [1, 1]] = 0
    for m in (None, mask):
        lam = model.lambda_max(CPU, st, D, alpha, m)
        Z = model.centred_target(CPU, st, D)[0].reshape(5, 6, 3)
        Z = Z if m is None else Z * m[:, None, :]
        for factor, zero in ((1 + 1e-9, True), (1 - 1e-6, False)):
            B = prox_sparse_group(np, Z, alpha * lam * factor, (1 - alpha) * lam * factor)
            assert ((np.abs(B).sum(axis=(0, 1)) == 0) == zero).all()


def test_fold_cores_and_jitter():
    cores = fold_cores(10_000, 5, 100)
    assert cores[0] == (100, 1900) and cores[1] == (2100, 3900)
    with pytest.raises(ValueError, match="'n_folds': expected folds longer than 4 filter"):
        fold_cores(1000, 5, 100)
    rng = np.random.default_rng(0)
    original = np.array([9000, 0, 5, 5])  # unsorted, a repeat
    jittered = circular_jitter([original] * 20, 10_000, 1000, rng)
    for shifted in map(jittered.unit, range(20)):
        offsets = [
            k for k in range(10_000) if np.array_equal(np.sort((original + k) % 10_000), shifted)
        ]
        assert len(offsets) == 1 and 1000 <= offsets[0] <= 9000  # one circular shift >= 1 s


@pytest.mark.gpu
def test_cupy_blocks_replayed_as_graphs_give_the_kernels_issued_one_by_one(monkeypatch):
    """A batch of coefficient problems on cupy, its FISTA blocks recorded as CUDA graphs and
    replayed, against the same kernels issued one by one: the same coefficients (float32
    round-off), and every block after the first two replayed."""
    import dataclasses

    from neurodict import backend as backend_module

    gpu = backend_of("gpu")
    recorded = []

    class Spy(backend_module.CudaGraph):
        def __init__(self, block):
            super().__init__(block)
            recorded.append(self)

    monkeypatch.setattr(backend_module, "CudaGraph", Spy)
    spikes, y, _ = small_data(8, N=5, R=3, T=9000)
    st = segment_stats(spikes, y, 0, 9000, 10, 10, backend=gpu, dtype="float32")
    D = gpu.asarray(wavelet_atoms(4, np.arange(-10, 11) / 1000.0), dtype="float32")
    p = model.coef_problem(gpu, st, D)
    lam = np.stack([gpu.to_numpy(model.lambda_max(gpu, st, D, 0.5)) * f for f in (0.02, 0.2)])
    B0 = gpu.xp.zeros((2, 1, 5, 4, 3), dtype="float32")
    B = {
        graphs: gpu.to_numpy(
            model.fit_coef_batch(
                dataclasses.replace(gpu, graphs=graphs), [[p], [p]], lam, 0.5, B0, n_iter=400
            )
        )
        for graphs in (False, True)
    }
    assert len(recorded) == 1 and recorded[0].graph is not None and recorded[0].calls > 2
    np.testing.assert_allclose(B[True], B[False], rtol=1e-5, atol=1e-6 * np.abs(B[False]).max())


@pytest.mark.gpu
def test_cupy_fit_agrees_with_numpy():
    """The whole estimator on cupy against numpy, float32 tolerance (skips without a GPU)."""
    gpu = backend_of("gpu")
    assert gpu.name == "gpu"
    spikes, y, F, unit_regions, regions = planted(T=120_000)
    kw = dict(
        lag_minus_ms=100.0,
        lag_plus_ms=100.0,
        n_atoms=8,
        n_folds=3,
        n_outer=3,
        lambda_fractions=(0.05,),
        ridge_alphas=(0.01,),
        n_null=2,
    )
    cpu = SpikeLFPDictionary(1000.0, backend="cpu", **kw).fit(spikes, y, unit_regions, regions)
    dev = SpikeLFPDictionary(1000.0, backend="gpu", **kw).fit(spikes, y, unit_regions, regions)
    np.testing.assert_allclose(dev.filters_, cpu.filters_, atol=1e-3 * np.abs(cpu.filters_).max())
    cpu_scores = heldout_scores(cpu, spikes, y, regions).scores
    dev_scores = heldout_scores(dev, spikes, y, regions).scores
    for a, b in zip(cpu_scores, dev_scores, strict=True):
        assert a["r2_heldout"] == pytest.approx(b["r2_heldout"], abs=1e-3)


def test_windows_follow_a_link_that_switches_off():
    """Coefficients per window: a unit drives R0 in the first half only."""
    spikes, y, F, unit_regions, regions = planted(seed=7, T=240_000)
    T = y.shape[1]
    u = bin_spikes([s[s >= T // 2] for s in spikes[:1]], 1000.0, 1000.0, T)
    y = y - spike_lfp(u, F[:1]).astype("float32")  # unit 0's influence ends halfway
    kw = dict(lag_minus_ms=100.0, lag_plus_ms=100.0, n_atoms=8, backend="cpu", n_outer=6)
    halves = [(0.0, T / 2000.0), (T / 2000.0, T / 1000.0)]
    windowed = SpikeLFPDictionary(1000.0, windows_s=halves, smoothness=0.0, **kw).fit(
        spikes, y, unit_regions, regions
    )
    assert windowed.coef_.shape == (2, 8, 2, 8)
    assert windowed.window_filters_.shape == (2, 8, 2, 201)
    reached = np.flatnonzero(np.abs(F[0]).max(axis=1) > 0)
    for r in reached:
        first, second = windowed.window_filters_[0, 0, r], windowed.window_filters_[1, 0, r]
        assert np.corrcoef(first, F[0, r])[0, 1] > 0.9
        assert np.abs(second).max() < 0.3 * np.abs(first).max()
    trace = np.array(windowed.objective_)
    assert np.all(np.diff(trace) <= 1e-6 * np.abs(trace[:-1]))
    # a strong smoothness penalty pulls the two windows together
    smooth = SpikeLFPDictionary(1000.0, windows_s=halves, smoothness=1e4, **kw).fit(
        spikes, y, unit_regions, regions
    )
    gap = np.abs(smooth.coef_[0] - smooth.coef_[1]).max() / np.abs(smooth.coef_).max()
    assert gap < 0.05


def test_a_poisoned_outer_fold_changes_nothing_fitted_for_it():
    """Fold 0's LFP replaced by huge noise: the atoms learned for fold 0 and the penalties its
    inner folds chose stay the same (they never see it); only fold 0's score changes."""
    spikes, y, _, unit_regions, regions = planted(seed=3, N=4, T=60_000)
    kw = dict(
        lag_minus_ms=50.0, lag_plus_ms=50.0, n_atoms=(2, 4), n_outer=3, n_null=1, backend="cpu"
    )
    clean = SpikeLFPDictionary(1000.0, **kw).fit(spikes, y, unit_regions, regions)
    a, b = clean.folds_.segments[0][0]
    poisoned = y.copy()
    poisoned[:, a:b] = np.random.default_rng(0).normal(0, 1e4, (y.shape[0], b - a))
    dirty = SpikeLFPDictionary(1000.0, **kw).fit(spikes, poisoned, unit_regions, regions)
    np.testing.assert_allclose(dirty.fold_atoms_[0], clean.fold_atoms_[0], rtol=1e-3, atol=1e-5)
    assert dirty.fold_sizes_[0] == clean.fold_sizes_[0]
    for name in ("all", "outside", "inside"):
        assert (dirty.paths_[name].nested()[2][0] == clean.paths_[name].nested()[2][0]).all()
        np.testing.assert_allclose(
            dirty.paths_[name].inner[0], clean.paths_[name].inner[0], rtol=1e-4
        )
    assert not np.allclose(dirty.paths_["all"].outer[0], clean.paths_["all"].outer[0])


# ---------------------------------------------------------------- recordings of several segments
def _dense_data(seed):
    """Spike trains dense enough (about one spike in 6 bins per unit) that filters meet across
    any boundary."""
    rng = np.random.default_rng(seed)
    spikes = [np.sort(rng.integers(0, 3000, size=500)) for _ in range(4)]
    return spikes, rng.standard_normal((2, 3000)), rng


def _separate(spikes, y, bounds):
    """Each recording segment of the timeline `bounds` as a recording of its own."""
    ends = list(bounds[1:]) + [y.shape[1]]
    return [
        ([np.asarray(s)[(s >= a) & (s < b)] - a for s in spikes], y[:, a:b])
        for a, b in zip(bounds, ends, strict=True)
    ]


def test_statistics_across_segments_are_those_of_the_segments_alone():
    """A fold core that straddles a pause: its statistics are the sum of each segment's, as if
    each were its own recording (no spike's filter reaches across the pause)."""
    spikes, y, _ = _dense_data(4)
    bounds, (a, b), lm, lp = [0, 1300, 2100], (500, 2600), 7, 5
    got = segment_stats(spikes, y, a, b, lm, lp, dtype="float64", bounds=bounds)
    parts = []
    for (sp, yy), start in zip(_separate(spikes, y, bounds), bounds, strict=True):
        lo, hi = max(a, start) - start, min(b, start + yy.shape[1]) - start
        parts.append(segment_stats(sp, yy, lo, hi, lm, lp, dtype="float64"))
    want = parts[0] + parts[1] + parts[2]
    plain = segment_stats(spikes, y, a, b, lm, lp, dtype="float64")
    for field in ("R", "S", "g", "ysum", "yy"):
        np.testing.assert_allclose(getattr(got, field), getattr(want, field), atol=1e-9)
    assert got.n_samples == want.n_samples == b - a
    assert np.abs(plain.R - want.R).max() > 0.5  # across the pause the trains would meet


def test_heldout_prediction_uses_no_spike_across_a_pause():
    from neurodict.lfpdict.scoring import segment_pieces

    spikes, y, rng = _dense_data(5)
    bounds, lm, lp = [0, 1400], 6, 4
    F = rng.standard_normal((len(spikes), 2, lm + lp + 1))
    c = rng.standard_normal(2)
    got = np.concatenate(
        [
            evaluate.predict(CPU, own, F, c, lo, hi, lm)
            for lo, hi, own in segment_pieces(spikes, 1000, 2000, bounds)
        ],
        axis=1,
    )
    (s0, y0), (s1, y1) = _separate(spikes, y, bounds)
    want = np.concatenate(
        [
            evaluate.predict(CPU, s0, F, c, 1000, 1400, lm),
            evaluate.predict(CPU, s1, F, c, 0, 600, lm),
        ],
        axis=1,
    )
    np.testing.assert_allclose(got, want, atol=1e-9)
    plain = evaluate.predict(CPU, spikes, F, c, 1000, 2000, lm)
    assert np.abs(plain - got).max() > 1e-3


def test_segments_as_dictionary_windows():
    from neurodict.lfpdict.inputs import dictionary_windows

    names, windows = dictionary_windows({"windows": "segments"}, [], 40.0, [0.0, 17.5])
    assert names == ["segment0", "segment1"]
    assert windows == [(0.0, 17.5), (17.5, 40.0)]


def test_unit_scaling_reaches_the_same_minimum_in_fewer_iterations():
    """Units firing from 0.5 to 40 Hz: FISTA in the rescaled coordinates (fit_coef) and plain
    FISTA on the coefficients reach the same minimum; after 40 iterations the rescaled one is
    far closer to it (measured: 2.6e-7 against 2.5e-5 above it)."""
    from neurodict.lfpdict.solvers import fista, power_iteration, prox_sparse_group

    rng = np.random.default_rng(11)
    T, lm = 20000, 20
    rates_hz = [0.5, 2.0, 10.0, 40.0, 1.0, 20.0]
    spikes = [np.sort(rng.integers(0, T, size=int(r * T / 1000))) for r in rates_hz]
    u = dense_u(spikes, T)
    kernel = np.hanning(2 * lm + 1)
    y = np.stack([np.convolve(u[1] + u[3], kernel, "same"), np.convolve(u[0], kernel, "same")])
    y = y + rng.standard_normal(y.shape)
    st = segment_stats(spikes, y, 0, T, lm, lm, dtype="float64")
    D = wavelet_atoms(6, np.arange(-lm, lm + 1) / 1000.0)
    p = model.coef_problem(CPU, st, D)
    lam = model.lambda_max(CPU, st, D, 0.5) * 0.02
    B0 = np.zeros((1, len(spikes), 6, 2))

    def plain(n_iter):
        step = 1.0 / power_iteration(np, lambda v: p.H @ v, (p.q.size,), B0.dtype)
        return fista(
            np,
            B0,
            lambda B: (p.H @ B[0].reshape(-1, 2) - p.Z).reshape(B.shape),
            lambda V: prox_sparse_group(np, V[0], step * 0.5 * lam, step * 0.5 * lam)[None],
            lambda B: model.objective(CPU, [p], B, lam, 0.5, 0.0),
            step,
            n_iter,
            tol=0.0,
        )[0]

    def objective(B):
        return model.objective(CPU, [p], B, lam, 0.5, 0.0)

    best = objective(plain(20000))
    assert abs(objective(model.fit_coef(CPU, [p], lam, 0.5, B0, n_iter=20000)) - best) < 1e-8
    gap_scaled = objective(model.fit_coef(CPU, [p], lam, 0.5, B0, n_iter=40)) - best
    gap_plain = objective(plain(40)) - best
    assert gap_scaled < 0.05 * gap_plain


def test_stopping_tests_read_every_16_iterations_reach_the_same_minimum():
    """A GPU's solvers read their stopping test every `sync_every` iterations (restart and
    momentum on the device): the same minimum as reading it every iteration, the iterations
    run a multiple of 16."""
    import dataclasses

    from neurodict.lfpdict.solvers import fista, prox_sparse_group

    spikes, y, _ = small_data(6, N=5, R=3, T=6000)
    st = segment_stats(spikes, y, 0, 6000, 10, 10, dtype="float64")
    D = wavelet_atoms(4, np.arange(-10, 11) / 1000.0)
    p = model.coef_problem(CPU, st, D)
    lam = model.lambda_max(CPU, st, D, 0.5) * 0.05
    B0 = np.zeros((1, 5, 4, 3))
    gpu_like = dataclasses.replace(CPU, sync_every=16)
    objective = [
        model.objective(CPU, [p], model.fit_coef(be, [p], lam, 0.5, B0, n_iter=5000), lam, 0.5, 0)
        for be in (CPU, gpu_like)
    ]
    assert objective[1] == pytest.approx(objective[0], rel=1e-7)
    step = 0.1 / float(np.trace(p.H))
    _, n_iter = fista(
        np,
        B0[0],
        lambda B: (p.H @ B.reshape(-1, 3) - p.Z).reshape(B.shape),
        lambda V: prox_sparse_group(np, V, step * 0.5 * lam, step * 0.5 * lam),
        lambda B: 0.0,
        step,
        5000,
        check_every=16,
    )
    assert n_iter % 16 == 0 and n_iter < 5000


def test_a_batch_of_coefficient_problems_solves_each_as_alone():
    """Problems with their own statistics, penalties and windows, solved as one batch: each
    reaches the minimum it reaches alone (objectives to 1e-5; a batch runs every problem until
    the last has converged, so it ends at least as low)."""
    spikes, y, _ = small_data(8, N=5, R=3, T=9000)
    D = wavelet_atoms(4, np.arange(-10, 11) / 1000.0)
    mask = (np.arange(5)[:, None] != np.arange(3)[None, :]).astype(float)  # a predictor set
    problems, lams = [], []
    for a, b, fraction in [(0, 9000, 0.05), (0, 5000, 0.2), (3000, 9000, 0.02)]:
        windows = [
            segment_stats(spikes, y, lo, hi, 10, 10, dtype="float64")
            for lo, hi in [(a, (a + b) // 2), ((a + b) // 2, b)]
        ]
        problems.append([model.coef_problem(CPU, s, D) for s in windows])
        lams.append(model.lambda_max(CPU, windows[0] + windows[1], D, 0.5, mask) * fraction)
    B0 = np.zeros((3, 2, 5, 4, 3))
    batch = model.fit_coef_batch(CPU, problems, np.stack(lams), 0.5, B0, mask, 0.3, 3000)
    for p, lam, got in zip(problems, lams, batch, strict=True):
        alone = model.fit_coef(CPU, p, lam, 0.5, B0[0], mask, 0.3, 3000)
        assert np.abs(alone).max() > 0
        J_batch, J_alone = (model.objective(CPU, p, B, lam, 0.5, 0.3) for B in (got, alone))
        assert J_batch <= J_alone + 1e-12
        assert J_batch == pytest.approx(J_alone, rel=1e-5)


def test_batched_problems_give_the_estimator_its_scores(monkeypatch):
    """The estimator with a GPU's batching and stopping tests (numpy standing in for cupy):
    the scores and filters of one problem at a time."""
    import dataclasses

    from neurodict import backend

    monkeypatch.setattr(
        backend, "_gpu", lambda: dataclasses.replace(CPU, sync_every=16, batch_problems=16)
    )
    spikes, y, F, unit_regions, regions = planted(T=90_000)
    kw = dict(
        lag_minus_ms=100.0,
        lag_plus_ms=100.0,
        n_atoms=(4, 8),
        n_folds=3,
        n_outer=3,
        lambda_fractions=(0.1, 0.02),
        ridge_alphas=(0.01,),
        n_null=2,
    )
    one = SpikeLFPDictionary(1000.0, backend="cpu", **kw).fit(spikes, y, unit_regions, regions)
    batched = SpikeLFPDictionary(1000.0, backend="gpu", **kw).fit(spikes, y, unit_regions, regions)
    np.testing.assert_allclose(
        batched.filters_, one.filters_, atol=1e-3 * np.abs(one.filters_).max()
    )
    scored_one = heldout_scores(one, spikes, y, regions)
    scored_batched = heldout_scores(batched, spikes, y, regions)
    for a, b in zip(scored_one.scores, scored_batched.scores, strict=True):
        assert a["r2_heldout"] == pytest.approx(b["r2_heldout"], abs=1e-3)
    np.testing.assert_allclose(scored_batched.null_r2, scored_one.null_r2, atol=1e-3)
    for band, power in scored_one.link_p.items():  # each link against the nulls
        assert (scored_batched.link_p[band] == power).mean() > 0.95
