"""Units whose template reaches the detection threshold only through other units' spikes.

A large neuron's band-passed waveform swings back past the threshold after its trough: the
generated templates of ``tests/sort/test_sorter.py``'s units between two neighbourhood
centres (200 uV, spikeinterface's ``generate_templates``) are detected a second time 2.1-2.3
ms after it, beyond the detection's dead time. The first learning makes a unit of those
second detections, whose template peaks about the threshold (3.8 SD in that test; 4.0 in
one sampler run of the kernel beta process). Matched in the overlap pass, such a template
takes the place of its neuron's after-potential, and the peeling then subtracts it from
half the neuron's spikes' neighbours: the second learning cut that neuron into two units
(accuracy 0.50). Left out, the neuron's own template (continued to ``peel_ms_after``) peels
the second detection, whose residual no longer reaches the threshold, and it is not a
spike.

The overlap pass already leaves out a template at the noise level (under the detection
threshold: it matches noise). This module applies that rule to each unit's template net of
what its spikes' neighbours put in its window: with ``t_f`` the unit's template in an epoch
(the overlap pass's, :func:`neurodict.sort.run.unit_template`, microvolts) and ``n_f`` the
mean, over its spikes in the epoch, of the other matched templates' waveforms that reach
into each spike's window (every spike of the first learning's units the overlap pass keeps,
with its unit's template at its sample, as the peeling subtracts them)::

    peak_f = max over epochs, channels and samples of |t_f − n_f| / σ

and f is left out of the overlap pass where ``peak_f`` is under the detection threshold. For
a unit with no neighbours within a template's length ``n_f = 0``: the rule as before. A
neuron's own peak lies where its neighbours' waveforms add little (they are as likely at
any lag), so ``n_f`` is small wherever ``t_f`` is large unless its detections are another
neuron's waveform at one lag. ``n_f`` is estimated from the spikes the overlap pass's tails
are cut from (at most ``max_spikes_per_epoch`` of each unit and epoch).
"""

from __future__ import annotations

import logging

import numpy as np

from neurodict.sort import kernels
from neurodict.sort.epoch_sums import EpochSums
from neurodict.sort.local import LocalSnippets

log = logging.getLogger(__name__)


def after_potentials(
    templates_uv: np.ndarray,
    T: int,
    noise_uv: np.ndarray,
    threshold_sigma: float,
    spikes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    picked: np.ndarray,
    held: tuple[np.ndarray, np.ndarray],
    batch: int,
) -> np.ndarray:
    """Which units' templates peak under `threshold_sigma` once their neighbours' waveforms
    are taken out (the module docstring): (U,) bool.

    Parameters
    ----------
    templates_uv : numpy.ndarray (U, E, M, T_w)
        Each unit's template per epoch in microvolts, starting ``ms_before`` before its peak
        (the overlap pass's, continued past the snippet window: ``T_w >= T``).
    T : int
        The snippet window's samples: the part of a template tested.
    noise_uv : numpy.ndarray (M,)
        Each channel's noise SD.
    threshold_sigma : float
        The detection threshold in noise SDs.
    spikes : (samples, channels, unit, epoch), each numpy.ndarray (n,)
        The units' spikes, time-sorted: sample, the channel each was found on, its unit's row
        in `templates_uv` and its epoch.
    picked : numpy.ndarray (p,) of int
        The spikes (indices into `spikes`) whose windows are averaged.
    held : (stores, store)
        The channels of each store (S, C; padded with -1) and each spike's store: the
        channels its window is read on.
    batch : int
        Windows made at once (their memory).
    """
    samples, channels, unit, epoch = spikes
    U, E, M, _ = templates_uv.shape
    stores, store = held
    rows = np.ascontiguousarray(templates_uv.reshape(U * E, M, templates_uv.shape[3]))
    which = unit * E + epoch
    sums = EpochSums.zeros(stores, store[picked], unit[picked], U, E, M, T)
    for i in range(0, picked.size, batch):
        j = picked[i : i + batch]
        on = stores[store[j]]
        read = np.where(on >= 0, on, channels[j, None])
        neighbours = kernels.neighbour_waves(samples[j], j, samples, which, rows, T, read)
        kernels.add_epoch_sums(
            sums, LocalSnippets(neighbours, stores, store[j], M), epoch[j], unit[j]
        )
    out = np.empty(U, bool)
    for k in range(U):  # a unit at a time: a 384-channel probe's means are 160 MB a copy
        net = templates_uv[k, :, :, :T] - sums.mean(k)
        out[k] = (np.abs(net).max(axis=-1) / noise_uv).max(initial=0.0) < threshold_sigma
    log.info(
        "%d unit(s) whose templates reach the detection threshold only with their spikes' "
        "neighbours: their templates left out of the overlap pass",
        int(out.sum()),
    )
    return out
