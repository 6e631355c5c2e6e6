"""Bad channels found automatically, per electrode group, by spikeinterface's detection.

A session whose ``bad_channels`` holds ``auto`` (alone or beside listed channels) has each
electrode group's other channels judged on random stretches of the high-passed signal
(``spikeinterface.preprocessing.detect_bad_channels``; the ``bad_channel_detection`` section):

- ``coherence+psd`` (International Brain Laboratory): dead channels (low coherence with their
  neighbours), noisy ones (high-frequency power with coherence to far channels) and channels
  outside the brain (the top of a shank); made for shanks of many channels;
- ``mad`` or ``std``: a channel whose median absolute deviation (or SD) exceeds
  ``std_mad_threshold`` times the group's median is noisy (spikeinterface); one below the
  median divided by it is dead (the same rule mirrored: spikeinterface flags only the noisy);
- ``auto``: ``coherence+psd`` for groups of at least ``coherence_min_channels`` channels,
  ``mad`` for smaller ones (a tetrode has no neighbours to compare coherence with), and for
  recordings without gains to microvolts (coherence+psd's thresholds are in uV).

Channels whose samples cannot be processed (:func:`neurodict.ingest.readers.channel_faults`:
non-finite, all zero, constant, saturated) are bad with that label before detection. Every
channel gets a score, its deviation over the group's median (1 for a typical channel).
"""

from __future__ import annotations

import logging

import numpy as np
import spikeinterface.core as sc
import spikeinterface.preprocessing as spre

log = logging.getLogger(__name__)
GOOD = "good"
LISTED = "listed"  # in the session's bad_channels


def method_for(rec: sc.BaseRecording, params: dict) -> str:
    """The detection method of a group's recording (``auto`` resolved): ``coherence+psd``
    judges microvolts, so a recording without gains to microvolts gets ``mad`` (logged)."""
    method = params["method"]
    if method == "auto":
        big = rec.get_num_channels() >= params["coherence_min_channels"]
        method = "coherence+psd" if big else "mad"
    if method == "coherence+psd" and not rec.has_scaleable_traces():
        log.warning("no gains to microvolts: mad instead of coherence+psd (its thresholds are uV)")
        return "mad"
    return method


def deviation_scores(rec: sc.BaseRecording, measure: str, params: dict) -> np.ndarray:
    """Each channel's median absolute deviation (``mad``) or SD (``std``; ``coherence+psd``
    reports the MAD) of the high-passed signal on random stretches, over the median of the
    channels': (M,)."""
    hp = spre.highpass_filter(rec, freq_min=params["highpass_hz"], dtype="float32")
    x = sc.get_random_data_chunks(
        hp,
        num_chunks_per_segment=params["num_random_chunks"],
        chunk_size=int(params["chunk_duration_s"] * rec.sampling_frequency),
        seed=params["seed"],
        return_in_uV=rec.has_scaleable_traces(),
    )
    if measure == "std":
        dev = x.std(axis=0)
    else:
        dev = np.median(np.abs(x - np.median(x, axis=0)), axis=0)
    return dev / max(float(np.median(dev)), np.finfo(float).tiny)


def detect_group(rec: sc.BaseRecording, params: dict) -> tuple[np.ndarray, np.ndarray, str]:
    """Labels (``good``, ``dead``, ``noise``, ``out``) and scores of one group's channels, and
    the method used."""
    method = method_for(rec, params)
    scores = deviation_scores(rec, "std" if method == "std" else "mad", params)
    labels = np.full(rec.get_num_channels(), GOOD, dtype=object)
    if method == "coherence+psd":
        _, found = spre.detect_bad_channels(
            rec,
            method="coherence+psd",
            chunk_duration_s=params["chunk_duration_s"],
            num_random_chunks=params["num_random_chunks"],
            highpass_filter_cutoff=params["highpass_hz"],
            seed=params["seed"],
        )
        labels[:] = found
    else:
        labels[scores > params["std_mad_threshold"]] = "noise"
        labels[scores < 1.0 / params["std_mad_threshold"]] = "dead"
    return labels.astype(str), scores, method


COLUMNS = ["channel", "group", "label", "method", "score"]


def detect(
    rec: sc.BaseRecording, channels: list[int], excluded: dict[int, str], params: dict
) -> list[dict]:
    """One row per channel of `rec` (property ``group``; session indices `channels`): the
    :data:`COLUMNS`.

    `excluded` maps channel indices already bad to their label (listed in the session, or
    with samples that cannot be processed): they keep it and stay out of the detection.
    """
    rows = []
    groups = rec.get_property("group")
    index = np.asarray(channels)
    for g in dict.fromkeys(groups):
        mine = np.flatnonzero(groups == g)
        judged = [i for i in mine if int(index[i]) not in excluded]
        labels, scores, method = (
            detect_group(rec.select_channels(rec.channel_ids[judged]), params)
            if len(judged) >= 2
            else (np.full(len(judged), GOOD), np.ones(len(judged)), "none (fewer than 2)")
        )
        found = dict(zip(judged, zip(labels, scores, strict=True), strict=True))
        for i in mine:
            c = int(index[i])
            label, score = found.get(i, (excluded.get(c), np.nan))
            rows.append(
                {
                    "channel": c,
                    "group": str(g),
                    "label": str(label),
                    "method": method if i in found else "before detection",
                    "score": float(score),
                }
            )
        bad = [r["channel"] for r in rows[-len(mine) :] if r["label"] != GOOD]
        log.info("group %s (%s): bad channels %s", g, method, bad or "none")
    return rows


def table_rows(rec: sc.BaseRecording, channels: list[int]) -> list[dict]:
    """``bad_channels.tsv``'s rows (:data:`COLUMNS`) from an ingested recording's properties
    ``group``, ``bad_label``, ``bad_method``, ``bad_score`` (session indices `channels`)."""
    keys = ("group", "bad_label", "bad_method", "bad_score")
    return [
        dict(zip(COLUMNS, (c, str(g), str(lab), str(m), float(v)), strict=True))
        for c, g, lab, m, v in zip(channels, *(rec.get_property(k) for k in keys), strict=True)
    ]
