"""The array backend: numpy (+ scipy.fft) on CPU or cupy (+ cupyx.scipy.fft) on a GPU.

Code that should run on both is written once against the namespace returned by
:func:`get_backend`. ``"auto"`` takes the GPU when cupy and a device are present and falls back to
the CPU with one log line; ``"gpu"`` without a GPU is an error naming the setting.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
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
    the CPU a batch would run each problem until the slowest has converged (1).

    `graphs`: whether :meth:`replayable` records a solver iteration's work after its gradient
    once as a CUDA graph and replays it (one launch for its kernels, which the host otherwise
    issues one by one at some microseconds each)."""

    name: str
    xp: ModuleType
    fft: ModuleType
    sync_every: int = 1
    batch_problems: int = 1
    graphs: bool = False

    def asarray(self, a, dtype=None):
        """`a` on this backend's device."""
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a) -> np.ndarray:
        """`a` as a numpy array on the host."""
        return a.get() if hasattr(a, "get") else np.asarray(a)

    def replayable(self, block: Callable[[], None]) -> Callable[[], None]:
        """`block` (no arguments; its effects written in place into arrays that outlive it,
        the same kernels on every call) as a callable that does the same: a :class:`CudaGraph`
        where `graphs` is set, else `block` itself."""
        return CudaGraph(block) if self.graphs else block


class CudaGraph:
    """A block of GPU work recorded once as a CUDA graph and replayed.

    The first call runs the block as it is (compiling its kernels and creating what it
    caches, such as FFT plans); the second records it on the recording stream and launches
    the record; later calls launch it again. The record holds the device addresses of the
    block's temporaries: cupy's pool keeps a stream's freed memory for that stream's
    allocations, and only recorded blocks allocate on the recording stream; they run one after
    another there and write their temporaries before reading them, so they share that memory.
    Where recording fails (an operation a graph cannot hold, such as a host read), the block
    runs as it is, and so does every block after it in this process, with one warning."""

    failed: str | None = None  # why the first record that failed did, in this process

    def __init__(self, block: Callable[[], None]):
        self.block, self.graph, self.calls = block, None, 0
        self.stream = _recording_stream()

    def __call__(self) -> None:
        self.calls += 1
        if self.graph is not None:
            self.graph.launch(self.stream)
            return
        with self.stream:
            if self.calls == 2 and CudaGraph.failed is None:
                try:
                    self.stream.begin_capture()
                    try:
                        self.block()
                    finally:
                        graph = self.stream.end_capture()
                except Exception as exc:  # recorded nothing: the block runs as it is
                    CudaGraph.failed = str(exc)
                    log.warning("CUDA graph not recorded (%s); blocks run uncaptured", exc)
                else:
                    self.graph = graph
                    self.graph.launch(self.stream)
                    return
            self.block()


CPU = Backend("cpu", np, scipy.fft)


@functools.cache
def _recording_stream():
    """The one stream CUDA graphs are recorded and replayed on (blocking: ordered with the
    default stream's work)."""
    import cupy

    return cupy.cuda.Stream()


def _gpu() -> Backend | None:
    try:
        import cupy
        import cupyx.scipy.fft

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
    except Exception:  # cupy missing, or no driver / device
        return None
    return Backend("gpu", cupy, cupyx.scipy.fft, sync_every=16, batch_problems=16, graphs=True)


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
