"""An array in an unlinked temporary file, in the process's memory only while read or written.

A group's snippets grow with the recording (some 0.6 GB a minute on a 384-channel shank, 60 MB
on a 32-channel one); held in memory, a sort's peak grew with its length. A :class:`DiskArray`
keeps them in a file that the kernel caches as its memory allows (page cache: shared and
reclaimable, never the process's resident memory): each read or write maps the file, copies
what is asked in or out and unmaps it, so the process holds only the copies, a batch at a time.
The file is unlinked as it is created, so a killed run leaves nothing behind; it lies in
Python's temporary folder (``TMPDIR``: point it at a local disk on a cluster node, not at a
memory-backed ``tmpfs``, where the file would be memory again).
"""

from __future__ import annotations

import mmap
import tempfile

import numpy as np


class DiskArray:
    """An array of `shape` and `dtype` (zeros at first) read and written by numpy indexing:
    ``a[key]`` is a copy in memory, ``a[key] = value`` writes through to the file.

    Parameters
    ----------
    shape : tuple of int
    dtype : numpy dtype, default float32
    """

    def __init__(self, shape: tuple[int, ...], dtype=np.float32):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self._file = tempfile.TemporaryFile()
        self._file.truncate(self.nbytes)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        if self.nbytes == 0:
            return np.zeros(self.shape, self.dtype)[key]
        with mmap.mmap(self._file.fileno(), self.nbytes) as buffer:
            whole = np.frombuffer(buffer, self.dtype).reshape(self.shape)
            part = whole[key]
            if np.may_share_memory(part, whole):  # a view (basic indexing): copied out
                part = part.copy()
            del whole  # no view left on the mapping: it can close
        return part

    def __setitem__(self, key, value) -> None:
        if self.nbytes == 0:
            return
        with mmap.mmap(self._file.fileno(), self.nbytes) as buffer:
            whole = np.frombuffer(buffer, self.dtype).reshape(self.shape)
            whole[key] = value
            del whole

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[...]
        return whole if dtype is None else whole.astype(dtype)

    def shrink(self, n: int) -> None:
        """Keep the first `n` rows (the file truncated to them)."""
        self.shape = (int(n), *self.shape[1:])
        self._file.truncate(self.nbytes)
