"""neurodict's sorter inside spikeinterface: ``run_sorter("neurodict", recording, folder=...)``.

spikeinterface keeps its sorters in a hard-coded registry; importing :mod:`neurodict` adds this
class to it (``sorterlist.sorter_dict`` and ``sorter_full_list``) so that ``run_sorter`` and
``installed_sorters`` find it. Channels are sorted per value of the channel property ``group``
(all channels as one group where it is missing). With ``apply_preprocessing`` each group's spike
band is :func:`neurodict.preprocess.filters.spike_band`'s, as the workflow's preprocess step
writes it, from the ``spikeband`` parameters of the configuration (channels whose property
``bad`` is true are left out), with its saturation and large artefacts zeroed
(:mod:`neurodict.preprocess.artefacts`) where ``mask_artefacts`` is set. A recording of several
segments is filtered within each, sorted on its segments end to end (the workflow's timeline,
:mod:`neurodict.common.timeline`) and returned per segment; a spike whose snippet would reach
across a pause is a spike of neither segment, as in the workflow. Each spike's posterior
probability of its unit, and of every unit of its group, is written beside the sorting
(``sorter_output/spikes.npz``, as the workflow writes it: :mod:`neurodict.sort.step`).
Before anything runs, the parameters are checked against the configuration schema and the
recording (as the sorter reads it back, channels marked ``bad`` left out) for NaN and infinite
samples: an error names each parameter or channel.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
from spikeinterface.core import load, split_sorting
from spikeinterface.sorters import BaseSorter, sorterlist

from neurodict.common import timeline
from neurodict.common.errors import InputError
from neurodict.common.jobs import job_kwargs
from neurodict.config import (
    ConfigError,
    schema_problems,
    section_defaults,
    section_descriptions,
    section_problems,
)
from neurodict.ingest.readers import non_finite_phrase, non_finite_starts
from neurodict.preprocess import artefacts, filters, motion
from neurodict.sort.params import SortParams

log = logging.getLogger(__name__)
# The wrapper's own parameters, checked with the same messages as the configuration's.
_WRAPPER_SCHEMA = {
    "type": "object",
    "properties": {
        "apply_preprocessing": {"type": "boolean"},
        "n_jobs": {"type": "integer", "minimum": 1},
    },
}
# Every default and description comes from the configuration schema, as in the workflow.
_SORT_DEFAULTS = section_defaults("sorting")
_DETECTION_DEFAULTS = section_defaults("detection")
_BAND = {
    k: section_defaults("spikeband")[k]
    for k in (
        "freq_min_hz",
        "freq_max_hz",
        "filter_order",
        "common_median_reference",
        "whiten",
        "motion",
        "motion_min_span_um",
        "motion_min_drift_pitch",
        "mask_artefacts",
        "saturation_full_scale",
        "artefact_threshold_sigma",
        "artefact_channel_fraction",
        "artefact_end_sigma",
    )
}


class NeurodictSorter(BaseSorter):
    """Joint beta–Bernoulli dictionary features and dynamic-HDP clusters (MODELS.md §1)."""

    sorter_name = "neurodict"
    requires_locations = True  # neighbourhoods and motion are placed by the contacts
    gpu_capability = "not-supported"
    requires_binary_data = False
    compatible_with_parallel = {"loky": True, "multiprocessing": True, "threading": False}
    handle_multi_segment = True  # filtered within each segment, sorted on them end to end
    sorter_description = (
        "Bayesian sorter: beta–Bernoulli dictionary features learned jointly "
        "with a dynamic HDP mixture with a refractory constraint, per "
        "electrode group (Chen, Carlson & Carin 2011)."
    )
    installation_mesg = "pip install neurodict"
    _default_params = (
        {"apply_preprocessing": True, "n_jobs": 1} | _BAND | _DETECTION_DEFAULTS | _SORT_DEFAULTS
    )
    _params_description = (
        {
            "apply_preprocessing": "make the spike band first as the workflow's preprocess "
            "step does (band-pass, common median reference and whitening as those "
            "parameters say, artefacts zeroed as mask_artefacts says) and correct motion "
            "as 'motion' says, each written once to the output folder (false: it is a "
            "spike band already)",
            "n_jobs": "worker processes for detection (never all cores by default)",
        }
        | {k: section_descriptions("spikeband")[k] for k in _BAND}
        | section_descriptions("detection")
        | section_descriptions("sorting")
    )

    @classmethod
    def is_installed(cls) -> bool:
        return True

    @classmethod
    def get_sorter_version(cls) -> str:
        from neurodict._version import __version__

        return __version__

    @classmethod
    def _check_params(cls, recording, output_folder, params):
        """The parameters as the workflow's configuration schema takes them (a ConfigError
        that lists every problem, each named by its key), then the recording's samples."""
        where = "run_sorter('neurodict') parameters"
        problems = [
            p
            for section, keys in (
                ("spikeband", _BAND),
                ("detection", _DETECTION_DEFAULTS),
                ("sorting", _SORT_DEFAULTS),
            )
            for p in section_problems({k: params[k] for k in keys}, section, where)
        ]
        own = {k: params[k] for k in _WRAPPER_SCHEMA["properties"]}
        problems += schema_problems(own, _WRAPPER_SCHEMA, where)
        if problems:
            raise ConfigError(problems)
        _refuse_non_finite(cls.load_recording_from_folder(Path(output_folder)))
        return params

    @classmethod
    def _setup_recording(cls, recording, sorter_output_folder, params, verbose):
        pass  # the recording is read back from the folder spikeinterface wrote

    @classmethod
    def _run_from_folder(cls, sorter_output_folder, params, verbose):
        from neurodict.sort.combine import combine_groups
        from neurodict.sort.run import sort_recording_group
        from neurodict.sort.step import write_spikes

        rec = cls.load_recording_from_folder(sorter_output_folder.parent, with_warnings=False)
        if not rec.has_scaleable_traces():  # e.g. raw int16 without a gain: counts as microvolts
            log.warning(
                "the recording has no gain to microvolts; its values are taken as "
                "microvolts (thresholds are in noise SDs, so detection is unaffected)"
            )
            rec = rec.astype("float32")
            rec.set_channel_gains(1.0)
            rec.set_channel_offsets(0.0)
        for key, missing in (("group", 0), ("bad", False)):  # one good group by default
            if key not in rec.get_property_keys():
                rec.set_property(key, np.full(rec.get_num_channels(), missing))
        recorded = rec  # its segments, to cut the timeline's sorting back into
        starts = timeline.segment_starts(rec)
        raw = timeline.concatenate(filters.good_channels(rec))
        if params["apply_preprocessing"]:
            rec = filters.spike_band(rec, params)
        rec = timeline.concatenate(rec)
        groups = rec.get_property("group")
        regions = (
            rec.get_property("region")
            if "region" in rec.get_property_keys()
            else np.full(rec.get_num_channels(), "")
        )
        sort_params = SortParams.from_config({k: params[k] for k in _SORT_DEFAULTS})
        detection = {k: params[k] for k in _DETECTION_DEFAULTS}
        parts = {}
        for i, g in enumerate(dict.fromkeys(groups)):
            sub = rec.select_channels(rec.channel_ids[groups == g])
            if params["apply_preprocessing"]:  # filtered and corrected once, not at every read
                band = sorter_output_folder / f"spikeband-{i}"
                sub = sub.save(folder=band, **job_kwargs(sub, params["n_jobs"]))
                if params["mask_artefacts"]:
                    periods = artefacts.find_artefacts(
                        raw.select_channels(sub.channel_ids), sub, params
                    )
                    artefacts.zero_in_place(sub, periods)
                    log.info("group %s: %d artefact stretch(es) zeroed", g, periods.size)
                sub, estimate = motion.correct(sub, str(g), params, params["n_jobs"])
                if estimate.kind != "none":
                    sub = sub.save(
                        folder=sorter_output_folder / f"motion-corrected-{i}",
                        **job_kwargs(sub, params["n_jobs"]),
                    )
                    shutil.rmtree(band)  # the corrected copy reads nothing of it
            parts[str(g)] = sort_recording_group(
                sub, detection, sort_params, params["n_jobs"], verbose, starts=starts
            )
        region = dict(zip(map(str, rec.channel_ids), map(str, regions), strict=True))
        sorting, _, units = combine_groups(parts, region, rec.sampling_frequency)
        write_spikes(sorter_output_folder / "spikes.npz", sorting, parts, units, starts)
        split_sorting(sorting, [recorded]).save(folder=sorter_output_folder / "sorting")

    @classmethod
    def _get_result_from_folder(cls, sorter_output_folder):
        return load(sorter_output_folder / "sorting")


def _refuse_non_finite(recording) -> None:
    """An InputError naming the channels (those not marked ``bad``) with a NaN or infinite
    sample, and where each has its first (within its segment, when there are several): the
    recording as the sorter reads it back."""
    if "bad" in recording.get_property_keys():
        recording = filters.good_channels(recording)
    first = non_finite_starts(timeline.concatenate(recording))
    hit = first >= 0
    if hit.any():
        names = [str(c) for c in recording.channel_ids[hit]]
        starts = timeline.segment_starts(recording)
        phrase = non_finite_phrase(names, first[hit], recording.sampling_frequency, starts)
        raise InputError(
            "run_sorter('neurodict') recording: "
            f"{phrase}; expected "
            "finite samples (mend them, or set those channels' 'bad' property to true to leave "
            "them out)."
        )


def register() -> None:
    """Add :class:`NeurodictSorter` to spikeinterface's sorter registry (idempotent)."""
    if "neurodict" not in sorterlist.sorter_dict:
        sorterlist.sorter_dict["neurodict"] = NeurodictSorter
        sorterlist.sorter_full_list.append(NeurodictSorter)
