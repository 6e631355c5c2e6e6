"""Calibration and power of neurodict's statistical tests; prints markdown tables.

Usage:
    python benchmarks/statistics.py                       # every section, full size
    python benchmarks/statistics.py --quick               # fewer datasets (a smoke run)
    python benchmarks/statistics.py --section beyond_region --jobs 2

A test is trusted only after it is calibrated (MODELS.md section 2): on data with no effect it
must give p < alpha in about alpha of the datasets. Each section prints a calibration table
(false-positive rate at alpha = 0.05 over null datasets, with its Clopper-Pearson 95 %
interval) and a power table (rejection rate against planted effects of several sizes).

Section ``lfpdict`` (:func:`neurodict.lfpdict.scoring.heldout_scores`): the region R^2 test
(nested CV choosing the dictionary size and the penalty; p against ``n_null`` circular-shift
nulls scored with the data's atoms and choices of each outer training set) and the link tests
(band power of the final fit against the nulls' final fits, Benjamini-Hochberg q), on small
problems with one region:
an AR(1) LFP with no coupling (calibration) or unit 0's spikes convolved with a 20 Hz damped
oscillation added (power, by coupling gain).

Section ``beyond_region`` (:func:`neurodict.clusters.beyond.beyond_region_test`): signatures of
``n`` units in ``R`` regions x 4 bands, unit norm, from three generators:

- ``sphere_gauss``: each region a random non-negative mean direction, plus correlated Gaussian
  noise (the covariance shared by regions), normalised; the test's own null model, up to the
  curvature of the sphere.
- ``orthant``: ``|N(0, I)|`` normalised, the same for every region: signatures uniform on the
  positive orthant of the sphere (pure noise, no region structure; bounded, far from Gaussian).
- ``dictionary``: the way the pipeline makes signatures: per home region a sparse pattern of
  coefficients on 12 wavelet atoms (links on with probability 0.7), a gain per unit, Gaussian
  coefficient noise, soft-thresholded as the l1 penalty does (exact zeros), filters = atoms x
  coefficients, signatures from their band power (:func:`neurodict.clusters.mixture.signatures`);
  units left with no link are dropped as in the pipeline.

Power: three families, each unit drawn into one whatever its home region, add a shared effect
(``sphere_gauss``: a Gaussian offset of the given size per feature, relative to the noise;
``dictionary``: extra sparse coefficients of the given size, relative to the coefficient noise).

Section ``noise_units`` (:mod:`neurodict.sort.crossings`): the sorter's test of a unit against
noise crossings of the detection threshold (4 SD). Calibration: Gaussian noise on 16 channels
of a linear probe, band-passed as the spike band (300-6000 Hz; white, or pink: 1/f power, as
real background is) or narrow (500-800 Hz: the Rayleigh limit of the maxima), peaks found by
the project's detection (spikeinterface's locally exclusive peaks), drawn at random into
"units" of n detected spikes. Power: a neuron's detected peaks, its amplitude ``a`` SD plus
unit-SD spread, those over the threshold (a neuron at ``a`` < 4 is detected on its largest
spikes alone), n of them; the rate at the sorter's default level (0.001) beside.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.signal  # noqa: E402
from scipy.stats import binomtest, truncnorm  # noqa: E402

from neurodict.clusters.beyond import beyond_region_test  # noqa: E402
from neurodict.clusters.mixture import signatures  # noqa: E402
from neurodict.lfpdict.atoms import BANDS_HZ, wavelet_atoms  # noqa: E402
from neurodict.lfpdict.estimator import SpikeLFPDictionary  # noqa: E402
from neurodict.lfpdict.scoring import heldout_scores  # noqa: E402
from neurodict.sort.crossings import excess, noise_p_values  # noqa: E402

ALPHA = 0.05
N_BANDS = len(BANDS_HZ)


# ---------------------------------------------------------------------------------------------
# beyond_region: generators
# ---------------------------------------------------------------------------------------------


def sphere_gauss(rng, n_units, n_regions, effect=0.0, noise=0.15, n_families=3):
    """Region mean direction + correlated Gaussian noise (+ a family offset), normalised."""
    p = n_regions * N_BANDS
    home = np.arange(n_units) % n_regions
    means = np.abs(rng.standard_normal((n_regions, p)))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    mix = rng.standard_normal((p, p)) * np.linspace(1.0, 0.2, p)
    mix *= noise / np.sqrt((mix**2).sum(axis=1).mean())
    family = rng.integers(n_families, size=n_units)
    offset = rng.standard_normal((n_families, p)) * effect * noise
    x = means[home] + offset[family] + rng.standard_normal((n_units, p)) @ mix.T
    return x / np.linalg.norm(x, axis=1, keepdims=True), home


def orthant(rng, n_units, n_regions, effect=0.0):
    """|N(0, I)| normalised: uniform on the positive orthant of the sphere, for every region."""
    x = np.abs(rng.standard_normal((n_units, n_regions * N_BANDS)))
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.arange(n_units) % n_regions


_ATOMS = wavelet_atoms(12, np.arange(-100, 101) / 1000.0)


def dictionary(rng, n_units, n_regions, effect=0.0, noise=0.5, n_families=3):
    """Signatures of filters made of sparse, noisy, soft-thresholded atom coefficients."""
    K = _ATOMS.shape[0]
    home = np.arange(n_units) % n_regions
    family = rng.integers(n_families, size=n_units)
    region_coef = rng.uniform(0.5, 1.5, (n_regions, n_regions, K))
    region_coef *= rng.random((n_regions, n_regions, K)) < 2 / K
    region_coef *= rng.random((n_regions, n_regions, 1)) < 0.7
    family_coef = rng.standard_normal((n_families, n_regions, K)) * effect * noise
    family_coef *= rng.random((n_families, n_regions, K)) < 3 / K
    gain = rng.uniform(0.7, 1.3, n_units)[:, None, None]
    b = gain * (region_coef[home] + family_coef[family])
    b += noise * rng.standard_normal(b.shape)
    b = np.sign(b) * np.maximum(np.abs(b) - 0.5 * noise, 0.0)
    sig, _ = signatures(np.einsum("nrk,kl->nrl", b, _ATOMS), 1000.0)
    linked = np.linalg.norm(sig, axis=1) > 0
    return sig[linked], home[linked]


GENERATORS = {"sphere_gauss": sphere_gauss, "orthant": orthant, "dictionary": dictionary}


def _beyond_one(args) -> float:
    name, n_units, n_regions, effect, seed, n_rotations = args
    rng = np.random.default_rng([seed, n_units, n_regions, int(effect * 1000)])
    sig, home = GENERATORS[name](rng, n_units, n_regions, effect=effect)
    return beyond_region_test(sig, home, n_rotations=n_rotations, seed=seed).p_value


def rejections(jobs: int, cases: list[tuple]) -> list[np.ndarray]:
    """p-values of every case (name, n_units, n_regions, effect, n_datasets, n_rotations)."""
    tasks = [
        (name, n, R, effect, seed, n_rot)
        for name, n, R, effect, n_datasets, n_rot in cases
        for seed in range(n_datasets)
    ]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        p = np.array(list(pool.map(_beyond_one, tasks, chunksize=4)))
    out, start = [], 0
    for case in cases:
        out.append(p[start : start + case[4]])
        start += case[4]
    return out


def rate_row(label: dict, p: np.ndarray) -> dict:
    """Rejections at ALPHA, their rate and its Clopper-Pearson 95 % interval."""
    k, n = int((p <= ALPHA).sum()), int(np.isfinite(p).sum())
    ci = binomtest(k, n, ALPHA).proportion_ci(confidence_level=0.95, method="exact")
    return label | {
        "datasets": n,
        "p <= 0.05": k,
        "rate": f"{k / n:.3f}",
        "95 % CI": f"[{ci.low:.3f}, {ci.high:.3f}]",
    }


def beyond_region(quick: bool = False, jobs: int = 2) -> tuple[list[dict], list[dict]]:
    """Calibration and power tables of the beyond-home-region rotation test."""
    n_null = 40 if quick else 200
    n_power = 20 if quick else 100
    n_rot = 99 if quick else 199
    sizes = [(40, 3), (120, 8)]
    calibration = [(g, n, R, 0.0, n_null, n_rot) for g in GENERATORS for n, R in sizes]
    power = [
        (g, 40, 3, effect, n_power, n_rot)
        for g, effects in (("sphere_gauss", (0.5, 1.0, 2.0)), ("dictionary", (1.0, 2.0, 3.0)))
        for effect in effects
    ]
    p_all = rejections(jobs, calibration + power)
    p_cal, p_pow = p_all[: len(calibration)], p_all[len(calibration) :]
    cal_rows = [
        rate_row({"generator": g, "units": n, "features": R * N_BANDS}, p)
        for (g, n, R, *_), p in zip(calibration, p_cal, strict=True)
    ]
    pow_rows = [
        rate_row({"generator": g, "units": n, "features": R * N_BANDS, "effect": e}, p)
        for (g, n, R, e, *_), p in zip(power, p_pow, strict=True)
    ]
    return cal_rows, pow_rows


# ---------------------------------------------------------------------------------------------
# lfpdict: the region R^2 test and the link tests of the dictionaries
# ---------------------------------------------------------------------------------------------

# Small problems: the procedure is the real one (nested CV with two dictionary sizes, the
# nulls as the pipeline scores them), the sizes are not.
LFPDICT_SMALL = dict(
    lag_minus_ms=25.0,
    lag_plus_ms=25.0,
    n_atoms=(2, 4),
    n_outer=2,
    n_inner=30,
    lambda_fractions=(0.3, 0.05, 0.01),
    ridge_alphas=(0.01, 1.0),
    n_folds=4,
    jitter_min_s=5.0,
    n_null=19,
    backend="cpu",
)


def coupled_dataset(seed: int, gain: float, n_units: int = 3, n_bins: int = 40_000):
    """Spike trains (5-15 Hz) and one LFP at 1 kHz: an AR(1) background plus `gain` x unit 0's
    spikes convolved with a 20 Hz damped oscillation of random phase (gain 0: no coupling)."""
    rng = np.random.default_rng([seed, int(gain * 1000)])
    spikes = [
        np.sort(rng.choice(n_bins, size=int(rng.uniform(5, 15) * n_bins / 1000), replace=False))
        for _ in range(n_units)
    ]
    y = scipy.signal.lfilter([1.0], [1, -0.95], rng.standard_normal(n_bins))
    tau = np.arange(-25, 26) / 1000.0
    phase = rng.uniform(0, 2 * np.pi)
    kernel = np.exp(-np.abs(tau) / 0.01) * np.cos(2 * np.pi * 20 * tau + phase)
    train = np.zeros(n_bins)
    train[spikes[0]] = 1.0
    y = y + gain * np.convolve(train, kernel, mode="same")
    return spikes, y[None].astype("float32")


def _lfpdict_one(args) -> tuple[float, float]:
    """The region's p (all units as predictors) and the smallest link q of one dataset."""
    seed, gain, n_null = args
    spikes, y = coupled_dataset(seed, gain)
    est = SpikeLFPDictionary(1000.0, **(LFPDICT_SMALL | {"n_null": n_null}))
    est.fit(spikes, y, ["A"] * len(spikes), ["A"])
    with np.errstate(invalid="ignore", divide="ignore"):
        scored = heldout_scores(est, spikes, y, ["A"])
    p = next(
        r["p_value"]
        for r in scored.scores
        if r["model"] == "dictionary" and r["predictors"] == "all"
    )
    return p, min(float(v.min()) for v in scored.link_q.values())


def lfpdict(quick: bool = False, jobs: int = 2) -> tuple[list[dict], list[dict]]:
    """Calibration and power tables of the region R^2 test and of the link tests (BH q), with
    the default number of nulls and with enough for the link tests (BH over m = 12 links
    reaches q <= 0.05 only if p <= 0.05 / 12: at least 240 nulls)."""
    n_null, n_power = (20, 5) if quick else (100, 20)
    gains = (0.5, 1.0, 2.0)
    rows_cal, rows_pow = [], []
    for nulls in (LFPDICT_SMALL["n_null"], 299):
        tasks = [(seed, 0.0, nulls) for seed in range(n_null)]
        tasks += [(1000 + seed, g, nulls) for g in gains for seed in range(n_power)]
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            res = np.array(list(pool.map(_lfpdict_one, tasks)))
        null, power = res[:n_null], res[n_null:].reshape(len(gains), n_power, 2)
        label = {"units": 3, "nulls": nulls}
        rows_cal += [
            rate_row(label | {"test": "region R^2 (all units)"}, null[:, 0]),
            rate_row(label | {"test": "any link (BH q)"}, null[:, 1]),
        ]
        rows_pow += [
            rate_row(label | {"test": test, "coupling gain": g}, power[i, :, j])
            for i, g in enumerate(gains)
            for j, test in enumerate(("region R^2 (all units)", "any link (BH q)"))
        ]
    return rows_cal, rows_pow


# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# noise_units: the sorter's test against noise crossings of the detection threshold
# ---------------------------------------------------------------------------------------------

THRESHOLD_SIGMA = 4.0
DEFAULT_ALPHA = 0.001  # sorting.noise_unit_alpha
NOISE_SPECTRA = {
    "white 300-6000 Hz": (300.0, 6000.0, 0.0),
    "pink 300-6000 Hz": (300.0, 6000.0, 1.0),
    "white 500-800 Hz": (500.0, 800.0, 0.0),
}


def noise_excesses(spectrum: str, seed: int, seconds: float) -> np.ndarray:
    """The excesses (:func:`neurodict.sort.crossings.excess`) of the detected peaks of
    `seconds` of Gaussian noise of `spectrum` on 16 channels of a linear probe."""
    import spikeinterface.core as sc
    from probeinterface import generate_linear_probe
    from spikeinterface.preprocessing import bandpass_filter

    from neurodict.detect.peaks import detect_group_peaks

    lo, hi, power = NOISE_SPECTRA[spectrum]
    fs, M = 30000.0, 16
    rng = np.random.default_rng([seed, int(lo), int(power)])
    n = int(fs * seconds)
    spectrum_ = np.fft.rfft(rng.normal(size=(n, M)), axis=0)
    freqs = np.fft.rfftfreq(n, 1 / fs)
    spectrum_ /= np.maximum(freqs, 1.0)[:, None] ** (power / 2)
    x = np.fft.irfft(spectrum_, n, axis=0)
    rec = sc.NumpyRecording((10.0 * x / x.std()).astype(np.float32), fs)
    probe = generate_linear_probe(num_elec=M, ypitch=20.0)
    probe.set_device_channel_indices(np.arange(M))
    rec.set_probe(probe, in_place=True)
    rec = bandpass_filter(rec, freq_min=lo, freq_max=hi)
    rec.set_property("group", np.zeros(M, int))
    detection = {
        "threshold_sigma": THRESHOLD_SIGMA,
        "peak_sign": "neg",
        "dead_time_ms": 1.0,
        "radius_um": 100.0,
    }
    peaks = detect_group_peaks(rec, detection)
    noise = sc.get_noise_levels(rec, return_in_uV=False, random_slices_kwargs={"seed": 0})
    return excess(-peaks["amplitude_uv"] / noise[peaks["channel_index"]], THRESHOLD_SIGMA)


def random_units(e: np.ndarray, size: int, seed: int) -> np.ndarray:
    """p-values of the excesses `e` drawn at random into units of `size` (a last, shorter
    one left out)."""
    labels = np.random.default_rng(seed).permutation(e.size) // size
    n_units = e.size // size
    return noise_p_values(labels, e, n_units + 1)[:n_units]


def noise_units(quick: bool = False, jobs: int = 2) -> tuple[list[dict], list[dict]]:
    """Calibration and power tables of the sorter's test against noise crossings."""
    seconds, n_seeds = (120.0, 1) if quick else (300.0, 4)
    tasks = [(s, seed, seconds) for s in NOISE_SPECTRA for seed in range(n_seeds)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        excesses = list(pool.map(noise_excesses, *zip(*tasks, strict=True)))
    cal_rows = []
    for spectrum in NOISE_SPECTRA:
        for size in (20, 100):
            pc = np.concatenate(
                [
                    random_units(e, size, seed)
                    for (s, seed, _), e in zip(tasks, excesses, strict=True)
                    if s == spectrum
                ]
            )
            row = rate_row({"noise": spectrum, "detected spikes": size}, pc)
            cal_rows.append(row | {"p <= 0.001": int((pc <= DEFAULT_ALPHA).sum())})
    rng = np.random.default_rng(0)
    n_units = 200 if quick else 2000
    pow_rows = []
    for a in (THRESHOLD_SIGMA - 1, THRESHOLD_SIGMA, THRESHOLD_SIGMA + 1):
        for n in (10, 30):
            peaks = truncnorm.rvs(  # n detected spikes: N(a, 1) over the threshold
                THRESHOLD_SIGMA - a, np.inf, loc=a, size=(n_units, n), random_state=rng
            )
            labels = np.repeat(np.arange(n_units), n)
            pu = noise_p_values(labels, excess(peaks.ravel(), THRESHOLD_SIGMA), n_units)
            row = rate_row({"amplitude SD": a, "detected spikes": n}, pu)
            pow_rows.append(row | {"rate at 0.001": f"{np.mean(pu <= DEFAULT_ALPHA):.3f}"})
    return cal_rows, pow_rows


def markdown(rows: list[dict]) -> str:
    """A markdown table of rows with the same keys."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


SECTIONS = {"beyond_region": beyond_region, "lfpdict": lfpdict, "noise_units": noise_units}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--section", choices=sorted(SECTIONS), action="append")
    ap.add_argument("--quick", action="store_true", help="fewer datasets (a smoke run)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    args = ap.parse_args()
    for name in args.section or list(SECTIONS):
        started = time.perf_counter()
        calibration, power = SECTIONS[name](quick=args.quick, jobs=args.jobs)
        print(f"## {name}\n\nCalibration: false-positive rate at alpha = {ALPHA}.\n")
        print(markdown(calibration))
        print(f"\nPower at alpha = {ALPHA}.\n")
        print(markdown(power))
        print(f"\n({time.perf_counter() - started:.0f} s, {args.jobs} jobs)\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())
