"""Arrays in unlinked temporary files, read and written a run of rows (or an array) at a time.

A group's snippets grow with the recording (some 0.6 GB a minute on a 384-channel shank, 60 MB
on a 32-channel one); held in memory, a sort's peak grew with its length. A :class:`DiskArray`
keeps them in a file that the kernel caches as its memory allows (page cache: shared and
reclaimable, never the process's resident memory): each read copies the rows asked into memory
with ``pread``, each run of consecutive rows at once, and each write writes them back with
``pwrite``, so the process holds only the copies, a batch at a time. The file is never mapped:
a mapped file's pages count as the process's own while mapped, and a read of rows scattered
over it (a unit's spikes across the recording) faults in the pages about each row as well
(the kernel's fault-around), most of the file for a large read. The file is unlinked as it is
created, so a killed run leaves nothing behind; it lies in Python's temporary folder
(``TMPDIR``: point it at a local disk on a cluster node, not at a memory-backed ``tmpfs``,
where the file would be memory again). A :class:`DiskArrays` keeps arrays of any shape in such
a file, each written and read back whole (the join's moments of each cluster across
neighbourhoods: hundreds of MB on a 384-channel shank's ten minutes, each read a few times).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np


def _move(io, file, flat: memoryview, offset: int, what: str) -> None:
    """All of `flat` moved between it and `file` from byte `offset` by `io` (``os.preadv`` or
    ``os.pwritev``, which may move less than asked)."""
    done = 0
    while done < len(flat):
        moved = io(file.fileno(), [flat[done:]], offset + done)
        if moved == 0:
            raise OSError(f"the file of {what} ended at byte {offset + done}")
        done += moved


class DiskArray:
    """An array of `shape` and `dtype` (zeros at first) read and written by numpy indexing:
    ``a[key]`` is a copy in memory, ``a[key] = value`` writes through to the file. The key's
    first index picks rows (an integer, a slice, an integer array or a mask); the rows it names
    are read whole, then the rest of the key indexes them as numpy would.

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

    @property
    def _row_bytes(self) -> int:
        return int(np.prod(self.shape[1:])) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def _rows(self, key) -> tuple[np.ndarray, tuple]:
        """The rows `key` names, each once, and the key on them (its first index replaced by
        each row's place among them)."""
        key = key if isinstance(key, tuple) else (key,)
        if not key or key[0] is Ellipsis:
            return np.arange(len(self)), (slice(None), *key)
        first, rest = key[0], key[1:]
        if isinstance(first, slice):
            return np.arange(len(self))[first], (slice(None), *rest)
        first = np.asarray(first)
        if first.dtype == bool:
            return np.flatnonzero(first), (slice(None), *rest)
        if ((first < -len(self)) | (first >= len(self))).any():
            raise IndexError(f"row index out of range for {len(self)} rows")
        rows, place = np.unique(first % max(len(self), 1), return_inverse=True)
        return rows, (place.reshape(first.shape), *rest)

    def _each_run(self, io, flat: memoryview, rows: np.ndarray) -> None:
        """Each run of consecutive `rows` moved at once between the file and its place in
        `flat` (the bytes of an array of those rows) by `io` (``os.preadv`` or
        ``os.pwritev``)."""
        if rows.size == 0:
            return
        b = self._row_bytes
        cut = np.flatnonzero(np.diff(rows) != 1) + 1
        starts, stops = np.r_[0, cut], np.r_[cut, rows.size]
        for i, j, row in zip(starts.tolist(), stops.tolist(), rows[starts].tolist(), strict=True):
            _move(io, self._file, flat[i * b : j * b], row * b, f"a {self.shape} array")

    def _read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((rows.size, *self.shape[1:]), self.dtype)
        self._each_run(os.preadv, memoryview(out.reshape(-1).view(np.uint8)), rows)
        return out

    def __getitem__(self, key) -> np.ndarray:
        rows, on_rows = self._rows(key)
        return self._read(rows)[on_rows]

    def __setitem__(self, key, value) -> None:
        rows, on_rows = self._rows(key)
        if rows.size == 0:
            return
        if all(k is Ellipsis or (isinstance(k, slice) and k == slice(None)) for k in on_rows[1:]):
            part = np.empty((rows.size, *self.shape[1:]), self.dtype)  # every value is written
        else:
            part = self._read(rows)
        part[on_rows] = value
        self._each_run(os.pwritev, memoryview(part.reshape(-1).view(np.uint8)), rows)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[...]
        return whole if dtype is None else whole.astype(dtype)

    def shrink(self, n: int) -> None:
        """Keep the first `n` rows (the file truncated to them)."""
        self.shape = (int(n), *self.shape[1:])
        self._file.truncate(self.nbytes)


class DiskArrays:
    """Arrays of any shape, each kept whole under a key in one file (appended as they come):
    ``a[key] = array`` writes it, ``a[key]`` reads a copy into memory, ``del a[key]`` forgets
    it (its bytes stay in the file until the object is dropped)."""

    def __init__(self):
        self._file = tempfile.TemporaryFile()
        self._end = 0
        self._where: dict = {}  # key -> (offset, shape, dtype)

    def __setitem__(self, key, value: np.ndarray) -> None:
        value = np.ascontiguousarray(value)
        flat = memoryview(value.reshape(-1).view(np.uint8))
        _move(os.pwritev, self._file, flat, self._end, f"array {key!r}")
        self._where[key] = self._end, value.shape, value.dtype
        self._end += value.nbytes

    def __getitem__(self, key) -> np.ndarray:
        offset, shape, dtype = self._where[key]
        out = np.empty(shape, dtype)
        flat = memoryview(out.reshape(-1).view(np.uint8))
        _move(os.preadv, self._file, flat, offset, f"array {key!r}")
        return out

    def __delitem__(self, key) -> None:
        del self._where[key]

    def keys(self):
        return self._where.keys()
