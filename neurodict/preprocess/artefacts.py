"""Saturation and large artefacts, found per electrode group and zeroed in the spike band before
spike detection (so neither the detect nor the sort stage sees them).

Two kinds, each defined in units that do not depend on the data set:

``saturation``
    A raw sample of one of the group's good channels at or beyond ``saturation_full_scale`` of
    the ADC's range, the limits of the raw integer dtype (for int16 and the default 0.98:
    32112 of 32767 steps; 0.98 of the rail is also what spikeinterface's
    ``detect_saturation_periods`` documents for IBL's Neuropixels data). Raw data stored as
    floating point have no rail and are not tested; an amplifier that saturates below the ADC's
    rail leaves steps in the spike band that the second kind finds.
``artefact``
    At least ``artefact_channel_fraction`` of the group's channels beyond
    ``artefact_threshold_sigma`` robust SDs of the spike band (median(|x|) / 0.6745 per
    channel, the noise estimate of spike detection) at the same sample: a transient common to
    the group and far larger than what one neuron puts on half of a group's contacts.

Each stretch then extends on both sides until every channel of its group has stayed below
``artefact_end_sigma`` robust SDs for one period of the spike band's high-pass corner
(1 / ``freq_min_hz``), so that the zero-phase filter's ringing before and after it is masked
with it. Overlapping stretches of a group merge (kind ``saturation`` if any part saturated).

Finding is pointwise in time, read in chunks whose boundaries are joined afterwards, so the
stretches do not depend on the chunk size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import spikeinterface.core as sc

from neurodict.common.files import atomic_path
from neurodict.common.jobs import chunk_samples

PERIOD_DTYPE = [("group_index", "int64"), ("start", "int64"), ("end", "int64"), ("kind", "U10")]
COLUMNS = ["group", "kind", "start_s", "end_s", "duration_ms"]
NOISE_SEED = 0  # seed of the chunks the noise levels are estimated on (as detection's)
CHUNK_S = 10.0  # length of the chunks read to find stretches
EXTEND_BLOCK_S = 0.1  # length of the blocks read while extending a stretch


def rail_limits(dtype, full_scale: float) -> tuple[float, float] | None:
    """The raw values at or beyond which a sample counts as saturated, (low, high), for an
    integer dtype: `full_scale` of the way from the middle of its range to either limit.
    None for floating-point raw data (no rail)."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.integer):
        return None
    info = np.iinfo(dtype)
    middle = (float(info.max) + float(info.min)) / 2
    half = (float(info.max) - float(info.min)) / 2
    return middle - full_scale * half, middle + full_scale * half


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and (exclusive) ends of the runs of True in a boolean vector."""
    edges = np.flatnonzero(np.diff(mask.astype(np.int8), prepend=0, append=0))
    return edges[::2], edges[1::2]


def _loud(traces: np.ndarray, noise: np.ndarray, sigma: float) -> np.ndarray:
    """(n, M) bool: |x| at or beyond `sigma` robust SDs; never on a channel of zero noise."""
    scaled = np.divide(
        np.abs(traces), noise, out=np.zeros(traces.shape, np.float32), where=noise > 0
    )
    return scaled >= sigma


def _merge(periods: list[tuple[int, int, str]], gap: int = 0) -> list[tuple[int, int, str]]:
    """Join stretches of one group that overlap or lie within `gap` samples of each other;
    a joined stretch is a saturation if any of its parts is."""
    out: list[list] = []
    for start, end, kind in sorted(periods):
        if out and start <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], end)
            if kind == "saturation":
                out[-1][2] = kind
        else:
            out.append([start, end, kind])
    return [tuple(p) for p in out]


def _extend(
    rec: sc.BaseRecording,
    channels: np.ndarray,
    noise: np.ndarray,
    sigma: float,
    quiet: int,
    start: int,
    end: int,
) -> tuple[int, int]:
    """Grow [start, end) on both sides up to the first `quiet` samples with every channel
    under `sigma` (or the recording's edge)."""
    n = rec.get_num_samples()
    block = max(4 * quiet, int(EXTEND_BLOCK_S * rec.sampling_frequency))
    ids = rec.channel_ids[channels]

    def loud_samples(a: int, b: int) -> np.ndarray:
        traces = rec.get_traces(start_frame=a, end_frame=b, channel_ids=ids)
        return np.flatnonzero(_loud(traces, noise[channels], sigma).any(axis=1)) + a

    def outermost(edge: int, blocks, direction: int) -> int:
        """The last loud sample reached from `edge` before a quiet gap, walking `direction`."""
        for a, b in blocks:
            seq = np.r_[edge, loud_samples(a, b)[::direction]]
            gaps = direction * np.diff(seq) - 1
            if np.any(gaps >= quiet):
                return int(seq[np.argmax(gaps >= quiet)])
            edge = int(seq[-1])
            if direction * ((b - 1 if direction > 0 else a) - edge) >= quiet:
                return edge
        return edge

    last = outermost(end - 1, ((a, min(a + block, n)) for a in range(end, n, block)), 1)
    first = outermost(start, ((max(b - block, 0), b) for b in range(start, 0, -block)), -1)
    return (first if first >= quiet else 0), (last + 1 if n - 1 - last >= quiet else n)


def find_artefacts(
    raw: sc.BaseRecording, spikeband: sc.BaseRecording, params: dict, chunk_s: float = CHUNK_S
) -> np.ndarray:
    """Saturation and large-artefact stretches of every electrode group.

    Parameters
    ----------
    raw : BaseRecording
        The ingested recording's good channels, unscaled (its integer dtype gives the rail), in
        the channel order of `spikeband`.
    spikeband : BaseRecording
        The spike band (float32 microvolts), channel property ``group``.
    params : dict
        The ``spikeband`` section: ``freq_min_hz``, ``saturation_full_scale``,
        ``artefact_threshold_sigma``, ``artefact_channel_fraction``, ``artefact_end_sigma``.
    chunk_s : float
        Longest chunk read (:func:`neurodict.common.jobs.chunk_samples`; the result does not
        depend on it).

    Returns
    -------
    ndarray of PERIOD_DTYPE
        Per stretch the group's index (order of first appearance), first sample, end sample
        (exclusive) and kind; sorted by group, then start.
    """
    if not np.array_equal(raw.channel_ids, spikeband.channel_ids):
        raise RuntimeError(
            f"expected the raw recording's good channels in the spike band's "
            f"order, got {raw.channel_ids} and {spikeband.channel_ids}"
        )
    groups = spikeband.get_property("group")
    index = [np.flatnonzero(groups == g) for g in dict.fromkeys(groups)]
    noise = np.asarray(
        sc.get_noise_levels(
            spikeband, return_in_uV=False, random_slices_kwargs={"seed": NOISE_SEED}
        )
    )
    rails = rail_limits(raw.get_dtype(), params["saturation_full_scale"])
    threshold, fraction = params["artefact_threshold_sigma"], params["artefact_channel_fraction"]
    n, fs = spikeband.get_num_samples(), spikeband.sampling_frequency
    step = chunk_samples(spikeband, chunk_s)
    found: list[list[tuple[int, int, str]]] = [[] for _ in index]
    for begin in range(0, n, step):
        stop = min(begin + step, n)
        loud = _loud(spikeband.get_traces(start_frame=begin, end_frame=stop), noise, threshold)
        values = raw.get_traces(start_frame=begin, end_frame=stop) if rails else None
        for g, channels in enumerate(index):
            common = loud[:, channels].mean(axis=1) >= fraction - 1e-9
            found[g] += [
                (s + begin, e + begin, "artefact") for s, e in zip(*_runs(common), strict=True)
            ]
            if values is not None:
                v = values[:, channels]
                railed = ((v <= rails[0]) | (v >= rails[1])).any(axis=1)
                found[g] += [
                    (s + begin, e + begin, "saturation")
                    for s, e in zip(*_runs(railed), strict=True)
                ]
    quiet = max(int(round(fs / params["freq_min_hz"])), 1)
    periods = []
    for g, channels in enumerate(index):
        extended = [
            (*_extend(spikeband, channels, noise, params["artefact_end_sigma"], quiet, s, e), kind)
            for s, e, kind in _merge(found[g], gap=quiet)
        ]
        periods += [(g, s, e, kind) for s, e, kind in _merge(extended)]
    return np.array(periods, dtype=PERIOD_DTYPE)


def zero_in_place(folder_rec: sc.BaseRecording, periods: np.ndarray) -> None:
    """Zero each stretch on its group's channels in a saved binary recording's file."""
    if periods.size == 0:
        return
    d = folder_rec.get_binary_description()
    if len(d["file_paths"]) != 1 or d["time_axis"] != 0:
        raise RuntimeError(f"expected one time-major binary file, got {d}")
    shape = (folder_rec.get_num_samples(), d["num_channels"])
    traces = np.memmap(
        d["file_paths"][0], dtype=d["dtype"], mode="r+", offset=d["file_offset"], shape=shape
    )
    groups = folder_rec.get_property("group")
    names = list(dict.fromkeys(groups))
    for p in periods:
        traces[p["start"] : p["end"], groups == names[p["group_index"]]] = 0
    traces.flush()
    del traces


def rows(periods: np.ndarray, group_names: list[str], fs_hz: float) -> list[dict]:
    """artefacts.tsv's rows: group, kind, start_s, end_s, duration_ms."""
    return [
        {
            "group": group_names[p["group_index"]],
            "kind": str(p["kind"]),
            "start_s": round(float(p["start"]) / fs_hz, 5),
            "end_s": round(float(p["end"]) / fs_hz, 5),
            "duration_ms": round(float(p["end"] - p["start"]) / fs_hz * 1000, 2),
        }
        for p in periods
    ]


def write_table(path, table: list[dict]) -> None:
    """Write ``artefacts.tsv`` (a header alone when there are none), atomically."""
    with atomic_path(path) as tmp:
        pd.DataFrame.from_records(table, columns=COLUMNS).to_csv(tmp, sep="\t", index=False)
