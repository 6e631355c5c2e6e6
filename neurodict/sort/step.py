"""The sorting steps of the workflow: one electrode group (``sort``), then the whole recording
session (``merge_sorting``).

``sort`` writes ``sort/<group>.npz`` (:class:`neurodict.sort.run.GroupResult`).
``merge_sorting`` writes, atomically:

- ``sorting/``: a spikeinterface Sorting folder, unit properties ``group``, ``region``,
  ``peak_channel``, ``multi_unit``;
- ``spikes.npz``: per spike, in ``sorting.to_spike_vector()`` order, ``sample_index`` (on the
  session's timeline, :mod:`neurodict.common.timeline`), ``segment_index`` and
  ``segment_sample_index`` (its recording segment, and its sample there), ``unit_index``,
  ``probability`` (posterior probability of its unit), ``reason`` (index into ``reasons``: in
  a single unit, in a multi-unit, or in no unit for a refractory conflict);
  per group ``g``, its spikes' posterior probabilities of its units (rows sum to 1; a spike's
  entries are the units of its neighbourhood's clusters, the rest zero) as a CSR matrix, its
  spikes × its units in the group's order, ``probabilities_<g>_data``, ``_indices``,
  ``_indptr`` and ``_shape`` (:func:`group_probabilities` reads it), and ``units_<g>``;
  ``below_threshold_sample_index`` and ``below_threshold_group``: the detections that the
  overlap pass found below the detection threshold once their neighbouring spikes were peeled
  (tails of other spikes, not spikes: in no unit);
- ``units.tsv``: unit, group, region, n_spikes, firing_rate_hz, epochs_present (posterior
  presence over one half), refractory violations, snr, multi_unit, content (single unit,
  multi-unit, or the group's spikes left in no unit by a refractory conflict);
- ``metrics.tsv``: spikeinterface quality metrics (both tables keep their header when the
  session has no units: no spikes, flat groups, groups without good channels);
- ``sorter.npz``: per group the learned dictionary, learning features and labels, spike
  counts and posterior presence per epoch, mean snippets and the posterior mean and SD of the
  model's waveform per epoch (drift), and the sampler's trace, for the report and NWB.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import spikeinterface as si
import spikeinterface.core as sc
from scipy import sparse

from neurodict.common import timeline
from neurodict.common.analyzer import QUALITY_METRICS, analyze_units, quality_metrics
from neurodict.common.files import atomic_path, write_json, write_tsv
from neurodict.common.layout import group_recording, session_info
from neurodict.common.provenance import provenance
from neurodict.detect.step import group_peaks
from neurodict.sort.assign import REASONS
from neurodict.sort.combine import combine_groups, refractory_violations
from neurodict.sort.local import LocalSnippets
from neurodict.sort.params import SortParams
from neurodict.sort.run import GroupResult, csr_arrays, one_unit, read_csr, sort_recording_group
from neurodict.sort.snippets import window_samples

log = logging.getLogger(__name__)
UNIT_COLUMNS = [
    "unit",
    "group",
    "region",
    "n_spikes",
    "firing_rate_hz",
    "epochs_present",
    "refractory_violations",
    "snr",
    "peak_channel",
    "multi_unit",
    "content",
]
PRESENT = 0.5  # an epoch is listed in epochs_present when the posterior presence exceeds this


def run(results: str | Path, group: str, n_jobs: int = 1) -> GroupResult:
    """Sort electrode group `group` of ``spikeband/`` from its peaks in ``peaks.npy``; writes
    ``sort/<group>.npz`` (an empty result, with a warning, for a group of the session whose
    channels are all bad; an InputError for a group the session does not have)."""
    started = time.time()
    results = Path(results)
    session = session_info(results)
    params = session["params"]
    spikeband = si.load(results / "spikeband")
    sort_params = SortParams.from_config(params["sorting"])
    if group in {g["name"] for g in session["groups"]} and group not in set(
        map(str, spikeband.get_property("group"))
    ):
        log.warning(
            "group %s has no good channels (all are in bad_channels): nothing to sort", group
        )
        result = no_channels_result(
            spikeband.sampling_frequency, spikeband.get_total_duration(), sort_params
        )
    else:
        rec = group_recording(spikeband, group)  # an InputError names the groups there are
        peaks = group_peaks(results, spikeband, group)
        result = sort_recording_group(
            rec,
            params["detection"],
            sort_params,
            n_jobs=n_jobs,
            progress=True,
            peaks=(peaks["sample_index"], peaks["channel_index"], peaks["amplitude_uv"]),
            starts=timeline.starts(session),
        )
    result.save(results / "sort" / f"{group}.npz")
    write_json(
        results / "sort" / f"{group}.provenance.json",
        provenance("sort", params["sorting"] | {"group": group}, started),
    )
    return result


def merge(results: str | Path, n_jobs: int = 1) -> sc.BaseSorting:
    """Combine the groups' results into the recording session's sorting and tables."""
    started = time.time()
    results = Path(results)
    session = session_info(results)
    rec = si.load(results / "spikeband")
    params = SortParams.from_config(session["params"]["sorting"])
    groups = [g["name"] for g in session["groups"]]
    region = dict(zip(map(str, rec.channel_ids), map(str, rec.get_property("region")), strict=True))
    parts = {g: GroupResult.load(results / "sort" / f"{g}.npz") for g in groups}
    sorting, table, units = combine_groups(parts, region, rec.sampling_frequency)
    with atomic_path(results / "sorting") as tmp:
        sorting.save(folder=tmp)
    write_spikes(results / "spikes.npz", sorting, parts, units, timeline.starts(session))
    if sorting.get_num_units():
        metrics = quality_metrics(analyze_units(sorting, rec, n_jobs=n_jobs, seed=params.seed))
    else:
        log.warning(
            "no units in any group (no spikes were detected): empty units.tsv and metrics.tsv"
        )
        metrics = {name: np.zeros(0) for name in QUALITY_METRICS}
    write_tsv(
        results / "units.tsv",
        _unit_rows(sorting, table, parts, metrics, params, rec.get_total_duration()),
        UNIT_COLUMNS,
    )
    write_tsv(
        results / "metrics.tsv",
        [
            {"unit": u} | {k: _num(v[i]) for k, v in metrics.items()}
            for i, u in enumerate(sorting.unit_ids)
        ],
        ["unit", *metrics],
    )
    _write_model(results / "sorter.npz", parts, units)
    write_json(
        results / "merge_sorting.provenance.json",
        provenance("merge_sorting", {"groups": groups}, started),
    )
    return sorting


def no_channels_result(fs_hz: float, duration_s: float, params: SortParams) -> GroupResult:
    """The result of a group without good channels: no spikes, no units, no model."""
    T = sum(window_samples(fs_hz, params.ms_before, params.ms_after))
    empty = np.zeros(0, np.int64)
    return GroupResult(
        samples=empty,
        amplitudes_uv=np.zeros(0, np.float32),
        sorting=one_unit(
            LocalSnippets.full(np.zeros((0, 0, T), np.float32)), empty, fs_hz, duration_s, params
        ),
        unwhiten=np.eye(T),
        noise_levels_uv=np.zeros(0),
        channel_ids=np.zeros(0, str),
        fs_hz=fs_hz,
    )


def write_spikes(
    path: Path, sorting, parts: dict[str, GroupResult], units: dict, starts: list[int]
) -> None:
    """``spikes.npz`` (the fields the module's docstring lists) of the session's `sorting` on
    its timeline, from the groups' results `parts` and their global unit numbers `units`
    (:func:`neurodict.sort.combine.combine_groups`), the segments beginning at `starts`."""
    samples = np.concatenate([p.samples for p in parts.values()])
    unit = np.concatenate([units[g][0] for g in parts])
    prob = np.concatenate([units[g][1] for g in parts])
    reason = np.concatenate([p.sorting.reason for p in parts.values()])
    order = np.lexsort((unit, samples))
    vector = sorting.to_spike_vector()
    if not (
        np.array_equal(vector["sample_index"], samples[order])
        and np.array_equal(vector["unit_index"], unit[order])
    ):
        raise RuntimeError(
            "the sorting's spike vector is not ordered by sample, then unit; "
            "spikes.npz would not match it"
        )
    per_group = {}
    for g, part in parts.items():
        probability = part.sorting.probability
        n_units = probability.shape[1]
        per_group |= csr_arrays(f"probabilities_{g}", probability)
        per_group[f"units_{g}"] = units[g][2] + np.arange(n_units)
    segment = timeline.segment_of(samples[order], starts)
    below = np.concatenate([p.below_threshold for p in parts.values()])
    below_group = np.concatenate([np.full(p.below_threshold.size, g) for g, p in parts.items()])
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            below_threshold_sample_index=below,
            below_threshold_group=below_group.astype(str),
            sample_index=samples[order],
            segment_index=segment,
            segment_sample_index=samples[order] - np.asarray(starts)[segment],
            unit_index=unit[order],
            probability=prob[order].astype(np.float32),
            reason=reason[order],
            reasons=np.array(REASONS),
            **per_group,
        )


def group_probabilities(spikes, group: str) -> sparse.csr_array:
    """Group `group`'s spikes' posterior probabilities of its units, (its spikes, its units),
    from ``spikes.npz`` as loaded (``np.load``)."""
    return read_csr(spikes, f"probabilities_{group}")


def _unit_rows(sorting, table, parts, metrics, params: SortParams, duration_s: float) -> list[dict]:
    fs = sorting.sampling_frequency
    rows = []
    for i, (u, row) in enumerate(zip(sorting.unit_ids, table, strict=True)):
        train = sorting.get_unit_spike_train(u)
        local = row["local"]
        presence = parts[row["group"]].sorting.presence
        epochs = np.flatnonzero(presence[local] > PRESENT) if local >= 0 else []
        rows.append(
            {
                "unit": u,
                "group": row["group"],
                "region": row["region"],
                "n_spikes": train.size,
                "firing_rate_hz": round(train.size / duration_s, 3),
                "epochs_present": ",".join(map(str, epochs)),
                "refractory_violations": refractory_violations(train, fs, params.refractory_ms),
                "snr": _num(metrics["snr"][i]),
                "peak_channel": row["peak_channel"],
                "multi_unit": row["multi_unit"],
                "content": "refractory conflicts"
                if local < 0
                else ("multi-unit" if row["multi_unit"] else "single unit"),
            }
        )
    return rows


def _write_model(path: Path, parts: dict[str, GroupResult], units: dict) -> None:
    """What the report plots of each group's model (unit numbers as in the session's sorting)."""
    arrays = {}
    for g, part in parts.items():
        s = part.sorting
        unit, prob, base = units[g]
        drift, drift_sd = part.drift_uv()
        arrays |= {
            f"{g}/samples": part.samples,
            f"{g}/amplitudes_uv": part.amplitudes_uv,
            f"{g}/unit": unit,
            f"{g}/probability": prob,
            f"{g}/fs_hz": part.fs_hz,
            f"{g}/dictionary": part.unwhiten @ s.dictionary,
            f"{g}/features": s.features,
            f"{g}/feature_units": np.where(s.feature_labels >= 0, base + s.feature_labels, -1),
            f"{g}/feature_centres": s.feature_centres,
            f"{g}/centre_channels": part.channel_ids[s.centres],
            f"{g}/counts": s.counts,
            f"{g}/presence": s.presence,
            f"{g}/templates_uv": part.templates_uv(),
            f"{g}/drift_uv": drift,
            f"{g}/drift_sd_uv": drift_sd,
            f"{g}/trace": s.trace,
            f"{g}/n_atoms": s.n_atoms,
        }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _num(value) -> float | str:
    value = float(value)
    return "" if np.isnan(value) else round(value, 4)
