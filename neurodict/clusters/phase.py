"""Spike-LFP phase locking as a circular quantity (MODELS.md section 4).

For each unit, region and band: the phase of the band-passed region LFP (zero-phase Butterworth,
then the analytic signal) at each spike; the preferred phase (angle of the mean resultant),
the pairwise phase consistency (unbiased in the spike count), the von Mises concentration and the
Rayleigh test. A unit's locking to its own region is read, when given, on its clean home-region
LFP (:func:`neurodict.lfpdict.inputs.load_clean_targets`): its own spikes leak into the LFP of
its own channels and would lock it to the gamma band by themselves.

References
----------
Vinck, van Wingerden, Womelsdorf, Fries & Pennartz, "The pairwise phase consistency",
NeuroImage 2010.
Fisher, "Statistical Analysis of Circular Data", 1993 (kappa estimate, section 4.5.5).
Zar, "Biostatistical Analysis", 1999 (Rayleigh p-value approximation).
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from neurodict.common.timeline import pieces
from neurodict.lfpdict.atoms import BANDS_HZ


def band_phase(
    y: np.ndarray, fs_hz: float, band_hz: tuple[float, float], order: int = 3, bounds=()
) -> np.ndarray:
    """Instantaneous phase (radians) of `y` (..., n_samples) band-passed to `band_hz`, within
    each recording segment (`bounds`: their starts in samples; no filter across a pause)."""
    sos = scipy.signal.butter(order, band_hz, btype="bandpass", fs=fs_hz, output="sos")
    parts = pieces(0, y.shape[-1], list(bounds))
    return np.concatenate(
        [
            np.angle(scipy.signal.hilbert(scipy.signal.sosfiltfilt(sos, y[..., a:b], axis=-1)))
            for a, b in parts
        ],
        axis=-1,
    )


def ppc(theta: np.ndarray) -> float:
    """Pairwise phase consistency: mean of cos(theta_i - theta_j) over pairs i != j.

    Computed in O(n) as (|sum exp(i theta)|^2 - n) / (n (n - 1)); nan for fewer than 2 spikes.
    Its expectation is kappa-dependent only (no bias in n): A1(kappa)^2 for von Mises phases.
    """
    n = theta.size
    if n < 2:
        return float("nan")
    s = np.abs(np.exp(1j * theta).sum()) ** 2
    return float((s - n) / (n * (n - 1)))


def kappa_estimate(r_bar: float, n: int) -> float:
    """Von Mises concentration from the mean resultant length (Fisher 1993, with the
    small-sample correction for n < 15)."""
    if n == 0 or not np.isfinite(r_bar):
        return float("nan")
    if r_bar < 0.53:
        kappa = 2 * r_bar + r_bar**3 + 5 * r_bar**5 / 6
    elif r_bar < 0.85:
        kappa = -0.4 + 1.39 * r_bar + 0.43 / (1 - r_bar)
    else:
        kappa = 1 / (r_bar**3 - 4 * r_bar**2 + 3 * r_bar + 1e-12)
    if n < 15 and kappa < 2:
        kappa = max(kappa - 2 / (n * kappa), 0) if kappa > 0 else 0.0
    elif n < 15:
        kappa = (n - 1) ** 3 * kappa / (n**3 + n)
    return float(kappa)


def rayleigh_p(r_bar: float, n: int) -> float:
    """P-value of the Rayleigh test of uniformity (Zar 1999, eq. 27.4)."""
    if n == 0:
        return float("nan")
    r_n = r_bar * n
    return float(min(1.0, np.exp(np.sqrt(1 + 4 * n + 4 * (n * n - r_n * r_n)) - (1 + 2 * n))))


def locking(theta: np.ndarray) -> dict:
    """Preferred phase (deg), mean resultant length, PPC, kappa and Rayleigh p of spike phases."""
    n = theta.size
    mean = np.exp(1j * theta).mean() if n else np.nan
    r_bar = float(np.abs(mean)) if n else float("nan")
    return {
        "n_spikes": n,
        "preferred_phase_deg": float(np.degrees(np.angle(mean))) if n else float("nan"),
        "resultant_length": r_bar,
        "ppc": ppc(theta),
        "kappa": kappa_estimate(r_bar, n),
        "rayleigh_p": rayleigh_p(r_bar, n),
    }


def phase_table(
    spike_bins: list[np.ndarray],
    unit_ids,
    unit_regions,
    y: np.ndarray,
    regions,
    fs_hz: float,
    bands: dict = BANDS_HZ,
    home=None,
    target_regions=None,
    bounds=(),
) -> list[dict]:
    """One row per unit, region and band: the locking statistics of the unit's spikes.

    Parameters
    ----------
    spike_bins, unit_ids, unit_regions : per unit
    y : ndarray (n_targets, n_bins)
    regions : sequence of str
        The targets' names (the ``region`` column).
    fs_hz : float
    bands : dict
    home : optional
        Each unit's clean home-region LFP
        (:class:`neurodict.lfpdict.inputs.CleanTargets`, or any object with ``y`` (n_rows,
        n_bins), ``unit_row`` (n_units,) and ``methods`` (n_rows,)). When given, a unit's
        locking to a target of its own region is measured on its clean row instead (the
        unit's own spikes leak into the LFP of its own channels), and every row says which
        signal was used in ``lfp``: ``region`` (the target as it is), ``other_groups`` or
        ``despiked``.
    target_regions : sequence of str, optional
        The region of each target (default: `regions`, right when targets are regions). With
        several targets per region (``lfp.region_reference: all``) every target of the unit's
        own region is replaced by the same clean row.
    bounds : sequence of int
        Starts of the recording's segments in bins (phases are filtered within each).
    """
    target_regions = np.asarray(regions if target_regions is None else target_regions).astype(str)
    unit_regions = np.asarray(unit_regions).astype(str)
    rows = []
    for band, edges in bands.items():
        phases = band_phase(y, fs_hz, edges, bounds=bounds)
        home_phases = None if home is None else band_phase(home.y, fs_hz, edges, bounds=bounds)
        for n, uid in enumerate(unit_ids):
            for r, region in enumerate(regions):
                own = home is not None and target_regions[r] == unit_regions[n]
                theta = home_phases[home.unit_row[n]] if own else phases[r]
                stats = locking(theta[spike_bins[n]])
                rows.append(
                    {
                        "unit": str(uid),
                        "unit_region": str(unit_regions[n]),
                        "region": str(region),
                        "band": band,
                        **({} if home is None else {"lfp": _lfp_used(home, n, own)}),
                        **stats,
                    }
                )
    return rows


def _lfp_used(home, n: int, own: bool) -> str:
    return str(home.methods[home.unit_row[n]]) if own else "region"
