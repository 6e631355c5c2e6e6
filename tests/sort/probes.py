"""Recordings on a generated linear probe and contact layouts, for the sorter's tests."""

import numpy as np
import spikeinterface.core as sc
from probeinterface import generate_linear_probe


def on_linear_probe(traces: np.ndarray, fs_hz: float, pitch_um: float = 20.0):
    """`traces` (samples, M) as a recording on a line of M contacts `pitch_um` apart."""
    M = traces.shape[1]
    probe = generate_linear_probe(num_elec=M, ypitch=pitch_um)
    probe.set_device_channel_indices(np.arange(M))
    rec = sc.NumpyRecording(traces.astype(np.float32), fs_hz)
    rec.set_probe(probe, in_place=True)
    return rec


def staggered_positions(rows: int) -> np.ndarray:
    """Contact positions (2·rows, 2) of two staggered columns, 20 um apart in depth, as on a
    Neuropixels 1.0 shank: x 16 and 48 um on even rows, 0 and 32 um on odd ones."""
    r = np.arange(rows)
    x = np.where(r[:, None] % 2 == 0, [16.0, 48.0], [0.0, 32.0])
    return np.c_[x.ravel(), np.repeat(r * 20.0, 2)]
