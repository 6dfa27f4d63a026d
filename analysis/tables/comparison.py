"""The record every table, plot and verdict reads: one `ComparisonRow` per (system, metric)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ComparisonRow:
    """One (system, metric) cell of the table, with the comparison against its stratum's baseline."""

    metric: str
    system: str
    baseline: str | None  # the system it is compared with (None: no baseline in its stratum)
    is_baseline: bool
    settings: dict
    n_examples: int
    seeds: list[int]
    estimate: float
    ci_low: float
    ci_high: float
    ci_method: str
    seed_scores: dict[int, float]
    comparison_seeds: list[int] = field(default_factory=list)
    delta: float = math.nan
    delta_low: float = math.nan
    delta_high: float = math.nan
    delta_ci: str = ""  # how the delta's interval was computed ("bootstrap-bca", "t"...)
    test: str = ""
    p_value: float = math.nan
    p_adjusted: float = math.nan
    significant: bool = False
    mde: float = math.nan
    mde_pooled: float = math.nan  # the crossed test's MDE with the seed part pooled over the group (stats.pooled)
    mde_per_comparison: float = math.nan  # ... with its own seed part (R - 1 df)
    seed_part_pooled: bool = False  # whether the p-value's crossed test used the pooled seed part
    p_crossed_pooled: float = math.nan
    homogeneity_p: float = math.nan  # Bartlett's p of equal seed variance across the group's systems
    p_bootstrap: float = math.nan
    p_randomization: float = math.nan
    p_mcnemar: float = math.nan
    p_ttest: float = math.nan
    p_wilcoxon: float = math.nan
    p_crossed: float = math.nan
    var_seed: float = math.nan  # variance components of the per-example differences (analysis.stats.crossed)
    var_example: float = math.nan
    var_residual: float = math.nan
    baseline_estimate: float = math.nan  # the baseline on `comparison_seeds`: delta = estimate - baseline_estimate
    seeds_needed: float = math.nan  # seed-matched runs to detect the observed delta at 80% power (at this n)
    seeds_needed_target: float = math.nan  # the same for `target_effect`
    target_effect: float = math.nan  # --target-effect in the metric's raw units
    undecided: str = ""  # words that replace a delta CI or MDE wider than the metric's range
    system_id: str = ""
    unhealthy: dict[int, list[str]] = field(default_factory=dict)  # seed -> unhealthy flags of the row's runs
    seeds_unreadable: list[int] = field(default_factory=list)  # seeds lost to unreadable predictions files (skipped)

    @property
    def seed_sd(self) -> float:
        """Standard deviation of the per-seed scores (the spread shown beside the interval)."""
        values = list(self.seed_scores.values())
        return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan

    @property
    def compared(self) -> bool:
        """Whether the row was compared with a baseline (it is not one, and has a difference)."""
        return not self.is_baseline and not math.isnan(self.delta)
