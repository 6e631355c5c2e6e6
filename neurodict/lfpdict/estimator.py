"""The spike->LFP dictionary estimator: blocked cross-validation, baselines, null, final fit.

Cross-validation: the recording is cut into ``n_folds`` contiguous folds; each fold's core drops
``gap`` bins (the filter length) at both ends, so a test core and the nearest training core are
at least two filter lengths apart. Statistics are computed once per core and summed for each
training set. For every fold and predictor set (all units; units outside the region; units
inside it) the model is fitted along a path of penalties (fractions of each region's
``lambda_max``) and scored on the held-out core; the fraction with the best pooled held-out R^2
is chosen per region and set. Baselines in the same folds: ridge filters (Wiener) with their own
ridge path, spike-triggered averages scaled by least squares, and the whole procedure (atoms,
penalty path and its choice) rerun on spike trains circularly shifted by at least
``jitter_min_s`` (the null: R^2 near 0).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.signal
from tqdm import tqdm

from neurodict.backend import get_backend
from neurodict.common.errors import InputError
from neurodict.lfpdict import baselines, model
from neurodict.lfpdict.atoms import BANDS_HZ, wavelet_atoms
from neurodict.lfpdict.evaluate import ToeplitzGram, intercept, predict, sse, sst
from neurodict.lfpdict.stats import segment_stats, total

PREDICTOR_SETS = ("all", "outside", "inside")


def fold_cores(n_bins: int, n_folds: int, gap_bins: int) -> list[tuple[int, int]]:
    """Core ``[a, b)`` of each of `n_folds` contiguous folds, `gap_bins` trimmed at both ends.

    Raises
    ------
    ValueError
        When a core would be shorter than the gaps around it.
    """
    edges = np.linspace(0, n_bins, n_folds + 1).astype(int)
    cores = [(int(a) + gap_bins, int(b) - gap_bins) for a, b in zip(edges[:-1], edges[1:],
                                                                      strict=True)]
    if any(b - a < 2 * gap_bins for a, b in cores):
        raise InputError(f"'n_folds': expected folds longer than 4 filter lengths "
                         f"({4 * gap_bins} bins); got {n_folds} folds of {n_bins} bins.")
    return cores


def circular_jitter(spike_bins: list[np.ndarray], n_bins: int, min_shift: int,
                    rng: np.random.Generator) -> list[np.ndarray]:
    """Each unit's train shifted circularly by its own offset in [min_shift, n_bins - min_shift]."""
    if n_bins <= 2 * min_shift:
        raise InputError(f"'jitter_min_s': expected a recording longer than twice the minimum "
                         f"shift ({2 * min_shift} bins); got {n_bins} bins.")
    return [np.sort((s + rng.integers(min_shift, n_bins - min_shift + 1)) % n_bins)
            for s in spike_bins]


class SpikeLFPDictionary:
    """Convolutional dictionary linking every unit's spikes to every region's LFP.

    Objective (per region r, per sample; see :mod:`neurodict.lfpdict.model`)::

        sum_w n_w/n [ 1/(2 n_w) ||y_r - c_r - sum_n u_n * sum_k b^(w)_{n,k,r} d_k||^2_(window w)
                      + lam_r (alpha ||b^(w)_r||_1 + (1 - alpha) sum_n ||b^(w)_{n,.,r}||_2) ]
            + mu sum_w ||b^(w) - b^(w-1)||^2,                         ||d_k|| <= 1

    Parameters
    ----------
    fs_hz : float
        Rate of the binned spikes and the LFP.
    lag_minus_ms, lag_plus_ms : float
        Filters span -lag_minus_ms .. +lag_plus_ms (non-causal).
    n_atoms : int
        Dictionary size K; atoms with no non-zero coefficient are reported as unused.
    alpha : float
        Share of the l1 penalty; the rest is the group (link on/off) penalty.
    lambda_fractions : sequence of float
        Penalty path as fractions of each region's lambda_max, chosen by cross-validation.
    ridge_alphas : sequence of float
        Ridge path of the Wiener baseline, relative to the mean spike count per bin.
    n_folds : int
    n_outer, n_inner : int
        Alternations of b | d and d | b; iterations of each inner solver.
    jitter_min_s : float
        Minimum circular shift of the null.
    windows_s : sequence of (start_s, end_s), optional
        Time windows with their own coefficients (atoms shared); default one window.
    smoothness : float
        Penalty mu ||b^(w) - b^(w-1)||^2 between consecutive windows, relative to the mean
        curvature of the coefficient loss (0: independent windows).
    backend : {"auto", "cpu", "gpu"}
    dtype : {"float32", "float64"}
    random_state : int
    progress : bool

    Attributes
    ----------
    atoms_ : ndarray of shape (n_atoms, n_lags)
    coef_ : ndarray of shape (n_windows, n_units, n_regions, n_atoms)
    window_filters_ : ndarray of shape (n_windows, n_units, n_regions, n_lags)
    filters_ : ndarray of shape (n_units, n_regions, n_lags)
        The windows' filters averaged with weights proportional to their samples.
    intercept_ : ndarray of shape (n_windows, n_regions)
    mu_ : float
        The smoothness penalty in the objective's units.
    lambda_ : ndarray of shape (n_regions,)
    objective_ : list of float
        The final fit's objective after each half-step (never increasing).
    scores_ : list of dict
        region, predictors, model, r2_heldout, penalty.
    coherence_ : list of dict
        region, predictors, band, coherence (held-out, dictionary model).
    heldout_ : dict
        A held-out stretch: t_s, measured and predicted (n_regions, n_samples).
    n_atoms_used_ : int
    timings_ : dict
        Wall seconds of each phase: statistics, cross-validation, null, final fit, held-out.
    """

    def __init__(self, fs_hz: float = 1000.0, *, lag_minus_ms: float = 200.0,
                 lag_plus_ms: float = 200.0, n_atoms: int = 12, alpha: float = 0.5,
                 lambda_fractions=(0.3, 0.1, 0.05, 0.02, 0.01, 0.005),
                 ridge_alphas=(1e-3, 1e-2, 1e-1, 1.0), n_folds: int = 5, n_outer: int = 10,
                 n_inner: int = 200, jitter_min_s: float = 10.0, windows_s=None,
                 smoothness: float = 0.1, backend: str = "auto",
                 dtype: str = "float32", random_state: int = 0, progress: bool = False):
        self.fs_hz = fs_hz
        self.lag_minus_ms = lag_minus_ms
        self.lag_plus_ms = lag_plus_ms
        self.n_atoms = n_atoms
        self.alpha = alpha
        self.lambda_fractions = lambda_fractions
        self.ridge_alphas = ridge_alphas
        self.n_folds = n_folds
        self.n_outer = n_outer
        self.n_inner = n_inner
        self.jitter_min_s = jitter_min_s
        self.windows_s = windows_s
        self.smoothness = smoothness
        self.backend = backend
        self.dtype = dtype
        self.random_state = random_state
        self.progress = progress

    @property
    def lags_ms(self) -> np.ndarray:
        """Filter lags in ms, shape (n_lags,)."""
        step = 1000.0 / self.fs_hz
        return np.arange(-self._lag_minus, self._lag_plus + 1) * step

    @property
    def _lag_minus(self) -> int:
        return int(round(self.lag_minus_ms * self.fs_hz / 1000.0))

    @property
    def _lag_plus(self) -> int:
        return int(round(self.lag_plus_ms * self.fs_hz / 1000.0))

    def _stats(self, be, spike_bins, y, segments):
        """Statistics per fold and window: segments[k][w] = (a, b), possibly empty."""
        return [[segment_stats(spike_bins, y, a, b, self._lag_minus, self._lag_plus,
                               backend=be, dtype=self.dtype) for a, b in fold]
                for fold in segments]

    def _masks(self, be, unit_regions, regions):
        home = np.asarray(unit_regions)[:, None] == np.asarray(regions)[None, :]
        masks = {"all": np.ones_like(home), "outside": ~home, "inside": home}
        return {k: be.asarray(v, dtype=self.dtype) for k, v in masks.items()}

    def _path(self, be, train, test, D, mask, fractions):
        """Test SSE (per fraction, region) of coefficient fits along the penalty path.

        `train` and `test` are lists over windows."""
        problems = [model.coef_problem(be, s, D) for s in train]
        N, R = train[0].S.shape[:2]
        lmax = model.lambda_max(be, total(train), D, self.alpha, mask)
        B = be.xp.zeros((len(train), N, self.n_atoms, R), dtype=self.dtype)
        grams = [ToeplitzGram(be, s) for s in test]
        out = []
        for fraction in fractions:
            B = model.fit_coef(be, problems, lmax * fraction, self.alpha, B, mask=mask,
                               mu=self.mu_, n_iter=self.n_inner)
            F = model.filters_from(be.xp, B, D)
            out.append(sum(be.to_numpy(sse(be, te, Fw, intercept(be, tr, Fw), g))
                           for tr, te, Fw, g in zip(train, test, F, grams, strict=True)))
        return np.array(out)

    def _learn(self, be, stats, D0, fraction):
        """Learn atoms and coefficients on a list of window statistics at lam = fraction x max.

        Returns D, B, intercepts, objective trace and lam."""
        lam = model.lambda_max(be, total(stats), D0, self.alpha) * be.asarray(fraction,
                                                                                dtype=self.dtype)
        return (*model.learn(be, stats, D0, lam, self.alpha, mu=self.mu_, n_outer=self.n_outer,
                             n_inner=self.n_inner), lam)

    def _segments(self, cores, n_bins):
        """Per fold, per window: the part of the fold's core inside the window."""
        windows = self.windows_s or [(0.0, n_bins / self.fs_hz)]
        bounds = [(int(round(a * self.fs_hz)), int(round(b * self.fs_hz))) for a, b in windows]
        return [[(max(a, wa), max(max(a, wa), min(b, wb))) for wa, wb in bounds]
                for a, b in cores]

    def fit(self, spike_bins: list[np.ndarray], y: np.ndarray, unit_regions, regions):
        """Cross-validate, fit the baselines and the null, then fit the final model.

        Parameters
        ----------
        spike_bins : list of ndarray of int
            Per unit, the bin (at fs_hz) of each spike.
        y : ndarray of shape (n_regions, n_bins)
            Region LFPs.
        unit_regions : sequence of str, length n_units
            Home region of each unit.
        regions : sequence of str, length n_regions

        Returns
        -------
        self
        """
        be = get_backend(self.backend)
        xp = be.xp
        rng = np.random.default_rng(self.random_state)
        clock = time.perf_counter()
        self.timings_ = {}

        def lap(name):
            nonlocal clock
            now = time.perf_counter()
            self.timings_[name] = now - clock
            clock = now

        n_bins = y.shape[1]
        n_lags = self._lag_minus + self._lag_plus + 1
        cores = fold_cores(n_bins, self.n_folds, n_lags)
        segments = self._segments(cores, n_bins)
        stats = self._stats(be, spike_bins, y, segments)
        jitter = self._stats(be, circular_jitter(spike_bins, n_bins,
                                                 int(self.jitter_min_s * self.fs_hz), rng),
                             y, segments)
        masks = self._masks(be, unit_regions, regions)
        lap("statistics")
        D0 = be.asarray(wavelet_atoms(self.n_atoms, self.lags_ms / 1000.0), dtype=self.dtype)
        n_windows = len(segments[0])
        by_window = [total([fold[w] for fold in stats]) for w in range(n_windows)]
        self.mu_ = self.smoothness * model.smoothness_scale(
            [model.coef_problem(be, total(by_window), D0)])
        fractions = np.asarray(self.lambda_fractions)
        mid = float(np.median(fractions))
        R = y.shape[0]
        total_sst = np.zeros(R)
        dict_sse = {s: np.zeros((fractions.size, R)) for s in PREDICTOR_SETS}
        wiener_sse = {s: np.zeros((len(self.ridge_alphas), R)) for s in PREDICTOR_SETS}
        sta_sse = {s: np.zeros(R) for s in PREDICTOR_SETS}
        fold_atoms = []
        scale = float(np.mean([len(s) for s in spike_bins])) / n_bins

        jitter_by_window = [total([fold[w] for fold in jitter]) for w in range(n_windows)]

        def train_of(st, k):
            """Training statistics of fold k per window: the window's total minus fold k."""
            totals = {id(stats): by_window, id(jitter): jitter_by_window}[id(st)]
            return [totals[w] - st[k][w] for w in range(n_windows)]

        for k in tqdm(range(self.n_folds), desc="lfpdict: folds", disable=not self.progress):
            train, test = train_of(stats, k), stats[k]
            train_all, test_all = total(train), total(test)
            total_sst += be.to_numpy(sst(test_all))
            D, *_ = self._learn(be, train, D0, mid)
            fold_atoms.append(D)
            gram_train, gram_test = ToeplitzGram(be, train_all), ToeplitzGram(be, test_all)
            for name, mask in masks.items():
                dict_sse[name] += self._path(be, train, test, D, mask, fractions)
                F = None
                for i in np.argsort(self.ridge_alphas)[::-1]:  # strong to weak, warm-started
                    a = self.ridge_alphas[i]
                    F = baselines.wiener(be, train_all, xp.full(R, a * scale, dtype=self.dtype),
                                         mask, gram_train, F0=F)
                    wiener_sse[name][i] += be.to_numpy(
                        sse(be, test_all, F, intercept(be, train_all, F), gram_test))
                F = baselines.sta(be, train_all, mask, gram_train)
                sta_sse[name] += be.to_numpy(
                    sse(be, test_all, F, intercept(be, train_all, F), gram_test))
        lap("cross_validation")
        r2 = {s: 1 - dict_sse[s] / total_sst for s in PREDICTOR_SETS}
        best = {s: np.argmax(np.nan_to_num(r2[s], nan=-np.inf), axis=0) for s in PREDICTOR_SETS}
        chosen = {s: fractions[best[s]] for s in PREDICTOR_SETS}
        jitter_sse = {s: np.zeros((fractions.size, R)) for s in PREDICTOR_SETS}
        for k in tqdm(range(self.n_folds), desc="lfpdict: null", disable=not self.progress):
            train = train_of(jitter, k)
            D, *_ = self._learn(be, train, D0, mid)
            for name, mask in masks.items():
                jitter_sse[name] += self._path(be, train, jitter[k], D, mask, fractions)
        # the null goes through the same procedure, penalty chosen on its own held-out error
        jitter_best = {s: np.argmin(jitter_sse[s], axis=0) for s in PREDICTOR_SETS}
        lap("null")
        self.scores_ = []
        for i, region in enumerate(regions):
            for name in PREDICTOR_SETS:
                rows = {
                    "dictionary": (r2[name][best[name][i], i], chosen[name][i]),
                    "wiener": max((1 - wiener_sse[name][j, i] / total_sst[i], a)
                                  for j, a in enumerate(self.ridge_alphas)),
                    "sta": (1 - sta_sse[name][i] / total_sst[i], np.nan),
                    "jitter": (1 - jitter_sse[name][jitter_best[name][i], i] / total_sst[i],
                               fractions[jitter_best[name][i]]),
                }
                for model_name, (value, pen) in rows.items():
                    self.scores_.append({"region": region, "predictors": name,
                                         "model": model_name, "r2_heldout": float(value),
                                         "penalty": float(pen)})
        self._final_fit(be, by_window, D0, chosen["all"])
        lap("final_fit")
        self._heldout(be, spike_bins, y, stats, segments, fold_atoms, masks, chosen, regions,
                      train_of)
        lap("heldout")
        return self

    def _final_fit(self, be, stats, D0, fractions):
        D, B, c, trace, lam = self._learn(be, stats, D0, fractions)
        omega = np.array([s.n_samples for s in stats], dtype=float)
        omega /= max(omega.sum(), 1)
        self.atoms_ = be.to_numpy(D)
        self.coef_ = be.to_numpy(B).transpose(0, 1, 3, 2)  # (W, N, R, K)
        self.window_filters_ = be.to_numpy(model.filters_from(be.xp, B, D))
        self.filters_ = np.tensordot(omega, self.window_filters_, axes=1)
        self.intercept_ = be.to_numpy(c)
        self.lambda_ = be.to_numpy(lam)
        self.objective_ = trace
        self.n_atoms_used_ = int((np.abs(self.coef_).sum(axis=(0, 1, 2)) > 0).sum())

    def _heldout(self, be, spike_bins, y, stats, segments, fold_atoms, masks, chosen, regions,
                 train_of):
        """Held-out predictions of each fold's core: band coherence and an example stretch."""
        N, R = stats[0][0].S.shape[:2]
        coh = {s: {b: [] for b in BANDS_HZ} for s in PREDICTOR_SETS}
        n_heldout = 0
        for k, fold in enumerate(segments):
            t = np.concatenate([np.arange(wa, wb) for wa, wb in fold])  # samples in windows
            measured = y[:, t]
            train = train_of(stats, k)
            problems = [model.coef_problem(be, s, fold_atoms[k]) for s in train]
            n_heldout += t.size
            for name, mask in masks.items():
                lmax = model.lambda_max(be, total(train), fold_atoms[k], self.alpha, mask)
                B = model.fit_coef(be, problems, lmax * be.asarray(chosen[name], self.dtype),
                                   self.alpha,
                                   be.xp.zeros((len(train), N, self.n_atoms, R), self.dtype),
                                   mask=mask, mu=self.mu_, n_iter=self.n_inner)
                F = model.filters_from(be.xp, B, fold_atoms[k])
                pred = np.concatenate(
                    [predict(be, spike_bins, Fw, intercept(be, tr, Fw), wa, wb, self._lag_minus)
                     for (wa, wb), Fw, tr in zip(fold, F, train, strict=True) if wb > wa],
                    axis=1)
                nperseg = int(min(t.size, 2 * self.fs_hz))
                freqs, c = scipy.signal.coherence(measured, pred, fs=self.fs_hz,
                                                  nperseg=nperseg, axis=-1)
                for band, (lo, hi) in BANDS_HZ.items():
                    sel = (freqs >= lo) & (freqs < hi)
                    coh[name][band].append(t.size * c[:, sel].mean(axis=1))
                if k == 0 and name == "all":
                    n_show = int(min(t.size, 10 * self.fs_hz))
                    self.heldout_ = {"t_s": t[:n_show] / self.fs_hz,
                                     "measured": measured[:, :n_show],
                                     "predicted": pred[:, :n_show]}
        self.coherence_ = [{"region": region, "predictors": name, "band": band,
                            "coherence": float(np.sum(coh[name][band], axis=0)[i] / n_heldout)}
                           for i, region in enumerate(regions) for name in PREDICTOR_SETS
                           for band in BANDS_HZ]
