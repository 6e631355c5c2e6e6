"""One neighbourhood's chain learned as :func:`neurodict.sort.learn.learn` runs it."""

import numpy as np

from neurodict.sort.learn import _learn_chain, chain_inputs
from neurodict.sort.local import LocalSnippets


def learn_chain(x, samples, learnable, fs_hz, duration_s, params, channel_um=None):
    """The chain of snippets `x` (n, M, T) at `samples`, every one in its neighbourhood (its
    channels at `channel_um` (M, 2) for the kernel beta process, or None)."""
    n, M, _ = x.shape
    rows, channels = np.arange(n), np.arange(M)
    inputs = chain_inputs(
        LocalSnippets.full(x),
        rows,
        channels,
        samples,
        learnable,
        fs_hz,
        duration_s,
        params,
        False,
        channel_um,
    )
    return _learn_chain(*inputs)
