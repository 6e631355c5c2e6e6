"""Recordings on a generated linear probe, for the sorter's tests."""

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
