"""The report's sorting section: a card per unit, features by group, the metrics table.

A card shows the unit's mean waveform on its group's channels (one line per epoch: drift), its
inter-spike-interval histogram, its amplitude over time, its spike count per epoch (appearing
and disappearing units), the drift of its peak amplitude, and the distribution of its spikes'
posterior assignment probabilities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurodict.common.files import read_tsv
from neurodict.report import figures
from neurodict.report.figures import figure_block

# Metrics that units.tsv already has under its own name (n_spikes, firing_rate_hz), and the key.
REPEATED_METRICS = ("unit", "num_spikes", "firing_rate")
MAX_CARDS = 60


def unit_card(
    unit: int,
    row: dict,
    templates_uv: np.ndarray,
    samples: np.ndarray,
    amplitudes_uv: np.ndarray,
    probability: np.ndarray,
    counts: np.ndarray,
    fs_hz: float,
    epoch_s: float,
    refractory_ms: float,
):
    """One unit's figure: waveform per epoch, ISI, amplitude, presence, drift, posterior."""
    plt = figures.plt
    fig, ax = plt.subplots(1, 6, figsize=(15, 2.2))
    E, M, T = templates_uv.shape
    t_ms = np.arange(T) / fs_hz * 1000
    colours = plt.get_cmap("viridis")(np.linspace(0, 1, max(E, 2)))
    for e in range(E):
        for m in range(M):
            ax[0].plot(t_ms + m * (t_ms[-1] + 0.3), templates_uv[e, m], color=colours[e], lw=0.8)
    ax[0].set_title(
        f"unit {unit} ({row['group']}, {row['region']})"
        + (" multi-unit" if row["multi_unit"] else ""),
        fontsize=8,
    )
    ax[0].set_xticks([])
    ax[0].set_ylabel("uV")
    isi_ms = np.diff(samples) / fs_hz * 1000
    ax[1].hist(isi_ms[isi_ms < 50], bins=np.arange(0, 50.5, 1), color="0.3")
    ax[1].axvline(refractory_ms, color="r", lw=0.8)
    ax[1].set_title(f"ISI (ms); {row['refractory_violations']} < {refractory_ms:g} ms", fontsize=8)
    ax[2].plot(samples / fs_hz, amplitudes_uv, ".", ms=1, color="0.2")
    ax[2].set_title("amplitude (uV) over time (s)", fontsize=8)
    ax[3].bar(
        np.arange(counts.size) * epoch_s,
        counts,
        width=epoch_s * 0.9,
        align="edge",
        color="tab:blue",
    )
    ax[3].set_title("spikes per epoch", fontsize=8)
    peak = np.abs(templates_uv).reshape(E, -1).max(1)
    ax[4].plot(np.arange(E) * epoch_s + epoch_s / 2, peak, "o-", ms=3)
    ax[4].set_title("peak of the mean per epoch (uV)", fontsize=8)
    ax[5].hist(probability, bins=np.linspace(0, 1, 21), color="tab:green")
    ax[5].set_title("posterior probability", fontsize=8)
    for a in ax:
        a.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def features_figure(model, groups: list[str]):
    """Learning spikes in the first two principal components of their features, per group (on
    a group fitted per neighbourhood, the neighbourhood with the most learning spikes)."""
    plt = figures.plt
    fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 3), squeeze=False)
    for ax, g in zip(axes[0], groups, strict=True):
        f, u, c = (model[f"{g}/{k}"] for k in ("features", "feature_units", "feature_centres"))
        title = g
        if model[f"{g}/centre_channels"].size > 1:
            busiest = np.bincount(c).argmax()
            f, u = f[c == busiest], u[c == busiest]
            title = f"{g}, around {model[f'{g}/centre_channels'][busiest]}"
        if f.shape[0] < 3 or f.shape[1] < 2:
            ax.set_title(f"{g}: too few spikes", fontsize=8)
            continue
        centred = f - f.mean(0)
        pcs = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
        ax.scatter(pcs[:, 0], pcs[:, 1], c=u % 20, cmap="tab20", s=2, vmin=0, vmax=19)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def sampler_figure(model, groups: list[str]):
    """The Gibbs chains: joint log-likelihood and atoms in use per sweep, per group."""
    plt = figures.plt
    fig, ax = plt.subplots(1, 2, figsize=(9, 2.5))
    for g in groups:
        ax[0].plot(model[f"{g}/trace"], lw=0.8, label=g)
        ax[1].plot(model[f"{g}/n_atoms"], lw=0.8, label=g)
    ax[0].set_title("log-likelihood per sweep", fontsize=8)
    ax[1].set_title("atoms in use per sweep", fontsize=8)
    ax[1].legend(fontsize=6)
    fig.tight_layout()
    return fig


def sorting_section(results: Path, info: dict, notes: list[str] = ()) -> dict:
    """Unit cards, features, the chains and the sortable table of units and metrics; `notes`
    (:func:`neurodict.report.session.group_notes`) say why a group has no units."""
    units = read_tsv(results / "units.tsv")
    metrics = {r["unit"]: r for r in read_tsv(results / "metrics.tsv")}
    table = [
        r | {k: v for k, v in metrics.get(r["unit"], {}).items() if k not in REPEATED_METRICS}
        for r in units
    ]
    model = np.load(results / "sorter.npz")
    groups = [g["name"] for g in info["groups"]]
    epoch_s = info["params"]["sorting"]["epoch_s"]
    refractory_ms = info["params"]["sorting"]["refractory_ms"]
    single = sum(not r["multi_unit"] for r in units)
    violating = sum(int(r["refractory_violations"]) > 0 for r in units if not r["multi_unit"])
    unitless = [g for g in groups if not any(r["group"] == g for r in units)]
    blocks = [
        {
            "kind": "text",
            "text": f"{len(units)} units ({single} single units, "
            f"{len(units) - single} multi-unit) in {len(groups)} groups; "
            f"epochs of {epoch_s:g} s. Refractory violations (intervals "
            f"under {refractory_ms:g} ms) in the final sorting: "
            f"{violating} of {single} single units have any.",
        },
        *(
            [
                {
                    "kind": "text",
                    "text": f"No units in group{'s' if len(unitless) > 1 else ''} "
                    f"{', '.join(unitless)}.",
                }
            ]
            if unitless
            else []
        ),
        *({"kind": "text", "text": note} for note in notes),
        {
            "kind": "table",
            "id": "metrics-table",
            "columns": list(table[0]) if table else [],
            "rows": table,
        },
        figure_block(
            features_figure(model, groups),
            "Learning spikes in the first two principal components of their "
            "dictionary features, coloured by unit.",
        ),
        figure_block(sampler_figure(model, groups), "The Gibbs chains."),
    ]
    by_unit = {r["unit"]: r for r in units}
    shown = 0
    for g in groups:
        unit, fs_hz = model[f"{g}/unit"], float(model[f"{g}/fs_hz"])
        first = int(unit.min()) if unit.size else 0
        for k in range(model[f"{g}/templates_uv"].shape[0]):
            u = first + k
            if shown >= MAX_CARDS or str(u) not in by_unit:
                continue
            sel = unit == u
            blocks.append(
                figure_block(
                    unit_card(
                        u,
                        by_unit[str(u)],
                        model[f"{g}/templates_uv"][k],
                        model[f"{g}/samples"][sel],
                        model[f"{g}/amplitudes_uv"][sel],
                        model[f"{g}/probability"][sel],
                        model[f"{g}/presence"][k],
                        fs_hz,
                        epoch_s,
                        refractory_ms,
                    ),
                    f"Unit {u}: waveform per epoch (dark to light), ISI, amplitude, presence, "
                    "drift and posterior probabilities.",
                )
            )
            shown += 1
    if shown < len(units):
        blocks.append(
            {
                "kind": "text",
                "text": f"Cards shown for {shown} of {len(units)} "
                "units; every unit is in the table.",
            }
        )
    return {"id": "sorting", "title": "Spike sorting", "blocks": blocks}
