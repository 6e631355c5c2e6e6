"""The array backend: numpy (+ scipy.fft) on CPU or cupy (+ cupyx.scipy.fft) on a GPU.

Code that should run on both is written once against the namespace returned by
:func:`get_backend`. ``"auto"`` takes the GPU when cupy and a device are present and falls back to
the CPU with one log line; ``"gpu"`` without a GPU is an error naming the setting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import scipy.fft

from neurodict.common.errors import InputError

log = logging.getLogger(__name__)
CHOICES = ("auto", "cpu", "gpu")


@dataclass(frozen=True)
class Backend:
    """An array module and its FFT module; `name` is "cpu" or "gpu".

    `sync_every`: iterations an iterative solver runs between host reads of its stopping test.
    A read is free on the CPU (1); on a GPU it waits for the device's queue to drain, and the
    device then idles while the host issues the next kernels (16).

    `batch_problems`: independent problems solved as one batch. A GPU's small problems are
    bound by the host issuing kernels, so a batch costs about what one problem costs (16); on
    the CPU a batch would run each problem until the slowest has converged (1)."""

    name: str
    xp: ModuleType
    fft: ModuleType
    sync_every: int = 1
    batch_problems: int = 1

    def asarray(self, a, dtype=None):
        """`a` on this backend's device."""
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a) -> np.ndarray:
        """`a` as a numpy array on the host."""
        return a.get() if hasattr(a, "get") else np.asarray(a)


CPU = Backend("cpu", np, scipy.fft)


def _gpu() -> Backend | None:
    try:
        import cupy
        import cupyx.scipy.fft

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
    except Exception:  # cupy missing, or no driver / device
        return None
    return Backend("gpu", cupy, cupyx.scipy.fft, sync_every=16, batch_problems=16)


def get_backend(choice: str = "auto") -> Backend:
    """The backend for the configuration value ``backend`` (auto | cpu | gpu).

    Raises
    ------
    ValueError
        For an unknown choice, or ``gpu`` where cupy or a CUDA device is missing.
    """
    if choice not in CHOICES:
        raise InputError(f"'backend': expected one of {list(CHOICES)}; got {choice!r}.")
    if choice == "cpu":
        return CPU
    gpu = _gpu()
    if gpu is not None:
        return gpu
    if choice == "gpu":
        raise InputError(
            "'backend': expected a GPU for 'gpu', but cupy or a CUDA device is not "
            "available here; install the gpu extra (pip install -e '.[gpu]') on a "
            "GPU machine, or set backend: auto (falls back to CPU) or cpu."
        )
    log.info("backend auto: no GPU available (cupy or CUDA device missing); using the CPU")
    return CPU
