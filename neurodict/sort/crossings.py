"""Units that noise alone would make: a calibrated test on how far a unit's detected peaks
pass the detection threshold.

Detection at ``θ`` robust SDs catches noise as well as spikes, and on a long recording noise
crossings gather into clusters as large as neurons'. No rule on a cluster's mean waveform tells
them apart: the mean of what exceeds a threshold exceeds it (noise crossings of 4 SD average
about 4.2 SD at their peak), so their templates clear the threshold. What tells them apart is
how far past ``θ`` the peaks go. The peaks above a level of a stationary Gaussian process fall
off as ``P(a > θ + y | a > θ) ≤ exp(−θy − y²/2)`` (Rice 1945; Cartwright and Longuet-Higgins
1956: the heights of the maxima of a process of spectral width ε; the narrow-band, Rayleigh,
limit has the heaviest tail over every width, and Gaussian values the lightest). So a detected
peak's excess ``y_i = a_i − θ`` (in noise SDs, of the detection's polarity) gives

    E_i = θ y_i + y_i²/2,

which is Exp(1) under noise in the narrow-band limit and stochastically smaller at any other
spectral width; the ``n`` detected spikes of a unit give ``S = Σ E_i``, Gamma(n, 1) at most.
The p-value ``P(Gamma(n, 1) ≥ S)`` therefore holds its size on Gaussian noise, and a unit is
noise's unless it falls under ``sorting.noise_unit_alpha``. (Detection's peak is the largest
within the dead time and the radius, not one maximum; crossings of a high threshold are rare
enough that it is one maximum's height nearly always: measured through the project's
detection on white and pink spike-band noise and on narrow-band noise, ``E`` is Exp(1)
within its standard error, and at 0.001 5 of 1993 random noise units fell under the level,
2 of them of the 208 on the narrow band, where crossings come in runs a cycle apart:
``benchmarks/statistics.py --section noise_units``.) A neuron
whose spikes reach ``θ`` on average has half-normal excesses, ``E_i`` about 3.7 at ``θ = 4``
(against 1), so a few tens of spikes decide it. Spikes found only by the overlap pass's
matching, at no detection, did not cross the threshold: they enter neither ``n`` nor ``S``.
The test says "not noise", not "one neuron": the detections of many small, distant neurons
are not Gaussian noise and pass it.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaincc


def excess(amplitude_sigma: np.ndarray, threshold_sigma: float) -> np.ndarray:
    """``E_i = θ y_i + y_i²/2`` of detected peaks `amplitude_sigma` (noise SDs, of the
    detection's polarity; NaN for a spike at no detection, kept NaN), ``y_i = max(a_i − θ, 0)``
    (a peak a hair under ``θ`` in the sorter's estimate of the noise is at ``θ``)."""
    y = np.maximum(amplitude_sigma - threshold_sigma, 0.0)
    return threshold_sigma * y + 0.5 * y * y


def noise_p_values(labels: np.ndarray, e: np.ndarray, n_units: int) -> np.ndarray:
    """Per unit, ``P(Gamma(n, 1) ≥ S)``: the probability that noise crossings give its detected
    spikes' excesses `e` (:func:`excess`, NaN for a spike at no detection) a sum ``S`` as large;
    1 for a unit with no detected spike. `labels` index the units, -1 for a spike in none."""
    detected = (labels >= 0) & np.isfinite(e)
    n = np.bincount(labels[detected], minlength=n_units)
    s = np.bincount(labels[detected], weights=e[detected], minlength=n_units)
    return np.where(n > 0, gammaincc(np.maximum(n, 1), s), 1.0)
