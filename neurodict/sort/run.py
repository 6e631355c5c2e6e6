"""Sorting a recording group by group: detection, snippets, whitening, the sampler, the result.

:func:`sort_recording_group` is what the ``sort`` rule, ``neurodict sort`` and the spikeinterface
sorter wrapper call for one electrode group. Degenerate groups (no spikes, or too few to learn
from) give an empty or single-unit result with a log line, never an exception.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import spikeinterface.core as sc
from scipy import sparse
from spikeinterface.core.time_series_tools import get_random_sample_slices
from spikeinterface.preprocessing.whiten import compute_whitening_from_covariance
from tqdm.auto import tqdm

from neurodict.common import memory, timeline
from neurodict.common.errors import InputError
from neurodict.common.files import atomic_path
from neurodict.common.jobs import thread_map
from neurodict.common.units import ms_to_samples
from neurodict.detect import peaks as detect
from neurodict.detect.step import snippet_reach
from neurodict.sort import crossings, kernels, snippets, wobble
from neurodict.sort.after_potentials import after_potentials
from neurodict.sort.assign import GroupSorting, assign, on_every_channel, reasons
from neurodict.sort.disk import DiskArray
from neurodict.sort.epoch_sums import EpochSums
from neurodict.sort.join import delay_grid
from neurodict.sort.learn import epochs_of, learn
from neurodict.sort.local import LocalSnippets, held_channels, padded
from neurodict.sort.neighbourhoods import neighbourhoods
from neurodict.sort.params import SortParams
from neurodict.sort.superposition import superposed

log = logging.getLogger(__name__)
#: Values of the snippets cut, peeled or whitened at once (over all threads): memory, not
#: results (a batch reads its own stretch of the spike band, whose filter's edge moves the
#: snippets by about 1e-5 of their scale, and the template tails' sums change by rounding).
SNIPPET_VALUES = 2**21


def sparse_field(f) -> bool:
    """Whether the :class:`GroupSorting` field `f` holds a sparse array (written by
    :func:`csr_arrays`)."""
    return f.type.startswith("sparse.")


def csr_arrays(name: str, matrix: sparse.csr_array) -> dict[str, np.ndarray]:
    """`matrix` as the arrays of an ``.npz``: ``<name>_data``, ``_indices``, ``_indptr`` and
    ``_shape`` (:func:`read_csr` reads them back)."""
    parts = ("data", "indices", "indptr", "shape")
    return {f"{name}_{p}": np.asarray(getattr(matrix, p)) for p in parts}


def read_csr(arrays, name: str) -> sparse.csr_array:
    """The matrix :func:`csr_arrays` wrote as `name` in `arrays` (a loaded ``.npz``)."""
    return sparse.csr_array(
        tuple(arrays[f"{name}_{p}"] for p in ("data", "indices", "indptr")),
        shape=tuple(arrays[f"{name}_shape"]),
    )


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
    below_threshold: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # (k,) samples of detections that did not cross the detection threshold once their
    # neighbouring spikes were peeled (the overlap pass): not spikes, in no unit

    def templates_uv(self) -> np.ndarray:
        """Mean snippet per unit and epoch in microvolts: (U, E, M, T)."""
        return self._uv(self.sorting.templates)

    def drift_uv(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and SD of each unit's mean waveform per epoch in microvolts (the
        dHDP's random walk; NaN on channels the unit's model did not see): (U, E, M, T) each."""
        channels = self.sorting.drift_channels
        noise = self.noise_levels_uv[np.maximum(channels, 0)][:, None]  # (U, 1, C)
        samples = self._uv(self.sorting.drift, noise)
        M = self.noise_levels_uv.size
        return tuple(on_every_channel(f(samples, axis=0), channels, M) for f in (np.mean, np.std))

    def _uv(self, whitened: np.ndarray, noise_uv: np.ndarray | None = None) -> np.ndarray:
        """`whitened` (..., channels, T') in microvolts; `noise_uv` the noise of each value's
        channel (broadcast against `whitened` without its last axis), the group's by default."""
        t = np.einsum("st,...mt->...ms", self.unwhiten, whitened)
        return t * (self.noise_levels_uv if noise_uv is None else noise_uv)[..., None]

    def save(self, path: str | Path) -> None:
        """Write as one ``.npz``, atomically (a sparse field as :func:`csr_arrays`)."""
        arrays = {}
        for f in fields(GroupSorting):
            value, key = getattr(self.sorting, f.name), f"sorting_{f.name}"
            arrays |= csr_arrays(key, value) if sparse_field(f) else {key: value}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                samples=self.samples,
                amplitudes_uv=self.amplitudes_uv,
                unwhiten=self.unwhiten,
                noise_levels_uv=self.noise_levels_uv,
                channel_ids=self.channel_ids,
                fs_hz=self.fs_hz,
                below_threshold=self.below_threshold,
                **arrays,
            )

    @classmethod
    def load(cls, path: str | Path) -> GroupResult:
        d = np.load(path, allow_pickle=False)
        keys = [f"sorting_{f.name}" + ("_indptr" * sparse_field(f)) for f in fields(GroupSorting)]
        missing = [key for key in keys if key not in d]
        if missing:
            raise InputError(
                f"{path}: no {missing[0]}: a group result written by another version "
                "of neurodict; sort the group again (delete the file)"
            )
        sorting = GroupSorting(
            **{
                f.name: read_csr(d, f"sorting_{f.name}")
                if sparse_field(f)
                else d[f"sorting_{f.name}"]
                for f in fields(GroupSorting)
            }
        )
        return cls(
            samples=d["samples"],
            amplitudes_uv=d["amplitudes_uv"],
            sorting=sorting,
            unwhiten=d["unwhiten"],
            noise_levels_uv=d["noise_levels_uv"],
            channel_ids=d["channel_ids"],
            fs_hz=float(d["fs_hz"]),
            below_threshold=d["below_threshold"],
        )


def of_polarity(x: np.ndarray, peak_sign: str) -> np.ndarray:
    """`x` as excursions of the detection's polarity `peak_sign` (``neg``: ``−x``, ``pos``:
    ``x``, ``both``: ``|x|``): larger is further past the threshold."""
    return {"neg": np.negative, "pos": np.positive, "both": np.abs}[peak_sign](x)


def sort_recording_group(
    rec: sc.BaseRecording,
    detection: dict,
    params: SortParams,
    n_jobs: int = 1,
    progress: bool = False,
    peaks: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    starts: list[int] | None = None,
) -> GroupResult:
    """Sort the spikes of one electrode group's spike band.

    Trims the C library's heaps after each learning (:mod:`neurodict.common.memory`): freed
    arrays go back to the system.

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
    peaks : (ndarray, ndarray, ndarray) of shape (n_peaks,) each, optional
        The group's detected peaks (the detect stage's ``peaks.npy``): their samples, the
        channel (of `rec`) each was found on and its value there in microvolts; detected here
        when absent.
    starts : list of int, optional
        Where each recording segment begins in `rec` (its segments end to end: the session's
        timeline, :mod:`neurodict.common.timeline`; one segment when absent). A peak, detected
        or matched, whose snippet (:func:`neurodict.detect.step.snippet_reach`) would hold
        samples of two segments is a spike of neither and is not sorted.
    """
    if rec.get_num_segments() != 1:
        raise InputError(
            f"the sorter reads one segment; the recording has {rec.get_num_segments()}"
        )
    fs = rec.sampling_frequency
    noise = sc.get_noise_levels(rec, return_in_uV=True, random_slices_kwargs={"seed": params.seed})
    if peaks is None:
        found = detect.detect_group_peaks(rec, detection, n_jobs=n_jobs)
        peaks = found["sample_index"], found["channel_index"], found["amplitude_uv"]
    reach = snippet_reach(asdict(params), fs)
    bounds = starts or [0]
    inside = ~timeline.near_boundary(peaks[0], bounds, *reach)
    order = np.argsort(peaks[0][inside], kind="stable")
    peaks = tuple(np.asarray(p)[inside][order] for p in peaks)
    T = sum(snippets.window_samples(fs, params.ms_before, params.ms_after))
    W, unwhiten = snippets.noise_whitener(
        rec,
        T,
        noise,
        n_chunks=params.whiten_n_chunks,
        chunk_s=params.whiten_chunk_s,
        exclude_sigma=params.whiten_exclude_sigma,
        min_eig=params.whiten_min_eig,
        seed=params.seed,
    )
    delays = snippets.delay_operators(delay_grid(params, fs), W, unwhiten)
    peak_sign = detection["peak_sign"]
    near = snippets.alignment_channels(rec, detection["radius_um"])
    # a spike's detection lies within the dead time of it, or within the alignment's shift
    same_event = max(
        ms_to_samples(detection["dead_time_ms"], fs), ms_to_samples(params.align_ms, fs)
    )
    peak_excess = crossings.excess(
        of_polarity(peaks[2] / np.asarray(noise)[peaks[1]], peak_sign),
        detection["threshold_sigma"],
    )

    def noise_units(result: GroupSorting, samples, channels) -> GroupSorting:
        """`result` (of the spikes at `samples` on `channels`) with the single units whose
        detected peaks noise alone would give made multi-units (:mod:`neurodict.sort.crossings`;
        a spike's peak: the detection's at it, as :func:`_nearby_max` judges one event)."""
        e = _nearby_max(samples, channels, *peaks[:2], peak_excess, same_event, near)
        p = crossings.noise_p_values(
            result.labels, np.where(np.isfinite(e), e, np.nan), len(result.multi_unit)
        )
        return made_multi_units(
            result,
            p >= params.noise_unit_alpha,
            f"whose detected peaks noise crossings would give (p >= {params.noise_unit_alpha:g})",
        )

    locations = rec.get_channel_locations()

    def neighbourhoods_of(channels: np.ndarray):
        """The neighbourhoods centred where the spikes on `channels` were found (so that none
        is empty), the channels each one's spikes are held on and each spike's
        neighbourhood."""
        nb = neighbourhoods(
            locations,
            channels,
            params.neighbourhood_um,
            max(params.min_learn_spikes, params.min_unit_spikes),
            params.neighbourhood_spacing,
        )
        return nb, (held_channels(nb, locations, params.match_radius_um), nb.of_channels(channels))

    def cut(spikes, align_ms, held, **peeling):
        """:func:`_whitened_snippets` of `spikes` (samples, channels) held on `held`."""
        return _whitened_snippets(
            rec,
            *spikes,
            align_ms,
            noise,
            W,
            params,
            peak_sign,
            progress,
            held,
            near,
            n_jobs=n_jobs,
            **peeling,
        )

    nb, held = neighbourhoods_of(peaks[1])
    x, samples, channels, amplitudes, _, _ = cut(peaks[:2], params.align_ms, held)
    duration_s = rec.get_total_duration()
    below = np.zeros(0, np.int64)
    if samples.size < params.min_learn_spikes:
        log.warning(
            "group with %d spikes (fewer than min_learn_spikes, %d): no model is learned; "
            "the spikes form one multi-unit",
            samples.size,
            params.min_learn_spikes,
        )
        result = one_unit(x, samples, fs, duration_s, params)
    else:

        def sort_spikes(x, samples, channels, params, nb, learnable=None):
            """The model learned with `params` on the spikes (those `learnable`, when given)
            in the neighbourhoods `nb`, and every spike labelled."""
            log.info(
                "%d spikes in %d neighbourhood(s) of %s channels",
                samples.size,
                nb.n_centres,
                "/".join(str(c.size) for c in nb.channels),
            )
            model = learn(
                x,
                samples,
                channels,
                fs,
                duration_s,
                params,
                nb,
                n_jobs=n_jobs,
                progress=progress,
                learnable=learnable,
            )
            result = assign(
                model, x, samples, channels, fs, duration_s, params, delays, n_jobs, progress
            )
            del model
            memory.trim()  # the learning's and the join's freed heap
            return result

        if not params.template_matching:
            result = sort_spikes(x, samples, channels, params, nb)
        else:
            templates = params.template_learning()
            result = noise_units(
                sort_spikes(x, samples, channels, templates, nb), samples, channels
            )
            peak = template_peaks(result, unwhiten, noise)
            # a template at the noise level matches noise
            units = np.flatnonzero(~result.multi_unit & (peak >= detection["threshold_sigma"]))
            units = units[~superposed(x, result, units, fs, templates, W, unwhiten)]
            stored = x.stores, x.store  # where the templates' tails are cut
            del x  # cut again below, peeled: not held through the matching
            waves = _templates_to_match(
                rec,
                result,
                units,
                unwhiten,
                noise,
                samples,
                channels,
                stored,
                templates,
                detection["threshold_sigma"],
                n_jobs,
                near,
            )
            del result  # the first pass's output: not held through the matching
            memory.trim()
            found, matched = _overlap_pass(
                rec, waves, noise, samples, channels, detection, templates, n_jobs, near
            )
            # matched across a pause: peels its neighbours, is not a spike itself
            keep = ~timeline.near_boundary(found[0], bounds, *reach)
            found, matched = tuple(f[keep] for f in found), (matched[0][keep], *matched[1:])
            nb, held = neighbourhoods_of(found[1])
            x, samples, channels, amplitudes, below, overlapped = cut(
                found, 0.0, held, peel=matched, min_excursion=detection["threshold_sigma"]
            )
            log.info(
                "%d detections below the detection threshold once their neighbouring spikes "
                "are peeled (left in no unit); %d spikes with a spike-sized neighbour peeled "
                "(labelled, not learned from)",
                below.size,
                int(overlapped.sum()),
            )
            result = sort_spikes(x, samples, channels, params, nb, ~overlapped)
        peak = template_peaks(result, unwhiten, noise)
        result = made_multi_units(
            result,
            peak < detection["threshold_sigma"],
            f"whose template peaks under the detection threshold "
            f"({detection['threshold_sigma']:g} SD)",
        )
        result = noise_units(result, samples, channels)
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
        below_threshold=below,
    )


def _whitened_snippets(
    rec,
    samples,
    channels,
    align_ms,
    noise,
    W,
    params: SortParams,
    peak_sign: str,
    progress: bool,
    held: tuple[np.ndarray, np.ndarray],
    neighbours: np.ndarray | None = None,
    peel=None,
    min_excursion: float | None = None,
    n_jobs: int = 1,
):
    """Aligned, whitened snippets in time order of the spikes at `samples` found on `channels`,
    their samples, channels and amplitudes (uV, at the peak on their channel), and the samples
    of the detections whose excursion is under `min_excursion` (none when it is None), which
    are left out of the others. A detection's excursion is the largest value in noise SDs of
    polarity `peak_sign` within ``align_ms`` of the peak on the channels about its own
    (`neighbours`: within the detection radius, where detection compares peaks with its
    threshold; a spike across the probe at the same moment is another neuron's). `held`: the
    channels of each store (:func:`held_channels`) and each spike's store; the snippets are
    :class:`neurodict.sort.local.LocalSnippets` on them. `neighbours`:
    :func:`neurodict.sort.snippets.alignment_channels`, about each spike's channel.

    `peel`, optional: each spike's index among the matched spikes (n,; -1 for none), their
    samples (k,) sorted, the row of each one's waveform (k,) and the waveforms (rows, M, T_w)
    in microvolts; each snippet has those of the others that reach into its window
    subtracted, so its excursion is that of the residual. A matched spike is kept whatever
    its excursion: the matching found it with its unit's template, under the threshold as
    well as over (a neuron whose spikes' peaks straddle the threshold). Last returned: which
    snippets had a spike-sized part subtracted (its largest absolute value in noise SDs at
    least `min_excursion`, the detection threshold) on a channel of `neighbours` about the
    spike's, whose residual there carries the templates' errors (all false without
    `peel`).

    Snippets are cut, peeled and whitened a batch at a time (:func:`batch_spikes`), `n_jobs`
    batches at once on as many threads, into one float32 array in a file
    (:class:`neurodict.sort.disk.DiskArray`: the process holds a batch at a time, whatever the
    recording's length), each on its store's channels; each is cut and peeled on those and on
    the channels about its own only (:func:`_about`), never on the whole probe.
    """
    fs = rec.sampling_frequency
    before, after = snippets.window_samples(fs, params.ms_before, params.ms_after)
    half = ms_to_samples(params.align_ms, fs)
    noise_uv = np.asarray(noise)
    scale = (1.0 / noise_uv).astype(np.float32)[:, None]  # per channel, over samples
    W32 = W.astype(np.float32)
    n = samples.size
    stores, store = held
    whitened = DiskArray((n, stores.shape[1], W.shape[0]))
    aligned, amplitudes, keep = np.empty(n, np.int64), np.empty(n), np.ones(n, bool)
    overlapped = np.zeros(n, bool)
    about = _about(neighbours, rec.get_num_channels())
    C = stores.shape[1]
    batch = batch_spikes(C + about.shape[1], before + after, n_jobs)  # the channels cut

    def cut(i: int) -> None:
        """The batch of snippets from spike i, into its own rows of the outputs: cut on its
        store's channels (columns :C) and on those about its own channel (C: its own)."""
        sl = slice(i, i + batch)
        on = stores[store[sl]]  # (b, C), padded with -1: cut on the spike's own channel, unread
        read = np.concatenate([np.where(on >= 0, on, channels[sl, None]), about[channels[sl]]], 1)
        x, aligned[sl] = snippets.extract(
            rec,
            samples[sl],
            params.ms_before,
            params.ms_after,
            align_ms,
            noise,
            neighbours=neighbours,
            channels=channels[sl],
            read=read,
        )
        if peel is not None:
            own, *matched = peel
            peeled = kernels.neighbour_waves(aligned[sl], own[sl], *matched, x.shape[2], read)
            peeled *= scale[read]
            x -= peeled
            if min_excursion is not None:  # what the channels about the spike's lost
                overlapped[sl] = np.abs(peeled[:, C:]).max(axis=(1, 2)) >= min_excursion
        amplitudes[sl] = x[:, C, before] * noise_uv[channels[sl]]
        if min_excursion is not None:
            near = x[:, C:, max(before - half, 0) : before + half + 1]
            keep[sl] = of_polarity(near, peak_sign).max(axis=(1, 2)) >= min_excursion
            if peel is not None:
                keep[sl] |= own[sl] >= 0  # a matched spike: the matching decided it
        whitened[sl] = x[:, :C] @ W32.T  # by BLAS, not einsum: 6x

    starts = range(0, n, batch)
    done = thread_map(cut, starts, n_jobs)
    for _ in tqdm(done, total=len(starts), desc="snippets", disable=not progress, leave=False):
        pass
    rows = np.flatnonzero(keep)
    for i in range(0, rows.size, batch):  # in place: rows[j] >= j, read before written
        kept = rows[i : i + batch]
        whitened[i : i + kept.size] = whitened[kept]
    whitened.shrink(rows.size)
    order = np.argsort(aligned[rows], kind="stable")
    moved = np.flatnonzero(order != np.arange(order.size))  # alignment reorders few spikes
    whitened[moved] = whitened[order[moved]]
    return (
        LocalSnippets(whitened, stores, store[rows][order], rec.get_num_channels()),
        aligned[rows][order],
        channels[rows][order],
        amplitudes[rows][order],
        np.sort(aligned[~keep]),
        overlapped[rows][order],
    )


def _about(neighbours: np.ndarray | None, n_channels: int) -> np.ndarray:
    """(M, D): each channel, then the others `neighbours` ((M, M) bool; None: every channel)
    puts about it (the detection radius), padded with the channel itself."""
    near = np.ones((n_channels, n_channels), bool) if neighbours is None else neighbours
    near = near & ~np.eye(n_channels, dtype=bool)
    channels = np.arange(n_channels)
    return padded([np.r_[m, np.flatnonzero(near[m])] for m in channels], channels)


def batch_spikes(n_channels: int, n_samples: int, n_jobs: int = 1) -> int:
    """Snippets of `n_channels` x `n_samples` values cut at once by each of `n_jobs` threads:
    :data:`SNIPPET_VALUES` values over all of them (their float64 intermediates bound the
    memory whatever the probe and the threads), at least one."""
    return max(1, SNIPPET_VALUES // (n_jobs * n_channels * n_samples))


def _templates_to_match(
    rec,
    result: GroupSorting,
    units: np.ndarray,
    unwhiten: np.ndarray,
    noise_uv: np.ndarray,
    samples: np.ndarray,
    channels: np.ndarray,
    held: tuple[np.ndarray, np.ndarray],
    params: SortParams,
    threshold_sigma: float,
    n_jobs: int,
    neighbours: np.ndarray | None,
) -> np.ndarray:
    """The templates of the overlap pass (:func:`_overlap_pass`), microvolts, float32 (U', E,
    M, T + T_tail): each epoch's template of each of `units` of the first learning (`result`,
    of the spikes at `samples` on `channels`): its single units whose template peaks at or
    over the detection threshold `threshold_sigma` (a template at the noise level matches
    noise) and that are not two others' spikes at once (:mod:`neurodict.sort.superposition`),
    less those whose template peaks under it net of their spikes' neighbours' templates
    (:mod:`neurodict.sort.after_potentials`: another neuron's after-potential, detected
    again). `held`: the channels of each store and each spike's store (its first-pass
    snippet's, :class:`neurodict.sort.local.LocalSnippets`).

    The first learning gives nothing else that is reported, so it learns on a lighter budget,
    and the tails are cut from as many spikes (`params`: :meth:`SortParams.template_learning`,
    fewer spikes an epoch than the second learning, whose labels are reported). A unit's
    template in an epoch is the posterior mean of its mean waveform there (the dHDP's random
    walk, so matching follows drift), on the channels the model saw, and the mean snippet
    elsewhere, continued up to ``peel_ms_after`` by the unit's mean waveform there
    (:func:`_tails`), so that peeling a spike also removes its after-potential, which would
    otherwise cross the threshold again. Made before the matching, so that `result` (its
    posterior samples, features and probabilities) is not held through it."""
    fs, E, T = rec.sampling_frequency, result.templates.shape[1], unwhiten.shape[0]
    ours = np.flatnonzero(np.isin(result.labels, units))
    unit = np.searchsorted(units, result.labels[ours])
    epoch = epochs_of(samples, fs, rec.get_total_duration(), params.epoch_s)[0][ours]
    picked = _picked(unit, epoch, E, params.max_spikes_per_epoch, params.seed)
    held = held[0], held[1][ours]
    waves = np.empty(
        (units.size, E, rec.get_num_channels(), T + _tail_samples(fs, params)), np.float32
    )
    for i, u in enumerate(units):
        waves[i, ..., :T] = unit_template(result, u, unwhiten, noise_uv)
    waves[..., T:] = _tails(
        rec, samples[ours], channels[ours], held, unit, epoch, picked, units.size, E, noise_uv,
        params, neighbours, n_jobs,
    )  # fmt: skip
    after_potential = after_potentials(
        waves,
        T,
        noise_uv,
        threshold_sigma,
        (samples[ours], channels[ours], unit, epoch),
        picked,
        held,
        batch_spikes(held[0].shape[1], T, n_jobs),
    )
    kept = np.flatnonzero(~after_potential)
    for i, k in enumerate(kept):  # in place (kept[i] >= i): not a second copy of them all
        waves[i] = waves[k]
    log.info(
        "overlap pass with %d of %d units' per-epoch templates", kept.size, result.multi_unit.size
    )
    return waves[: kept.size]


def _overlap_pass(
    rec,
    templates: np.ndarray,
    noise_uv: np.ndarray,
    samples: np.ndarray,
    channels: np.ndarray,
    detection: dict,
    params: SortParams,
    n_jobs: int,
    neighbours: np.ndarray | None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The spikes to label again after resolving overlaps: those spikeinterface's wobble
    matching finds with each epoch's `templates` (U, E, M, T; :func:`_templates_to_match`) in
    the recording whitened across channels (:func:`_matched_spikes`; on the channel where
    their template is largest in noise SDs: :func:`template_channels`), and the detected
    spikes (`samples` on `channels`) no matched spike lies within ``dead_time_ms`` and
    ``radius_um`` of (:func:`_nearby_max`). Time-sorted samples and their channels.

    Matching subtracts each spike it finds before looking again, so it finds spikes that overlap
    in time. It only says where spikes are and what to peel: each spike's snippet is cut again
    with its matched neighbours' templates subtracted (:func:`_neighbours`); a detection whose
    residual no longer reaches the detection threshold is not a spike; the model is learned
    again on the peeled snippets of the spikes that had no spike-sized neighbour peeled (a
    collided spike's residual carries the templates' errors, which the model has no term for,
    and such spikes formed clusters of their own), and it labels them all.
    Returns the samples and channels (two templates matched at one sample are two spikes)
    and, for peeling, each spike's index among the matched spikes (-1 for a kept detection),
    the matched spikes' samples, the row of each one's template and the templates (uV,
    units x epochs rows).
    """
    fs = rec.sampling_frequency
    U, E = templates.shape[:2]
    epoch_samples = params.epoch_s * fs
    bounds = [int(round(e * epoch_samples)) for e in range(E)] + [rec.get_num_samples()]
    found, which = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    if U:
        W_space = _spatial_whitening(rec, params.seed)
        for e in range(E):
            part = rec.frame_slice(bounds[e], bounds[e + 1])
            t, u = _matched_spikes(
                part, W_space, templates[:, e], params, detection["threshold_sigma"], n_jobs
            )
            found.append(bounds[e] + t)
            which.append(u * E + e)  # the template's row in `templates` flattened over epochs
    found, which = np.concatenate(found), np.concatenate(which)
    order = np.argsort(found, kind="stable")
    found, which = found[order], which[order]
    flat = templates.reshape(-1, *templates.shape[2:])
    found_channels = template_channels(flat, noise_uv)[which]
    dead = ms_to_samples(detection["dead_time_ms"], fs)
    kept = (
        _nearby_max(
            samples, channels, found, found_channels, np.zeros(found.size), dead, neighbours
        )
        == -np.inf
    )
    log.info(
        "overlap pass: %d spikes matched, %d detected spikes away from them kept "
        "(detection found %d)",
        found.size,
        int(kept.sum()),
        samples.size,
    )
    spikes = np.r_[found, samples[kept]]
    own = np.r_[np.arange(found.size), np.full(int(kept.sum()), -1)]
    order = np.argsort(spikes, kind="stable")
    on = np.r_[found_channels, channels[kept]]
    return (spikes[order], on[order]), (own[order], found, which, flat)


def _nearby_max(
    samples: np.ndarray,
    channels: np.ndarray,
    at: np.ndarray,
    at_channels: np.ndarray,
    values: np.ndarray,
    dead: int,
    neighbours: np.ndarray | None,
) -> np.ndarray:
    """(n,) the largest of `values` of the events (time-sorted `at` on `at_channels`) within
    `dead` samples of each of `samples` (on `channels`) and within the detection radius of
    its channel (`neighbours`, (M, M) bool, None when every channel is within it of every
    other), -inf where there is none: the same event, as detection's locally exclusive peaks
    judge two peaks. An event across the probe at the same moment is another neuron's."""
    lo = np.searchsorted(at, samples - dead, side="left")
    hi = np.searchsorted(at, samples + dead, side="right")
    out = np.full(samples.size, -np.inf)
    for d in range(int((hi - lo).max(initial=0))):  # as :func:`_neighbours`: d-th of each
        j = lo + d
        ok = j < hi
        j = np.where(ok, j, 0)
        if neighbours is not None:
            ok &= neighbours[channels, at_channels[j]]
        out = np.where(ok, np.maximum(out, values[j]), out)
    return out


def _picked(unit: np.ndarray, epoch: np.ndarray, n_epochs: int, most: int, seed: int):
    """At most `most` spikes of each unit and epoch (`unit`, `epoch` (n,) of each spike)
    drawn at random: their indices, ascending."""
    rng = np.random.default_rng(seed)
    key = unit * n_epochs + epoch  # each unit's spikes of each epoch, in turn
    order = np.argsort(key, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(key[order])) + 1)
    picked = [rng.choice(i, size=min(i.size, most), replace=False) for i in groups if i.size]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def _tail_samples(fs_hz: float, params: SortParams) -> int:
    """A template's samples past the snippet window: up to ``peel_ms_after`` after its peak."""
    after = snippets.window_samples(fs_hz, params.ms_before, params.ms_after)[1]
    return max(snippets.window_samples(fs_hz, params.ms_before, params.peel_ms_after)[1] - after, 0)


def _tails(
    rec,
    samples,
    channels,
    held: tuple[np.ndarray, np.ndarray],
    unit: np.ndarray,
    epoch: np.ndarray,
    picked: np.ndarray,
    n_units: int,
    n_epochs: int,
    noise_uv,
    params: SortParams,
    neighbours,
    n_jobs: int = 1,
):
    """Mean waveform (uV) of each unit per epoch from the end of the snippet window to
    ``peel_ms_after`` after the peak: (n_units, E, M, T_tail). From the spikes `picked` (of
    those at `samples` on `channels`, of `unit` in `epoch`), each cut on the channels of its
    store (`held`: the channels of each store and each spike's store), where its snippet was
    held and the unit's template is its mean snippet: on each channel the mean over the
    spikes that hold it; a unit's mean over all epochs where it has none in an epoch; zero
    where none of them holds it, as its template there. Cut `n_jobs` batches at once on as
    many threads."""
    fs = rec.sampling_frequency
    after = snippets.window_samples(fs, params.ms_before, params.ms_after)[1]
    before, long_after = snippets.window_samples(fs, params.ms_before, params.peel_ms_after)
    T_tail = _tail_samples(fs, params)
    if T_tail == 0:
        return np.zeros((n_units, n_epochs, rec.get_num_channels(), 0))
    stores, store = held
    sums = EpochSums.zeros(
        stores, store[picked], unit[picked], n_units, n_epochs, rec.get_num_channels(), T_tail
    )
    step = batch_spikes(stores.shape[1], before + long_after, n_jobs)

    def cut(batch: np.ndarray) -> np.ndarray:
        """The tails of the spikes `batch` on their stores' channels (padding: their own)."""
        on = stores[store[batch]]
        read = np.where(on >= 0, on, channels[batch, None])
        x, _ = snippets.extract(
            rec,
            samples[batch],
            params.ms_before,
            params.peel_ms_after,
            0.0,
            noise_uv,
            neighbours=neighbours,
            channels=channels[batch],
            read=read,
        )
        return x[:, :, before + after :] * noise_uv[read][:, :, None]

    batches = [picked[i : i + step] for i in range(0, picked.size, step)]  # the threads' memory
    for batch, tail in zip(batches, thread_map(cut, batches, n_jobs), strict=True):  # in order
        kernels.add_epoch_sums(
            sums,
            LocalSnippets(tail, stores, store[batch], rec.get_num_channels()),
            epoch[batch],
            unit[batch],
        )
    return sums.means()


def _spatial_whitening(rec, seed: int) -> np.ndarray:
    """The matrix ``W`` (M, M) float32 that whitens `rec` across channels: a sample's values
    ``x`` (M,) become ``x W``. Templates ``t`` (M, T) match in it as ``W' t`` (``W``
    symmetric). ``W = U (S + ε)^{-1/2} U'`` (ZCA) of ``C = U S U' = Σ x' x / n`` over the
    samples of spikeinterface's random chunks (spikes and all, not centred): spikeinterface's
    ``compute_whitening_matrix(rec, "global", apply_mean=False)``, with its ``ε`` (1e-16, or
    1e-3 of the median squared value where that is under 1: here the median over the chunks
    of each one's), but ``C`` summed a chunk at a time: spikeinterface holds every chunk, a
    copy and their squares at once (1.2 GB on 384 channels)."""
    M = rec.get_num_channels()
    C, n, medians = np.zeros((M, M)), 0, []
    for segment, start, end in get_random_sample_slices(rec, seed=seed):
        x = rec.get_traces(segment_index=segment, start_frame=start, end_frame=end)
        x = x.astype(np.float32, copy=False)
        C += x.T @ x
        n += x.shape[0]
        medians.append(np.median(np.square(x)))
    median = float(np.median(medians))
    eps = max(1e-16, median * 1e-3) if 0 < median < 1 else 1e-16
    return compute_whitening_from_covariance(C / max(n, 1), eps).astype(np.float32)


def _matched_spikes(
    rec,
    W_space: np.ndarray,
    templates_uv: np.ndarray,
    params: SortParams,
    threshold_sigma: float,
    n_jobs: int,
):
    """Samples and template indices of the spikes spikeinterface's wobble matching finds
    with `templates_uv` (U, M, T) in `rec` whitened across channels by `W_space`
    (:func:`_spatial_whitening`; as each chunk is read), where they are ``W' t``. Matched
    in microvolts, the noise that neighbouring channels share (the far fields of the many
    neurons, which dense probes see on channels 20 um apart) made a small unit's spikes fit
    other units' templates or none. Each template is matched on the channels within
    ``match_radius_um`` of its largest one there (spikeinterface's radius sparsity): the
    matching's cost grows with the channels a template holds.

    Wobble (the matching of Kilosort and YASS, with sub-sample shifts and amplitude scaling;
    :mod:`neurodict.sort.wobble`) accepts a spike where subtracting its template lowers the
    residual's energy, in noise variances (the whitened recording's unit), by at least
    ``threshold_sigma²``: as much as one sample at the detection threshold does, which is
    detection's own criterion. Two spikes of one template are at least ``refractory_ms``
    apart, as in the model."""
    fs = rec.sampling_frequency
    before = snippets.window_samples(fs, params.ms_before, params.ms_after)[0]
    dense = sc.Templates(
        templates_array=np.matmul(np.swapaxes(templates_uv, 1, 2).astype(np.float32), W_space),
        sampling_frequency=fs,
        nbefore=before,
        channel_ids=rec.channel_ids,
        unit_ids=np.arange(templates_uv.shape[0]),
        probe=rec.get_probe(),
    )
    near = sc.compute_sparsity(
        dense,
        method="radius",
        radius_um=params.match_radius_um,
        peak_sign="both",
        amplitude_mode="extremum",
    )
    templates = dense.to_sparse(near)
    criteria = {
        "threshold": threshold_sigma**2,
        "refractory_period_frames": params.refractory_samples(fs),
    }
    spikes = wobble.find_spikes(rec, templates, criteria, n_jobs, W_space)
    return spikes["sample_index"].astype(np.int64), spikes["cluster_index"].astype(np.int64)


def template_channels(templates_uv: np.ndarray, noise_uv: np.ndarray) -> np.ndarray:
    """The channel of each template (..., channels, samples) in microvolts where its largest
    excursion is largest in noise SDs (`noise_uv`, per channel), as detection picks the
    channel a spike is found on: (...)."""
    return (np.abs(templates_uv).max(-1) / noise_uv).argmax(-1)


def unit_template(
    result: GroupSorting, u: int, unwhiten: np.ndarray, noise_uv: np.ndarray
) -> np.ndarray:
    """Unit `u`'s template per epoch in microvolts (E, channels, samples; float32, as the
    matching and peeling read it): the posterior mean of its mean waveform (the dHDP's walk)
    on the channels its model saw, its mean snippet elsewhere."""
    row = result.drift_channels[u]
    on = np.flatnonzero(row >= 0)
    whitened = result.templates[u].copy()
    seen = result.drift[:, u][:, :, on].mean(axis=0)  # (E, channels seen, T)
    whitened[:, row[on]] = np.where(np.isnan(seen), whitened[:, row[on]], seen)
    template = whitened @ unwhiten.T.astype(np.float32)
    template *= noise_uv.astype(np.float32)[:, None]
    return template


def template_peaks(result: GroupSorting, unwhiten: np.ndarray, noise_uv: np.ndarray):
    """Each unit's largest excursion over epochs and channels of its template
    (:func:`unit_template`) in noise SDs (U,): made a unit at a time (a 384-channel probe's
    templates over ten epochs are some 250 MB a copy)."""
    peak = np.empty(result.templates.shape[0])
    for u in range(peak.size):
        template = unit_template(result, u, unwhiten, noise_uv)
        largest = np.maximum(template.max(axis=2), -template.min(axis=2))  # (E, channels)
        peak[u] = (largest / noise_uv).max(initial=0.0)
    return peak


def made_multi_units(result: GroupSorting, which: np.ndarray, why: str) -> GroupSorting:
    """`result` with the single units among `which` (U,) made multi-units, logged with `why`.
    Two reasons: a unit whose template peaks under the detection threshold (from
    :func:`template_peaks`: a neuron whose mean waveform does not reach the threshold is not
    what was detected; its detections are the largest spikes of a neuron too small to be
    detected whole), and one whose detected peaks noise alone would give
    (:mod:`neurodict.sort.crossings`)."""
    low = ~result.multi_unit & which
    if not low.any():
        return result
    log.info("%d unit(s) %s: multi-unit", int(low.sum()), why)
    multi_unit = result.multi_unit | low
    return replace(result, multi_unit=multi_unit, reason=reasons(result.labels, multi_unit))


def one_unit(x: LocalSnippets, samples, fs_hz, duration_s, params: SortParams) -> GroupSorting:
    """All of a tiny group's spikes as one multi-unit (none when there are no spikes); its
    template the mean snippet on each channel (of the snippets that hold it) in every epoch."""
    n, M, T = x.shape
    epoch, E = epochs_of(samples, fs_hz, duration_s, params.epoch_s)
    U = int(n > 0)
    sums = EpochSums.zeros(x.stores, x.store, np.zeros(n, np.int64), U, 1, M, T)
    kernels.add_epoch_sums(sums, x, np.zeros(n, np.int64), np.zeros(n, np.int64))
    counts = np.tile(np.bincount(epoch, minlength=E), (U, 1))
    return GroupSorting(
        labels=np.zeros(n, np.int64),
        reason=np.ones(n, np.int8),
        probability=sparse.csr_array(np.ones((n, U), np.float32)),
        multi_unit=np.ones(U, bool),
        counts=counts,
        presence=np.full((U, E), np.nan, np.float32),  # no model learned
        templates=sums.means().repeat(E, axis=1),
        drift=np.zeros((1, U, E, 0, T), np.float32),
        drift_channels=np.zeros((U, 0), np.int64),
        dictionary=np.zeros((T, 0), np.float32),
        features=np.zeros((0, 0), np.float32),
        feature_labels=np.zeros(0, np.int64),
        feature_centres=np.zeros(0, np.int64),
        centres=np.zeros(0, np.int64),
        cluster_units=np.zeros((0, 0), np.int64),
        trace=np.zeros(0),
        n_atoms=np.zeros(0, np.int64),
    )
