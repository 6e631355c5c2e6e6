"""The per-session HTML report's sections and the page renderer (no network, figures embedded).

Sections: the recording (configuration and region map), preprocessing (raw and spike-band
traces, the artefacts masked, LFP spectra per region), spike detection per group (and what went
wrong in a group: no good channels, a flat spike band, no spikes), the dictionaries and clusters
where the session has them, and provenance (versions, parameters, time and memory per rule).
Later stages add theirs by appending to the section list.
"""

from __future__ import annotations

import time
from pathlib import Path

import jinja2
import numpy as np
import spikeinterface.core as sc
import yaml

from neurodict._version import __version__
from neurodict.common import timeline
from neurodict.common.files import atomic_path, read_tsv
from neurodict.common.layout import group_regions, session_regions
from neurodict.ingest import bad_channels as bad_ch
from neurodict.report import figures
from neurodict.report.figures import figure_block

TEMPLATES = Path(__file__).parent / "templates"
NOISE_SEED = 0  # chunks the spike band's noise is estimated on (as detection's)
MAX_ARTEFACT_ROWS = 200  # artefact stretches listed in the report (artefacts.tsv has them all)


def recording_section(info: dict, rec) -> dict:
    """Configuration, region map and basic facts of the recording."""
    bad = info.get("bad_channels_all", info["bad_channels"])
    facts = (
        f"{info['duration_s']:.1f} s at {info['sampling_frequency_hz']:.0f} Hz, "
        f"{info['num_channels_used']} channels in {len(info['groups'])} electrode groups "
        f"across {len(session_regions(info))} regions; format "
        f"{info['format']}; bad channels: {bad or 'none'}"
        f"{' (listed, and found automatically)' if info.get('auto_bad_channels') else ''}; "
        f"mains {info['mains_hz']} Hz."
    )
    group_of = np.asarray(rec.get_property("group")).astype(str)
    rows = [
        {
            "group": g["name"],
            "region": ", ".join(group_regions(g)),
            "channels": " ".join(map(str, g["channels"])),
            "channel_ids": " ".join(map(str, rec.channel_ids[group_of == g["name"]])),
        }
        for g in info["groups"]
    ]
    shown = {
        k: info.get(k)
        for k in (
            "raw_path",
            "format",
            "groups",
            "bad_channels",
            "mains_hz",
            "windows",
            "events",
            "event_channel",
        )
    }
    return {
        "id": "recording",
        "title": "Recording",
        "blocks": [
            {"kind": "text", "text": facts},
            figure_block(
                figures.probe_map(
                    rec.get_channel_locations()[:, :2],
                    rec.get_property("group"),
                    rec.get_property("region"),
                    rec.get_property("bad"),
                ),
                "Probe layout: contacts coloured by brain region.",
            ),
            {
                "kind": "table",
                "id": "groups-table",
                "columns": ["group", "region", "channels", "channel_ids"],
                "rows": rows,
            },
            *bad_channel_blocks(info, rec),
            *segment_blocks(info),
            {"kind": "pre", "text": yaml.safe_dump(shown, sort_keys=False)},
        ],
    }


def segment_blocks(info: dict) -> list[dict]:
    """A recording of several segments: a sentence and one row per segment (its place on the
    session's timeline, its length and its start on the recording's own clock); with events
    from an event channel, what became of them."""
    segments = info.get("segments") or []
    out = []
    if len(segments) > 1:
        fs = info["sampling_frequency_hz"]
        out += [
            {
                "kind": "text",
                "text": (
                    f"{len(segments)} recording segments, filtered each on its own and laid end "
                    "to end on the session's timeline (times in this report are on it); no "
                    "snippet, filter or dictionary statistic reaches across a pause."
                ),
            },
            {
                "kind": "table",
                "id": "segments-table",
                "columns": ["segment", "timeline_start_s", "duration_s", "t_start_s"],
                "rows": [
                    {
                        "segment": r["segment"],
                        "timeline_start_s": f"{r['start_sample'] / fs:.3f}",
                        "duration_s": f"{r['duration_s']:.3f}",
                        "t_start_s": f"{r['t_start_s']:.3f}",
                    }
                    for r in segments
                ],
            },
        ]
    counts = info.get("event_counts")
    if counts:
        channel = info["event_channel"]["channel"]
        out.append(
            {
                "kind": "text",
                "text": (
                    f"Conditions from event channel {channel!r}: {counts['n_events']} events "
                    f"with a listed label; {counts['outside']} outside the recorded samples "
                    f"(left out), {counts['cut']} windows cut at the end of their segment."
                ),
            }
        )
    return out


def bad_channel_blocks(info: dict, rec) -> list[dict]:
    """With ``auto`` bad channels: a sentence and every grouped channel's label, method and
    score (the recording's ``bad_*`` properties, as in ``bad_channels.tsv``)."""
    if not info.get("auto_bad_channels") or "bad_label" not in rec.get_property_keys():
        return []
    channels = [c for g in info["groups"] for c in g["channels"]]
    rows = [r | {"score": _score(r["score"])} for r in bad_ch.table_rows(rec, channels)]
    found = [r for r in rows if r["label"] != bad_ch.GOOD]
    text = (
        f"Bad channels found automatically (spikeinterface's detect_bad_channels per electrode "
        f"group; score: the channel's deviation over its group's median): {len(found)} of "
        f"{len(rows)} channels"
        + (": " + ", ".join(f"{r['channel']} ({r['label']})" for r in found) if found else "")
        + "."
    )
    return [
        {"kind": "text", "text": text},
        {
            "kind": "table",
            "id": "bad-channels-table",
            "columns": bad_ch.COLUMNS,
            "rows": rows,
        },
    ]


def _score(v: float) -> str:
    return "" if not np.isfinite(v) else f"{v:.2f}"


def preprocessing_section(
    info: dict, rec, spikeband, region_lfp, artefacts: list[dict] | None = None, motion=None
) -> dict:
    """A stretch of raw and spike-band traces, the artefacts masked (``artefacts.tsv``'s rows;
    None where the session's results predate it), the motion correction per group (the
    contents of ``motion.npz``, or None) and the region LFP spectra."""
    p = info["params"]["report"]
    fs = rec.sampling_frequency
    rec = timeline.concatenate(rec)
    start = min(int(p["trace_start_s"] * fs), max(rec.get_num_samples() - 1, 0))
    end = min(start + int(p["trace_s"] * fs), rec.get_num_samples())
    good = ~rec.get_property("bad").astype(bool)
    raw = rec.get_traces(start_frame=start, end_frame=end, return_in_uV=True)[:, good]
    spk = spikeband.get_traces(start_frame=start, end_frame=end)
    labels = [
        f"{g}:{c}"
        for g, c in zip(spikeband.get_property("group"), spikeband.channel_ids, strict=True)
    ]
    lfp = region_lfp.get_traces()
    regions = list(region_lfp.get_property("region"))
    return {
        "id": "preprocessing",
        "title": "Preprocessing",
        "blocks": [
            figure_block(
                figures.traces(np.arange(start, end) / fs, raw, spk, labels),
                f"Raw and spike-band ({info['params']['spikeband']['freq_min_hz']}-"
                f"{info['params']['spikeband']['freq_max_hz']} Hz) traces.",
            ),
            *artefact_blocks(info, artefacts, rec.get_total_duration()),
            *motion_blocks(motion),
            figure_block(
                figures.lfp_spectra(lfp, region_lfp.sampling_frequency, regions),
                f"Power spectra of the region LFPs at {region_lfp.sampling_frequency:.0f} Hz "
                f"(mains {info['mains_hz']} Hz and harmonics notched).",
            ),
        ],
    }


def motion_blocks(motion) -> list[dict]:
    """Each group's motion correction (``spikeband.motion``: what was decided and why, the
    range of the estimate) and, where estimated, its estimate over time."""
    if motion is None:
        return []
    rows, figs = [], []
    for g, kind, reason, span in zip(
        motion["groups"], motion["kind"], motion["reason"], motion["span_um"], strict=True
    ):
        disp = motion[f"{g}/displacement_um"]
        rows.append(
            {
                "group": str(g),
                "motion": str(kind),
                "why": str(reason),
                "span_um": f"{span:.0f}",
                "displacement_range_um": f"{np.ptp(disp):.1f}" if disp.size else "",
            }
        )
        if disp.size:
            figs.append(
                figure_block(
                    figures.motion(g, motion[f"{g}/times_s"], motion[f"{g}/depths_um"], disp),
                    f"Group {g}: the {kind} motion estimate (spikeinterface's "
                    "correct_motion); the spike band is interpolated to undo it before "
                    "detection."
                    if kind != "none"
                    else f"Group {g}: the motion estimate (spikeinterface's correct_motion), "
                    "under the drift that motion auto corrects: the spike band is not "
                    "interpolated.",
                )
            )
    table = {
        "kind": "table",
        "id": "motion-table",
        "columns": ["group", "motion", "why", "span_um", "displacement_range_um"],
        "rows": rows,
    }
    return [table, *figs]


def artefact_blocks(info: dict, rows: list[dict] | None, duration_s: float) -> list[dict]:
    """A sentence on the artefacts masked in the spike band, and their table."""
    p = info["params"]["spikeband"]
    if rows is None:
        return []
    if not p.get("mask_artefacts", True):
        return [
            {"kind": "text", "text": "Artefacts: not looked for (spikeband.mask_artefacts is off)."}
        ]
    rule = (
        f"Artefacts, zeroed on their group's channels of the spike band before spike "
        f"detection: saturation (a raw sample at {p['saturation_full_scale']:.0%} or more of "
        f"the ADC's range on any channel of the group) and large artefacts (at least "
        f"{p['artefact_channel_fraction']:.0%} of the group's channels beyond "
        f"{p['artefact_threshold_sigma']:g} robust SD at once), each extended until every "
        f"channel stays under {p['artefact_end_sigma']:g} robust SD."
    )
    if not rows:
        return [{"kind": "text", "text": f"{rule} None found."}]
    masked = {}
    for r in rows:
        masked[r["group"]] = masked.get(r["group"], 0.0) + float(r["duration_ms"])
    count = {g: sum(r["group"] == g for r in rows) for g in masked}
    per_group = "; ".join(
        f"group {g}: {count[g]} stretch{'es' if count[g] > 1 else ''}, "
        f"{ms / 1000:.3g} s ({ms / 10 / duration_s:.2g}% of the recording)"
        for g, ms in masked.items()
    )
    blocks = [
        {"kind": "text", "text": f"{rule} Masked: {per_group}."},
        {
            "kind": "table",
            "id": "artefacts-table",
            "columns": ["group", "kind", "start_s", "end_s", "duration_ms"],
            "rows": rows[:MAX_ARTEFACT_ROWS],
        },
    ]
    if len(rows) > MAX_ARTEFACT_ROWS:
        blocks.append(
            {
                "kind": "text",
                "text": f"The first {MAX_ARTEFACT_ROWS} of {len(rows)} "
                "stretches are listed; artefacts.tsv has all.",
            }
        )
    return blocks


def group_notes(info: dict, spikeband, rows: list[dict]) -> list[str]:
    """What went wrong in a group, one sentence each: no good channels, a flat spike band, no
    spikes detected; and a sentence when the whole session has no spikes."""
    counts = {str(r["group"]): int(r["n_peaks"]) for r in rows}
    groups = np.asarray(spikeband.get_property("group")).astype(str)
    noise = np.asarray(
        sc.get_noise_levels(
            spikeband, return_in_uV=False, random_slices_kwargs={"seed": NOISE_SEED}
        )
    )
    notes = []
    for g in (g["name"] for g in info["groups"]):
        if g not in counts or not np.any(groups == g):
            notes.append(
                f"group {g}: no good channels (all of them are in bad_channels); "
                "nothing was detected or sorted."
            )
        elif np.all(noise[groups == g] == 0):
            notes.append(
                f"group {g}: no spikes detected; its spike band is flat (robust SD "
                "0 uV on every channel: all-zero or disconnected channels, or masked "
                "as artefacts throughout)."
            )
        elif counts[g] == 0:
            notes.append(f"group {g}: no spikes detected (nothing crossed the threshold).")
    if sum(counts.values()) == 0:
        notes.append(
            "No spikes were detected in any group of the session: there is nothing to "
            "sort, and no dictionaries or clusters can be learned from its spikes."
        )
    return notes


def detection_section(info: dict, rows: list[dict], notes: list[str] = ()) -> dict:
    """Detected spikes per electrode group and region, and :func:`group_notes`."""
    regions = session_regions(info)
    d = info["params"]["detection"]
    return {
        "id": "detection",
        "title": "Spike detection",
        "blocks": [
            {
                "kind": "text",
                "text": f"Threshold {d['threshold_sigma']} robust SD, {d['peak_sign']} "
                f"peaks, dead time {d['dead_time_ms']} ms.",
            },
            *({"kind": "text", "text": note} for note in notes),
            figure_block(
                figures.detection_counts(rows, regions), "Detected spikes per second by group."
            ),
            {"kind": "table", "id": "detection-table", "columns": list(rows[0]), "rows": rows},
        ],
    }


def dictionary_section(results: Path) -> dict:
    """Atoms, held-out R^2 against the baselines, a held-out stretch, connectivity per band."""
    from neurodict.lfpdict.atoms import band_power

    d = np.load(results / "lfp_dict.npz")
    rows = read_tsv(results / "lfp_scores.tsv")
    regions = list(d["regions"])
    used = np.abs(d["coef"]).sum(axis=(0, 1, 2)) > 0
    fs_hz = 1000.0 / float(d["lags_ms"][1] - d["lags_ms"][0])
    order = np.argsort(d["unit_regions"], kind="stable")
    power = {b: p[order] for b, p in band_power(d["filters"], fs_hz).items()}
    labels = [f"{d['unit_ids'][i]} ({d['unit_regions'][i]})" for i in order]
    table = [r for r in rows if r["predictors"] == "all"] + [
        r for r in rows if r["predictors"] != "all"
    ]
    return {
        "id": "dictionaries",
        "title": "Spike-LFP dictionaries",
        "blocks": [
            {
                "kind": "text",
                "text": f"{len(d['unit_ids'])} units, {len(regions)} regions, "
                f"{used.sum()} of {len(used)} atoms in use; lags "
                f"{d['lags_ms'][0]:g} to {d['lags_ms'][-1]:g} ms. Held-out R^2 "
                "from nested blocked cross-validation (every hyper-parameter chosen on "
                "inner folds of the training data), ± its standard error across outer "
                "folds; jitter = the mean of the null distribution (the same procedure on "
                "circularly shifted spike trains).",
            },
            *({"kind": "text", "text": t} for t in region_sentences(rows, d["null_r2"].shape[1])),
            *excluded_units_blocks(d),
            figure_block(
                figures.r2_bars(rows, regions),
                "Held-out R^2 per region: dictionary model "
                "against Wiener (ridge), spike-triggered-average and jitter baselines.",
            ),
            figure_block(
                figures.heldout_stretch(
                    d["heldout_t_s"], d["heldout_measured"], d["heldout_predicted"], regions
                ),
                "Measured and predicted LFP on a held-out stretch (all units as predictors).",
            ),
            figure_block(
                figures.atoms_and_spectra(d["atoms"], d["lags_ms"], fs_hz, used),
                "Learned convolutional atoms and their spectra (grey: unused).",
            ),
            figure_block(
                figures.connectivity(power, labels, regions),
                "Unit x region connectivity: power of each link's filter per band.",
            ),
            {
                "kind": "table",
                "id": "scores-table",
                "columns": [
                    "region",
                    "predictors",
                    "model",
                    "r2_heldout",
                    "r2_se",
                    "n_folds",
                    "penalty",
                    "n_atoms",
                    "null_p95",
                    "p_value",
                ],
                "rows": table,
            },
        ],
    }


def region_sentences(rows: list[dict], n_null: int) -> list[str]:
    """One plain sentence per region and predictor set (outside, then inside): the dictionary's
    held-out R^2, the null, the p-value, and where the Wiener filter does better, that too."""
    score = {(r["region"], r["predictors"], r["model"]): r for r in rows}
    out = []
    for region in dict.fromkeys(r["region"] for r in rows):
        for pset, words in (("outside", f"outside {region}"), ("inside", f"in {region}")):
            d, w = score[(region, pset, "dictionary")], score[(region, pset, "wiener")]
            if d["p_value"] is None:
                out.append(f"{region}: its LFP is flat; nothing to predict.")
                break
            floor = " (the smallest possible)" if d["p_value"] <= 1 / (1 + n_null) + 1e-9 else ""
            text = (
                f"Spikes {words} predict its LFP: R^2 {d['r2_heldout']:.3f} ± {d['r2_se']:.3f}, "
                f"null 95 % {d['null_p95']:.3f}, p = {d['p_value']:.3g} with {n_null} nulls"
                f"{floor}."
            )
            if w["r2_heldout"] - w["r2_se"] > d["r2_heldout"]:
                text += (
                    f" The Wiener filter predicts it better: R^2 {w['r2_heldout']:.3f} ± "
                    f"{w['r2_se']:.3f}."
                )
            out.append(text)
    return out


def excluded_units_blocks(d) -> list[dict]:
    """The units ``lfpdict.units: single`` left out (``excluded_unit_ids`` of ``lfp_dict.npz``,
    with ``excluded_reasons`` where present): a sentence and a table; nothing for results
    written before units were left out."""
    if "excluded_unit_ids" not in getattr(d, "files", d):
        return []
    ids = [str(u) for u in d["excluded_unit_ids"]]
    if not ids:
        return [
            {
                "kind": "text",
                "text": "Units left out (multi-unit or noise, lfpdict.units: single): none.",
            }
        ]
    reasons = (
        [str(r) for r in d["excluded_reasons"]]
        if "excluded_reasons" in getattr(d, "files", d) and len(d["excluded_reasons"]) == len(ids)
        else ["multi-unit or noise"] * len(ids)
    )
    return [
        {
            "kind": "text",
            "text": f"{len(ids)} unit{'s' if len(ids) > 1 else ''} left out of the dictionaries "
            "and clusters (flagged multi-unit or noise; lfpdict.units: single): "
            f"{', '.join(ids)}.",
        },
        {
            "kind": "table",
            "id": "excluded-units-table",
            "columns": ["unit", "reason"],
            "rows": [{"unit": u, "reason": r} for u, r in zip(ids, reasons, strict=True)],
        },
    ]


def clusters_section(results: Path) -> dict:
    """Cluster composition and signatures, stability, phase locking and importance."""
    summary = read_tsv(results / "clusters_summary.tsv")
    s = summary[0]
    regions = list(np.load(results / "lfp_dict.npz")["regions"])
    bands = ["delta", "theta", "beta", "gamma"]
    verdict = (
        "stable"
        if s["stable"]
        else "NOT stable: treat these clusters as descriptive, not as a finding"
    )
    home_cols = [c for c in summary[0] if c.startswith("home_")]
    phase = read_tsv(results / "phase.tsv")
    importance = read_tsv(results / "importance.tsv")
    return {
        "id": "clusters",
        "title": "Units clustered across regions",
        "blocks": [
            {
                "kind": "text",
                "text": f"{s['n_clusters']} clusters (Dirichlet-process mixture on "
                f"{s['pca_components']} principal components keeping "
                f"{float(s['pca_variance_kept']):.0%} of the signature "
                f"variance). Stability: ARI between recording halves "
                f"{s['ari_halves']}, median bootstrap ARI "
                f"{s['ari_bootstrap_median']}: {verdict}. Information beyond "
                f"home region: rotation test p = {s['p_beyond_region']}.",
            },
            {
                "kind": "table",
                "id": "cluster-table",
                "columns": ["cluster", "n_units", *home_cols],
                "rows": summary,
            },
            figure_block(
                figures.cluster_signatures(summary, regions, bands),
                "Mean signature of each cluster: filter amplitude by region and band.",
            ),
            figure_block(
                figures.phase_polar(phase, regions, bands),
                "Spike-LFP phase locking: preferred phase and pairwise phase consistency of "
                "significantly locked unit-region pairs, coloured by LFP region."
                + (
                    " A unit's locking to its own region is measured on that region's LFP "
                    "without the unit's electrode group (or, in a region of one group, with "
                    "the group's spike kernels removed), so that its own spikes do not leak in."
                    if phase and "lfp" in phase[0]
                    else ""
                ),
            ),
            figure_block(
                figures.importance_bars(importance),
                "Functional importance: held-out R^2 lost when a unit is left out.",
            ),
        ],
    }


def render(title: str, sections: list[dict], out_html: str | Path) -> Path:
    """Write one self-contained page of `sections` (each: id, title, blocks), atomically.

    Blocks are text, figure, pre or table; a table cell given as ``{"href", "text"}`` is a
    link. Every value is HTML-escaped (jinja2 autoescape): names from users' files (channel
    ids, unit ids, conditions, paths) show as text and never run as markup.
    """
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    html = env.get_template("session.html").render(
        title=title,
        sections=sections,
        version=__version__,
        generated=time.strftime("%Y-%m-%d %H:%M"),
    )
    with atomic_path(out_html) as tmp:
        tmp.write_text(html)
    return Path(out_html)
