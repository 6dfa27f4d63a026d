"""Tests over seed-matched runs (the unit is a training run): paired t-test and Wilcoxon signed-rank.

Inputs are per-seed scores, baseline `[R]` (or `[S, R]`) and systems `[S, R]` (e.g. from
`analysis.stats.sufficient.per_run_scores`), so the tests generalise over training seeds on this test set.
They match `scipy.stats.ttest_rel` and `scipy.stats.wilcoxon` (tests/test_analysis_stats.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats


@dataclass(frozen=True)
class SeedTest:
    """A test over seed-matched runs, per system (arrays of length S).

    `delta` is the mean over seeds of system - baseline; for the t-test, `low`/`high` are its
    t-interval and `std_error` its standard error (NaN for Wilcoxon, which has no such interval).
    """

    delta: np.ndarray
    statistic: np.ndarray
    p_value: np.ndarray
    n_seeds: int
    low: np.ndarray
    high: np.ndarray
    std_error: np.ndarray


def _seed_differences(baseline_scores: np.ndarray, systems_scores: np.ndarray, test: str) -> np.ndarray:
    base = np.asarray(baseline_scores, dtype=np.float64)
    syst = np.asarray(systems_scores, dtype=np.float64)
    syst = syst[None] if syst.ndim == 1 else syst
    if syst.shape[-1] != base.shape[-1]:
        raise ValueError(f"{test}: baseline has {base.shape[-1]} seeds, systems {syst.shape[-1]}: match seeds first")
    if syst.shape[-1] < 2:
        raise ValueError(f"{test} needs at least 2 seed-matched runs per system, got {syst.shape[-1]}")
    differences = syst - base
    if np.isnan(differences).any():
        raise ValueError(f"{test}: per-seed scores contain NaN")
    return differences


def paired_ttest(baseline_scores: np.ndarray, systems_scores: np.ndarray, *, confidence: float = 0.95) -> SeedTest:
    """Paired t-test over seed-matched runs (`scipy.stats.ttest_rel`, two-sided), system - baseline.

    Inputs are per-seed scores: baseline `[R]` (or `[S, R]`), systems `[S, R]`. The unit is a training
    run, so the test generalises over seeds on this test set; in simulated A/A comparisons it holds its
    level even with 3 seeds, where a seed x example bootstrap cannot (see `significance.paired_bootstrap`). When
    every difference is zero the test is undefined (scipy: NaN); we return t = 0, p = 1.
    """
    differences = _seed_differences(baseline_scores, systems_scores, "paired t-test")
    n_seeds = differences.shape[-1]
    mean = differences.mean(axis=-1)
    std_error = differences.std(axis=-1, ddof=1) / math.sqrt(n_seeds)
    with np.errstate(invalid="ignore", divide="ignore"):
        statistic = np.where(
            std_error > 0,
            mean / np.where(std_error > 0, std_error, 1.0),
            np.where(mean == 0, 0.0, np.sign(mean) * np.inf),
        )
    p_value = np.minimum(1.0, 2.0 * scipy_stats.t.sf(np.abs(statistic), n_seeds - 1))
    half_width = scipy_stats.t.ppf(0.5 + confidence / 2.0, n_seeds - 1) * std_error
    return SeedTest(mean, statistic, p_value, n_seeds, mean - half_width, mean + half_width, std_error)


_WILCOXON_ENUMERATE_MAX = 13  # scipy's own limit for a deterministic (exact) permutation test


def wilcoxon_signed_rank(baseline_scores: np.ndarray, systems_scores: np.ndarray) -> SeedTest:
    """Wilcoxon signed-rank test over seed-matched runs (`scipy.stats.wilcoxon` defaults, two-sided).

    With up to 13 seeds the null distribution is enumerated over all 2^R sign flips, for all systems
    at once: that is scipy's exact distribution without ties and its exact permutation test with
    ties or zero differences (per-seed scores of 0/1 metrics tie often), where scipy takes ~0.1 s a
    call. With 5 seeds or fewer the smallest two-sided p-value is 2 / 2^R >= 0.0625, so it cannot
    reject at 0.05: use more seeds or the t-test. When every difference is zero, statistic 0, p = 1.
    """
    differences = _seed_differences(baseline_scores, systems_scores, "Wilcoxon test")
    n_seeds = differences.shape[-1]
    statistic = np.zeros(differences.shape[0])
    p_value = np.ones(differences.shape[0])
    tested = np.any(differences != 0, axis=-1)
    if n_seeds <= _WILCOXON_ENUMERATE_MAX:
        if tested.any():
            statistic[tested], p_value[tested] = _wilcoxon_enumerated(differences[tested])
    else:
        for row in np.flatnonzero(tested):
            result = scipy_stats.wilcoxon(differences[row])
            statistic[row], p_value[row] = result.statistic, result.pvalue
    missing = np.full(differences.shape[0], np.nan)
    return SeedTest(differences.mean(axis=-1), statistic, p_value, n_seeds, missing, missing, missing)


def _wilcoxon_enumerated(differences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-sided signed-rank p-values `[S]` over all sign flips (zeros dropped, tied ranks averaged)."""
    nonzero = differences != 0
    ranks = scipy_stats.rankdata(np.where(nonzero, np.abs(differences), np.nan), axis=-1, nan_policy="omit")
    ranks = np.where(nonzero, ranks, 0.0)
    r_plus = np.where(differences > 0, ranks, 0.0).sum(axis=-1)
    r_minus = np.where(differences < 0, ranks, 0.0).sum(axis=-1)
    n_seeds = differences.shape[-1]
    signs = 1 - 2 * ((np.arange(2**n_seeds)[:, None] >> np.arange(n_seeds)) & 1)  # [2^R, R] of +-1
    null = ((signs[None] * differences[:, None, :]) > 0).astype(np.float64) @ ranks[..., None]  # [S, 2^R, 1]
    null = null[..., 0]
    slack = np.abs(100 * np.finfo(np.float64).eps * r_plus)[:, None]  # scipy.stats.permutation_test's
    less = (null <= r_plus[:, None] + slack).mean(axis=-1)
    greater = (null >= r_plus[:, None] - slack).mean(axis=-1)
    return np.minimum(r_plus, r_minus), np.minimum(1.0, 2.0 * np.minimum(less, greater))
