"""spikeinterface's wobble matching, its refractory period enforced once per pass.

Wobble (the template matching of Kilosort and YASS: templates compressed to a few ranks,
sub-sample shifts, amplitude scaling) finds spikes in passes: each pass takes the peaks of
the objective, subtracts their templates from it, and sets the objective of each found
spike's unit to ``-inf`` within its refractory period. spikeinterface 0.105 sets it once per
distinct shifted template found in the pass, each time for every spike of the pass, which
costs (templates found) x (spikes found) a pass. :class:`Wobble` sets it once per pass,
after the subtractions: the positions set are the same, and a value set to ``-inf`` stays
``-inf`` whatever is subtracted from it, so the objective after a pass, and the spikes, are
the same.
"""

from __future__ import annotations

import numpy as np
from spikeinterface.core.node_pipeline import run_node_pipeline
from spikeinterface.sortingcomponents.matching.wobble import WobbleMatch


class Wobble(WobbleMatch):
    """:class:`WobbleMatch` with its refractory period set once per pass."""

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


def find_spikes(recording, templates, parameters: dict, n_jobs: int) -> np.ndarray:
    """The spikes :class:`Wobble` finds with `templates` (spikeinterface ``Templates``) in
    `recording`, with wobble's `parameters` (``WobbleParameters``' fields), in 1 s chunks on
    `n_jobs` processes: spikeinterface's spike vector (``sample_index``, ``cluster_index``:
    the template's index, ...)."""
    node = Wobble(recording, templates=templates, parameters=parameters, engine="numpy")
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
