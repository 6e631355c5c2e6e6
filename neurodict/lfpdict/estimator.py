"""The spike->LFP dictionary estimator: size and penalties chosen by nested cross-validation.

Cross-validation: the recording is cut into ``n_folds`` contiguous folds; each fold's core drops
``gap`` bins (the filter length) at both ends, so a test core and the nearest training core are
at least two filter lengths apart. Statistics are computed once per core and summed for each
training set. For every outer fold, dictionary size and predictor set (all units; units outside
the region; units inside it) the model is fitted along a path of penalties (fractions of each
region's ``lambda_max``) and scored on the held-out core; the size and the penalties are chosen
on inner folds of the training data (:meth:`SpikeLFPDictionary.cross_validate`). The baselines,
the null and the held-out prediction use the same folds and live in
:mod:`neurodict.lfpdict.scoring`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from neurodict.backend import Backend, get_backend
from neurodict.common import timeline
from neurodict.common.errors import InputError
from neurodict.common.units import ms_to_samples
from neurodict.lfpdict import baselines, cost, model
from neurodict.lfpdict.atoms import wavelet_atoms
from neurodict.lfpdict.evaluate import ToeplitzGram, intercept, sse, sst
from neurodict.lfpdict.stats import SegmentStats, Trains, segment_stats, total

PREDICTOR_SETS = ("all", "outside", "inside")


def fold_cores(n_bins: int, n_folds: int, gap_bins: int) -> list[tuple[int, int]]:
    """Core ``[a, b)`` of each of `n_folds` contiguous folds, `gap_bins` trimmed at both ends.

    Raises
    ------
    ValueError
        When a core would be shorter than the gaps around it.
    """
    edges = np.linspace(0, n_bins, n_folds + 1).astype(int)
    cores = [
        (int(a) + gap_bins, int(b) - gap_bins) for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    if any(b - a < 2 * gap_bins for a, b in cores):
        raise InputError(
            f"'n_folds': expected folds longer than 4 filter lengths "
            f"({4 * gap_bins} bins); got {n_folds} folds of {n_bins} bins."
        )
    return cores


def circular_jitter(spike_bins, n_bins: int, min_shift: int, rng: np.random.Generator) -> Trains:
    """Each unit's train (bins in [0, n_bins)) shifted circularly by its own offset in
    [min_shift, n_bins - min_shift]."""
    if n_bins <= 2 * min_shift:
        raise InputError(
            f"'jitter_min_s': expected a recording longer than twice the minimum "
            f"shift ({2 * min_shift} bins); got {n_bins} bins."
        )
    trains = Trains.of(spike_bins)
    return trains.shifted(rng.integers(min_shift, n_bins - min_shift + 1, trains.n_units), n_bins)


def size_batches(atoms: list, batch_problems: int) -> list[list[int]]:
    """Indices of problems grouped by their number of atoms, at most `batch_problems` a group
    (the problems one batched coefficient fit can take)."""
    out = []
    for size in sorted({D.shape[0] for D in atoms}):
        same = [i for i, D in enumerate(atoms) if D.shape[0] == size]
        out += [same[a : a + batch_problems] for a in range(0, len(same), batch_problems)]
    return out


@dataclass
class Folds:
    """The cross-validation folds of one fit and their statistics.

    Attributes
    ----------
    backend : Backend
    segments : list (n_folds) of list (n_windows) of (a, b)
        Per fold, the part of its core inside each window, in bins.
    stats : list (n_folds) of list (n_windows) of SegmentStats
    by_window : list (n_windows) of SegmentStats
        Each window's statistics summed over folds.
    masks : dict
        Predictor set -> mask of shape (n_units, n_regions) (1: the unit predicts the region).
    atoms0 : array of shape (largest size, n_lags)
        Wavelet atoms: the part of every fit's start that does not come from the data
        (:meth:`SpikeLFPDictionary.start_atoms`), and the scale of the smoothness penalty.

    The predictor sets share the spikes' Gram matrix, so their fits run as one problem: the
    regions repeated once per set (:meth:`stacked`), each copy with its set's mask
    (:attr:`mask`, shape (n_units, n_sets * n_regions), sets in PREDICTOR_SETS order).
    """

    backend: Backend
    segments: list
    stats: list
    by_window: list
    masks: dict
    atoms0: object

    @property
    def mask(self):
        return self.backend.xp.concatenate([self.masks[s] for s in PREDICTOR_SETS], axis=1)

    def stacked(self, stats: list) -> list:
        """Per window, `stats` with the regions repeated once per predictor set."""
        return [s.tile_regions(self.backend.xp, len(PREDICTOR_SETS)) for s in stats]

    def train(self, k: int, stats: list | None = None, by_window: list | None = None) -> list:
        """Training statistics of fold k per window: each window's total minus fold k."""
        stats = self.stats if stats is None else stats
        by_window = self.by_window if by_window is None else by_window
        return [by_window[w] - stats[k][w] for w in range(len(by_window))]

    def totals(self, stats: list) -> list[SegmentStats]:
        """Per window, `stats` (per fold, per window) summed over folds."""
        return [total([fold[w] for fold in stats]) for w in range(len(self.segments[0]))]


@dataclass
class PathErrors:
    """Held-out errors of one model along its hyper-parameter path, per outer fold.

    Attributes
    ----------
    outer : ndarray of shape (n_folds, n_values, n_regions)
        Fitted on the other folds, scored on fold k.
    inner : ndarray of shape (n_folds, n_values, n_regions)
        For the choice inside outer fold k's training data: summed over the inner folds j != k
        (fitted without k and j, scored on j).
    sst : ndarray of shape (n_folds, n_regions)
        Each fold's total sum of squares about its mean.
    inner_sst : ndarray of shape (n_folds, n_regions)
        The inner folds' total, sum over j != k.
    """

    outer: np.ndarray
    inner: np.ndarray
    sst: np.ndarray
    inner_sst: np.ndarray

    def pooled_r2(self) -> np.ndarray:
        """Held-out R^2 of each path value pooled over the outer folds, (n_values, n_regions).

        Chooses the final fit's value (every fold's data is then training data)."""
        return 1 - self.outer.sum(axis=0) / self.sst.sum(axis=0)

    def nested(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The honest score: each outer fold at the value its own inner folds chose.

        Returns
        -------
        r2 : ndarray of shape (n_regions,)
            Pooled over outer folds: 1 - sum_k SSE_k / sum_k SST_k.
        r2_fold : ndarray of shape (n_folds, n_regions)
        chosen : ndarray of int, shape (n_folds, n_regions)
            Index of the value each outer fold chose.
        """
        inner_r2 = 1 - self.inner / self.inner_sst[:, None, :]
        chosen = np.argmax(np.nan_to_num(inner_r2, nan=-np.inf), axis=1)
        sse = np.take_along_axis(self.outer, chosen[:, None, :], axis=1)[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            return 1 - sse.sum(axis=0) / self.sst.sum(axis=0), 1 - sse / self.sst, chosen


def best_size(r2: np.ndarray) -> int:
    """The dictionary size whose best penalties predict best: r2 of shape (n_sizes,
    n_fractions, n_regions) -> index of the size maximising the mean over regions of the best
    R^2 over the path (regions without variance ignored)."""
    best = np.nanmax(np.where(np.isnan(r2), -np.inf, r2), axis=1)  # (n_sizes, n_regions)
    best = np.where(np.isfinite(best), best, np.nan)
    score = np.nanmean(best, axis=1) if np.isfinite(best).any() else np.zeros(len(r2))
    return int(np.argmax(np.nan_to_num(score, nan=-np.inf)))


def standard_error(r2_fold: np.ndarray) -> np.ndarray:
    """Standard error across outer folds of per-fold values, (n_folds, ...) -> (...)."""
    return np.std(r2_fold, axis=0, ddof=1) / np.sqrt(r2_fold.shape[0])


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
    n_atoms : int or sequence of int
        Dictionary size K, or the sizes to choose from on inner folds; atoms with no non-zero
        coefficient are reported as unused.
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
    n_null : int
        Circular-shift nulls, each through the same nested procedure
        (:func:`neurodict.lfpdict.scoring.heldout_scores`).
    windows_s : sequence of (start_s, end_s), optional
        Time windows with their own coefficients (atoms shared); default one window.
    segment_starts_s : sequence of float, optional
        Starts of the recording's segments on the timeline (:mod:`neurodict.common.timeline`):
        statistics and predictions are computed per piece between them, so no filter reaches
        across a pause. Default: one segment.
    smoothness : float
        Penalty mu ||b^(w) - b^(w-1)||^2 between consecutive windows, relative to the mean
        curvature of the coefficient loss (0: independent windows).
    backend : {"auto", "cpu", "gpu"}
        ``auto``: the backend :mod:`neurodict.lfpdict.cost` expects to finish first (timed
        here at the fit's size; the CPU without a GPU).
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
    folds_ : Folds
        The cross-validation folds and their statistics (what the scoring reuses).
    paths_ : dict
        Predictor set -> :class:`PathErrors`: outer and inner held-out errors along the penalty
        path (nested cross-validation; :meth:`PathErrors.nested` gives the honest score).
    penalty_ : dict
        Predictor set -> the fraction of lambda_max per region of the final fit, shape
        (n_regions,), chosen by cross-validation over all folds at the final size.
    size_ : int
        The final fit's dictionary size, chosen by cross-validation over all folds.
    size_r2_ : ndarray of shape (n_sizes, n_fractions, n_sets, n_regions)
        Held-out R^2 per size, penalty and predictor set, pooled over outer folds.
    fold_atoms_ : list of array
        The atoms learned on each outer fold's training data (at the middle penalty), at the
        size that fold chose on its inner folds.
    fold_sizes_ : ndarray of int, shape (n_folds,)
    n_atoms_used_ : int
    timings_ : dict
        Wall seconds of each phase: statistics, cross-validation, final fit.
    backend_ : str
        Where the fit ran: "cpu" or "gpu".
    backend_costs_ : dict
        With ``backend: auto`` and a GPU: backend -> the cost model's expected seconds.
    """

    def __init__(
        self,
        fs_hz: float = 1000.0,
        *,
        lag_minus_ms: float = 200.0,
        lag_plus_ms: float = 200.0,
        n_atoms=(12, 24),
        alpha: float = 0.5,
        lambda_fractions=(0.3, 0.1, 0.05, 0.02, 0.01, 0.005),
        ridge_alphas=(1e-3, 1e-2, 1e-1, 1.0),
        n_folds: int = 5,
        n_outer: int = 10,
        n_inner: int = 200,
        jitter_min_s: float = 10.0,
        n_null: int = 20,
        windows_s=None,
        segment_starts_s=None,
        smoothness: float = 0.1,
        backend: str = "auto",
        dtype: str = "float32",
        random_state: int = 0,
        progress: bool = False,
    ):
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
        self.n_null = n_null
        self.windows_s = windows_s
        self.segment_starts_s = segment_starts_s
        self.smoothness = smoothness
        self.backend = backend
        self.dtype = dtype
        self.random_state = random_state
        self.progress = progress

    @property
    def lags_ms(self) -> np.ndarray:
        """Filter lags in ms, shape (n_lags,)."""
        step = 1000.0 / self.fs_hz
        return np.arange(-self.lag_minus_bins, self.lag_plus_bins + 1) * step

    @property
    def lag_minus_bins(self) -> int:
        return ms_to_samples(self.lag_minus_ms, self.fs_hz)

    @property
    def lag_plus_bins(self) -> int:
        return ms_to_samples(self.lag_plus_ms, self.fs_hz)

    @property
    def segment_bounds(self) -> list[int]:
        """Starts of the recording's segments in bins (``segment_starts_s``)."""
        return timeline.in_bins(self.segment_starts_s, self.fs_hz)

    def fold_stats(self, be, spike_bins, y, segments):
        """Statistics per fold and window: segments[k][w] = (a, b), possibly empty, cut at the
        recording's segment starts."""
        trains = Trains.of(spike_bins)
        return [
            [
                segment_stats(
                    trains,
                    y,
                    a,
                    b,
                    self.lag_minus_bins,
                    self.lag_plus_bins,
                    backend=be,
                    dtype=self.dtype,
                    bounds=self.segment_bounds,
                )
                for a, b in fold
            ]
            for fold in segments
        ]

    def _masks(self, be, unit_regions, regions):
        home = np.asarray(unit_regions)[:, None] == np.asarray(regions)[None, :]
        masks = {"all": np.ones_like(home), "outside": ~home, "inside": home}
        return {k: be.asarray(v, dtype=self.dtype) for k, v in masks.items()}

    def path(self, be, stats, atoms, mask, fractions):
        """Coefficient fits along the penalty path for each of a batch of problems, each fit
        started from the one before it (the first from zero); problems with atoms of one size
        solved together, ``be.batch_problems`` at a time.

        Parameters
        ----------
        stats : list (P) of list (n_windows) of SegmentStats
            Each problem's training statistics.
        atoms : list (P) of array of shape (K_p, n_lags)
        mask : array of shape (n_units, n_regions), optional
        fractions : array broadcasting to (n_fractions, P, n_regions)
            Fractions of each problem's and region's lambda_max.

        Yields
        ------
        batch : list of int
            The problems of this fit.
        f : int
            The fraction along the path.
        B : array of shape (len(batch), n_windows, n_units, K, n_regions)
        """
        xp = be.xp
        n_units, n_regions = stats[0][0].S.shape[:2]
        fractions = np.broadcast_to(fractions, (len(fractions), len(stats), n_regions))
        for batch in size_batches(atoms, be.batch_problems):
            problems = [[model.coef_problem(be, s, atoms[i]) for s in stats[i]] for i in batch]
            lmax = xp.stack(
                [model.lambda_max(be, total(stats[i]), atoms[i], self.alpha, mask) for i in batch]
            )
            shape = (len(batch), len(stats[0]), n_units, atoms[batch[0]].shape[0], n_regions)
            B = xp.zeros(shape, dtype=self.dtype)
            for f, fraction in enumerate(fractions):
                B = model.fit_coef_batch(
                    be,
                    problems,
                    lmax * be.asarray(fraction[batch], dtype=self.dtype),
                    self.alpha,
                    B,
                    mask=mask,
                    mu=self.mu_,
                    n_iter=self.n_inner,
                )
                yield batch, f, B

    def path_sse(self, be, trains, tests, atoms, mask, fractions):
        """Test SSE of the coefficient fits of :meth:`path` (fitted on `trains`, scored on
        `tests`, both lists (P) of lists (n_windows) of SegmentStats).

        Returns
        -------
        ndarray of shape (P, n_fractions, n_regions)
        """
        xp = be.xp
        out = np.zeros((len(trains), len(fractions), trains[0][0].S.shape[1]))
        grams, errors = {}, {}
        for batch, f, B in self.path(be, trains, atoms, mask, fractions):
            for i, Bi in zip(batch, B, strict=True):
                if f == 0:
                    grams[i], errors[i] = [ToeplitzGram(be, s) for s in tests[i]], []
                F = model.filters_from(xp, Bi, atoms[i])
                errors[i].append(
                    sum(
                        sse(be, te, Fw, intercept(be, tr, Fw), g)
                        for tr, te, Fw, g in zip(trains[i], tests[i], F, grams[i], strict=True)
                    )
                )
            if f == len(fractions) - 1:  # the batch's path is done: one read from the device
                for i in batch:
                    out[i] = be.to_numpy(xp.stack(errors.pop(i)))
                    del grams[i]
        return out

    def refit(self, be, stats, atoms, fractions, mask=None) -> list:
        """Coefficients of a batch of problems at fixed penalties, each from zero (:meth:`path`
        with one step).

        Parameters
        ----------
        fractions : array of shape (P, n_regions)

        Returns
        -------
        list (P) of array of shape (n_windows, n_units, K_p, n_regions)
        """
        out = [None] * len(stats)
        for batch, _, B in self.path(be, stats, atoms, mask, np.asarray(fractions)[None]):
            for i, Bi in zip(batch, B, strict=True):
                out[i] = Bi
        return out

    def start_atoms(self, be, stats: list, wavelets):
        """The atoms a fit on `stats` (per window) starts from: the leading right singular
        vectors of its Wiener filters (ridge at the middle of ``ridge_alphas``, all units
        predicting every region), half the largest size of them, then the first wavelet
        atoms.

        The data's leading filter shapes give the learning a start near the solution (its
        alternation only descends); the wavelets keep every band within reach."""
        xp = be.xp
        st = total(stats)
        N, R, L = st.S.shape
        rate = float(be.to_numpy(st.g[:, self.lag_minus_bins]).mean()) / max(st.n_samples, 1)
        alpha = float(np.median(self.ridge_alphas)) * rate
        F = baselines.wiener(be, st, xp.full(R, alpha, dtype=self.dtype))
        size = self.atom_counts[-1]
        _, _, vt = xp.linalg.svd(F.reshape(N * R, L), full_matrices=False)
        k = min(size // 2, vt.shape[0])
        return xp.concatenate([vt[:k].astype(self.dtype), wavelets[: size - k]])

    def learn(self, be, stats, D0, fraction):
        """Learn atoms and coefficients on a list of window statistics at lam = fraction x max.

        Returns D, B, intercepts, objective trace and lam."""
        lam = model.lambda_max(be, total(stats), D0, self.alpha) * be.asarray(
            fraction, dtype=self.dtype
        )
        D, B, c, traces = model.learn_batch(
            be, [stats], D0[None], lam[None], self.alpha, self.mu_, self.n_outer, self.n_inner
        )
        return D[0], B[0], c[0], traces[0], lam

    def _segments(self, cores, n_bins):
        """Per fold, per window: the part of the fold's core inside the window."""
        windows = self.windows_s or [(0.0, n_bins / self.fs_hz)]
        bounds = [(int(round(a * self.fs_hz)), int(round(b * self.fs_hz))) for a, b in windows]
        return [[(max(a, wa), max(max(a, wa), min(b, wb))) for wa, wb in bounds] for a, b in cores]

    def fit(self, spike_bins: list[np.ndarray], y: np.ndarray, unit_regions, regions):
        """Choose each predictor set's penalty by cross-validation, then fit the final model.

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
        if self.backend == "auto":
            be, self.backend_costs_ = cost.choose(self, len(spike_bins), *y.shape)
        else:
            be, self.backend_costs_ = get_backend(self.backend), {}
        self.backend_ = be.name
        self.timings_ = {}
        clock = time.perf_counter()
        self.folds_ = self._folds(be, spike_bins, y, unit_regions, regions)
        self.timings_["statistics"] = time.perf_counter() - clock
        self.mu_ = self.smoothness * model.smoothness_scale(
            [model.coef_problem(be, total(self.folds_.by_window), self.folds_.atoms0)]
        )
        clock = time.perf_counter()
        self.paths_, self.size_r2_, self.fold_atoms_, self.fold_sizes_ = self.cross_validate(
            self.folds_, self.folds_.stats, self.folds_.by_window
        )
        chosen = best_size(self.size_r2_[:, :, 0])
        self.size_ = self.atom_counts[chosen]
        self.penalty_ = {
            s: self.best_fractions(self.size_r2_[chosen, :, i])
            for i, s in enumerate(PREDICTOR_SETS)
        }
        self.timings_["cross_validation"] = time.perf_counter() - clock
        clock = time.perf_counter()
        self._final_fit(be, self.folds_.by_window, self.penalty_["all"])
        self.timings_["final_fit"] = time.perf_counter() - clock
        return self

    def _folds(self, be, spike_bins, y, unit_regions, regions) -> Folds:
        n_bins = y.shape[1]
        cores = fold_cores(n_bins, self.n_folds, self.lag_minus_bins + self.lag_plus_bins + 1)
        segments = self._segments(cores, n_bins)
        stats = self.fold_stats(be, spike_bins, y, segments)
        folds = Folds(
            be,
            segments,
            stats,
            [],
            self._masks(be, unit_regions, regions),
            be.asarray(
                wavelet_atoms(self.atom_counts[-1], self.lags_ms / 1000.0), dtype=self.dtype
            ),
        )
        folds.by_window = folds.totals(stats)
        return folds

    @property
    def atom_counts(self) -> tuple[int, ...]:
        """The dictionary sizes K to choose from (``n_atoms``: one size or several)."""
        return tuple(sorted({int(k) for k in np.atleast_1d(self.n_atoms)}))

    def learn_ordered(self, be, stats: list, fraction) -> list:
        """Atoms learned on each of `stats` (a list of problems, each per window) from
        :meth:`start_atoms` with the largest size K, at lam = fraction x max, ordered by use
        (each atom's coefficients' squared norm, most used first): the first K' of them are
        the dictionary of size K'. The problems are learned ``be.batch_problems`` at a time
        (:func:`neurodict.lfpdict.model.learn_batch`).

        Returns
        -------
        list of array of shape (K, n_lags)
        """
        xp = be.xp
        out = []
        for a in range(0, len(stats), be.batch_problems):
            batch = stats[a : a + be.batch_problems]
            D0 = xp.stack([self.start_atoms(be, st, self.folds_.atoms0) for st in batch])
            lam = xp.stack(
                [
                    model.lambda_max(be, total(st), D, self.alpha)
                    for st, D in zip(batch, D0, strict=True)
                ]
            ) * be.asarray(fraction, dtype=self.dtype)
            D, B, *_ = model.learn_batch(
                be, batch, D0, lam, self.alpha, self.mu_, self.n_outer, self.n_inner
            )
            use = be.to_numpy((B * B).sum(axis=(1, 2, 4)))  # (P, K)
            out += [
                Dp[be.asarray(np.argsort(-u, kind="stable"))] for Dp, u in zip(D, use, strict=True)
            ]
        return out

    def cross_validate(self, folds: Folds, stats: list, by_window: list, desc: str = "folds"):
        """Held-out errors along the penalty path, outer and inner, per predictor set, and the
        dictionary size of each outer fold chosen on its inner folds.

        For each outer fold k the atoms are learned on the other folds (at the path's middle
        penalty, :meth:`learn_ordered`); for every size K' in :attr:`atom_counts` the first K'
        atoms are fitted along the penalty path on the other folds and scored on fold k (the
        outer errors), and, for the choices inside the training data, fitted without folds k and
        j and scored on fold j for every j != k (the inner errors). Fold k's size K' is the one
        whose best penalties give the highest inner R^2 of all units, averaged over regions (one
        dictionary serves all regions and predictor sets); its penalties are then chosen per
        region and set (:meth:`PathErrors.nested`). The inner fits reuse the outer training set's
        atoms: fold k is never seen; the choice may lean to weak penalties and large
        dictionaries, never the score.

        Parameters
        ----------
        folds : Folds
        stats : list (n_folds) of list (n_windows) of SegmentStats
            The statistics to cross-validate.
        by_window : list (n_windows) of SegmentStats
            `stats` summed over folds.

        Returns
        -------
        paths : dict
            Predictor set -> :class:`PathErrors` (each fold at its chosen size).
        size_r2 : ndarray of shape (n_sizes, n_fractions, n_sets, n_regions)
            Held-out R^2 per size, penalty and predictor set, pooled over outer folds (chooses
            the final fit's size, with all units, and penalties).
        fold_atoms : list of array
            The atoms of each outer training set at its chosen size.
        fold_sizes : ndarray of int, shape (n_folds,)
        """
        be = folds.backend
        fractions = np.asarray(self.lambda_fractions)
        K, R, n_sets = self.n_folds, stats[0][0].S.shape[1], len(PREDICTOR_SETS)
        sizes = self.atom_counts
        outer = np.zeros((K, len(sizes), fractions.size, n_sets, R))
        inner = np.zeros((K, len(sizes), fractions.size, n_sets, R))
        fold_sst = np.zeros((K, R))
        mid = float(np.median(fractions))
        learned = self.learn_ordered(be, [folds.train(k, stats, by_window) for k in range(K)], mid)
        for k in tqdm(range(K), desc=f"lfpdict: {desc}", disable=not self.progress):
            train = folds.train(k, stats, by_window)
            fold_sst[k] = be.to_numpy(sst(total(stats[k])))
            others = [j for j in range(K) if j != k]
            # the outer problem (train on the other folds, test on k), then the inner ones
            trains = [train] + [[t - stats[j][w] for w, t in enumerate(train)] for j in others]
            trains = [folds.stacked(t) for t in trains]
            tests = [folds.stacked(stats[j]) for j in [k] + others]
            for c, size in enumerate(sizes):
                errors = self.path_sse(
                    be, trains, tests, [learned[k][:size]] * K, folds.mask, fractions[:, None, None]
                ).reshape(K, fractions.size, n_sets, R)
                outer[k, c], inner[k, c] = errors[0], errors[1:].sum(axis=0)
        inner_sst = fold_sst.sum(axis=0) - fold_sst
        inner_all = 1 - inner[:, :, :, 0] / inner_sst[:, None, None, :]  # (K, sizes, F, R)
        chosen = np.array([best_size(r2) for r2 in inner_all])
        pick = np.arange(K)
        paths = {
            s: PathErrors(outer[pick, chosen, :, i], inner[pick, chosen, :, i], fold_sst, inner_sst)
            for i, s in enumerate(PREDICTOR_SETS)
        }
        size_r2 = 1 - outer.sum(axis=0) / fold_sst.sum(axis=0)
        fold_atoms = [D[: sizes[c]] for D, c in zip(learned, chosen, strict=True)]
        return paths, size_r2, fold_atoms, np.asarray(sizes)[chosen]

    def best_fractions(self, r2: np.ndarray) -> np.ndarray:
        """Per region, the penalty fraction of the path with the best held-out R^2."""
        best = np.argmax(np.nan_to_num(r2, nan=-np.inf), axis=0)
        return np.asarray(self.lambda_fractions)[best]

    def final_model(self, be, stats, fractions, size: int):
        """The model of the whole recording (`stats`, per window) at penalties `fractions` (per
        region) with `size` atoms: the atoms learned from :meth:`start_atoms` at the largest
        size, the `size` most used kept (:meth:`learn_ordered`), and learned on from there.

        Returns D, B, intercepts, objective trace and lam (:meth:`learn`)."""
        return self.learn(
            be, stats, self.learn_ordered(be, [stats], fractions)[0][:size], fractions
        )

    def _final_fit(self, be, stats, fractions):
        D, B, c, trace, lam = self.final_model(be, stats, fractions, self.size_)
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
