"""Spike band, LFP band, region LFPs and clean region LFPs (per electrode group, without its own
channels: MODELS.md sections 0 and 2), lazily on spikeinterface.

Dtype policy: raw samples are converted once to float32 microvolts (``return_in_uV``) by the
first filter; every later step keeps float32.
"""

from __future__ import annotations

import numpy as np
import scipy.signal
import spikeinterface.core as sc
import spikeinterface.preprocessing as spre

from neurodict.common.errors import InputError

LOWPASS_MARGIN_MS = 100.0  # context for the LFP low-pass and the decimation's anti-alias FIR


def good_channels(rec: sc.BaseRecording) -> sc.BaseRecording:
    """The channels whose ``bad`` property is False."""
    return rec.select_channels(rec.channel_ids[~rec.get_property("bad").astype(bool)])


def spike_band(rec: sc.BaseRecording, params: dict) -> sc.BaseRecording:
    """Band-pass (zero phase), then optional common median reference and whitening per group.

    Parameters
    ----------
    rec : BaseRecording
        The ingested recording (properties ``group``, ``bad``); bad channels are dropped.
    params : dict
        The ``spikeband`` section: ``freq_min_hz``, ``freq_max_hz`` (clipped to 0.45 fs),
        ``filter_order``, ``common_median_reference``, ``whiten``.

    Returns
    -------
    BaseRecording
        float32, in microvolts, lazy.

    Raises
    ------
    InputError
        When ``freq_min_hz`` is not below the (clipped) ``freq_max_hz``.
    """
    freq_max_hz = min(params["freq_max_hz"], 0.45 * rec.sampling_frequency)
    if not params["freq_min_hz"] < freq_max_hz:
        raise InputError(
            f"'spikeband.freq_min_hz': expected a value below freq_max_hz, clipped "
            f"to 0.45 of the sampling rate {rec.sampling_frequency:g} Hz "
            f"({freq_max_hz:g} Hz); got {params['freq_min_hz']!r}."
        )
    rec = good_channels(rec)
    rec = spre.scale_to_uV(rec) if rec.has_scaleable_traces() else rec
    rec = spre.bandpass_filter(
        rec,
        freq_min=params["freq_min_hz"],
        freq_max=freq_max_hz,
        filter_order=params["filter_order"],
        dtype="float32",
    )
    groups = rec.get_property("group")
    group_ids = [list(rec.channel_ids[groups == g]) for g in dict.fromkeys(groups)]
    if params["common_median_reference"]:
        rec = spre.common_reference(rec, reference="global", operator="median", groups=group_ids)
    if params["whiten"]:
        rec = sc.aggregate_channels(
            [spre.whiten(r, dtype="float32", mode="global") for r in rec.split_by("group").values()]
        )
    return rec


def mains_harmonics_hz(mains_hz: float, below_hz: float) -> list[float]:
    """The mains frequency and its harmonics below `below_hz`."""
    return [
        k * mains_hz for k in range(1, int(below_hz // mains_hz) + 1) if k * mains_hz < below_hz
    ]


def lfp_band(rec: sc.BaseRecording, params: dict, mains_hz: float) -> sc.BaseRecording:
    """Zero-phase low-pass, decimation to ``fs_lfp_hz``, zero-phase high-pass, mains notches.

    The band edges are two Butterworth filters applied forward and backward: the low-pass at
    ``freq_max_hz`` on the wideband signal, then (after an anti-aliased decimation) the high-pass
    at ``freq_min_hz`` and the notches on the LFP-rate signal, where their long impulse responses
    (margins of 5 / freq_min_hz seconds) cost little.

    Parameters
    ----------
    rec : BaseRecording
        The ingested recording; bad channels are dropped.
    params : dict
        The ``lfp`` section: ``freq_min_hz``, ``freq_max_hz``, ``filter_order``, ``fs_lfp_hz``,
        ``notch_q``.
    mains_hz : float
        50 or 60; notches at it and its harmonics below ``freq_max_hz``.

    Returns
    -------
    BaseRecording
        float32 microvolts at ``fs_lfp_hz``.

    Raises
    ------
    InputError
        When the wideband rate is not an integer multiple of ``fs_lfp_hz``, or the band edges
        are not ordered below its Nyquist frequency.
    """
    factor = rec.sampling_frequency / params["fs_lfp_hz"]
    if abs(factor - round(factor)) > 1e-9:
        raise InputError(
            f"'lfp.fs_lfp_hz': expected a divisor of the sampling rate "
            f"{rec.sampling_frequency} Hz; got {params['fs_lfp_hz']!r}."
        )
    if not params["freq_min_hz"] < params["freq_max_hz"] < params["fs_lfp_hz"] / 2:
        raise InputError(
            f"'lfp.freq_min_hz', 'lfp.freq_max_hz': expected freq_min_hz < "
            f"freq_max_hz < fs_lfp_hz / 2 = {params['fs_lfp_hz'] / 2:g} Hz; got "
            f"{params['freq_min_hz']!r} and {params['freq_max_hz']!r}."
        )
    rec = good_channels(rec)
    rec = spre.scale_to_uV(rec) if rec.has_scaleable_traces() else rec
    order = params["filter_order"]
    lowpass_sos = scipy.signal.butter(
        order, params["freq_max_hz"], btype="lowpass", fs=rec.sampling_frequency, output="sos"
    )
    rec = spre.filter(
        rec, coeff=lowpass_sos, filter_mode="sos", margin_ms=LOWPASS_MARGIN_MS, dtype="float32"
    )
    if round(factor) > 1:
        rec = spre.decimate(
            rec, int(round(factor)), antialias=True, margin_ms=LOWPASS_MARGIN_MS, dtype="float32"
        )
    rec = spre.highpass_filter(
        rec,
        freq_min=params["freq_min_hz"],
        filter_order=order,
        margin_ms="auto",
        ignore_low_freq_error=True,
        dtype="float32",
    )
    for freq in mains_harmonics_hz(mains_hz, params["freq_max_hz"]):
        # ten time constants Q / (pi f) of the notch's ringing: chunked equals whole to 1e-4
        margin_ms = 10 * 1000.0 * params["notch_q"] / (np.pi * freq)
        rec = spre.notch_filter(
            rec, freq=freq, q=params["notch_q"], margin_ms=margin_ms, dtype="float32"
        )
    return rec


LFP_RATE_FILTERS = "lfp_rate_filters"  # annotation of region_lfp(_clean)/: lfp_rate_chain()


def lfp_rate_chain(params: dict, mains_hz: float) -> dict:
    """The filters :func:`lfp_band` applies at the LFP rate (after the low-pass and the
    decimation), as JSON-able data for :func:`apply_lfp_rate_chain`: ``fs_hz``,
    ``highpass_hz``, ``filter_order``, ``notch_hz`` (mains and harmonics), ``notch_q``."""
    return {
        "fs_hz": float(params["fs_lfp_hz"]),
        "highpass_hz": float(params["freq_min_hz"]),
        "filter_order": int(params["filter_order"]),
        "notch_hz": [float(f) for f in mains_harmonics_hz(mains_hz, params["freq_max_hz"])],
        "notch_q": float(params["notch_q"]),
    }


def apply_lfp_rate_chain(x: np.ndarray, chain: dict) -> np.ndarray:
    """`x` (..., n_samples) at the LFP rate through the filters of :func:`lfp_rate_chain`:
    the zero-phase Butterworth high-pass, then each zero-phase mains notch, as :func:`lfp_band`
    applies them (scipy's ``sosfiltfilt`` and ``filtfilt``; float64)."""
    fs = chain["fs_hz"]
    sos = scipy.signal.butter(
        chain["filter_order"], chain["highpass_hz"], btype="highpass", fs=fs, output="sos"
    )
    out = scipy.signal.sosfiltfilt(sos, np.asarray(x, np.float64), axis=-1)
    for freq in chain["notch_hz"]:
        b, a = scipy.signal.iirnotch(freq, chain["notch_q"], fs=fs)
        out = scipy.signal.filtfilt(b, a, out, axis=-1)
    return out


class _MedianRecording(sc.BaseRecording):
    """Channels that are each the median, sample by sample, of a set of the parent's channels.

    Pointwise in time, so chunked and whole results agree exactly.
    """

    def __init__(self, recording: sc.BaseRecording, names: list, indices: list[np.ndarray]):
        super().__init__(recording.sampling_frequency, np.array(names), "float32")
        for segment in recording._recording_segments:
            self.add_recording_segment(_RegionMedianSegment(segment, indices))


class RegionLFPRecording(_MedianRecording):
    """One channel per brain region: the median across that region's channels, sample by sample.

    Channel ids are the region names; the property ``region`` repeats them.
    """

    def __init__(self, recording: sc.BaseRecording):
        regions = recording.get_property("region")
        names = list(dict.fromkeys(regions))
        super().__init__(recording, names, [np.flatnonzero(regions == r) for r in names])
        self.set_property("region", np.array(names))
        self._kwargs = {"recording": recording}


CLEAN_OTHER_GROUPS = "other_groups"
CLEAN_DESPIKED = "despiked"


class CleanRegionLFPRecording(_MedianRecording):
    """Per electrode group and region of its channels, the region's LFP without the spikes of
    the group's own units.

    One channel per (group, region) pair (properties ``group``, ``region`` and
    ``clean_method``; channel id the group name, or ``group:region`` for a group whose
    channels lie in several regions, by depth or by channel), in the order the pairs first
    appear among the channels:

    - ``other_groups``: the region has good channels outside the group; the channel is the
      median of those channels (the group's own channels, which carry its units' spikes, are
      left out).
    - ``despiked``: the group is the only one with good channels in the region; the channel
      is the median of the group's own channels there, as in :class:`RegionLFPRecording`,
      still holding the low-frequency part of its units' spikes. The units are only known
      after sorting, so the despiking is done where they are read:
      :func:`neurodict.lfpdict.inputs.load_clean_targets` removes from this channel each of the
      group's units' short spike-triggered kernels (:func:`neurodict.lfpdict.inputs.despike`).
    """

    def __init__(self, recording: sc.BaseRecording):
        groups = np.asarray(recording.get_property("group")).astype(str)
        regions = np.asarray(recording.get_property("region")).astype(str)
        pairs = list(dict.fromkeys(zip(groups, regions, strict=True)))
        several = {g for g in groups if len({r for h, r in pairs if h == g}) > 1}
        indices, methods = [], []
        for g, region in pairs:
            others = np.flatnonzero((regions == region) & (groups != g))
            own = np.flatnonzero((regions == region) & (groups == g))
            indices.append(others if others.size else own)
            methods.append(CLEAN_OTHER_GROUPS if others.size else CLEAN_DESPIKED)
        names = [f"{g}:{r}" if g in several else g for g, r in pairs]
        super().__init__(recording, names, indices)
        self.set_property("group", np.array([g for g, _ in pairs]))
        self.set_property("region", np.array([r for _, r in pairs]))
        self.set_property("clean_method", np.array(methods))
        self._kwargs = {"recording": recording}


class _RegionMedianSegment(sc.BaseRecordingSegment):
    def __init__(self, parent, indices):
        super().__init__(**parent.get_times_kwargs())
        self._parent, self._indices = parent, indices

    def get_num_samples(self):
        return self._parent.get_num_samples()

    def get_traces(self, start_frame, end_frame, channel_indices):
        traces = self._parent.get_traces(start_frame, end_frame, slice(None))
        out = np.stack([np.median(traces[:, idx], axis=1) for idx in self._indices], axis=1)
        return out.astype("float32")[:, channel_indices]


def region_lfp(
    lfp: sc.BaseRecording, reference: str, chain: dict | None = None
) -> sc.BaseRecording:
    """Region LFPs from the channel LFPs: ``median`` (one channel per region) or ``all``.

    With ``all`` every good channel is kept and carries its ``region`` property. `chain`
    (:func:`lfp_rate_chain`) is kept as the annotation ``lfp_rate_filters``, for the
    despiking of the dictionaries' targets.
    """
    rec = RegionLFPRecording(lfp) if reference == "median" else lfp.select_channels(lfp.channel_ids)
    if chain is not None:
        rec.annotate(**{LFP_RATE_FILTERS: chain})
    return rec


def region_lfp_clean(lfp: sc.BaseRecording, chain: dict | None = None) -> sc.BaseRecording:
    """Per electrode group, the LFP of its region without the group's own spikes: see
    :class:`CleanRegionLFPRecording` (always a median, whatever ``lfp.region_reference``).

    `chain` (:func:`lfp_rate_chain`, the LFP-rate filters the channels went through) is kept
    as the annotation ``lfp_rate_filters``: the despiking models the spikes' bleed-through
    through the same filters (their notch ringing and high-pass tails outlast the kernel).
    """
    rec = CleanRegionLFPRecording(lfp)
    if chain is not None:
        rec.annotate(**{LFP_RATE_FILTERS: chain})
    return rec
