"""Sorting a recording group by group: detection, snippets, whitening, the sampler, the result.

:func:`sort_recording_group` is what the ``sort`` rule, ``neurodict sort`` and the spikeinterface
sorter wrapper call for one electrode group. Degenerate groups (no spikes, or too few to learn
from) give an empty or single-unit result with a log line, never an exception.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import spikeinterface.core as sc

from neurodict import detect
from neurodict.outputs import atomic_path
from neurodict.sorter import snippets
from neurodict.sorter.group import GroupSorting, SortParams, epochs_of, sort_group

log = logging.getLogger(__name__)
MIN_LEARN_SPIKES = 20


@dataclass
class GroupResult:
    """One group's sorted spikes in recording samples, with everything the report plots."""

    samples: np.ndarray            # (n,) aligned peak samples, sorted
    amplitudes_uv: np.ndarray      # (n,) signed value at the peak on the largest channel
    sorting: GroupSorting
    unwhiten: np.ndarray           # (T, T') whitened coordinates -> waveform samples
    noise_levels_uv: np.ndarray    # (M,)
    channel_ids: np.ndarray        # (M,)
    fs_hz: float

    def templates_uv(self) -> np.ndarray:
        """Mean waveform per unit and epoch in microvolts: (U, E, M, T)."""
        t = np.einsum("st,uemt->uems", self.unwhiten, self.sorting.templates)
        return t * self.noise_levels_uv[None, None, :, None]

    def save(self, path: str | Path) -> None:
        """Write as one ``.npz``, atomically."""
        arrays = {f"sorting_{f.name}": getattr(self.sorting, f.name)
                  for f in fields(GroupSorting)}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, samples=self.samples, amplitudes_uv=self.amplitudes_uv,
                     unwhiten=self.unwhiten,
                     noise_levels_uv=self.noise_levels_uv, channel_ids=self.channel_ids,
                     fs_hz=self.fs_hz, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> GroupResult:
        d = np.load(path, allow_pickle=False)
        sorting = GroupSorting(**{f.name: d[f"sorting_{f.name}"] for f in fields(GroupSorting)})
        return cls(samples=d["samples"], amplitudes_uv=d["amplitudes_uv"], sorting=sorting,
                   unwhiten=d["unwhiten"],
                   noise_levels_uv=d["noise_levels_uv"], channel_ids=d["channel_ids"],
                   fs_hz=float(d["fs_hz"]))


def sort_recording_group(rec: sc.BaseRecording, detection: dict, params: SortParams,
                         n_jobs: int = 1, progress: bool = False) -> GroupResult:
    """Detect and sort the spikes of one electrode group's spike band.

    Parameters
    ----------
    rec : BaseRecording
        The group's channels, spike band in microvolts, one segment.
    detection : dict
        The ``detection`` section (threshold_sigma, peak_sign, dead_time_ms, radius_um).
    params : SortParams
    n_jobs : int
        Worker processes for detection and noise estimation (the rule's threads).
    """
    if rec.get_num_segments() != 1:
        raise ValueError(f"the sorter reads one segment; the recording has "
                         f"{rec.get_num_segments()}")
    fs = rec.sampling_frequency
    noise = sc.get_noise_levels(rec, return_in_uV=True,
                                random_slices_kwargs={"seed": params.seed})
    peaks = detect.detect_group_peaks(rec, detection, n_jobs=n_jobs)
    x, samples = snippets.extract(rec, peaks["sample_index"], params.ms_before, params.ms_after,
                                  params.align_ms, noise, progress=progress)
    order = np.argsort(samples, kind="stable")
    x, samples = x[order], samples[order]
    at_peak = x[:, :, snippets.window_samples(fs, params.ms_before, params.ms_after)[0]] * noise
    amplitudes = at_peak[np.arange(len(x)), np.abs(at_peak).argmax(1)] if len(x) else at_peak[:, 0]
    W, unwhiten = snippets.noise_whitener(rec, x.shape[2], noise, seed=params.seed)
    x = np.einsum("st,imt->ims", W, x)
    duration_s = rec.get_total_duration()
    if samples.size < MIN_LEARN_SPIKES:
        log.warning("group with %d spikes (fewer than %d): no model is learned; the spikes form "
                    "one multi-unit", samples.size, MIN_LEARN_SPIKES)
        result = _one_unit(x, samples, fs, duration_s, params)
    else:
        result = sort_group(x, samples, fs, duration_s, params, progress=progress)
    log.info("%d spikes, %d units (%d multi-unit)", samples.size, result.multi_unit.size,
             int(result.multi_unit.sum()))
    return GroupResult(samples=samples, amplitudes_uv=amplitudes, sorting=result,
                       unwhiten=unwhiten,
                       noise_levels_uv=np.asarray(noise), channel_ids=rec.channel_ids,
                       fs_hz=fs)


def _one_unit(x, samples, fs_hz, duration_s, params: SortParams) -> GroupSorting:
    """All of a tiny group's spikes as one multi-unit (none when there are no spikes)."""
    n, M, T = x.shape
    epoch, E = epochs_of(samples, fs_hz, duration_s, params.epoch_s)
    U = int(n > 0)
    presence = np.zeros((U, E), np.int64)
    if U:
        np.add.at(presence[0], epoch, 1)
    template = x.mean(0)[None, None].repeat(E, axis=1) if U else np.zeros((0, E, M, T))
    return GroupSorting(
        labels=np.zeros(n, np.int64), probability=np.ones((n, U), np.float32),
        multi_unit=np.ones(U, bool), presence=presence, templates=template.astype(np.float32),
        dictionary=np.zeros((T, 0), np.float32), features=np.zeros((0, 0), np.float32),
        feature_labels=np.zeros(0, np.int64), trace=np.zeros(0), n_atoms=np.zeros(0, np.int64))
