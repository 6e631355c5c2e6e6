"""What produced an output: the step, its resolved parameters, package versions, host, run time."""

from __future__ import annotations

import platform
import time


def provenance(step: str, params: dict, started: float) -> dict:
    """What produced an output: step, resolved parameters, package versions, host, run time."""
    import numpy
    import spikeinterface

    from neurodict._version import __version__

    return {
        "step": step,
        "params": params,
        "neurodict": __version__,
        "spikeinterface": spikeinterface.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_s": round(time.time() - started, 3),
    }
