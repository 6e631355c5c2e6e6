"""``backend: auto`` for the dictionaries: the cost model's counts and the choice it makes."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.fft

from neurodict import backend
from neurodict.backend import Backend
from neurodict.lfpdict import cost, model
from neurodict.lfpdict.estimator import SpikeLFPDictionary
from neurodict.lfpdict.scoring import heldout_scores
from tests.lfpdict.test_model import planted

SMALL = dict(
    lag_minus_ms=50.0,
    lag_plus_ms=50.0,
    n_atoms=(4, 6),
    n_folds=3,
    n_outer=1,  # a learning that cannot stop early: its iterations are all allowed
    n_inner=30,
    lambda_fractions=(0.1, 0.02),
    n_null=2,
)


def test_the_cost_model_counts_every_solver_iteration_a_fit_may_run(monkeypatch):
    """The iterations the model counts are those the fit and its scoring allow their solvers
    (coefficients and atoms), fit by fit."""
    allowed = []
    fista = model.fista

    def counting(*args, **kwargs):
        allowed.append(args[6])
        return fista(*args, **kwargs)

    monkeypatch.setattr(model, "fista", counting)
    spikes, y, _, unit_regions, regions = planted(N=5, T=60_000)
    est = SpikeLFPDictionary(1000.0, backend="cpu", **SMALL).fit(spikes, y, unit_regions, regions)
    heldout_scores(est, spikes, y, regions)
    iterations, pass_bins = cost.fit_counts(est, y.shape[1])
    assert sum(allowed) == iterations
    assert pass_bins == 3 * y.shape[1]


@pytest.mark.parametrize("faster", ["gpu", "cpu"])
def test_auto_takes_the_backend_expected_first_and_says_so(monkeypatch, caplog, faster):
    fake_gpu = Backend("gpu", np, scipy.fft, sync_every=16)  # numpy standing in for cupy
    monkeypatch.setattr(backend, "_gpu", lambda: fake_gpu)
    seconds = {faster: 10.0, ({"gpu", "cpu"} - {faster}).pop(): 30.0}
    monkeypatch.setattr(cost, "expected_s", lambda be, *args: seconds[be.name])
    spikes, y, _, unit_regions, regions = planted(N=3, T=30_000)
    est = SpikeLFPDictionary(1000.0, backend="auto", **SMALL | {"n_atoms": 4})
    with caplog.at_level(logging.INFO, logger="neurodict"):
        est.fit(spikes, y, unit_regions, regions)
    assert est.backend_ == faster
    assert est.backend_costs_ == seconds
    assert [r.getMessage() for r in caplog.records] == [
        f"backend auto: expected {seconds['gpu']:.0f} s on the GPU, {seconds['cpu']:.0f} s on "
        f"the CPU (cost model timed here at 3 units x 2 regions x 30000 bins); using the "
        f"{faster.upper()}"
    ]


def test_unit_costs_are_measured_at_the_fit_size():
    """Both unit costs run on the fit's shapes and come back as positive seconds."""
    be = backend.CPU
    assert 0 < cost.iteration_s(be, 10, 6, 9, "float32") < 1
    assert 0 < cost.bin_s(be, 10, 3, 50, 50, "float32") < 1e-3
