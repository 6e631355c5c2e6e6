"""neurodict: multi-region electrophysiology from raw voltage to spike->LFP dictionaries.

References
----------
Chen, Carlson, Carin, "On the Analysis of Multi-Channel Neural Spike Data", NeurIPS 2011.
Carlson et al., "Multichannel Electrophysiological Spike Sorting via Joint Dictionary Learning &
Mixture Modeling", IEEE TBME 2013.
Carlson, Schaich Borg, Dzirasa, Carin, "On the relations of LFPs & Neural Spike Trains",
NeurIPS 2014.
"""

from neurodict._version import __version__  # noqa: F401

# `spikeinterface.sorters.run_sorter("neurodict", ...)` works once neurodict is imported.
from neurodict.sort.spikeinterface_sorter import register as _register_sorter  # noqa: E402

_register_sorter()
