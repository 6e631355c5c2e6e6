"""Raw formats to a spikeinterface recording with probe, electrode groups and brain regions.

Every format is read through spikeinterface's extractors (built on neo). The recording returned
by :func:`open_recording` holds only the channels of the session's electrode groups, in group
order, with the channel properties ``group`` (group name), ``region`` and ``bad`` (listed in the
session, or found by :mod:`neurodict.ingest.bad_channels` with ``auto``), and a probe.

:func:`open_recording` also refuses what would fail hours later: settings the recording's rate
or length make impossible (:func:`neurodict.config.rate_problems`,
:func:`neurodict.config.duration_problems`) and samples that cannot be processed, judged on a few
stretches of the recording (:func:`check_samples`): an all-zero recording, and channels that are
all zero, constant, mostly at the rails of their sample type or not finite; and channels with a
NaN or infinite sample anywhere (:func:`refuse_non_finite`: floating-point raw data are read
once, whole).
"""

from __future__ import annotations

import numpy as np
import probeinterface as pi
import spikeinterface.core as sc
import spikeinterface.extractors as se

from neurodict.common import timeline
from neurodict.common.errors import InputError
from neurodict.common.jobs import chunk_samples
from neurodict.config import (
    ConfigError,
    Session,
    duration_problems,
    param_key,
    problem,
    rate_problems,
)
from neurodict.ingest import bad_channels as bad_ch

# check_samples reads this many stretches of this length, spread over the recording ...
CHECK_STRETCHES = 3
CHECK_STRETCH_S = 1.0
# ... and calls a channel saturated when this share of its samples lie at its sample type's
# limits (a short artefact does not; a channel stuck at a rail does).
SATURATED_SHARE = 0.1


class IngestError(InputError):
    """The raw data cannot be read as the session file describes it."""


def _read_binary(s: Session) -> sc.BaseRecording:
    frame = s.num_channels * np.dtype(s.dtype).itemsize
    for path in s.raw_paths or (s.raw_path,):
        size = path.stat().st_size
        if size == 0:
            raise IngestError(
                f"binary file '{path}' is empty; expected samples of "
                f"{s.num_channels} channels x {s.dtype}."
            )
        if size % frame:
            raise IngestError(
                f"binary file '{path}' is truncated or mis-described: {size} bytes is not a "
                f"multiple of num_channels x itemsize = {s.num_channels} x "
                f"{np.dtype(s.dtype).itemsize} = {frame} bytes (check num_channels and dtype in "
                f"{s.file})."
            )
    return se.read_binary(
        list(s.raw_paths or (s.raw_path,)),
        sampling_frequency=s.sampling_frequency_hz,
        dtype=s.dtype,
        num_channels=s.num_channels,
        gain_to_uV=s.gain_to_uv,
        offset_to_uV=s.offset_to_uv,
    )


def _neo_reader(read):
    def reader(s: Session) -> sc.BaseRecording:
        kwargs = {"stream_name": s.stream} if s.stream else {}
        return read(s.raw_path, **kwargs)

    return reader


def _read_nwb(s: Session) -> sc.BaseRecording:
    kwargs = {"electrical_series_path": s.stream} if s.stream else {}
    return se.read_nwb_recording(s.raw_path, **kwargs)


READERS = {
    "binary": _read_binary,
    "openephys": _neo_reader(se.read_openephys),
    "spikeglx": _neo_reader(se.read_spikeglx),
    "intan": _neo_reader(se.read_intan),
    "blackrock": _neo_reader(se.read_blackrock),
    "plexon": _neo_reader(se.read_plexon),
    "plexon2": _neo_reader(se.read_plexon2),
    "neuralynx": _neo_reader(se.read_neuralynx),
    "nwb": _read_nwb,
}


def read_raw(session: Session) -> sc.BaseRecording:
    """Open the raw data of `session` with its format's reader: every segment, or the one
    ``segment_index`` names; several segments are each trimmed to whole LFP samples
    (:func:`whole_lfp_samples`).

    Raises
    ------
    IngestError
        Naming the format and the path when the reader fails, the file is empty or truncated, or
        a segment is empty.
    """
    try:
        rec = READERS[session.format](session)
    except IngestError:
        raise
    except Exception as exc:  # the reader's own error, re-raised with format and path
        raise IngestError(
            f"the {session.format} reader could not open '{session.raw_path}' "
            f"(from {session.file}): {type(exc).__name__}: {exc}"
        ) from exc
    n_seg = rec.get_num_segments()
    if session.segment_index is not None:
        if session.segment_index >= n_seg:
            raise ConfigError(
                [
                    problem(
                        session.file,
                        "segment_index",
                        f"an index below the {n_seg} segments",
                        session.segment_index,
                    )
                ]
            )
        rec = rec.select_segments([session.segment_index])
    for i in range(rec.get_num_segments()):
        if rec.get_num_samples(segment_index=i) == 0:
            which = f" segment {i}" if rec.get_num_segments() > 1 else ""
            raise IngestError(
                f"the {session.format} recording '{session.raw_path}'{which} (from "
                f"{session.file}) is empty (0 samples)."
            )
    return whole_lfp_samples(rec, session.params["lfp"]["fs_lfp_hz"])


def whole_lfp_samples(rec: sc.BaseRecording, fs_lfp_hz: float) -> sc.BaseRecording:
    """A multi-segment `rec` with each segment cut to a whole number of LFP samples (at most
    one LFP sample's worth of wideband samples dropped at each segment's end), so that the
    timeline's LFP bins and wideband samples agree in every segment
    (:mod:`neurodict.common.timeline`). One segment is returned as it is."""
    factor = int(round(rec.sampling_frequency / fs_lfp_hz))
    if rec.get_num_segments() == 1 or factor <= 1:
        return rec
    parts = [
        rec.select_segments([i]).frame_slice(
            0, rec.get_num_samples(segment_index=i) // factor * factor
        )
        for i in range(rec.get_num_segments())
    ]
    return sc.append_recordings(parts)


def _check_against_recording(session: Session, rec: sc.BaseRecording) -> None:
    n, duration_s = rec.get_num_channels(), rec.get_total_duration()
    problems = []  # windows lie on the timeline: segments back to back
    for i, g in enumerate(session.groups):
        for c in g.channels:
            if c >= n:
                problems.append(
                    problem(
                        session.file,
                        f"groups[{i}].channels",
                        f"channel indices below {n} (the recording's channel count)",
                        c,
                    )
                )
    for i, w in enumerate(session.windows):
        if w.end_s > duration_s:
            problems.append(
                problem(
                    session.file,
                    f"windows[{i}].end_s",
                    f"a time within the recording (0 to {duration_s:.3f} s)",
                    w.end_s,
                )
            )
    if session.sampling_frequency_hz is None:  # binary rates were checked with the session
        problems += rate_problems(
            session.file, session.params, rec.sampling_frequency, param_key(session.overrides)
        )
    problems += duration_problems(session, rec.sampling_frequency, rec.get_total_samples())
    if problems:
        raise ConfigError(problems)


def _named(session: Session, channels) -> list[str]:
    """Each of `channels` as "channel (its group)"."""
    owner = {c: g.name for g in session.groups for c in g.channels}
    return [f"{c} ({owner[c]})" for c in channels]


def _listing(session: Session, channels) -> str:
    return ", ".join(_named(session, channels))


def _stretches(rec: sc.BaseRecording) -> tuple[np.ndarray, str]:
    """:data:`CHECK_STRETCHES` stretches of :data:`CHECK_STRETCH_S` (start, middle, end; the
    whole recording when it is shorter) of `rec` as stored, concatenated, and where they lie."""
    rec = timeline.concatenate(rec)
    n, fs = rec.get_num_samples(), rec.sampling_frequency
    size = min(n, max(1, int(CHECK_STRETCH_S * fs)))
    starts = sorted({int(x) for x in np.linspace(0, n - size, CHECK_STRETCHES)})
    x = np.concatenate([rec.get_traces(start_frame=a, end_frame=a + size) for a in starts])
    where = (
        f"{len(starts)} stretch{'es' if len(starts) > 1 else ''} of {size / fs:g} s "
        f"at {', '.join(f'{a / fs:g}' for a in starts)} s"
    )
    return x, where


def channel_faults(x: np.ndarray) -> dict[str, np.ndarray]:
    """Channels (columns of `x`, samples as stored) that cannot be processed, one mask per
    fault, each channel under at most one: ``non-finite`` (NaN or infinite samples),
    ``zero`` (all zero), ``constant``, ``saturated`` (at least :data:`SATURATED_SHARE` of the
    samples at the limits of an integer sample type)."""
    finite = np.isfinite(x).all(axis=0) if x.dtype.kind == "f" else np.ones(x.shape[1], bool)
    zero = finite & ~np.any(x, axis=0)
    flat = finite & ~zero & (x.max(axis=0) == x.min(axis=0))
    railed = np.zeros(x.shape[1], bool)
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        railed = (
            finite & ~flat & (((x == info.min) | (x == info.max)).mean(axis=0) >= SATURATED_SHARE)
        )
    return {"non-finite": ~finite, "zero": zero, "constant": flat, "saturated": railed}


def non_finite_starts(rec: sc.BaseRecording, chunk_s: float = 10.0) -> np.ndarray:
    """Per channel of `rec` (one segment) the first sample that is NaN or infinite, -1 where
    none is: every sample read once, in chunks (:func:`neurodict.common.jobs.chunk_samples`);
    -1 everywhere for integer samples."""
    first = np.full(rec.get_num_channels(), -1)
    if np.dtype(rec.get_dtype()).kind != "f":
        return first
    n, step = rec.get_num_samples(), chunk_samples(rec, chunk_s)
    for a in range(0, n, step):
        bad = ~np.isfinite(rec.get_traces(start_frame=a, end_frame=min(a + step, n)))
        hit = bad.any(axis=0) & (first < 0)
        first[hit] = a + bad[:, hit].argmax(axis=0)
    return first


def non_finite_phrase(
    names: list[str], first: np.ndarray, fs_hz: float, starts: list[int] | None = None
) -> str:
    """ "channels A, B have NaN or infinite samples (the first at 1.5000, 3.5000 s)": the
    channels `names` and, from `first` (:func:`non_finite_starts` of those channels, on the
    segments end to end), where each has its first. With several segments (`starts`, their
    starts on that timeline) each time is given within its segment: "(the first at 1.5000 s of
    segment 0, 0.5000 s of segment 1)"."""
    if starts is None or len(starts) <= 1:
        at = ", ".join(f"{i / fs_hz:.4f}" for i in first) + " s"
    else:
        at = ", ".join(
            f"{(i - starts[k]) / fs_hz:.4f} s of segment {k}"
            for i, k in zip(first, timeline.segment_of(first, starts), strict=True)
        )
    return f"channels {', '.join(names)} have NaN or infinite samples (the first at {at})"


def refuse_all_zero(session: Session, x: np.ndarray, where: str) -> None:
    """Raise an IngestError naming the session and raw data when every sample of the
    stretches `x` read (:func:`_stretches`, described by `where`) is 0."""
    if not np.any(x):
        raise IngestError(
            f"the recording '{session.raw_path}' (from {session.file}) is all zero: every "
            f"sample read ({where}) of channels {session.channels} is 0; expected a recording "
            f"with signal (check raw_path, dtype, num_channels and the channel indices)."
        )


def check_samples(session: Session, x: np.ndarray, where: str, bad: set[int]) -> None:
    """Refuse samples that cannot be processed, judged on the stretches `x` of the grouped
    channels in group order (:func:`_stretches`, described by `where`).

    Raises
    ------
    IngestError
        When a channel that is not in `bad` has one of the faults of :func:`channel_faults`.
        The message names the session file, the raw data and the channels (with their
        groups).
    """
    source = f"'{session.raw_path}' (from {session.file})"
    channels = np.asarray(session.channels)
    good = ~np.isin(channels, list(bad))
    faults = {k: good & v for k, v in channel_faults(x).items()}
    found = []
    if faults["non-finite"].any():
        found.append(
            f"channels {_listing(session, channels[faults['non-finite']])} have non-finite "
            "samples (NaN or infinite)"
        )
    if faults["zero"].any():
        found.append(f"channels {_listing(session, channels[faults['zero']])} are all zero")
    if faults["constant"].any():
        values = ", ".join(f"{v:g}" for v in x[0, faults["constant"]])
        found.append(
            f"channels {_listing(session, channels[faults['constant']])} are constant (at {values})"
        )
    if faults["saturated"].any():
        info = np.iinfo(x.dtype)
        share = ((x == info.min) | (x == info.max)).mean(axis=0)[faults["saturated"]]
        found.append(
            f"channels {_listing(session, channels[faults['saturated']])} are saturated "
            f"({', '.join(f'{v:.0%}' for v in share)} of their samples at "
            f"the {x.dtype} limits {info.min} or {info.max})"
        )
    if found:
        raise IngestError(
            f"the recording {source}: {'; '.join(found)}, in the {where} read; "
            f"expected signal on every channel: list these channels under "
            f"bad_channels in {session.file} or check the recording."
        )


def refuse_non_finite(
    session: Session, first: np.ndarray, fs_hz: float, bad: set[int], starts: list[int]
) -> None:
    """Raise an IngestError naming the channels not in `bad` that have a NaN or infinite sample
    anywhere (`first`: :func:`non_finite_starts` of the grouped channels, in group order, on
    the segments end to end, which begin at `starts`) and the time of each one's first
    (:func:`non_finite_phrase`); :func:`check_samples` judged only its stretches."""
    channels = np.asarray(session.channels)
    hit = (first >= 0) & ~np.isin(channels, list(bad))
    if hit.any():
        found = non_finite_phrase(_named(session, channels[hit]), first[hit], fs_hz, starts)
        raise IngestError(
            f"the recording '{session.raw_path}' (from {session.file}): {found}; expected "
            f"finite samples: list these channels under bad_channels in {session.file} or "
            "check the recording."
        )


def bad_channels(
    session: Session, rec: sc.BaseRecording, x: np.ndarray, non_finite: np.ndarray
) -> list[dict]:
    """The session's bad channels, one row per grouped channel (``channel``, ``group``,
    ``label``, ``method``, ``score``): those listed (label ``listed``), and with ``auto``
    those with faults in the stretches `x` (:func:`channel_faults`, labelled by the fault) or
    a NaN or infinite sample anywhere (`non_finite`, :func:`non_finite_starts`; label
    ``non-finite``) and those :func:`neurodict.ingest.bad_channels.detect` finds; ``good``
    for the others.
    """
    excluded = {c: bad_ch.LISTED for c in session.bad_channels}
    if not session.auto_bad_channels:
        return [
            {
                "channel": c,
                "group": g.name,
                "label": excluded.get(c, bad_ch.GOOD),
                "method": "listed in the session",
                "score": np.nan,
            }
            for g in session.groups
            for c in g.channels
        ]
    faults = channel_faults(x)
    faults["non-finite"] |= non_finite >= 0
    for fault, mask in faults.items():
        excluded |= {c: fault for c in np.asarray(session.channels)[mask] if c not in excluded}
    return bad_ch.detect(rec, session.channels, excluded, session.params["bad_channel_detection"])


def refuse_regions_without_good_channels(session: Session, regions, rows: list[dict]) -> None:
    """Raise an IngestError naming the region and its channels' labels when every channel of a
    region (`regions`, one per grouped channel) is bad in `rows` (:func:`bad_channels`)."""
    labels = [r["label"] for r in rows]
    for region in dict.fromkeys(regions):
        mine = [i for i, r in enumerate(regions) if r == region]
        if all(labels[i] != bad_ch.GOOD for i in mine):
            raise IngestError(
                f"region {region!r} has no good channel left (from {session.file}): channels "
                f"{', '.join(f'{session.channels[i]} ({labels[i]})' for i in mine)} are bad; "
                "expected at least one good channel per region: check the recording, the "
                "bad channels (listed or auto) and the regions by depth."
            )


def channel_regions(session: Session, rec: sc.BaseRecording) -> list[str]:
    """The region of each grouped channel (group order): its group's, its own from the group's
    ``regions_file``, or for a group with ``regions_by_depth`` the region of the range that
    holds the channel's depth (its probe y coordinate, from_um inclusive, to_um exclusive).

    Raises
    ------
    IngestError
        A channel of such a group lies in no range, or a range holds no channel.
    """
    depth = rec.get_channel_locations()[:, 1]
    owner = {c: g for g in session.groups for c in g.channels}
    by_channel = {c: r for g in session.groups for c, r in g.regions_by_channel}
    out = []
    for c, y in zip(session.channels, depth, strict=True):
        g = owner[c]
        if g.region or c in by_channel:
            out.append(g.region or by_channel[c])
            continue
        hit = [r for a, b, r in g.regions_by_depth if a <= y < b]
        if not hit:
            raise IngestError(
                f"channel {c} of group {g.name} lies at depth {y:g} um, in none of its "
                f"regions_by_depth ranges ({_ranges(g)}) (from {session.file}); expected "
                "every channel of the group in one range (depth: the probe's y coordinate)."
            )
        out.append(hit[0])
    for g in session.groups:
        held = {r for c, r in zip(session.channels, out, strict=True) if owner[c] is g}
        for a, b, r in g.regions_by_depth:
            if r not in held:
                raise IngestError(
                    f"the regions_by_depth range {a:g}-{b:g} um ({r}) of group {g.name} holds "
                    f"none of its channels (from {session.file}; their depths "
                    f"{_depths(session, g, depth)} um); expected each range to hold a channel."
                )
    return out


def _ranges(g) -> str:
    return ", ".join(f"{a:g}-{b:g} um {r}" for a, b, r in g.regions_by_depth)


def _depths(session: Session, g, depth: np.ndarray) -> str:
    index = {c: i for i, c in enumerate(session.channels)}
    values = sorted(depth[index[c]] for c in g.channels)
    return f"{values[0]:g} to {values[-1]:g}"


def _probe_from_file(session: Session, rec: sc.BaseRecording) -> pi.ProbeGroup:
    if "file" in session.probe:
        source = session.probe["file"]
    else:
        source = f"{session.probe['manufacturer']}/{session.probe['probe_name']}"
    try:
        if "file" in session.probe:
            probegroup = pi.read_probeinterface(session.probe["file"])
        else:  # probeinterface fetches library probes over the network
            probegroup = pi.ProbeGroup()
            probegroup.add_probe(
                pi.get_probe(session.probe["manufacturer"], session.probe["probe_name"])
            )
    except Exception as exc:  # the library's own error, re-raised naming the probe and session
        raise IngestError(
            f"probe '{source}' could not be read (from {session.file}): {type(exc).__name__}: {exc}"
        ) from exc
    n_contacts = sum(p.get_contact_count() for p in probegroup.probes)
    if n_contacts != rec.get_num_channels():
        raise IngestError(
            f"probe '{source}' has {n_contacts} contacts but '{session.raw_path}' "
            f"has {rec.get_num_channels()} channels (from {session.file})."
        )
    if all(p.device_channel_indices is None for p in probegroup.probes):
        probegroup.set_global_device_channel_indices(np.arange(n_contacts))
    indices = np.concatenate([p.device_channel_indices for p in probegroup.probes])
    if sorted(indices) != list(range(n_contacts)):
        raise IngestError(
            f"probe '{source}' wires contacts to device channels "
            f"{sorted(indices.tolist())}; expected each of 0..{n_contacts - 1} "
            f"once (from {session.file})."
        )
    return probegroup


def generic_probe(session: Session) -> pi.ProbeGroup:
    """Lay each electrode group out as a tetrode (4 channels) or a 20 um linear shank, 300 um apart.

    Used when neither the format nor the session gives a geometry; the contact order is that of
    ``session.channels``.
    """
    probegroup = pi.ProbeGroup()
    offset = 0
    for i, g in enumerate(session.groups):
        n = len(g.channels)
        probe = pi.generate_tetrode() if n == 4 else pi.generate_linear_probe(n, ypitch=20)
        probe.move([300.0 * i, 0.0])
        probe.set_device_channel_indices(np.arange(offset, offset + n))
        probegroup.add_probe(probe)
        offset += n
    return probegroup


def open_recording(session: Session) -> sc.BaseRecording:
    """The session's recording: grouped channels only, in group order, probe and properties set.

    Parameters
    ----------
    session : Session

    Returns
    -------
    BaseRecording
        Lazy; channel properties ``group`` (str), ``region`` (str), ``bad`` (bool), and
        ``bad_label``, ``bad_method``, ``bad_score`` (:func:`bad_channels`).

    Raises
    ------
    ConfigError
        Channel indices or windows beyond the recording; settings its sampling rate or length
        make impossible (the LFP rate must divide the sampling rate, the spike band's lower corner
        lie below 0.45 of it; the dictionaries need a recording longer than twice
        ``lfpdict.jitter_min_s`` and ``lfpdict.n_folds`` folds of 4 filter lengths).
    IngestError
        The reader fails; the probe does not fit; the samples cannot be processed
        (:func:`check_samples`).
    """
    rec = read_raw(session)
    _check_against_recording(session, rec)
    if session.probe:
        rec.set_probegroup(_probe_from_file(session, rec))
    ids = rec.channel_ids[session.channels]
    rec = rec.select_channels(ids)
    if not rec.has_probe():
        rec.set_probegroup(generic_probe(session))
    owner = {c: g for g in session.groups for c in g.channels}
    rec.set_property("group", np.array([owner[c].name for c in session.channels]))
    regions = channel_regions(session, rec)
    rec.set_property("region", np.array(regions))
    x, where = _stretches(rec)
    refuse_all_zero(session, x, where)
    non_finite = non_finite_starts(timeline.concatenate(rec))
    rows = bad_channels(session, rec, x, non_finite)
    refuse_regions_without_good_channels(session, regions, rows)
    bad = {r["channel"] for r in rows if r["label"] != bad_ch.GOOD}
    check_samples(session, x, where, bad)
    starts = timeline.segment_starts(rec)
    refuse_non_finite(session, non_finite, rec.sampling_frequency, bad, starts)
    rec.set_property("bad", np.array([c in bad for c in session.channels]))
    rec.set_property("bad_label", np.array([r["label"] for r in rows]))
    rec.set_property("bad_method", np.array([r["method"] for r in rows]))
    rec.set_property("bad_score", np.array([r["score"] for r in rows], float))
    return rec
