"""Arrays in an unlinked temporary file, in memory only while read or written."""

from __future__ import annotations

import os

import numpy as np
import pytest

from neurodict.sort import local
from neurodict.sort.disk import DiskArray, DiskArrays
from neurodict.sort.local import LocalSnippets


def _mapped(a: DiskArray | DiskArrays) -> bool:
    """Whether this process maps `a`'s file (its inode in /proc/self/maps)."""
    inode = os.fstat(a._file.fileno()).st_ino
    with open("/proc/self/maps") as maps:
        return any(line.split()[4] == str(inode) for line in maps if len(line.split()) > 4)


def test_a_disk_array_reads_back_what_was_written_and_leaves_no_mapping_open():
    rng = np.random.default_rng(0)
    full = rng.standard_normal((40, 3, 5)).astype(np.float32)
    a = DiskArray(full.shape)
    assert os.fstat(a._file.fileno()).st_nlink == 0  # no name: a killed run leaves nothing
    np.testing.assert_array_equal(a[...], np.zeros_like(full))
    for start in range(0, 40, 7):  # written in batches, as the cut writes its snippets
        a[start : start + 7] = full[start : start + 7]
    assert not _mapped(a)
    rows = np.array([39, 2, 2, 17])
    np.testing.assert_array_equal(a[rows[:, None], [2, 0]], full[rows[:, None], [2, 0]])
    part = a[3:9]  # a slice is a copy, not a view on the file
    part[:] = 0
    np.testing.assert_array_equal(a[3:9], full[3:9])
    np.testing.assert_array_equal(np.asarray(a), full)
    assert not _mapped(a)
    a.shrink(10)
    assert a.shape == (10, 3, 5) and len(a) == 10
    assert a.nbytes == os.fstat(a._file.fileno()).st_size == 10 * 15 * 4
    np.testing.assert_array_equal(a[...], full[:10])
    empty = DiskArray((0, 3, 5))
    assert empty[...].shape == (0, 3, 5)
    empty[...] = 1.0


def test_disk_arrays_read_back_each_array_written_whole_from_one_unnamed_file():
    """Arrays of several shapes and dtypes kept by key, each read back as written (a copy),
    appended to one file without a name and never mapped; a forgotten key is gone, the others
    read as before."""
    rng = np.random.default_rng(1)
    kept = {
        3: rng.standard_normal((96, 96)).astype(np.float32),
        "b": rng.standard_normal(7),
        (1, 2): rng.integers(0, 9, (2, 3, 4)),
        7: np.zeros((0, 5), np.float32),
    }
    a = DiskArrays()
    for key, value in kept.items():
        a[key] = value
    assert os.fstat(a._file.fileno()).st_nlink == 0
    assert os.fstat(a._file.fileno()).st_size == sum(v.nbytes for v in kept.values())
    assert not _mapped(a) and set(a.keys()) == set(kept)
    for key, value in kept.items():
        got = a[key]
        assert got.dtype == value.dtype
        np.testing.assert_array_equal(got, value)
    a[3][:] = 0  # a copy, not a view on the file
    np.testing.assert_array_equal(a[3], kept[3])
    a["f"] = kept[3].T  # not contiguous: written as its values
    np.testing.assert_array_equal(a["f"], kept[3].T)
    del a["b"]
    assert "b" not in a.keys()
    with pytest.raises(KeyError):
        a["b"]
    np.testing.assert_array_equal(a[(1, 2)], kept[(1, 2)])


def test_a_disk_array_is_indexed_and_assigned_as_numpy_would():
    """Rows named by an integer, a slice (with a step, backwards), an integer array (repeated,
    negative, in any order, any shape) or a mask, then the rest of the key on them; a partial
    assignment leaves the rest of its rows as they were; a row past the end is an error."""
    rng = np.random.default_rng(2)
    full = rng.standard_normal((30, 4, 3)).astype(np.float32)
    a = DiskArray(full.shape)
    a[...] = full
    rows = np.array([[5, 6, 7], [29, -1, 0]])
    keys = [
        4, np.int64(4), slice(2, 20, 3), slice(None, None, -2), rows, (rows, 2), (rows, [1, 1, 0]),
        (np.array([3, 4, 5, 9])[:, None], [[0, 1], [3, 3], [2, 0], [1, 1]]), full[:, 0, 0] > 0,
        (slice(8, 12), Ellipsis, 1), (7, slice(1, 3), [0, 2]),
    ]  # fmt: skip
    for key in keys:
        np.testing.assert_array_equal(a[key], full[key])
    for key in [(rows, 1), (slice(3, 9, 2), [0, 3]), np.array([8, 2, 8]), (12, 2, 1)]:
        value = rng.standard_normal(np.shape(full[key])).astype(np.float32)
        a[key] = full[key] = value
        np.testing.assert_array_equal(a[...], full)
    assert not _mapped(a)
    for bad in [30, -31, np.array([0, 30])]:
        with pytest.raises(IndexError, match="row index out of range for 30 rows"):
            a[bad]


def test_snippets_in_a_file_read_as_those_in_memory(monkeypatch):
    """Snippets held on two stores, in memory and in a file: the same rows on the same
    channels, and the same batches (a few snippets at a time) in order."""
    rng = np.random.default_rng(1)
    stores = np.array([[0, 1, 2, 3], [2, 3, 4, 5]])
    store = rng.integers(0, 2, 30)
    values = rng.standard_normal((30, 4, 5)).astype(np.float32)
    disk = DiskArray(values.shape)
    disk[...] = values
    memory, filed = (LocalSnippets(v, stores, store, 6) for v in (values, disk))
    rows = np.flatnonzero(store == 1)[::-1]
    np.testing.assert_array_equal(filed.take(rows, [5, 2]), memory.take(rows, [5, 2]))
    np.testing.assert_array_equal(filed.held(rows), [2, 3, 4, 5])
    monkeypatch.setattr(local, "READ_VALUES", 7 * 4 * 5)
    batches = list(filed.batches())
    assert [b[0] for b in batches] == [slice(s, s + 7) for s in range(0, 30, 7)]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), values)
