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


def figure_block(fig, caption: str) -> dict:
    """A report block holding `fig` as an embedded PNG with its caption."""
    return {"kind": "figure", "uri": to_data_uri(fig), "caption": caption}


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


def motion(group: str, times_s: np.ndarray, depths_um: np.ndarray, displacement_um: np.ndarray):
    """A group's estimated displacement over time, one line per depth bin."""
    fig, ax = plt.subplots(figsize=(6, 3))
    cmap = plt.get_cmap("viridis")
    for j, depth in enumerate(depths_um):
        color = cmap(j / max(len(depths_um) - 1, 1))
        ax.plot(times_s, displacement_um[:, j], color=color, label=f"{depth:.0f} um")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("displacement (um)")
    ax.set_title(f"Motion estimate, group {group}")
    if len(depths_um) <= 8:
        ax.legend(fontsize=7, title="depth bin", title_fontsize=7)
    return fig


SEVERAL_REGIONS_COLOR = (0.6, 0.6, 0.6, 1.0)  # a shank with regions by depth or by channel


def detection_counts(rows: list[dict], regions: list[str]):
    """Detected-spike rate per electrode group, coloured by its region (grey for a group whose
    channels lie in several regions: ``region`` lists them, comma-separated)."""
    colors = region_colors(regions)
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(rows) + 2), 3))
    ax.bar(
        [r["group"] for r in rows],
        [float(r["rate_hz"]) for r in rows],
        color=[colors.get(r["region"], SEVERAL_REGIONS_COLOR) for r in rows],
    )
    ax.set_ylabel("detected spikes / s")
    ax.set_title("Spike detection per electrode group")
    ax.tick_params(axis="x", rotation=45, labelsize=8)
    return fig


def atoms_and_spectra(atoms: np.ndarray, lags_ms: np.ndarray, fs_hz: float, used: np.ndarray):
    """The learned atoms (stacked) and their amplitude spectra; unused atoms in grey."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.35 * len(atoms) + 2))
    n_fft = 4096
    freqs = np.fft.rfftfreq(n_fft, 1.0 / fs_hz)
    keep = freqs <= 100
    for k, atom in enumerate(atoms):
        color = "C0" if used[k] else "0.7"
        ax1.plot(lags_ms, atom / (np.abs(atom).max() + 1e-12) * 0.45 - k, color=color, lw=1)
        spec = np.abs(np.fft.rfft(atom, n_fft))[keep]
        ax2.plot(freqs[keep], spec / (spec.max() + 1e-12) * 0.9 - k, color=color, lw=1)
    for ax in (ax1, ax2):
        ax.set_yticks(-np.arange(len(atoms)), [f"d{k}" for k in range(len(atoms))], fontsize=7)
    ax1.set_xlabel("lag (ms, spike at 0)")
    ax1.set_title("Learned atoms")
    ax2.set_xlabel("frequency (Hz)")
    ax2.set_title("Atom spectra")
    return fig


def _number(value) -> float:
    """A table cell as a float; an empty cell (None) is NaN."""
    return np.nan if value is None else float(value)


def r2_bars(rows: list[dict], regions: list[str]):
    """Held-out R^2 per region for each model with its standard error across outer folds, and
    the null distribution's 95th percentile over the dictionary bars; one panel per predictor
    set."""
    models = ["dictionary", "wiener", "sta", "jitter"]
    sets = ["all", "outside", "inside"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5), sharey=True)
    width = 0.8 / len(models)
    x = np.arange(len(regions))
    for ax, pset in zip(axes, sets, strict=True):
        for i, m in enumerate(models):
            found = [
                next(
                    r
                    for r in rows
                    if r["region"] == reg and r["predictors"] == pset and r["model"] == m
                )
                for reg in regions
            ]
            vals, se = ([_number(r.get(k)) for r in found] for k in ("r2_heldout", "r2_se"))
            ax.bar(x + (i - 1.5) * width, vals, width, yerr=se, capsize=2, label=m)
            if m == "dictionary":  # the null distribution's 95th percentile
                p95 = [_number(r.get("null_p95")) for r in found]
                ax.hlines(
                    p95,
                    x + (i - 2) * width,
                    x + (i - 1) * width,
                    color="k",
                    lw=1.5,
                    label="null 95 %" if pset == sets[0] else None,
                )
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(x, regions, rotation=45, fontsize=8)
        ax.set_title(f"predictors: {pset} units")
    axes[0].set_ylabel("held-out R^2")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="upper center",
        ncol=len(models),
        fontsize=8,
        bbox_to_anchor=(0.5, 1.08),
    )
    return fig


def heldout_stretch(
    t_s: np.ndarray,
    measured: np.ndarray,
    predicted: np.ndarray,
    regions: list[str],
    seconds: float = 3.0,
):
    """Measured against predicted LFP on a held-out stretch, one row per region."""
    n = min(len(t_s), int(seconds / max(t_s[1] - t_s[0], 1e-9))) if len(t_s) > 1 else len(t_s)
    fig, axes = plt.subplots(
        len(regions), 1, figsize=(11, 1.4 * len(regions) + 0.6), sharex=True, squeeze=False
    )
    for i, (ax, region) in enumerate(zip(axes[:, 0], regions, strict=True)):
        ax.plot(t_s[:n], measured[i, :n], color="k", lw=0.7, label="measured")
        ax.plot(t_s[:n], predicted[i, :n], color="C3", lw=0.9, label="predicted from spikes")
        ax.set_ylabel(f"{region}\n(uV)", fontsize=8)
    axes[0, 0].legend(fontsize=8, loc="upper right")
    axes[-1, 0].set_xlabel("time (s), held-out fold")
    return fig


def connectivity(power: dict[str, np.ndarray], unit_labels: list[str], regions: list[str]):
    """Unit x region band power of the filters, one heat map per band (log scale)."""
    bands = list(power)
    fig, axes = plt.subplots(
        1,
        len(bands),
        figsize=(3.2 * len(bands) + 1, 0.16 * len(unit_labels) + 2),
        sharey=True,
        squeeze=False,
    )
    for ax, band in zip(axes[0], bands, strict=True):
        im = ax.imshow(np.log10(power[band] + 1e-6), aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(regions)), regions, rotation=45, fontsize=7)
        ax.set_title(band)
        fig.colorbar(im, ax=ax, fraction=0.05, label="log10 power")
    axes[0, 0].set_yticks(range(len(unit_labels)), unit_labels, fontsize=6)
    axes[0, 0].set_ylabel("unit (home region)")
    return fig


def cluster_signatures(rows: list[dict], regions: list[str], bands: list[str]):
    """Mean signature of each cluster as a region x band heat map."""
    n = len(rows)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n + 1, 0.35 * len(regions) + 1.8), squeeze=False)
    for ax, row in zip(axes[0], rows, strict=True):
        m = np.array([[float(row[f"sig_{r}_{b}"]) for b in bands] for r in regions])
        ax.imshow(m, cmap="magma", vmin=0, aspect="auto")
        ax.set_xticks(range(len(bands)), bands, rotation=45, fontsize=7)
        ax.set_yticks(range(len(regions)), regions, fontsize=7)
        ax.set_title(f"cluster {row['cluster']} (n={row['n_units']})", fontsize=9)
    return fig


def phase_polar(rows: list[dict], regions: list[str], bands: list[str], alpha: float = 0.01):
    """Preferred phase (angle) and PPC (radius) of significantly locked unit-region pairs."""
    colors = region_colors(regions)
    fig, axes = plt.subplots(
        1,
        len(bands),
        figsize=(3.2 * len(bands), 3.4),
        subplot_kw={"projection": "polar"},
        squeeze=False,
    )
    for ax, band in zip(axes[0], bands, strict=True):
        for row in rows:
            if row["band"] == band and float(row["rayleigh_p"]) < alpha:
                ax.scatter(
                    np.radians(float(row["preferred_phase_deg"])),
                    max(float(row["ppc"]), 0),
                    s=14,
                    color=colors[row["region"]],
                )
        ax.set_title(f"{band} (Rayleigh p < {alpha})", fontsize=9)
        ax.tick_params(labelsize=6)
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=r) for r, c in colors.items()]
    fig.legend(handles=handles, loc="lower center", ncol=len(regions), fontsize=7)
    return fig


def importance_bars(rows: list[dict], top: int = 15):
    """The units whose removal costs the most held-out R^2 (mean over regions)."""
    units = {}
    for row in rows:
        if row["kind"] == "unit":
            units.setdefault(row["left_out"], []).append(float(row["r2_drop"]))
    ranked = sorted(units.items(), key=lambda kv: -np.mean(kv[1]))[:top]
    fig, ax = plt.subplots(figsize=(7, 0.25 * len(ranked) + 1.2))
    ax.barh([u for u, _ in ranked][::-1], [np.mean(v) for _, v in ranked][::-1], color="C2")
    ax.set_xlabel("held-out R^2 lost without the unit (mean over regions)")
    ax.tick_params(axis="y", labelsize=7)
    return fig
