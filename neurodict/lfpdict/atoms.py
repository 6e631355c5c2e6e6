"""Convolutional atoms: band-limited wavelet initialisation and band power of filters."""

from __future__ import annotations

import numpy as np

from neurodict.backend import CPU, Backend

# Canonical LFP bands in Hz (MODELS.md section 2).
BANDS_HZ = {"delta": (1.0, 4.0), "theta": (4.0, 12.0), "beta": (12.0, 30.0), "gamma": (30.0, 80.0)}


def wavelet_atoms(n_atoms: int, lags_s: np.ndarray) -> np.ndarray:
    """Unit-norm Gabor atoms cycling through the bands, shape (n_atoms, n_lags).

    Atom k lies in band ``k mod 4``; successive atoms of one band alternate cosine and sine phase
    and step through the band's frequencies (geometric spacing). The Gaussian envelope spans
    two cycles at the atom's frequency, capped at a third of the lag range.
    """
    names = list(BANDS_HZ)
    per_band = int(np.ceil(n_atoms / len(names)))
    span_s = lags_s.max() - lags_s.min()
    atoms = np.empty((n_atoms, lags_s.size))
    for k in range(n_atoms):
        lo, hi = BANDS_HZ[names[k % len(names)]]
        j = k // len(names)
        freq_hz = lo * (hi / lo) ** ((j // 2 + 0.5) / max(1, (per_band + 1) // 2))
        width_s = min(2.0 / freq_hz, span_s / 3)
        phase = 0.0 if j % 2 == 0 else np.pi / 2
        atom = np.exp(-0.5 * (lags_s / width_s) ** 2) * np.cos(2 * np.pi * freq_hz * lags_s + phase)
        atoms[k] = atom / np.linalg.norm(atom)
    return atoms


def band_power(filters, fs_hz: float, be: Backend = CPU) -> dict[str, np.ndarray]:
    """Power of each filter in each band (sum of |FFT|^2 over the band's frequencies).

    Parameters
    ----------
    filters : array of shape (..., n_lags), on `be`'s device

    Returns
    -------
    dict of band name -> ndarray of shape filters.shape[:-1], on the host
    """
    n_fft = max(1024, 2 ** int(np.ceil(np.log2(filters.shape[-1]))))
    spectrum = be.fft.rfft(filters, n=n_fft, axis=-1)
    spectrum = spectrum.real**2 + spectrum.imag**2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / fs_hz)
    return {
        name: be.to_numpy(
            spectrum[..., be.asarray(np.flatnonzero((freqs >= lo) & (freqs < hi)))].sum(axis=-1)
        )
        for name, (lo, hi) in BANDS_HZ.items()
    }
