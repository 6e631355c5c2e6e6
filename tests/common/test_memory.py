"""Freed memory handed back: the heap glibc keeps after a loop's arrays are freed, returned
by a trim. Each case runs in a fresh interpreter (glibc's mmap threshold, which decides what
the heap holds, depends on what the process freed before)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from neurodict.common import memory

LOOP = """
import numpy as np
from neurodict.common import memory
def anon_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon"):
            return int(line.split()[1]) / 1024
np.ones(1 << 20).sum()  # an 8 MB mapped block freed: glibc's threshold rises to it
before = anon_mb()
arrays = [np.ones(1 << 18) for _ in range(100)]  # 2 MB each, 200 MB, the last kept
del arrays[:-1]
{after}
print(anon_mb() - before)
"""


def _retained_mb(after: str = "") -> float:
    code = LOOP.format(after=after)
    return float(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or memory._glibc() is None, reason="glibc only"
)
def test_a_loops_freed_arrays_go_back_with_a_trim():
    assert _retained_mb() > 150  # glibc keeps the freed heap below the last array
    assert _retained_mb(after="memory.trim()") < 20
