"""A run's metric as per-example values, for tests that need one number per example (`analysis.stats.crossed`).

For a mean of per-example scores these are the scores. For a corpus metric (macro-F1, corpus BLEU:
sufficient statistics `[..., n, d]` + `finalize`, see `analysis.stats.sufficient`) they are pseudo-values:
the influence (infinitesimal-jackknife) ones by default, or the leave-one-out jackknife's.
`lattice_step` finds the grid 0/1 or integer scores live on (ties between seeds are then frequent).
"""

from __future__ import annotations

import numpy as np

from analysis.stats.sufficient import Finalize


def influence_pseudo_values(stats: np.ndarray, finalize: Finalize) -> tuple[np.ndarray, np.ndarray]:
    """Per-run scores `[...]` and influence pseudo-values `[..., n]` of statistics `[..., n, d]`.

    psi_i = theta + grad f(T) . (n x_i - T), T the summed statistics: the linearisation of the metric
    (the infinitesimal jackknife). They average exactly to theta, and var_i(psi) / n is the delta-method
    variance; for a mean of scores psi_i is example i's score. The gradient is a central difference
    with a step of one average example (one-sided where a count would turn negative), which is
    2d metric evaluations instead of the jackknife's n.
    """
    stats = np.asarray(stats, dtype=np.float64)
    n, n_stats = stats.shape[-2], stats.shape[-1]
    totals = stats.sum(axis=-2)
    theta = finalize(totals)
    step = np.abs(stats).mean(axis=-2)  # [..., d]
    down = np.where((stats >= 0).all(axis=-2), np.minimum(step, totals), step)
    gradient = np.zeros(totals.shape)
    for column in range(n_stats):
        unit = np.zeros(n_stats)
        unit[column] = 1.0
        up = finalize(totals + step[..., column, None] * unit)
        below = finalize(totals - down[..., column, None] * unit)
        width = step[..., column] + down[..., column]
        with np.errstate(divide="ignore", invalid="ignore"):
            gradient[..., column] = np.where(width > 0, (up - below) / np.where(width > 0, width, 1.0), 0.0)
    centred = n * stats - totals[..., None, :]
    return theta, theta[..., None] + np.einsum("...id,...d->...i", centred, gradient)


def jackknife_pseudo_values(stats: np.ndarray, finalize: Finalize) -> tuple[np.ndarray, np.ndarray]:
    """Per-run scores `[...]` and leave-one-out pseudo-values `[..., n]`: psi_i = n theta - (n - 1) theta_(-i).

    They average to the jackknife's bias-corrected metric, whose variance can exceed the plain
    metric's: near BLEU's brevity-penalty kink (hypothesis length ~ reference length) the plain
    delta's variance was 0.70-0.77 of theirs, so the test was conservative (A/A 0.02-0.035).
    """
    stats = np.asarray(stats, dtype=np.float64)
    n = stats.shape[-2]
    totals = stats.sum(axis=-2)
    theta = finalize(totals)
    return theta, n * theta[..., None] - (n - 1) * finalize(totals[..., None, :] - stats)


def lattice_step(values: np.ndarray) -> float:
    """The step u of the lattice u * Z that holds every value (1 for 0/1 or integer scores), else 0.

    Tried: the smallest nonzero |value|, and 1; values within 1e-9 of the lattice count as on it.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    nonzero = np.abs(values[values != 0])
    if nonzero.size == 0:
        return 0.0
    for step in (float(nonzero.min()), 1.0):
        ratio = values / step
        if np.all(np.abs(ratio - np.round(ratio)) <= 1e-9 * np.maximum(1.0, np.abs(ratio))):
            return step
    return 0.0
