"""The kernel beta process over probe position: atoms local in space (MODELS.md §1b).

Ren, Wang, Carin, Dunson (NeurIPS 2011): each atom ``k`` has a place ``x*_k`` on the probe and
a kernel width ``ψ_k``; what stands at position ``x`` considers the atom with probability

    κ(x, x*_k; ψ_k) = exp(−‖x − x*_k‖² / (2 ψ_k²))

and, if it does, uses it as in the beta–Bernoulli process (``z_k``). ``ψ = ∞`` (``κ = 1``) is
the beta–Bernoulli process itself.

Choices of ours, each a parameter or stated here:

- **Who considers.** A cluster, not a spike: ``c_{h,k} ~ Bernoulli(κ(ℓ_h, x*_k; ψ_k))``, and
  spike ``i`` of cluster ``h`` uses atom ``k`` where ``z_k c_{h,k}``. A neuron's spikes come
  from one place, and with one consider pattern per cluster the label step keeps its
  features integrated out exactly (the pattern masks the cluster's map from features to the
  atoms' span, :func:`neurodict.sort.model.quadratic_forms`), where a pattern per spike
  would give every spike its own marginal under every cluster.
- **The covariate.** Each spike's position ``x_i`` is the centre of the chain's channels
  weighed by the square of its snippet's energy above the noise's (:func:`spike_positions`);
  a cluster's ``ℓ_h`` is the mean of its spikes' (held fixed while the labels are drawn: one
  spike moves it by ``1/n_h`` of its distance). A cluster without spikes considers every
  atom, so that a new cluster's first spikes are explained as the beta–Bernoulli model would
  (an atom in use that no cluster considers has no data and is drawn from its prior, which
  holds it at about unit norm: :meth:`neurodict.sort.model.Sampler._sample_ard`; under an
  ARD prior of ``a = b = 10⁻³`` its scale wandered, and while it was large a new cluster
  paid for considering it: docs/benchmarks.md, "An atom no cluster considers" and "A proper
  ARD prior").
- **The kernel** is Gaussian in micrometres, ``ψ`` on the grid ``sorting.kernel_widths_um``
  below the chain's span, plus ``∞``; ``x*_k`` on the chain's channel positions; the prior on
  both uniform over the grid. The grid is empty by default (the beta–Bernoulli process;
  docs/benchmarks.md, "The kernel beta process by default" and "An atom no cluster
  considers", say why). A chain whose channels span less than the smallest width has no
  kernel, and a group held by one neighbourhood (a tetrode) gives its chain no positions: the
  sampler is the beta–Bernoulli one, draw for draw.
- **The conditionals.** Each atom's place, width and consider indicators are drawn as a block
  (:meth:`Kernel.sample`), each cluster's evidence for considering the atom computed with the
  atom's features integrated out under the cluster's conditional ``s_{i,m,k} | s_{i,m,−k} ~
  N(m_{i,m}, 1/(u_i Λ_{kk}))`` (:func:`consider_log_odds`); then the features given ``c``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import cdist


def spike_positions(x: np.ndarray, channel_um: np.ndarray) -> np.ndarray:
    """Each snippet's position (N, 2): the centre of mass of the channels' positions
    `channel_um` (M, 2) weighted by the square of the snippet's energy above the noise's,
    ``(Σ_t x_{i,m}(t)² − T)²`` where positive (snippets `x` (N, M, T) in noise units); the
    channel of largest energy where no channel stands above the noise. Squared: the noise's
    excess on the channels a spike does not reach (about ``√(2T)`` each) would otherwise
    pull every position towards the middle of a wide neighbourhood (units 80 and 540 um along
    a 620-um line of 32 channels came out at 149 and 486 um; squared, at 85 and 519)."""
    N, M, T = x.shape
    energy = np.einsum("imt,imt->im", x, x)
    weight = np.maximum(energy - T, 0.0) ** 2
    quiet = weight.sum(1) == 0
    weight[quiet, energy[quiet].argmax(1)] = 1.0
    return (weight @ channel_um) / weight.sum(1, keepdims=True)


def kernel(distance_um: np.ndarray, width_um: np.ndarray) -> np.ndarray:
    """``κ = exp(−d² / (2ψ²))``, 1 where ``ψ = ∞``; broadcasts."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isinf(width_um), 1.0, np.exp(-0.5 * (distance_um / width_um) ** 2))


@dataclass(frozen=True)
class Kernel:
    """The kernel's grid on one chain: atoms' places `places_um` (G, 2) and widths `widths_um`
    (W,), ``∞`` last."""

    places_um: np.ndarray
    widths_um: np.ndarray

    @classmethod
    def of_chain(cls, channel_um: np.ndarray, widths_um: list[float]) -> Kernel | None:
        """The grid of a chain on channels at `channel_um` (M, 2): the widths of `widths_um`
        below the channels' span and ``∞``; None where none is (the beta–Bernoulli process)."""
        span = cdist(channel_um, channel_um).max() if len(channel_um) else 0.0
        finite = np.sort([w for w in widths_um if w < span])
        if finite.size == 0:
            return None
        return cls(np.asarray(channel_um, float), np.r_[finite, np.inf])

    def log_kernel(self, where_um: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``log κ`` and ``log(1 − κ)`` of positions `where_um` (H, 2) at every point of the
        grid, (H, G·W) each (place-major: index ``place · W + width``)."""
        kappa = kernel(cdist(where_um, self.places_um)[:, :, None], self.widths_um)
        with np.errstate(divide="ignore"):
            return np.log(kappa).reshape(len(where_um), -1), np.log1p(-kappa).reshape(
                len(where_um), -1
            )

    def sample(
        self,
        rng: np.random.Generator,
        log_on: np.ndarray,
        log_off: np.ndarray,
        evidence: np.ndarray | None = None,
    ) -> tuple[int, int, np.ndarray]:
        """One atom's place, width and every cluster's consider indicator, as a block: the
        grid point from ``p(x*, ψ | ·) ∝ Π_h (κ_h e^{ℓ_h} + 1 − κ_h)`` (uniform prior; the
        indicators summed out), then ``c_h ~ Bernoulli`` of log-odds ``ℓ_h + log κ_h −
        log(1 − κ_h)`` there. `log_on`, `log_off`: :meth:`log_kernel` of the clusters (H, G·W);
        `evidence` ``ℓ`` (H,): each cluster's log-likelihood ratio of considering the atom
        against not (None: an atom in no use, whose indicators have the prior alone).
        Returns the place and width (grid indices) and the indicators (H,) bool. Drawn
        jointly because ``ψ = ∞`` forces every ``c = 1`` and every ``c = 1`` favours ``ψ =
        ∞``: a chain drawing the two in turn would never leave it."""
        ell = np.zeros(log_on.shape[0]) if evidence is None else evidence
        log_p = np.logaddexp(log_on + ell[:, None], log_off).sum(0)
        p = np.exp(log_p - log_p.max())
        point = int(np.searchsorted(np.cumsum(p), rng.random() * p.sum(), side="right"))
        point = min(point, p.size - 1)
        logit = ell + log_on[:, point] - log_off[:, point]
        q = rng.random(ell.size)
        with np.errstate(divide="ignore"):
            on = np.log(q) - np.log1p(-q) < logit
        W = self.widths_um.size
        return point // W, point % W, on


def consider_log_odds(
    h: np.ndarray, g: np.ndarray, u: np.ndarray, cond_mean: np.ndarray, lam_kk: np.ndarray
) -> np.ndarray:
    """``log p(x_i | c = 1) / p(x_i | c = 0)`` of each spike (N,) for one atom, its features
    integrated out: per channel, with ``q = h/√g`` (`h` (N, M) the projection ``a'Φr`` of the
    residual without the atom, `g` (M,) ``a'Φa``: the residual's coordinate along the atom in
    noise units), ``p = m√g`` (`cond_mean` (N, M) the features' conditional mean ``m``) and
    ``Λ_kk`` (`lam_kk` (N, M); the features' conditional variance ``1/(u Λ_kk)``),
    ``u (½ q² − ½ (q − p)² Λ_kk/(Λ_kk + g)) − ½ log(1 + g/Λ_kk)``, summed over the channels
    (the evidence of ``r ~ N(a s, (uΦ)^{-1})``, ``s ~ N(m, 1/(uΛ_kk))`` against ``r ~ N(0,
    (uΦ)^{-1})``; 0 on a channel where the atom's gain is 0). In this form nothing large
    cancels: an atom that no cluster considers has no data, and under an ARD prior of ``a =
    b = 10⁻³`` its scale wandered (to ``g`` about 1e21 on the 10-minute np384), where the
    expanded ``m u h − ½ m² u g + ½ u (h − m g)²/(Λ_kk + g)`` is the difference of terms of
    that size, and its rounding decided the indicators (docs/benchmarks.md, "An atom no
    cluster considers")."""
    on = g > 0
    root = np.sqrt(np.where(on, g, 1.0))[None]
    q, p = np.where(on, h / root, 0.0), np.where(on, cond_mean * root, 0.0)
    terms = u[:, None] * (0.5 * q**2 - 0.5 * (q - p) ** 2 * lam_kk / (lam_kk + g))
    return (terms - 0.5 * np.log1p(g / lam_kk)).sum(1)
