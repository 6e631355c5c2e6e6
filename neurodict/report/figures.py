"""Figures of the per-session report; each returns a matplotlib Figure."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.signal  # noqa: E402


def to_data_uri(fig) -> str:
    """A PNG data URI of `fig` (closed afterwards), for embedding in a self-contained page."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def region_colors(regions: list[str]) -> dict[str, tuple]:
    """One colour per region, stable in region order."""
    cmap = plt.get_cmap("tab20" if len(regions) > 10 else "tab10")
    return {r: cmap(i % cmap.N) for i, r in enumerate(regions)}


def probe_map(locations: np.ndarray, groups: np.ndarray, regions: np.ndarray, bad: np.ndarray):
    """Contacts at their positions, coloured by region, labelled by group; bad ones crossed.

    Parameters
    ----------
    locations : ndarray of shape (n_channels, 2), micrometres.
    groups, regions : ndarray of str, shape (n_channels,)
    bad : ndarray of bool, shape (n_channels,)
    """
    colors = region_colors(list(dict.fromkeys(regions)))
    fig, ax = plt.subplots(figsize=(7, 3))
    for region, color in colors.items():
        m = regions == region
        ax.scatter(*locations[m].T, s=60, color=color, label=region, edgecolor="k")
    if bad.any():
        ax.scatter(*locations[bad].T, s=120, marker="x", color="k", label="bad channel")
    for g in dict.fromkeys(groups):
        x, y = locations[groups == g].mean(axis=0)
        ax.annotate(g, (x, locations[:, 1].max() + 15), ha="center", fontsize=8)
    ax.set_xlabel("x (um)")
    ax.set_ylabel("y (um)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Electrode groups by brain region")
    return fig


def traces(t_s: np.ndarray, raw: np.ndarray, spikeband: np.ndarray, labels: list[str]):
    """Raw and spike-band stretches, channels stacked, shape (n_samples, n_channels) each."""
    n = len(labels)
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * n + 1.5))
    for ax, x, title in ((axes[0], raw, "wideband (raw)"), (axes[1], spikeband, "spike band")):
        x = x - np.median(x, axis=0)
        step = 2 * np.percentile(np.abs(x), 99.5) + 1e-6  # one row per channel, few overlaps
        ax.plot(t_s, x / step - np.arange(n), lw=0.4, color="k")
        ax.set_title(f"{title}: {step:.0f} uV per row")
        ax.set_xlabel("time (s)")
        ax.set_ylim(-n + 0.2, 0.8)
        ax.set_yticks(-np.arange(n), labels, fontsize=7)
    return fig


def lfp_spectra(lfp: np.ndarray, fs_hz: float, regions: list[str]):
    """Welch power spectra of the region LFPs, shape (n_samples, n_regions), log-log."""
    colors = region_colors(regions)
    freqs, psd = scipy.signal.welch(lfp, fs=fs_hz, nperseg=min(len(lfp), int(4 * fs_hz)), axis=0)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, r in enumerate(regions):
        ax.loglog(freqs[1:], psd[1:, i], color=colors[r], label=r)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("power (uV^2/Hz)")
    ax.set_title("Region LFP power spectra")
    ax.legend(fontsize=8)
    return fig


def detection_counts(rows: list[dict], regions: list[str]):
    """Detected-spike rate per electrode group, coloured by region."""
    colors = region_colors(regions)
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(rows) + 2), 3))
    ax.bar([r["group"] for r in rows], [float(r["rate_hz"]) for r in rows],
           color=[colors[r["region"]] for r in rows])
    ax.set_ylabel("detected spikes / s")
    ax.set_title("Spike detection per electrode group")
    ax.tick_params(axis="x", rotation=45, labelsize=8)
    return fig
