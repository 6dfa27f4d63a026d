"""The default test across seeds: paired differences in a crossed seed x example random-effects model.

A system and its baseline are run with the same R training seeds and scored on the same n test
examples. Their paired differences `d[r, i]` (per-example scores, or per-example pseudo-values for
corpus metrics) follow `d = mu + a_r + b_i + e_ri`: `a` training randomness (seed), `b` the sampling of
test examples (per-example differences between the systems), `e` their interaction (the noise of one
run on one example). The population question is about `mu`, and from the two-way ANOVA without
replication

    Var(mean d) = s2_a / R + s2_b / n + s2_e / (R n)
                = E[MS_seed] / (R n)  +  (E[MS_example] - E[MS_residual]) / (R n)
                =   seed part         +  example part

The seed part (the squared standard error of the t-test over seeds) has R - 1 degrees of freedom,
the example part about n. The test is `t = mean d / sqrt(seed part + example part)`, refined where
simulations showed the plain version miscalibrated (numbers in analysis/README.md):

1. Degrees of freedom `(R - 1) * exp(lambda / u)`, u = seed part / example part, with `lambda(nu,
   alpha)` fitted to the exact normal-theory size (`df_lambda`): Satterthwaite's are liberal with 1 to
   4 seed degrees of freedom (size up to 2.6 x alpha at 2 seeds). p-values invert the rule.
2. The example part enters only when MS_example / MS_residual is significant at 0.10 (sometimes-pool,
   Bancroft 1944); its noise alone made the test conservative at 2-3 seeds.
3. MS_seed is floored at the rounding variance of per-seed means on a lattice (accuracy: steps of
   1/n), so that two seeds with equal deltas (both +3 examples) do not give t = inf.

With R = 1 it is the paired t-test over examples (`scipy.stats.ttest_rel` on the two runs), which
ignores seed variance. Corpus metrics use influence pseudo-values (`analysis.stats.pseudo_values`).
`analysis.stats.crossed_planning` plans from the variance components (MDE, seeds needed).

Shapes follow `analysis.stats.resampling`: systems `[S, R, n]` (scores) or `[S, R, n, d]` (statistics, with
`finalize`); baseline the same without S (shared) or with it (one per system); results are `[S]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as scipy_stats

from analysis.stats.pseudo_values import influence_pseudo_values, jackknife_pseudo_values, lattice_step
from analysis.stats.resampling import check_finite, systems_and_baseline
from analysis.stats.sufficient import Finalize

EXAMPLE_PRETEST_LEVEL = 0.10
"""The example part of the variance enters when MS_example / MS_residual is significant at this level."""

PseudoValues = Literal["influence", "jackknife"]

_MAX_DF = 1e10  # beyond this, the normal distribution for every purpose here


@dataclass(frozen=True)
class MeanSquares:
    """Two-way ANOVA without replication of differences `[S, R, n]`, per system (arrays `[S]`).

    `seed` and `residual` are NaN with one seed (R = 1), where only `example` is defined.
    """

    grand_mean: np.ndarray
    seed: np.ndarray
    example: np.ndarray
    residual: np.ndarray
    n_seeds: int
    n_examples: int


@dataclass(frozen=True)
class VarianceComponents:
    """Method-of-moments variance components of the differences, truncated at 0 (arrays `[S]`).

    `seed` = s2_a (training randomness), `example` = s2_b (per-example differences: the sampling of
    test examples), `residual` = s2_e (seed x example noise). With one seed, `seed` is NaN (not
    measurable) and `example` holds s2_b + s2_e, which cannot be separated (`residual` is 0).
    """

    seed: np.ndarray
    example: np.ndarray
    residual: np.ndarray
    n_seeds: int
    n_examples: int

    def variance_parts(self, n_seeds: np.ndarray | int, n_examples: int) -> tuple[np.ndarray, np.ndarray]:
        """Expected (seed part, example part) of Var(mean d) at `n_seeds` (broadcast) x `n_examples`.

        Seed part (s2_e + n s2_a) / (R n), what a t-test over seeds sees; example part s2_b / n. From
        one seed, the seed part at one seed is s2_e / n (s2_a unknown: the answer ignores it).
        """
        seed = np.where(np.isnan(self.seed) & (np.asarray(n_seeds) == 1), 0.0, self.seed)
        seed_part = (self.residual + n_examples * seed) / (n_seeds * n_examples)
        return seed_part, self.example / n_examples


@dataclass(frozen=True)
class CrossedTest:
    """The crossed seed x example test of S systems against a baseline (arrays `[S]`).

    `delta` is the mean over seeds of the per-run metric difference, with its CI `low`..`high` at
    `confidence`, and `df` the degrees of freedom at that level. `seed_share` is the seed part's share of
    the estimated variance (1: all training randomness; 0: all example sampling).
    """

    delta: np.ndarray
    std_error: np.ndarray
    statistic: np.ndarray
    df: np.ndarray
    p_value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    seed_share: np.ndarray
    components: VarianceComponents
    mean_squares: MeanSquares
    n_seeds: int
    n_examples: int
    confidence: float


def mean_squares(differences: np.ndarray) -> MeanSquares:
    """Mean squares of seed, example and residual of differences `[S, R, n]` (two-way, no replication)."""
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 3:
        raise ValueError(f"differences must be [systems, seeds, examples], got shape {d.shape}")
    _, n_seeds, n = d.shape
    grand = d.mean(axis=(1, 2))
    seed_means = d.mean(axis=2)  # [S, R]
    example_means = d.mean(axis=1)  # [S, n]
    ms_example = n_seeds * ((example_means - grand[:, None]) ** 2).sum(axis=1) / (n - 1)
    if n_seeds == 1:
        missing = np.full(grand.shape, np.nan)
        return MeanSquares(grand, missing, ms_example, missing, 1, n)
    ms_seed = n * ((seed_means - grand[:, None]) ** 2).sum(axis=1) / (n_seeds - 1)
    residuals = d - seed_means[:, :, None] - example_means[:, None, :] + grand[:, None, None]
    ms_residual = (residuals**2).sum(axis=(1, 2)) / ((n_seeds - 1) * (n - 1))
    return MeanSquares(grand, ms_seed, ms_example, ms_residual, n_seeds, n)


def variance_components(squares: MeanSquares) -> VarianceComponents:
    """s2_a, s2_b, s2_e by the method of moments: E[MS_seed] = s2_e + n s2_a, E[MS_example] = s2_e + R s2_b."""
    n_seeds, n = squares.n_seeds, squares.n_examples
    if n_seeds == 1:
        zero = np.zeros(squares.example.shape)
        return VarianceComponents(np.full(zero.shape, np.nan), squares.example.copy(), zero, 1, n)
    seed = np.maximum(squares.seed - squares.residual, 0.0) / n
    example = np.maximum(squares.example - squares.residual, 0.0) / n_seeds
    return VarianceComponents(seed, example, squares.residual.copy(), n_seeds, n)


def df_lambda(nu: np.ndarray | float, alpha: np.ndarray | float) -> np.ndarray:
    """lambda(nu, alpha) of the degrees-of-freedom rule (fitted to the exact normal-theory size, README)."""
    nu = np.asarray(nu, dtype=np.float64)
    return (1.45 - 2.62 / (nu + 1.12)) * (np.asarray(alpha, dtype=np.float64) / 0.05) ** (0.84 / nu)


def crossed_df(
    seed_part: np.ndarray,
    example_part: np.ndarray,
    n_seeds: int | np.ndarray,
    alpha: np.ndarray | float,
    example_df: np.ndarray | float = np.inf,
) -> np.ndarray:
    """Degrees of freedom of the crossed test at level `alpha` (R >= 2 seeds), broadcast over the inputs.

    `(R - 1) * exp(lambda(R - 1, alpha) / u)`, u = seed part / example part, combined
    Satterthwaite-style with the example part's own `example_df` (about n; infinite when known).
    """
    nu = np.asarray(n_seeds, dtype=np.float64) - 1.0
    seed_part = np.asarray(seed_part, dtype=np.float64)
    example_part = np.asarray(example_part, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        exponent = np.where(seed_part > 0, df_lambda(nu, alpha) * example_part / seed_part, np.inf)
        seed_df = nu * np.exp(np.minimum(exponent, 100.0))
        example_weight = np.where(example_part > 0, example_part / (seed_part + example_part), 0.0)
        inverse = 1.0 / seed_df + np.where(example_weight > 0, example_weight**2 / example_df, 0.0)
    return np.minimum(1.0 / inverse, _MAX_DF)


def critical_value(
    alpha: np.ndarray | float, seed_part, example_part, example_df, n_seeds: int, n_examples: int
) -> np.ndarray:
    """Two-sided critical value of the crossed test at level `alpha` (the t over examples with one seed)."""
    alpha = np.asarray(alpha, dtype=np.float64)
    if n_seeds == 1:
        return scipy_stats.t.isf(alpha / 2.0, n_examples - 1) * np.ones(np.shape(example_part))
    critical = scipy_stats.t.isf(alpha / 2.0, crossed_df(seed_part, example_part, n_seeds, alpha, example_df))
    return np.where(np.isnan(critical) | (critical < 0), np.inf, critical)  # scipy fails far in the tail at df < 1


def _p_values(abs_t: np.ndarray, seed_part, example_part, example_df, n_seeds: int, n: int) -> np.ndarray:
    """The smallest level at which |t| rejects: the critical value decreases in alpha, so bisect on log alpha."""
    if n_seeds == 1:
        return np.minimum(1.0, 2.0 * scipy_stats.t.sf(abs_t, n - 1))
    low = np.full(abs_t.shape, -20.0)  # log10 alpha: p below 1e-20 is reported as 1e-20
    high = np.zeros(abs_t.shape)
    for _ in range(40):
        middle = 0.5 * (low + high)
        rejects = abs_t > critical_value(10.0**middle, seed_part, example_part, example_df, n_seeds, n)
        low, high = np.where(rejects, low, middle), np.where(rejects, middle, high)
    return np.where(abs_t == 0, 1.0, np.where(np.isinf(abs_t), 0.0, 10.0**high))


def estimated_parts(squares: MeanSquares, resolution: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seed part, example part, example part's df) `[S]` of the estimated Var(mean d)."""
    n_seeds, n = squares.n_seeds, squares.n_examples
    if n_seeds == 1:
        return np.zeros(squares.example.shape), squares.example / n, np.full(squares.example.shape, n - 1.0)
    # Per-seed means live on a lattice of step h = resolution / n, so equal ones (MS_seed = 0) stand for a
    # difference within +-h/2: uniform there, E[delta^2] = h^2 / 12, i.e. MS_seed = n h^2 / 24 for two seeds.
    seed_part = np.maximum(squares.seed, resolution**2 / (24.0 * n)) / (n_seeds * n)
    excess = squares.example - squares.residual
    threshold = scipy_stats.f.isf(EXAMPLE_PRETEST_LEVEL, n - 1, (n_seeds - 1) * (n - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        shown = squares.example / squares.residual > threshold  # sometimes-pool pre-test
        spread = squares.example**2 / (n - 1) + squares.residual**2 / ((n_seeds - 1) * (n - 1))
        example_df = np.where(shown, excess**2 / spread, np.inf)
    return seed_part, np.where(shown, excess, 0.0) / (n_seeds * n), example_df


def crossed_test_from_differences(
    differences: np.ndarray,
    *,
    estimate: np.ndarray | None = None,
    confidence: float = 0.95,
    resolution: float = 0.0,
) -> CrossedTest:
    """The crossed test on paired differences `[S, R, n]` (system - baseline per seed and example).

    `estimate` `[S]` replaces mean d as the point estimate (e.g. the plain metric difference with
    jackknife pseudo-values); the variance is that of mean d. `resolution` is the lattice step of the
    differences (`lattice_step`: 1 for 0/1 scores, 0 for continuous ones).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    squares = mean_squares(differences)
    seed_part, example_part, example_df = estimated_parts(squares, resolution)
    return test_from_parts(squares, seed_part, example_part, example_df, squares.n_seeds - 1, estimate, confidence)


def test_from_parts(
    squares: MeanSquares,
    seed_part: np.ndarray,
    example_part: np.ndarray,
    example_df: np.ndarray,
    seed_df: int,
    estimate: np.ndarray | None,
    confidence: float,
) -> CrossedTest:
    """The crossed test from its estimated variance parts `[S]`, the seed part having `seed_df` degrees of freedom
    (R - 1 for one comparison; `analysis.stats.pooled` passes the pooled estimate's). The df rule reads `seed_df + 1`
    as its seed count (it uses only nu = seeds - 1); with one seed (`seed_df` 0) it is the t over examples."""
    n_seeds, n = squares.n_seeds, squares.n_examples
    rule_seeds = seed_df + 1
    variance = seed_part + example_part
    std_error = np.sqrt(variance)
    delta = squares.grand_mean if estimate is None else np.asarray(estimate, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = np.where(std_error > 0, delta / np.where(std_error > 0, std_error, 1.0), 0.0)
        statistic = np.where((std_error == 0) & (delta != 0), np.sign(delta) * np.inf, statistic)
        seed_share = np.where(variance > 0, seed_part / variance, np.nan)
    level = 1.0 - confidence
    critical = critical_value(level, seed_part, example_part, example_df, rule_seeds, n)
    if n_seeds == 1:
        df = np.full(delta.shape, n - 1.0)
    else:
        df = crossed_df(seed_part, example_part, rule_seeds, level, example_df)
    return CrossedTest(
        delta=delta,
        std_error=std_error,
        statistic=statistic,
        df=df,
        p_value=_p_values(np.abs(statistic), seed_part, example_part, example_df, rule_seeds, n),
        low=delta - critical * std_error,
        high=delta + critical * std_error,
        seed_share=seed_share,
        components=variance_components(squares),
        mean_squares=squares,
        n_seeds=n_seeds,
        n_examples=n,
        confidence=confidence,
    )


def _per_system(pseudo, stats: np.ndarray, finalize: Finalize) -> tuple[np.ndarray, np.ndarray]:
    parts = [pseudo(stats[index], finalize) for index in range(len(stats))]
    return np.stack([part[0] for part in parts]), np.stack([part[1] for part in parts])


def crossed_test(
    baseline: np.ndarray,
    systems: np.ndarray,
    *,
    finalize: Finalize | None = None,
    confidence: float = 0.95,
    nan_policy: Literal["raise", "omit"] = "raise",
    pseudo_values: PseudoValues = "influence",
) -> CrossedTest:
    """Crossed seed x example test of S systems against a baseline on seed-matched runs and the same examples.

    Per-example scores (the metric is their mean): systems `[S, R, n]`, baseline `[R, n]` or
    `[S, R, n]`; `[S, n]` / `[n]` is one seed. With `finalize` (macro-F1, corpus BLEU) the inputs are
    sufficient statistics `[S, R, n, d]` / `[R, n, d]` and each run's metric becomes per-example
    pseudo-values (`influence`, default, or `jackknife`); so do NaN scores with `nan_policy="omit"`.
    `delta` is always the mean over seeds of the per-run metric difference.
    """
    differences, estimate, resolution = paired_differences(
        baseline, systems, finalize=finalize, nan_policy=nan_policy, pseudo_values=pseudo_values
    )
    return crossed_test_from_differences(differences, estimate=estimate, confidence=confidence, resolution=resolution)


def paired_differences(
    baseline: np.ndarray,
    systems: np.ndarray,
    *,
    finalize: Finalize | None = None,
    nan_policy: Literal["raise", "omit"] = "raise",
    pseudo_values: PseudoValues = "influence",
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """(differences `[S, R, n]`, estimate `[S]` or None, lattice resolution) of `crossed_test`'s inputs.

    Per-example score differences when every score counts and there is no `finalize`; otherwise
    pseudo-value differences, with the per-run metric difference averaged over seeds as the estimate.
    """
    if pseudo_values not in ("influence", "jackknife"):
        raise ValueError(f"pseudo_values must be 'influence' or 'jackknife', got {pseudo_values!r}")
    base, syst, finalize_fn = systems_and_baseline(baseline, systems, finalize, nan_policy)
    if finalize is None and bool(np.all(syst[..., 1] == 1.0)) and bool(np.all(base[..., 1] == 1.0)):
        differences = syst[..., 0] - base[..., 0]
        return differences, None, lattice_step(differences)
    if pseudo_values == "influence":  # 2d metric evaluations on [S, R, d] totals: all systems at once
        theta_sys, psi_sys = influence_pseudo_values(syst, finalize_fn)
        theta_base, psi_base = influence_pseudo_values(base, finalize_fn)
    else:  # the jackknife evaluates [R, n, d] leave-one-out sums: one system at a time bounds memory
        theta_sys, psi_sys = _per_system(jackknife_pseudo_values, syst, finalize_fn)
        theta_base, psi_base = _per_system(jackknife_pseudo_values, base, finalize_fn)
    check_finite(np.concatenate([theta_sys.ravel(), theta_base.ravel()]), "score")
    differences = psi_sys - psi_base
    check_finite(differences.ravel(), "pseudo-value")
    return differences, (theta_sys - theta_base).mean(axis=-1), 0.0
