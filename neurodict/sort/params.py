"""The sorter's parameters: the ``sorting`` section of the configuration."""

from __future__ import annotations

from dataclasses import dataclass

from neurodict.common.units import ms_to_samples


@dataclass(frozen=True)
class SortParams:
    """The sorter's parameters: the ``sorting`` section of the configuration (described, with
    the same defaults, in config/schemas/config.schema.yaml)."""

    ms_before: float = 0.6
    ms_after: float = 1.0
    align_ms: float = 0.2
    neighbourhood_um: float = 50.0
    epoch_s: float = 60.0
    refractory_ms: float = 1.5
    max_atoms: int = 40
    max_clusters: int = 40
    n_init_clusters: int = 30
    drift: bool = True
    drift_sd: float = 0.5
    max_spikes_per_epoch: int = 1500
    n_burn: int = 40
    n_samples: int = 20
    n_keep: int = 10
    merge_every: int = 5
    merge_dprime: float = 4.0
    merge_spread_ratio: float = 2.0
    merge_dip: float = 0.3
    min_unit_spikes: int = 30
    max_unit_variance: float = 1.5
    template_matching: bool = True
    seed: int = 0

    def refractory_samples(self, fs_hz: float) -> int:
        """Δ_ref in samples: two spikes of one group closer than this never share a unit."""
        return ms_to_samples(self.refractory_ms, fs_hz)

    @classmethod
    def from_config(cls, section: dict) -> SortParams:
        """From the configuration's ``sorting`` section (keys as the fields)."""
        return cls(**section)
