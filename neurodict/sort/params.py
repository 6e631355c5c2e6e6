"""The sorter's parameters: the ``sorting`` section of the configuration."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from neurodict.common.units import ms_to_samples


@dataclass(frozen=True)
class Priors:
    """The model's hyperparameters, in whitened noise units: the ``sorting.priors`` section
    (described, with the same defaults, in the configuration schema)."""

    atoms_a: float = 1.0
    atoms_b: float = 1.0
    ard_shape: float = 1.0
    ard_rate: float = 0.025
    noise_shape: float = 1000.0
    noise_rate: float = 1000.0
    gain_sd: float = 1.0
    gamma: float = 1.0
    alpha: float = 1.0
    innovation_a: float = 1.0
    innovation_b: float = 4.0
    wishart_dof_extra: float = 2.0
    within_cluster_var: float = 1.0
    mean_var_scale: float = 4.0
    scale_dof_min: float = 1.0
    scale_dof_max: float = 1000.0


@dataclass(frozen=True)
class SortParams:
    """The sorter's parameters: the ``sorting`` section of the configuration (described, with
    the same defaults, in the configuration schema)."""

    ms_before: float = 0.6
    ms_after: float = 1.0
    align_ms: float = 0.2
    whiten_n_chunks: int = 10
    whiten_chunk_s: float = 1.0
    whiten_exclude_sigma: float = 5.0
    whiten_min_eig: float = 0.01
    neighbourhood_um: float = 50.0
    neighbourhood_spacing: float = 1.0
    min_learn_spikes: int = 20
    epoch_s: float = 60.0
    refractory_ms: float = 1.5
    max_atoms: int = 40
    kernel_widths_um: list[float] = field(default_factory=list)
    init_dictionary: str = "svd"
    dbksvd_nonzero: int = 3
    dbksvd_iterations: int = 10
    dbksvd_atom_batch: int = 8
    max_clusters: int = 40
    n_init_clusters: int = 30
    drift: bool = True
    drift_sd: float = 0.5
    heavy_tails: bool = True
    max_spikes_per_epoch: int = 1500
    max_learn_spikes: int = 10000
    n_burn: int = 40
    n_samples: int = 20
    n_keep: int = 10
    dhdp_iterations: int = 20
    split_merge_proposals: int = 50
    split_merge_axes: int = 16
    split_merge_two_means_iterations: int = 3
    split_merge_min_allocation: float = 0.001
    split_merge_neighbours: int = 10
    join_axes: int = 6
    join_epoch_s: float = 10.0
    join_max_delay_ms: float = 0.05
    presence_weight: float = 0.005
    min_unit_spikes: int = 30
    max_unit_variance: float = 1.5
    noise_unit_alpha: float = 0.001
    template_matching: bool = True
    template_max_spikes_per_epoch: int = 750
    superposition_spikes: int = 100
    peel_ms_after: float = 3.0
    match_radius_um: float = 150.0
    seed: int = 0
    priors: Priors = field(default_factory=Priors)

    def template_learning(self) -> SortParams:
        """The first learning's parameters, whose single units give the overlap pass its
        templates: at most ``template_max_spikes_per_epoch`` spikes per epoch (never more
        than the second learning's, whose labels are reported)."""
        return replace(
            self,
            max_spikes_per_epoch=min(self.max_spikes_per_epoch, self.template_max_spikes_per_epoch),
        )

    def refractory_samples(self, fs_hz: float) -> int:
        """Δ_ref in samples: two spikes of one group closer than this never share a unit."""
        return ms_to_samples(self.refractory_ms, fs_hz)

    @classmethod
    def from_config(cls, section: dict) -> SortParams:
        """From the configuration's ``sorting`` section (keys as the fields)."""
        section = dict(section)
        priors = Priors(**section.pop("priors", {}))
        return cls(**section, priors=priors)
