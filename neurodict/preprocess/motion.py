"""Motion correction of the spike band per electrode group (MODELS.md §1b, "Motion").

``spikeband.motion`` chooses, for every group: ``none``; ``rigid`` (spikeinterface's
``correct_motion`` preset ``nonrigid_fast_and_accurate`` with ``rigid=True``: one displacement
per time bin); ``nonrigid`` (the same preset as it is: decentralized registration of the peaks'
grid-convolution depths, a displacement per time and depth bin; numpy, where DREDge's
presets need torch); or ``auto``: a ``nonrigid`` estimate where the group's contacts span at
least ``motion_min_span_um`` along the probe (``none`` elsewhere), corrected only where the
estimated drift (:func:`drift_um`) reaches ``motion_min_drift_pitch`` vertical contact
pitches (:func:`pitch_um`). The registration aligns the pattern of peak depths with itself
over time, which needs that pattern to be wider than the drift and to hold several units:
measured with ``benchmarks/motion.py`` (docs/benchmarks.md, "When motion estimation pays") on
generated drifting recordings. A drift under half a pitch leaves every spike nearest the same
contacts, where the interpolation only blurs waveforms that did not move.

The corrected traces are spikeinterface's interpolation of every channel at its depth minus the
displacement (kriging), channels kept at the probe's ends (``force_extrapolate``), so the
group's channels, their order and ids are unchanged downstream.
"""

from __future__ import annotations

import gc
import importlib
import logging
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from neurodict.common.jobs import job_kwargs

log = logging.getLogger(__name__)

PRESET = "nonrigid_fast_and_accurate"  # decentralized registration (numpy; DREDge needs torch)
CHOICES = ("none", "rigid", "nonrigid", "auto")
#: What correct_motion imports as it runs, imported before it: their objects are most of what a
#: garbage collection inside it would otherwise walk (:func:`collections_of_new_objects`)
MOTION_MODULES = (
    "spikeinterface.sortingcomponents.motion",
    "spikeinterface.sortingcomponents.peak_detection",
    "spikeinterface.sortingcomponents.peak_localization",
)


@dataclass
class Estimate:
    """One group's motion: the choice, its reason, and (when corrected) the displacement in µm
    (time bins, depth bins) at bin centres `times_s` and `depths_um`."""

    group: str
    kind: str
    reason: str
    span_um: float
    times_s: np.ndarray
    depths_um: np.ndarray
    displacement_um: np.ndarray


def span_um(rec) -> float:
    """The contacts' extent along the probe's depth axis (y), in µm."""
    depth = rec.get_channel_locations()[:, 1]
    return float(depth.max() - depth.min())


def pitch_um(rec) -> float:
    """The contacts' vertical pitch: the median spacing of their distinct depths (y), in µm
    (0 for contacts at one depth)."""
    depths = np.unique(rec.get_channel_locations()[:, 1])
    return float(np.median(np.diff(depths))) if depths.size > 1 else 0.0


def drift_um(displacement_um: np.ndarray) -> float:
    """The drift of an estimate (time bins, depth bins): the largest peak-to-peak displacement
    over time of any depth bin, in µm."""
    return float(np.ptp(displacement_um, axis=0).max())


def decide(choice: str, span: float, min_span_um: float) -> tuple[str, str]:
    """The correction for one group and why: `choice` itself unless ``auto``."""
    if choice != "auto":
        return choice, f"motion: {choice}"
    if span >= min_span_um:
        return "nonrigid", f"auto: span {span:.0f} um >= motion_min_span_um {min_span_um:g}"
    return "none", f"auto: span {span:.0f} um < motion_min_span_um {min_span_um:g}"


def drifts(drift: float, pitch: float, min_drift_pitch: float) -> tuple[bool, str]:
    """Auto's rule once a group is estimated: whether its estimated `drift` (µm,
    :func:`drift_um`) reaches `min_drift_pitch` vertical contact pitches (`pitch`, µm), and
    why."""
    corrected = drift >= min_drift_pitch * pitch
    return corrected, (
        f"estimated drift {drift:.1f} um {'>=' if corrected else '<'} "
        f"motion_min_drift_pitch {min_drift_pitch:g} x pitch {pitch:g} um"
    )


def any_estimated(rec, params: dict) -> bool:
    """Whether ``params["motion"]`` has any group of `rec` estimated (whether or not it is
    then corrected)."""
    return any(
        decide(params["motion"], span_um(part), params["motion_min_span_um"])[0] != "none"
        for _, part in _groups(rec)
    )


def correct_groups(rec, params: dict, n_jobs: int):
    """`rec` with every group corrected as decided (the same channels, ids, order and
    properties; `rec` itself where no group is), and every group's :class:`Estimate`."""
    import spikeinterface as si

    pairs = [correct(part, g, params, n_jobs) for g, part in _groups(rec)]
    estimates = [e for _, e in pairs]
    if all(e.kind == "none" for e in estimates):
        return rec, estimates
    out = si.aggregate_channels([r for r, _ in pairs])
    for key in rec.get_property_keys():  # aggregation renumbers "group"
        out.set_property(key, rec.get_property(key))
    return out, estimates


def _groups(rec):
    """(group, its channels' recording) in the order of the channels (selected, not split:
    spikeinterface's split_by marks its parts, and a recording aggregated from one part cannot
    be split again)."""
    groups = rec.get_property("group")
    return [
        (str(g), rec.select_channels(rec.channel_ids[groups == g])) for g in dict.fromkeys(groups)
    ]


def correct(rec, group: str, params: dict, n_jobs: int):
    """The group's recording `rec` corrected as ``params["motion"]`` decides, and its
    :class:`Estimate` (the recording itself where nothing is corrected; with ``auto``, the
    estimate of a group that does not drift is kept, of kind ``none``)."""
    span = span_um(rec)
    kind, reason = decide(params["motion"], span, params["motion_min_span_um"])
    empty = np.zeros(0)
    if kind == "none":
        return rec, Estimate(group, kind, reason, span, empty, empty, np.zeros((0, 0)))
    from spikeinterface.preprocessing import correct_motion

    log.info("group %s: motion estimate %s (%s)", group, kind, reason)
    for module in MOTION_MODULES:  # before the collections are confined to new objects
        importlib.import_module(module)
    with collections_of_new_objects():
        corrected, motion = correct_motion(
            rec,
            preset=PRESET,
            estimate_motion_kwargs={"rigid": kind == "rigid"},
            output_motion=True,
            interpolate_motion_kwargs={"border_mode": "force_extrapolate"},
            **job_kwargs(rec, n_jobs),
        )
    displacement = np.asarray(motion.displacement[0], float)
    if params["motion"] == "auto":
        moved, why = drifts(drift_um(displacement), pitch_um(rec), params["motion_min_drift_pitch"])
        reason += f"; {why}"
        if not moved:
            kind, corrected = "none", rec
    log.info("group %s: motion %s (%s)", group, kind, reason)
    return corrected, Estimate(
        group,
        kind,
        reason,
        span,
        np.asarray(motion.temporal_bins_s[0], float),
        np.asarray(motion.spatial_bins_um, float),
        displacement,
    )


@contextmanager
def collections_of_new_objects():
    """Garbage collections inside see only the objects made inside: those made before are
    frozen (:func:`gc.freeze`) until it ends. The registration's robust least squares runs a
    full collection after each of its solves (20 per depth window, against scipy's lsmr
    holding memory), and each walks every object of the process: on 50 s of a 384-channel
    shank 360 collections took 49 of the estimate's 82 s; the whole estimate took 79 s in a
    sorter's process, 34 s with the objects made before it (:data:`MOTION_MODULES` imported)
    frozen."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def save(path, estimates: list[Estimate]) -> None:
    """Every group's estimate in one npz: ``groups``, ``kind``, ``reason``, ``span_um`` and per
    group ``<group>/times_s``, ``<group>/depths_um``, ``<group>/displacement_um``."""
    arrays = {
        "groups": np.array([e.group for e in estimates]),
        "kind": np.array([e.kind for e in estimates]),
        "reason": np.array([e.reason for e in estimates]),
        "span_um": np.array([e.span_um for e in estimates]),
    }
    for e in estimates:
        arrays |= {
            f"{e.group}/times_s": e.times_s,
            f"{e.group}/depths_um": e.depths_um,
            f"{e.group}/displacement_um": e.displacement_um,
        }
    np.savez(path, **arrays)
