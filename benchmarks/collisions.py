"""Where each ground-truth unit's spikes go, by how close in time another unit fired.

Reads what ``benchmarks/sorting.py --work DIR`` kept (each recording's ``gt`` and each sorter's
``sorting``) and, for every sorter there, matches each ground-truth spike to the nearest sorted
spike within ``--tolerance-ms`` (found). A unit's own sorted unit is the one that holds most
of those matches; a found spike with no spike of its own sorted unit within the tolerance is
*lost to another unit*. Spikes are binned by the lag to the nearest spike of another
ground-truth unit, in samples, so a sorter's handling of collisions reads off one table: the
share of each bin lost to another unit, the share not found at all, and each bin's share of
all the spikes lost to another unit.

Usage::

    python benchmarks/sorting.py --large --recordings probe32-n5-s1 --work W
    python benchmarks/collisions.py --work W --recordings probe32-n5-s1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

LAG_EDGES = (0, 3, 6, 9, 15, 30, 60, None)  # samples to the nearest other unit's spike


def spike_fates(gt, sorting, tolerance: int) -> dict[str, np.ndarray]:
    """Per ground-truth spike (all units, time order): the lag in samples to the nearest spike
    of another ground-truth unit, whether any sorted spike lies within `tolerance` samples
    (found), and whether none of its unit's own sorted unit does (lost to another unit, when
    found). A unit's own sorted unit holds the most of the sorted spikes nearest its spikes."""
    t, unit = _spikes(gt)
    n_units = gt.get_num_units()
    lag = np.full(t.size, np.iinfo(np.int64).max)
    for i in range(n_units):
        own, rest = unit == i, t[unit != i]
        lag[own] = np.abs(_nearest(t[own], rest) - t[own])
    out_t, out_u = _spikes(sorting)
    found = np.abs(_nearest(t, out_t) - t) <= tolerance
    kept = np.zeros(t.size, bool)
    for i in range(n_units):
        own = unit == i
        if found[own].any():  # a sorting without spikes finds none
            label = out_u[nearest_index(t[own], out_t)][found[own]]
            train = out_t[out_u == np.bincount(label).argmax()]
            kept[own] = np.abs(_nearest(t[own], train) - t[own]) <= tolerance
    return {"lag": lag, "found": found, "lost": found & ~kept}


def _spikes(sorting) -> tuple[np.ndarray, np.ndarray]:
    """Every spike of `sorting` in time order: its sample and its unit's index."""
    trains = [sorting.get_unit_spike_train(u).astype(np.int64) for u in sorting.unit_ids]
    t = np.concatenate(trains or [np.zeros(0, np.int64)])
    unit = np.repeat(np.arange(len(trains)), [x.size for x in trains])
    order = np.argsort(t, kind="stable")
    return t[order], unit[order]


def nearest_index(t: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Index into sorted `ref` (not empty) of the element nearest each of `t`."""
    j = np.searchsorted(ref, t).clip(0, ref.size - 1)
    left = (j - 1).clip(0)
    return np.where(np.abs(ref[left] - t) <= np.abs(ref[j] - t), left, j)


def _nearest(t: np.ndarray, ref: np.ndarray) -> np.ndarray:
    if ref.size == 0:
        return np.full(t.size, np.iinfo(np.int64).max // 2)
    return ref[nearest_index(t, ref)]


def table(fates: dict[str, np.ndarray]) -> list[dict]:
    """One row per lag bin of :data:`LAG_EDGES`: spikes, share lost to another unit, share
    not found, share of all the spikes lost to another unit."""
    lag, found, lost = fates["lag"], fates["found"], fates["lost"]
    rows = []
    for lo, hi in zip(LAG_EDGES[:-1], LAG_EDGES[1:], strict=True):
        sel = (lag >= lo) & (lag < hi) if hi is not None else lag >= lo
        n = int(sel.sum())
        rows.append(
            {
                "lag": f"{lo}-{hi - 1}" if hi is not None else f">={lo}",
                "spikes": n,
                "lost": float(lost[sel].sum() / max(n, 1)),
                "missed": float((~found[sel]).sum() / max(n, 1)),
                "share_of_lost": float(lost[sel].sum() / max(lost.sum(), 1)),
            }
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", type=Path, required=True, help="benchmarks/sorting.py's --work")
    p.add_argument("--recordings", nargs="+", required=True)
    p.add_argument("--tolerance-ms", type=float, default=0.4)
    args = p.parse_args()
    import spikeinterface.core as sc

    for name in args.recordings:
        folder = args.work / name
        gt = sc.load(folder / "gt")
        tolerance = int(round(args.tolerance_ms * 1e-3 * gt.get_sampling_frequency()))
        print(f"\n{name} (tolerance {tolerance} samples)\n")
        print("| sorter | lag to another unit's spike (samples) | spikes | lost to another unit "
              "| not found | share of all lost |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        for sorting_dir in sorted(folder.glob("*/sorting")):
            fates = spike_fates(gt, sc.load(sorting_dir), tolerance)
            for row in table(fates):
                print(
                    f"| {sorting_dir.parent.name} | {row['lag']} | {row['spikes']} | "
                    f"{row['lost']:.3f} | {row['missed']:.3f} | {row['share_of_lost']:.2f} |"
                )


if __name__ == "__main__":
    main()
