"""Many comparisons and power: family-wise corrected p-values, and the minimum detectable effect.

Both read a family of comparisons (those of one metric in a report): Holm or Bonferroni correct its
p-values (matching `statsmodels.stats.multitest.multipletests`), and the minimum detectable effect
uses the same family's Bonferroni level, so a non-significant difference can be read as "not
detectable with these examples and seeds" rather than "no effect".
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import stats as scipy_stats
from scipy.special import ndtri

Correction = Literal["holm", "bonferroni", "none"]


def adjust_pvalues(p_values: np.ndarray, method: Correction = "holm", axis: int = -1) -> np.ndarray:
    """Family-wise corrected p-values along `axis` (one family per slice): Holm, Bonferroni or none.

    Matches `statsmodels.stats.multitest.multipletests`; NaN p-values (tests not run) are left out
    of the family and stay NaN.
    """
    if method not in ("holm", "bonferroni", "none"):
        raise ValueError(f"correction must be 'holm', 'bonferroni' or 'none', got {method!r}")
    p = np.moveaxis(np.asarray(p_values, dtype=np.float64), axis, -1)
    flat = p.reshape(-1, p.shape[-1]) if p.ndim else p.reshape(1, 1)
    adjusted = np.full(flat.shape, np.nan)
    for row, values in enumerate(flat):
        present = ~np.isnan(values)
        family = values[present]
        m = family.size
        if m == 0 or method == "none":
            adjusted[row, present] = family
            continue
        if method == "bonferroni":
            adjusted[row, present] = np.minimum(1.0, family * m)
            continue
        order = np.argsort(family, kind="stable")
        stepped = np.maximum.accumulate((m - np.arange(m)) * family[order])
        out = np.empty(m)
        out[order] = np.minimum(1.0, stepped)
        adjusted[row, present] = out
    return np.moveaxis(adjusted.reshape(p.shape), -1, axis) if p.ndim else adjusted.reshape(())


def minimum_detectable_effect(
    std_error: np.ndarray | float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    n_comparisons: int = 1,
    df: float | None = None,
) -> np.ndarray:
    """Smallest true difference a two-sided test detects with `power`, given the difference's standard error.

    MDE = (z_{1 - alpha'/2} + z_{power}) * SE, with alpha' = alpha / n_comparisons: the Bonferroni
    level, which is also the first (strictest) step of Holm, so the figure is conservative for Holm.
    With `df` (a t-test over seeds) t quantiles replace z. With the bootstrap SE of the paired
    difference this covers corpus metrics; a non-significant difference smaller than the MDE means
    "not detectable with this many examples and seeds", not "no effect".
    """
    level = alpha / max(1, n_comparisons)
    if df is None:
        factor = ndtri(1.0 - level / 2.0) + ndtri(power)
    else:
        factor = scipy_stats.t.ppf(1.0 - level / 2.0, df) + scipy_stats.t.ppf(power, df)
    return factor * np.asarray(std_error, dtype=np.float64)
