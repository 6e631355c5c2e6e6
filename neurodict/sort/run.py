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
from spikeinterface.sortingcomponents.matching import find_spikes_from_templates

from neurodict.common.errors import InputError
from neurodict.common.files import atomic_path
from neurodict.common.units import ms_to_samples
from neurodict.detect import peaks as detect
from neurodict.sort import kernels, snippets
from neurodict.sort.assign import GroupSorting, assign, relabel
from neurodict.sort.learn import epochs_of, learn
from neurodict.sort.neighbourhoods import neighbourhoods, peak_channels
from neurodict.sort.params import SortParams

log = logging.getLogger(__name__)
MIN_LEARN_SPIKES = 20


@dataclass
class GroupResult:
    """One group's sorted spikes in recording samples, with everything the report plots."""

    samples: np.ndarray  # (n,) aligned peak samples, sorted
    amplitudes_uv: np.ndarray  # (n,) signed value at the peak on the largest channel
    sorting: GroupSorting
    unwhiten: np.ndarray  # (T, T') whitened coordinates -> waveform samples
    noise_levels_uv: np.ndarray  # (M,)
    channel_ids: np.ndarray  # (M,)
    fs_hz: float

    def templates_uv(self) -> np.ndarray:
        """Mean waveform per unit and epoch in microvolts: (U, E, M, T)."""
        t = np.einsum("st,uemt->uems", self.unwhiten, self.sorting.templates)
        return t * self.noise_levels_uv[None, None, :, None]

    def save(self, path: str | Path) -> None:
        """Write as one ``.npz``, atomically."""
        arrays = {f"sorting_{f.name}": getattr(self.sorting, f.name) for f in fields(GroupSorting)}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                samples=self.samples,
                amplitudes_uv=self.amplitudes_uv,
                unwhiten=self.unwhiten,
                noise_levels_uv=self.noise_levels_uv,
                channel_ids=self.channel_ids,
                fs_hz=self.fs_hz,
                **arrays,
            )

    @classmethod
    def load(cls, path: str | Path) -> GroupResult:
        d = np.load(path, allow_pickle=False)
        sorting = GroupSorting(**{f.name: d[f"sorting_{f.name}"] for f in fields(GroupSorting)})
        return cls(
            samples=d["samples"],
            amplitudes_uv=d["amplitudes_uv"],
            sorting=sorting,
            unwhiten=d["unwhiten"],
            noise_levels_uv=d["noise_levels_uv"],
            channel_ids=d["channel_ids"],
            fs_hz=float(d["fs_hz"]),
        )


def sort_recording_group(
    rec: sc.BaseRecording,
    detection: dict,
    params: SortParams,
    n_jobs: int = 1,
    progress: bool = False,
    peak_samples: np.ndarray | None = None,
) -> GroupResult:
    """Sort the spikes of one electrode group's spike band.

    Parameters
    ----------
    rec : BaseRecording
        The group's channels, spike band in microvolts, one segment.
    detection : dict
        The ``detection`` section (threshold_sigma, peak_sign, dead_time_ms, radius_um).
    params : SortParams
    n_jobs : int
        Worker processes for detection and noise estimation (the rule's threads).
    progress : bool
        Show progress bars.
    peak_samples : ndarray of shape (n_peaks,), optional
        The group's detected peaks (the detect stage's ``peaks.npy``); detected here when absent.
    """
    if rec.get_num_segments() != 1:
        raise InputError(
            f"the sorter reads one segment; the recording has {rec.get_num_segments()}"
        )
    fs = rec.sampling_frequency
    noise = sc.get_noise_levels(rec, return_in_uV=True, random_slices_kwargs={"seed": params.seed})
    if peak_samples is None:
        peak_samples = detect.detect_group_peaks(rec, detection, n_jobs=n_jobs)["sample_index"]
    T = sum(snippets.window_samples(fs, params.ms_before, params.ms_after))
    W, unwhiten = snippets.noise_whitener(rec, T, noise, seed=params.seed)
    x, samples, amplitudes = _whitened_snippets(
        rec, peak_samples, params.align_ms, noise, W, params, progress
    )
    duration_s = rec.get_total_duration()
    if samples.size < MIN_LEARN_SPIKES:
        log.warning(
            "group with %d spikes (fewer than %d): no model is learned; the spikes form "
            "one multi-unit",
            samples.size,
            MIN_LEARN_SPIKES,
        )
        result = one_unit(x, samples, fs, duration_s, params)
    else:
        nb = neighbourhoods(
            rec.get_channel_locations(),
            peak_channels(x),
            params.neighbourhood_um,
            max(MIN_LEARN_SPIKES, params.min_unit_spikes),
        )
        log.info(
            "%d spikes in %d neighbourhood(s) of %s channels",
            samples.size,
            nb.n_centres,
            "/".join(str(c.size) for c in nb.channels),
        )
        model = learn(x, samples, fs, duration_s, params, nb, n_jobs=n_jobs, progress=progress)
        result = assign(model, x, samples, fs, duration_s, params)
        if params.template_matching:
            templates = np.einsum("st,uemt->uems", unwhiten, result.templates).mean(axis=1)
            found, units = _matched_or_detected(
                rec,
                templates * noise[None, :, None],
                noise,
                samples,
                result.labels,
                detection,
                params,
                n_jobs,
            )
            x, samples, amplitudes = _whitened_snippets(rec, found, 0.0, noise, W, params, progress)
            result = relabel(model, result, x, samples, units, fs, duration_s, params)
    log.info(
        "%d spikes, %d units (%d multi-unit)",
        samples.size,
        result.multi_unit.size,
        int(result.multi_unit.sum()),
    )
    return GroupResult(
        samples=samples,
        amplitudes_uv=amplitudes,
        sorting=result,
        unwhiten=unwhiten,
        noise_levels_uv=np.asarray(noise),
        channel_ids=rec.channel_ids,
        fs_hz=fs,
    )


def _whitened_snippets(rec, samples, align_ms, noise, W, params: SortParams, progress: bool):
    """Aligned, whitened snippets in time order, their samples and peak amplitudes (uV)."""
    x, aligned = snippets.extract(
        rec, samples, params.ms_before, params.ms_after, align_ms, noise, progress=progress
    )
    order = np.argsort(aligned, kind="stable")
    x, aligned = x[order], aligned[order]
    before = snippets.window_samples(rec.sampling_frequency, params.ms_before, params.ms_after)[0]
    at_peak = x[:, :, before] * noise
    amplitudes = at_peak[np.arange(len(x)), np.abs(at_peak).argmax(1)] if len(x) else np.zeros(0)
    return np.einsum("st,imt->ims", W, x), aligned, amplitudes


def _matched_or_detected(
    rec,
    templates_uv: np.ndarray,
    noise_uv: np.ndarray,
    samples: np.ndarray,
    labels: np.ndarray,
    detection: dict,
    params: SortParams,
    n_jobs: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The spikes of units whose template peaks above the detection threshold, found again by
    template matching; the detected spikes of the others (a template at the noise level would
    match noise). Detected spikes within ``dead_time_ms`` of a matched one are left out.
    Returns time-sorted samples and units."""
    strong = np.flatnonzero(
        (np.abs(templates_uv).max(axis=2) / noise_uv).max(axis=1) >= detection["threshold_sigma"]
    )
    found, units = (
        _matched_spikes(rec, templates_uv[strong], params, n_jobs)
        if strong.size
        else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    )
    units = strong[units]
    weak = np.flatnonzero((labels >= 0) & ~np.isin(labels, strong))
    dead = ms_to_samples(detection["dead_time_ms"], rec.sampling_frequency)
    near = np.searchsorted(found, samples[weak])
    gap = (
        np.minimum(
            np.abs(samples[weak] - found[np.maximum(near - 1, 0)]),
            np.abs(samples[weak] - found[np.minimum(near, found.size - 1)]),
        )
        if found.size
        else np.full(weak.size, np.inf)
    )
    weak = weak[gap > dead]
    log.info(
        "template matching with %d of %d templates: %d spikes, and %d detected spikes of "
        "the units under the threshold (detection found %d)",
        strong.size,
        templates_uv.shape[0],
        found.size,
        weak.size,
        samples.size,
    )
    t, u = np.r_[found, samples[weak]], np.r_[units, labels[weak]]
    order = np.argsort(t, kind="stable")
    return t[order], u[order]


def _matched_spikes(rec, templates_uv: np.ndarray, params: SortParams, n_jobs: int):
    """Spikes found by spikeinterface's circus-omp matching with the units' templates.

    Matching subtracts each found spike's template before looking again, so it finds the
    overlapping spikes that a threshold detector merges or misses. Returns time-sorted samples
    and units, after removing, within each unit, any spike closer than ``refractory_ms`` to the
    one before it (the refractory guarantee holds after matching too).
    """
    fs = rec.sampling_frequency
    before = snippets.window_samples(fs, params.ms_before, params.ms_after)[0]
    templates = sc.Templates(
        templates_array=templates_uv.transpose(0, 2, 1).astype(np.float32),
        sampling_frequency=fs,
        nbefore=before,
        channel_ids=rec.channel_ids,
        unit_ids=np.arange(templates_uv.shape[0]),
        probe=rec.get_probe(),
    )
    spikes = find_spikes_from_templates(
        rec,
        templates,
        method="circus-omp",
        job_kwargs={"n_jobs": n_jobs, "chunk_duration": "1s", "progress_bar": False},
    )
    order = np.lexsort((spikes["cluster_index"], spikes["sample_index"]))
    t, u = spikes["sample_index"][order].astype(np.int64), spikes["cluster_index"][order]
    keep = kernels.refractory_free_units(t, u, np.unique(u), params.refractory_samples(fs))
    return t[keep], u[keep].astype(np.int64)


def one_unit(x, samples, fs_hz, duration_s, params: SortParams) -> GroupSorting:
    """All of a tiny group's spikes as one multi-unit (none when there are no spikes)."""
    n, M, T = x.shape
    epoch, E = epochs_of(samples, fs_hz, duration_s, params.epoch_s)
    U = int(n > 0)
    presence = np.zeros((U, E), np.int64)
    if U:
        np.add.at(presence[0], epoch, 1)
    template = x.mean(0)[None, None].repeat(E, axis=1) if U else np.zeros((0, E, M, T))
    return GroupSorting(
        labels=np.zeros(n, np.int64),
        probability=np.ones((n, U), np.float32),
        multi_unit=np.ones(U, bool),
        presence=presence,
        templates=template.astype(np.float32),
        dictionary=np.zeros((T, 0), np.float32),
        features=np.zeros((0, 0), np.float32),
        feature_labels=np.zeros(0, np.int64),
        feature_centres=np.zeros(0, np.int64),
        centres=np.zeros(0, np.int64),
        cluster_units=np.zeros((0, 0), np.int64),
        trace=np.zeros(0),
        n_atoms=np.zeros(0, np.int64),
    )
