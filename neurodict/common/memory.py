"""Freed memory handed back to the system, where the C library's allocator is glibc's.

glibc's ``malloc`` serves a request under its mmap threshold from heaps it keeps: a freed
block goes back to its heap, not to the system, and the threshold rises to the size of each
mapped block freed (up to 32 MB), so the arrays of a loop over batches (a few MB each) come
to live in heaps that stay as large as their busiest moment. At the end of its first learning
on two minutes of a 384-channel shank the sorter's process held 0.64 GB of freed heap (1.1
GB resident for 0.26 GB in use). :func:`map_large_arrays` fixes the threshold, so that every
block of :data:`MMAP_THRESHOLD_BYTES` or more is a mapping of its own, returned when freed;
:func:`trim` returns the free pages of the heaps (both measured in ``docs/benchmarks.md``).
Elsewhere (macOS, musl) both do nothing.
"""

from __future__ import annotations

import ctypes

MMAP_THRESHOLD_BYTES = 1 << 20  # blocks of 1 MiB and more: a mapping each
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


def _glibc():
    """The process's C library where it has glibc's ``mallopt`` and ``malloc_trim``."""
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def map_large_arrays(threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> None:
    """Serve every block of `threshold_bytes` or more from a mapping of its own, for the rest
    of the process (a fixed threshold, which glibc no longer raises)."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, int(threshold_bytes))


def trim() -> None:
    """Return the free pages of every heap to the system (between steps that free much)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
