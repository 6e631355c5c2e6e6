"""The array backends a test runs on: numpy always, cupy where a GPU is visible (marked gpu)."""

from __future__ import annotations

import pytest

from neurodict.backend import CPU, get_backend

BACKENDS = [pytest.param("cpu", id="numpy"), pytest.param("gpu", id="cupy", marks=pytest.mark.gpu)]


def backend_of(name):
    """The backend called `name` ("cpu" or "gpu"); the test is skipped without a GPU."""
    if name == "cpu":
        return CPU
    try:
        return get_backend("gpu")
    except ValueError as exc:
        pytest.skip(f"no GPU backend here: {exc}")
