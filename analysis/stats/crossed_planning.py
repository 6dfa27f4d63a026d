"""Planning with the crossed test (`analysis.stats.crossed`): the minimum detectable effect of a design and
the seeds needed to detect an effect, from the measured variance components, with power exact under
the noncentral t at the test's own degrees-of-freedom rule.

Shapes: components `[S]`; results `[S]`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats

from analysis.stats.crossed import VarianceComponents, crossed_df

MAX_SEEDS = 1000
"""`seeds_needed` searches 2..MAX_SEEDS seeds; beyond that it answers "cannot" (inf)."""


def t_test_power(noncentrality: np.ndarray, df: np.ndarray, critical: np.ndarray) -> np.ndarray:
    """Power of a two-sided t-test, exact under the noncentral t: P(|T| > critical), T ~ t(df, noncentrality).

    `noncentrality` = true effect / standard error. Unlike `(t_{1-a/2} + t_{power}) * SE`
    (`power.minimum_detectable_effect`), this stays right at 1 or 2 degrees of freedom, where that
    shortcut overstates power (it claims 0.8 where the power is about 0.73 at 1 degree of freedom).
    """
    nc = np.abs(np.asarray(noncentrality, dtype=np.float64))
    return scipy_stats.nct.sf(critical, df, nc) + scipy_stats.nct.cdf(-np.asarray(critical), df, nc)


def noncentrality_for_power(df: np.ndarray, critical: np.ndarray, *, power: float = 0.8) -> np.ndarray:
    """Noncentrality (effect / SE) at which a two-sided t-test with `critical` reaches `power` (bisection)."""
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    df, critical = np.broadcast_arrays(np.asarray(df, dtype=np.float64), np.asarray(critical, dtype=np.float64))
    low, high = np.zeros(df.shape), critical + 4.0
    for _ in range(60):  # widen until every upper bound reaches the target
        short = t_test_power(high, df, critical) < power
        if not short.any():
            break
        high = np.where(short, 2.0 * high, high)
    for _ in range(60):
        middle = 0.5 * (low + high)
        reached = t_test_power(middle, df, critical) >= power
        low, high = np.where(reached, low, middle), np.where(reached, middle, high)
    return high


def planning(
    components: VarianceComponents, n_seeds: np.ndarray | int, n_examples: int, level: float, pooled_systems: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected Var(mean d), degrees of freedom and critical value of the crossed test at R seeds x n examples.

    `n_seeds` broadcasts against the components' `[S]` (a column `[G, 1]` of seed counts gives `[G, S]`);
    the degrees of freedom are the test's rule at the expected mean squares, its seed part having
    `pooled_systems * (R - 1)` degrees of freedom (1: one comparison; S: the pooled test, `analysis.stats.pooled`).
    """
    n_seeds = np.asarray(n_seeds, dtype=np.float64)
    n = n_examples
    seed_part, example_part = components.variance_parts(n_seeds, n)
    expected_example = components.residual + n_seeds * components.example
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = expected_example**2 / (n - 1) + components.residual**2 / ((n_seeds - 1) * (n - 1))
        example_df = np.where(components.example > 0, (n_seeds * components.example) ** 2 / spread, np.inf)
        rule_seeds = pooled_systems * (n_seeds - 1) + 1
        df = np.where(n_seeds == 1, n - 1.0, crossed_df(seed_part, example_part, rule_seeds, level, example_df))
    return seed_part + example_part, df, scipy_stats.t.isf(level / 2.0, df)


def minimum_detectable_effect(
    components: VarianceComponents,
    *,
    n_seeds: int | None = None,
    n_examples: int | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    n_comparisons: int = 1,
    pooled_systems: int = 1,
) -> np.ndarray:
    """Smallest true difference `[S]` the crossed test detects with `power` at R seeds x n examples.

    Defaults to the measured design. The level is Bonferroni's alpha / n_comparisons (Holm's first
    step); power is exact under the noncentral t at the expected variance and degrees of freedom
    (`pooled_systems`: see `planning`). From one seed the answer ignores seed variance (as that test
    does), and is NaN for more seeds.
    """
    n_seeds = components.n_seeds if n_seeds is None else n_seeds
    n = components.n_examples if n_examples is None else n_examples
    variance, df, critical = planning(components, n_seeds, n, alpha / max(1, n_comparisons), pooled_systems)
    known = ~np.isnan(variance)
    noncentrality = noncentrality_for_power(np.where(known, df, 1.0), np.where(known, critical, 1.0), power=power)
    return np.where(known, noncentrality * np.sqrt(variance), np.nan)


def seeds_needed(
    components: VarianceComponents,
    effect: np.ndarray | float,
    *,
    n_examples: int | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    n_comparisons: int = 1,
    max_seeds: int = MAX_SEEDS,
) -> np.ndarray:
    """Fewest seeds `[S]` (2..max_seeds) with which the crossed test detects `effect` with `power`, at n examples.

    A float array: `inf` when even `max_seeds` cannot (the example part s2_b / n does not shrink with
    seeds, so an effect near its detection limit needs more examples, not seeds) and for a zero effect;
    NaN when the components come from one seed (seed variance unmeasured) or the effect is NaN.
    """
    n = components.n_examples if n_examples is None else n_examples
    effect = np.abs(np.broadcast_to(np.asarray(effect, dtype=np.float64), components.seed.shape))
    grid = np.arange(2, max_seeds + 1, dtype=np.float64)[:, None]  # [G, 1] against [S]
    variance, df, critical = planning(components, grid, n, alpha / max(1, n_comparisons))
    with np.errstate(divide="ignore", invalid="ignore"):
        noncentrality = np.where(variance > 0, effect / np.sqrt(variance), np.where(effect > 0, 1e6, 0.0))
    defined = ~(np.isnan(noncentrality) | np.isnan(df))
    nc = np.where(defined, np.minimum(noncentrality, 1e6), 0.0)
    reached = defined & (t_test_power(nc, np.where(defined, df, 1.0), critical) >= power)
    first = np.where(reached.any(axis=0), grid[reached.argmax(axis=0), 0], np.inf)
    return np.where(np.isnan(components.seed) | np.isnan(effect), np.nan, first)
