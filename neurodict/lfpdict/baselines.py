"""Baselines fitted on the same statistics: free filters by ridge regression (a Wiener filter) and
spike-triggered averages scaled by least squares.

Both use the centred Gram operator ``G~ f = G f - g (g^T f) / n`` and target ``S~ = S - g ysum / n``
(the intercept minimised out), so they see exactly the data the dictionary model sees.
"""

from __future__ import annotations

from neurodict.backend import Backend
from neurodict.lfpdict.evaluate import ToeplitzGram
from neurodict.lfpdict.stats import SegmentStats


def centred(be: Backend, stats: SegmentStats, gram: ToeplitzGram):
    """The centred Gram operator (F -> G~ F) and target S~ of one set of statistics."""
    xp = be.xp
    n = stats.n_samples

    def apply(F):
        gF = xp.einsum("nl,nrl->r", stats.g, F)
        return gram @ F - stats.g[:, None, :] * gF[None, :, None] / n

    return apply, stats.S - stats.g[:, None, :] * stats.ysum[None, :, None] / n


def wiener(
    be: Backend,
    stats: SegmentStats,
    alpha,
    mask=None,
    gram: ToeplitzGram | None = None,
    n_iter: int = 300,
    tol: float = 1e-4,
    F0=None,
):
    """Ridge filters: argmin_f ||y - c - sum_n u_n * f_n||^2 / n + alpha ||f||^2, per region.

    Solved by conjugate gradients on (G~ / n + alpha I) f = S~ / n, one independent system per
    region (columns solved together); the stopping test is read every ``be.sync_every``
    iterations.

    Parameters
    ----------
    alpha : array of shape (R,)
    mask : array of shape (N, R), optional
        Units allowed to predict each region.
    F0 : array of shape (N, R, L), optional
        Start of the conjugate gradients (the solution at a neighbouring alpha on a path).

    Returns
    -------
    F : array of shape (N, R, L)
    """
    xp = be.xp
    n = stats.n_samples
    apply, target = centred(be, stats, gram or ToeplitzGram(be, stats))
    m = 1.0 if mask is None else mask[:, :, None].astype(target.dtype)

    def op(F):
        return m * apply(m * F) / n + alpha[None, :, None] * F

    b = m * target / n
    F = xp.zeros_like(b) if F0 is None else m * F0
    r = b - op(F)
    p = r
    rs = (r * r).sum(axis=(0, 2))
    b_norm = xp.sqrt((b * b).sum(axis=(0, 2))) + 1e-30
    for it in range(1, n_iter + 1):
        Ap = op(p)
        step = rs / ((p * Ap).sum(axis=(0, 2)) + 1e-30)
        F = F + step[None, :, None] * p
        r = r - step[None, :, None] * Ap
        rs_new = (r * r).sum(axis=(0, 2))
        if it % be.sync_every == 0 and bool((xp.sqrt(rs_new) <= tol * b_norm).all()):
            break
        p = r + (rs_new / (rs + 1e-30))[None, :, None] * p
        rs = rs_new
    return F


def sta(be: Backend, stats: SegmentStats, mask=None, gram: ToeplitzGram | None = None):
    """Spike-triggered average filters scaled per region by least squares.

    ``sta[n, r] = S~[n, r] / count_n``; the region's prediction ``p_r = sum_n u_n * sta[n, r]``
    is scaled by ``a_r = <p_r, y~_r> / <p_r, p_r>``, both from the statistics.

    Returns
    -------
    F : array of shape (N, R, L)
    """
    xp = be.xp
    apply, target = centred(be, stats, gram or ToeplitzGram(be, stats))
    counts = xp.maximum(stats.g.max(axis=1), 1)  # g[n, tau = 0] counts every spike of unit n
    F = target / counts[:, None, None]
    if mask is not None:
        F = F * mask[:, :, None]
    num = (F * target).sum(axis=(0, 2))
    den = (F * apply(F)).sum(axis=(0, 2))
    return F * (num / xp.where(den > 0, den, 1))[None, :, None]
