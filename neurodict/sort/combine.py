"""The session's sorting from its groups' results: units numbered group after group."""

from __future__ import annotations

import numpy as np
import spikeinterface.core as sc

from neurodict.sort.run import GroupResult


def refractory_violations(samples: np.ndarray, fs_hz: float, refractory_ms: float) -> int:
    """Inter-spike intervals of one unit shorter than `refractory_ms`."""
    return int(np.sum(np.diff(np.sort(samples)) < refractory_ms * fs_hz / 1000))


def global_units(parts: dict[str, GroupResult]) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """Per group: each spike's unit in the session's numbering, its posterior probability, and
    the group's first unit.

    Units are numbered group after group; a group whose spikes include some that every unit's
    refractory period blocked (label -1) gets one more unit, a multi-unit, that keeps them.
    """
    out, base = {}, 0
    for g, part in parts.items():
        lab, p = part.sorting.labels, part.sorting.probability
        n_units = p.shape[1]
        assigned = p[np.arange(lab.size), np.maximum(lab, 0)] if n_units else np.ones(lab.size)
        out[g] = (
            np.where(lab >= 0, base + lab, base + n_units),
            np.where(lab >= 0, assigned, 0.0),
            base,
        )
        base += n_units + int(np.any(lab < 0))
    return out


def combine_groups(parts: dict[str, GroupResult], region: dict[str, str], fs_hz: float):
    """One Sorting from the groups' results, a table with one dict per unit, and
    :func:`global_units` of the groups. `region` maps each channel id to its brain region: a
    unit's region is that of its peak channel (a shank may cross several regions)."""
    table = []
    for g, part in parts.items():
        n_units = part.sorting.multi_unit.size
        templates = part.templates_uv().mean(axis=1)  # (U, M, T)
        peak = (
            part.channel_ids[np.abs(templates).max(axis=2).argmax(axis=1)]
            if n_units
            else np.zeros(0, part.channel_ids.dtype)
        )
        for k in range(n_units):
            table.append(
                {
                    "group": g,
                    "region": region[str(peak[k])],
                    "local": k,
                    "multi_unit": bool(part.sorting.multi_unit[k]),
                    "peak_channel": str(peak[k]),
                }
            )
        if np.any(part.sorting.labels < 0):
            channel = str(peak[0]) if n_units else str(part.channel_ids[0])
            table.append(
                {
                    "group": g,
                    "region": region[channel],
                    "local": -1,
                    "multi_unit": True,
                    "peak_channel": channel,
                }
            )
    units = global_units(parts)
    samples = np.concatenate([p.samples for p in parts.values()])
    unit = np.concatenate([units[g][0] for g in parts])
    order = np.lexsort((unit, samples))  # two units' spikes at one sample: by unit
    sorting = sc.NumpySorting.from_samples_and_labels(
        [samples[order]], [unit[order]], fs_hz, unit_ids=np.arange(len(table))
    )
    for key in ("group", "region", "peak_channel", "multi_unit"):
        sorting.set_property(key, np.array([row[key] for row in table]))
    return sorting, table, units
