"""The report's sorting section: a card per unit, features by group, the metrics table.

A card shows the unit's mean waveform on its group's channels (one line per epoch: drift), its
inter-spike-interval histogram, its amplitude over time, the model's posterior probability that
it is present in each epoch (appearing and disappearing units) with its spike count per epoch,
the model's drift posterior at its peak (mean ± SD per epoch), and the distribution of its
spikes' posterior assignment probabilities. Per group, the units and the spikes by the reason
they are where they are (in a single unit, in a multi-unit, left in no unit by a refractory
conflict).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurodict.common.files import read_tsv
from neurodict.report import figures
from neurodict.report.figures import figure_block
from neurodict.sort.unit_model import peak_drift

# Metrics that units.tsv already has under its own name (n_spikes, firing_rate_hz), and the key.
REPEATED_METRICS = ("unit", "num_spikes", "firing_rate")
MAX_CARDS = 60
# How the report words spikes.npz's reasons.
REASON_LABELS = {
    "single_unit": "in single units",
    "multi_unit": "in multi-units",
    "refractory_conflict": "left in no unit (refractory conflicts)",
    "below_threshold": "detections below threshold once neighbouring spikes were peeled "
    "(not spikes)",
}


def unit_card(
    unit: int,
    row: dict,
    templates_uv: np.ndarray,
    samples: np.ndarray,
    amplitudes_uv: np.ndarray,
    probability: np.ndarray,
    presence: np.ndarray,
    counts: np.ndarray,
    drift_uv: np.ndarray,
    drift_sd_uv: np.ndarray,
    fs_hz: float,
    epoch_s: float,
    refractory_ms: float,
):
    """One unit's figure: waveform per epoch, ISI, amplitude, presence, drift, posterior.

    `presence` (E,) is the model's posterior presence probability per epoch (NaN: no model),
    `counts` (E,) the unit's spikes per epoch, `drift_uv` and `drift_sd_uv` (E, M, T) the
    posterior mean and SD of its waveform per epoch (NaN on channels its model did not see).
    """
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
    centres = np.arange(E) * epoch_s + epoch_s / 2
    presence_panel(ax[3], presence, counts, centres, epoch_s)
    drift_panel(ax[4], *peak_drift(templates_uv, drift_uv, drift_sd_uv), centres)
    ax[5].hist(probability, bins=np.linspace(0, 1, 21), color="tab:green")
    ax[5].set_title("posterior probability", fontsize=8)
    for a in ax:
        a.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def presence_panel(ax, presence: np.ndarray, counts: np.ndarray, centres: np.ndarray, width):
    """Posterior presence probability per epoch (bars, 0 to 1; the 0.5 that epochs_present
    uses dashed) and the spikes per epoch (grey line, right axis)."""
    known = np.isfinite(presence)
    ax.bar(centres[known], presence[known], width=width * 0.9, color="tab:blue")
    ax.axhline(0.5, color="0.5", lw=0.6, ls="--")
    ax.set_ylim(0, 1.05)
    spikes = ax.twinx()
    spikes.plot(centres, counts, "o-", ms=2, lw=0.8, color="0.3")
    spikes.set_ylim(bottom=0)
    spikes.tick_params(labelsize=7)
    title = "P(present) per epoch; spikes (line, right)"
    if not known.any():
        title = "no model: spikes per epoch (line, right)"
    ax.set_title(title, fontsize=8)


def drift_panel(ax, mean: np.ndarray, sd: np.ndarray, centres: np.ndarray) -> None:
    """The model's drift posterior at the unit's peak: mean per epoch ± SD band, NaN skipped."""
    known = np.isfinite(mean) & np.isfinite(sd)
    if known.any():
        ax.fill_between(
            centres[known], (mean - sd)[known], (mean + sd)[known], color="tab:orange", alpha=0.3
        )
        ax.errorbar(
            centres[known],
            mean[known],
            yerr=sd[known],
            fmt="o-",
            ms=3,
            capsize=2,
            color="tab:orange",
        )
        ax.set_title("drift posterior at peak (uV), ± SD", fontsize=8)
    else:
        ax.set_title("no drift posterior (no model)", fontsize=8)


def reason_rows(units: list[dict], spikes) -> list[dict]:
    """Per group of units.tsv: its units by content and its spikes by reason (``spikes.npz``'s
    ``reason`` and ``reasons``; spike counts left out where it has no ``reason``), and its
    detections below threshold once their neighbours were peeled
    (``below_threshold_group``)."""
    groups = list(dict.fromkeys(r["group"] for r in units))
    content = [r.get("content", "") for r in units]
    rows = [
        {
            "group": g,
            "units": sum(r["group"] == g for r in units),
            "single_units": sum(
                r["group"] == g and not r["multi_unit"] and c != "refractory conflicts"
                for r, c in zip(units, content, strict=True)
            ),
            "multi_units": sum(
                r["group"] == g and r["multi_unit"] and c != "refractory conflicts"
                for r, c in zip(units, content, strict=True)
            ),
        }
        for g in groups
    ]
    if spikes is None or "reason" not in spikes or "reasons" not in spikes:
        return rows
    group_of = np.array([r["group"] for r in units], dtype=object)
    spike_group = group_of[spikes["unit_index"]] if len(units) else np.zeros(0, object)
    reasons = [str(r) for r in spikes["reasons"]]
    for row in rows:
        counts = np.bincount(spikes["reason"][spike_group == row["group"]], minlength=len(reasons))
        row |= {f"spikes_{name}": int(n) for name, n in zip(reasons, counts, strict=True)}
        if "below_threshold_group" in spikes:
            row["spikes_below_threshold"] = int(
                np.sum(spikes["below_threshold_group"] == row["group"])
            )
    return rows


def reason_text(rows: list[dict]) -> str:
    """One sentence on the spikes of each group by reason (:func:`reason_rows`)."""
    parts = []
    for r in rows:
        counts = [
            f"{r[k]} {REASON_LABELS.get(k.removeprefix('spikes_'), k.removeprefix('spikes_'))}"
            for k in r
            if k.startswith("spikes_")
        ]
        if counts:
            parts.append(f"{r['group']}, " + ", ".join(counts))
    return "Spikes by reason: " + "; ".join(parts) + "." if parts else ""


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
    """The Gibbs chains: joint log-likelihood per sweep and atoms in use before the first sweep
    (all of them) and after each, per group."""
    plt = figures.plt
    fig, ax = plt.subplots(1, 2, figsize=(9, 2.5))
    for g in groups:
        trace, atoms = model[f"{g}/trace"], model[f"{g}/n_atoms"]
        ax[0].plot(np.arange(1, trace.size + 1), trace, lw=0.8, label=g)
        # n_atoms starts with the count before the first sweep (sweep 0: every atom in use)
        ax[1].plot(np.arange(atoms.size) + (trace.size + 1 - atoms.size), atoms, lw=0.8, label=g)
    ax[0].set_title("log-likelihood per sweep", fontsize=8)
    ax[1].set_title("atoms in use (sweep 0: before the first)", fontsize=8)
    ax[1].set_xlabel("sweep", fontsize=7)
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
    spikes = np.load(results / "spikes.npz") if (results / "spikes.npz").exists() else None
    by_group = reason_rows(units, spikes)
    by_reason = reason_text(by_group)
    groups = [g["name"] for g in info["groups"]]
    epoch_s = info["params"]["sorting"]["epoch_s"]
    refractory_ms = info["params"]["sorting"]["refractory_ms"]
    single = sum(not r["multi_unit"] for r in units)
    conflicts = sum(r.get("content") == "refractory conflicts" for r in units)
    violating = sum(int(r["refractory_violations"]) > 0 for r in units if not r["multi_unit"])
    unitless = [g for g in groups if not any(r["group"] == g for r in units)]
    blocks = [
        {
            "kind": "text",
            "text": f"{len(units)} units ({single} single units, "
            f"{len(units) - single - conflicts} multi-unit"
            + (
                f", {conflicts} holding a group's spikes left in no unit by refractory conflicts"
                if conflicts
                else ""
            )
            + f") in {len(groups)} groups; "
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
        *([{"kind": "text", "text": by_reason}] if by_reason else []),
        *(
            [
                {
                    "kind": "table",
                    "id": "groups-units-table",
                    "columns": list(by_group[0]),
                    "rows": by_group,
                }
            ]
            if by_group
            else []
        ),
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
        figure_block(
            sampler_figure(model, groups),
            "The Gibbs chains: log-likelihood per sweep; atoms in use, all at first, "
            "falling as the sampler switches idle ones off.",
        ),
    ]
    by_unit = {r["unit"]: r for r in units}
    shown = 0
    for g in groups:
        unit, fs_hz = model[f"{g}/unit"], float(model[f"{g}/fs_hz"])
        n_model = model[f"{g}/templates_uv"].shape[0]
        if spikes is not None and f"units_{g}" in spikes:
            numbers = spikes[f"units_{g}"]
        else:
            numbers = (int(unit.min()) if unit.size else 0) + np.arange(n_model)
        for k, u in enumerate(map(int, numbers)):
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
                        model[f"{g}/counts"][k],
                        model[f"{g}/drift_uv"][k],
                        model[f"{g}/drift_sd_uv"][k],
                        fs_hz,
                        epoch_s,
                        refractory_ms,
                    ),
                    f"Unit {u}: waveform per epoch (dark to light); ISI; amplitude over time; "
                    "posterior presence probability per epoch (bars; dashed: 0.5) with its "
                    "spikes per epoch (line); the model's drift posterior of the waveform at "
                    "its peak, mean ± SD per epoch; posterior assignment probabilities of its "
                    "spikes.",
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
