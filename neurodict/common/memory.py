"""Freed memory handed back to the system, where the C library's allocator is glibc's.

glibc's ``malloc`` serves a request under its mmap threshold from heaps it keeps: a freed
block goes back to its heap, not to the system, and the threshold rises to the size of each
mapped block freed (up to 32 MB), so the arrays of a loop over batches (a few MB each) come
to live in heaps that stay as large as their busiest moment. At the end of its first learning
on two minutes of a 384-channel shank the sorter's process held 0.64 GB of freed heap (1.1
GB resident for 0.26 GB in use). :func:`trim` returns the free pages of the heaps; the sorter
calls it between the steps that free much (measured in ``docs/benchmarks.md``).

The threshold itself is left to glibc. Fixed at 1 MiB (every block of 1 MiB or more a
mapping of its own, returned when freed), it cut a minute of a 384-channel shank's peak by 6
%, but every such array was then fresh pages, faulted in and zeroed on first touch, however
often a loop allocated it again: the sampler's sweeps and the labelling's batches allocate
the same few-MB temporaries thousands of times, and a 64-channel probe's five minutes spent
35 s more in the kernel (61 s of system time against 26 s, 14 % of the sort's wall time).
Elsewhere (macOS, musl) :func:`trim` does nothing.
"""

from __future__ import annotations

import ctypes


def _glibc():
    """The process's C library where it has glibc's ``malloc_trim``."""
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "malloc_trim") else None


def trim() -> None:
    """Return the free pages of every heap to the system (between steps that free much)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
