"""The crossed test with the seed x system variance pooled over a study's systems (issue 22, item 5).

S systems and a shared baseline (k = 0) are run on the same R seeds and scored on the same n examples:

    y[k, r, i] = m_k + x_i + c_r + g_ki + u_kr + e_kri

`c_r` a seed's effect shared by every system (same data order: it cancels in a paired difference),
`u_kr` ~ (0, s2_u) the seed x system interaction (a run's own shift, iid over k and r: the
homogeneity assumption), `g_ki` system x example, `e_kri` ~ (0, s2_e) one run's noise on one
example. Comparison s is `d_s[r, i] = y[s, r, i] - y[0, r, i]`, as in `analysis.stats.crossed`, and

    Var(mean d_s) = 2 (s2_u + s2_e / n) / R  +  Var(mean_i (g_si - g_0i))
                  =        seed part         +  example part

`analysis.stats.crossed` estimates the seed part from comparison s alone: MS_seed(d_s) / (R n), R - 1 df.
Here it comes from the two-way system x seed ANOVA without replication of the per-run means
`ybar[k, r]` (K = S + 1 rows): its residual (interaction) mean square MS_int has E[MS_int] =
s2_u + s2_e / n, S (R - 1) degrees of freedom, and under normality is independent of every system
mean, so `seed part = 2 MS_int / R` (and t is exactly t with S (R - 1) df when the example part is
nil). The interaction is unchanged by a seed (column) effect, so the table [0; dbar_1; ...; dbar_S]
of per-seed mean differences gives it: the differences are enough (pseudo-values average exactly to
a run's metric, so corpus metrics work the same way). The example part, its pre-test and the
lattice floor are the per-comparison test's (`crossed.estimated_parts`); the df rule is the crossed
test's `(nu) exp(lambda(nu, alpha) / u)` with nu = S (R - 1) (its exact normal-theory size at that
nu: analysis/README.md). With S = 1 the pooled test is the per-comparison one.

Homogeneity: when one system's runs vary more than the others', MS_int estimates the average
variance and the pooled test is liberal for that system's comparisons. So the pooled seed part is
used only when a homogeneity test of the K rows of interaction residuals does not reject at
`HOMOGENEITY_LEVEL` (a pre-test, deliberately lenient as in Bancroft's sometimes-pool rule); else
the per-comparison test is used and the result says why. The test is Bartlett's (default: the most
powerful at R = 3-5 seeds under normality, which is what protects the size; its known excess
rejection under heavy tails only sends the study back to the per-comparison test, which is
calibrated there) or Brown-Forsythe's (Levene about the median, robust, weaker); the choice and the
level are measured in bench/bench_pooled.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy import stats as scipy_stats

from analysis.stats.crossed import (
    CrossedTest,
    VarianceComponents,
    estimated_parts,
    mean_squares,
    paired_differences,
    test_from_parts,
    variance_components,
)
from analysis.stats.crossed_planning import minimum_detectable_effect
from analysis.stats.sufficient import Finalize

HOMOGENEITY_LEVEL = 0.25
"""The pooled seed part is used when the homogeneity test's p-value is at least this."""

Check = Literal["bartlett", "levene"]
CHECKS = ("bartlett", "levene")


@dataclass(frozen=True)
class PooledCrossedTest:
    """Both crossed tests of S systems against a shared baseline, and which one the p-values use.

    Arrays of the tests are `[S]` (or `[B * S]` for B studies, study-major); the study-level fields
    are `[B]` (B = 1 for one study). `test` is `pooled` where `used_pooled`, else `per_comparison`.
    `pooled_components` plan the pooled test (`crossed_planning` with `pooled_systems=n_systems`).
    """

    test: CrossedTest
    pooled: CrossedTest
    per_comparison: CrossedTest
    pooled_components: VarianceComponents
    interaction_ms: np.ndarray
    interaction_df: int
    homogeneity_p: np.ndarray
    used_pooled: np.ndarray
    reason: list[str]
    check: str
    level: float
    n_systems: int


def interaction_residuals(seed_means: np.ndarray) -> np.ndarray:
    """Two-way residuals `[B, K, R]` of per-seed mean differences `[B, S, R]`, the baseline a row of zeros."""
    table = np.concatenate([np.zeros_like(seed_means[:, :1]), seed_means], axis=1)
    return (
        table
        - table.mean(axis=2, keepdims=True)
        - table.mean(axis=1, keepdims=True)
        + table.mean(axis=(1, 2), keepdims=True)
    )


def homogeneity_p_values(residuals: np.ndarray, check: Check = "bartlett") -> np.ndarray:
    """p-values `[B]` of equal variance across the K rows of `residuals[B, K, R]` (1 where undefined)."""
    if check not in CHECKS:
        raise ValueError(f"homogeneity check must be 'bartlett' or 'levene', got {check!r}")
    p_values = np.ones(residuals.shape[0])
    if residuals.shape[1] < 3 or residuals.shape[2] < 2:  # K = 2: the rows are each other's negatives
        return p_values
    for index, rows in enumerate(residuals):
        if np.all(rows.var(axis=1) == 0):
            continue  # every run equal: nothing to compare
        with np.errstate(divide="ignore", invalid="ignore"):
            result = scipy_stats.bartlett(*rows) if check == "bartlett" else scipy_stats.levene(*rows, center="median")
        p_values[index] = 1.0 if np.isnan(result.pvalue) else float(result.pvalue)
    return p_values


def pooled_test_from_differences(
    differences: np.ndarray,
    *,
    estimate: np.ndarray | None = None,
    confidence: float = 0.95,
    resolution: float = 0.0,
    check: Check = "bartlett",
    level: float = HOMOGENEITY_LEVEL,
) -> PooledCrossedTest:
    """Pooled and per-comparison crossed tests on differences `[S, R, n]` (one study) or `[B, S, R, n]`."""
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim not in (3, 4):
        raise ValueError(f"differences must be [systems, seeds, examples] or [studies, ...], got shape {d.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"homogeneity level must be in (0, 1), got {level}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    d = d[None] if d.ndim == 3 else d
    studies, n_systems, n_seeds, n = d.shape
    squares = mean_squares(d.reshape(studies * n_systems, n_seeds, n))
    seed_part, example_part, example_df = estimated_parts(squares, resolution)
    per_comparison = test_from_parts(squares, seed_part, example_part, example_df, n_seeds - 1, estimate, confidence)
    if n_seeds == 1:  # nothing to pool: the t over examples
        ones = np.ones(studies)
        return PooledCrossedTest(
            per_comparison, per_comparison, per_comparison, per_comparison.components, np.full(studies, np.nan), 0,
            ones, np.zeros(studies, bool), ["one seed: no seed variance to pool"] * studies, check, level, n_systems,
        )  # fmt: skip
    residuals = interaction_residuals(d.mean(axis=3))
    interaction_df = n_systems * (n_seeds - 1)
    interaction_ms = (residuals**2).sum(axis=(1, 2)) / interaction_df  # [B]
    pooled_ms_seed = np.repeat(2.0 * n * interaction_ms, n_systems)  # MS_seed's pooled counterpart, [B * S]
    pooled_seed_part = np.maximum(pooled_ms_seed, resolution**2 / (24.0 * n)) / (n_seeds * n)
    pooled = test_from_parts(squares, pooled_seed_part, example_part, example_df, interaction_df, estimate, confidence)
    components = variance_components(squares)
    pooled_components = replace(components, seed=np.maximum(pooled_ms_seed - squares.residual, 0.0) / n)
    homogeneity_p = homogeneity_p_values(residuals, check)
    used_pooled = homogeneity_p >= level
    chosen = np.repeat(used_pooled, n_systems)
    test = replace(
        per_comparison,
        **{
            name: np.where(chosen, getattr(pooled, name), getattr(per_comparison, name))
            for name in ("std_error", "statistic", "df", "p_value", "low", "high", "seed_share")
        },
    )
    reason = [
        f"{check} homogeneity of seed variance across {n_systems + 1} systems: p = {p:.3f} "
        + (f">= {level:g}: pooled ({interaction_df} df)" if used else f"< {level:g}: per comparison ({n_seeds - 1} df)")
        for p, used in zip(homogeneity_p, used_pooled, strict=True)
    ]
    return PooledCrossedTest(
        test, pooled, per_comparison, pooled_components, interaction_ms, interaction_df,
        homogeneity_p, used_pooled, reason, check, level, n_systems,
    )  # fmt: skip


def pooled_crossed_test(
    baseline: np.ndarray,
    systems: np.ndarray,
    *,
    finalize: Finalize | None = None,
    confidence: float = 0.95,
    nan_policy: Literal["raise", "omit"] = "raise",
    check: Check = "bartlett",
    level: float = HOMOGENEITY_LEVEL,
) -> PooledCrossedTest:
    """`crossed.crossed_test`'s inputs (one study), both tests; see the module docstring."""
    differences, estimate, resolution = paired_differences(baseline, systems, finalize=finalize, nan_policy=nan_policy)
    return pooled_test_from_differences(
        differences, estimate=estimate, confidence=confidence, resolution=resolution, check=check, level=level
    )


def both_mdes(
    result: PooledCrossedTest, *, alpha: float = 0.05, power: float = 0.8, n_comparisons: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """(pooled MDE, per-comparison MDE) `[S]` (or `[B * S]`) at the measured design (`crossed_planning`)."""
    kwargs = {"alpha": alpha, "power": power, "n_comparisons": n_comparisons}
    per_comparison = minimum_detectable_effect(result.per_comparison.components, **kwargs)
    if result.per_comparison.n_seeds == 1:
        return per_comparison, per_comparison
    pooled = minimum_detectable_effect(result.pooled_components, pooled_systems=result.n_systems, **kwargs)
    return pooled, per_comparison
