"""spikeinterface's wobble matching, its refractory period enforced once per pass, its objective
computed on each template's channels, the recording whitened as it is read.

Wobble (the template matching of Kilosort and YASS: templates compressed to a few ranks,
sub-sample shifts, amplitude scaling) finds spikes in passes: each pass takes the peaks of
the objective, subtracts their templates from it, and sets the objective of each found
spike's unit to ``-inf`` within its refractory period. spikeinterface 0.105 sets it once per
distinct shifted template found in the pass, each time for every spike of the pass, which
costs (templates found) x (spikes found) a pass. :class:`Wobble` sets it once per pass,
after the subtractions: the positions set are the same, and a value set to ``-inf`` stays
``-inf`` whatever is subtracted from it, so the objective after a pass, and the spikes, are
the same.

The objective is each template's compressed spatial components times the traces, then
convolved with its temporal ones. spikeinterface multiplies every template's components on
every channel, zeros included: on a 384-channel shank with templates held within 150 um of
their largest channel (some 30 channels), 13 times the products that count, and most of the
matching's time. :class:`Wobble` multiplies each template's components by its visible channels'
traces only (:class:`OnVisibleChannels`): the same sums without their zero terms.

The traces are whitened across channels by :class:`Wobble` as each chunk is read (a matrix
product in single precision), not by a spikeinterface whitening recording: that one multiplies
in double precision whatever its matrix's type, its matrix being passed to the worker
processes as a list of floats.
"""

from __future__ import annotations

import numpy as np
from spikeinterface.core.node_pipeline import run_node_pipeline
from spikeinterface.sortingcomponents.matching.wobble import WobbleMatch


class OnVisibleChannels:
    """Templates' spatial components (rank, U, M), each template's on its visible channels
    (`visible` (U, M) bool) only, as spikeinterface's wobble objective multiplies them:
    ``np.matmul(spatial, traces.T[np.newaxis])`` gives (rank, U, n) from the traces (n, M),
    each template's rows from the traces of its visible channels (a template's components
    elsewhere are zero: the objective's terms there are left out)."""

    def __init__(self, spatial: np.ndarray, visible: np.ndarray):
        self.rank, self.n_templates = spatial.shape[:2]
        self.visible = [np.flatnonzero(v) for v in visible]
        self.components = [
            np.ascontiguousarray(spatial[:, u][:, on]) for u, on in enumerate(self.visible)
        ]

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc is not np.matmul or method != "__call__" or inputs[0] is not self or kwargs:
            return NotImplemented
        by_channel = np.ascontiguousarray(inputs[1][0])  # (M, n): each channel's trace
        out = np.empty((self.rank, self.n_templates, by_channel.shape[1]), np.float32)
        for u, (on, components) in enumerate(zip(self.visible, self.components, strict=True)):
            np.matmul(components, by_channel[on], out=out[:, u])
        return out


class Wobble(WobbleMatch):
    """:class:`WobbleMatch` with its refractory period set once per pass, its objective on each
    template's visible channels, and the traces multiplied by `whitening` (M, M), when given,
    as they are read (a sample ``x`` (M,) becomes ``x W``)."""

    def __init__(self, recording, templates, parameters: dict, whitening: np.ndarray | None):
        super().__init__(recording, templates, parameters=parameters, engine="numpy")
        temporal, singular, spatial, jittered = self.template_data.compressed_templates
        visible = OnVisibleChannels(spatial, self.sparsity.visible_channels)
        self.template_data.compressed_templates = (temporal, singular, visible, jittered)
        self.whitening = None if whitening is None else whitening.astype(np.float32)

    def compute_matching(self, traces, start_frame, end_frame, segment_index):
        """The parent's matching of the chunk's `traces`, whitened first when asked."""
        if self.whitening is not None:
            traces = traces @ self.whitening
        return super().compute_matching(traces, start_frame, end_frame, segment_index)

    @classmethod
    def enforce_refractory(cls, spike_train, objective, objective_normalized, params, meta):
        """Nothing: called by the parent's subtraction once per template found, deferred to
        the end of :meth:`subtract_spike_train`."""
        return objective, objective_normalized

    @classmethod
    def subtract_spike_train(cls, spike_train, *rest):
        """The parent's subtraction of the pass's spikes (`rest`: its scalings, template_data,
        objective, objective_normalized, params, template_meta, sparsity), then their
        refractory periods."""
        objective, objective_normalized = super().subtract_spike_train(spike_train, *rest)
        params, meta = rest[4], rest[5]
        return WobbleMatch.enforce_refractory(
            spike_train, objective, objective_normalized, params, meta
        )


def find_spikes(
    recording, templates, parameters: dict, n_jobs: int, whitening: np.ndarray | None = None
) -> np.ndarray:
    """The spikes :class:`Wobble` finds with `templates` (spikeinterface ``Templates``) in
    `recording` multiplied by `whitening` (M, M) when given, with wobble's `parameters`
    (``WobbleParameters``' fields), in 1 s chunks on `n_jobs` processes: spikeinterface's
    spike vector (``sample_index``, ``cluster_index``: the template's index, ...)."""
    node = Wobble(recording, templates, parameters, whitening)
    try:
        return run_node_pipeline(
            recording,
            [node],
            {"n_jobs": n_jobs, "chunk_duration": "1s", "progress_bar": False},
            job_name="find spikes (wobble)",
            squeeze_output=True,
            names=["spikes"],
        )
    finally:
        node.clean()
