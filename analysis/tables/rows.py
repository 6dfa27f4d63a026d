"""Composing the table's rows: one `ComparisonRow` per (system, metric), from the statistics modules.

Each system's row uses one set of seeds for its mean, CI and delta (`analysis.tables.seedplan`: those it
shares with its baseline). Per metric, over the systems that have it:
1. each system on its own: mean over its row's seeds, bootstrap CI, per-seed scores (systems with
   the same seeds share one resample draw);
2. each system against its stratum's baseline, grouped by (baseline, seeds) so that a group shares
   one draw: the paired bootstrap, randomisation, McNemar (0/1 metrics), the t-test and Wilcoxon over
   seeds (two seeds or more), and the crossed seed x example test (`analysis.stats.crossed`, the default
   with several seeds; its variance components plan the MDE and the seeds needed); the table's test
   gives the row's delta CI and p;
3. the rows in table order (strata, baseline first), p-values corrected across the metric's
   comparisons, each difference's minimum detectable effect and the seeds needed to detect its
   observed delta and the `--target-effect`, and words instead of numbers that cannot be true
   (`analysis.tables.decide`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from analysis.load.selection import MetricChoice
from analysis.load.systems import MatchedSystems, System
from analysis.metrics import MetricSpec
from analysis.options import AnalysisOptions
from analysis.stats import across_seeds, crossed, crossed_planning, intervals, pooled, power, significance, sufficient
from analysis.tables.comparison import ComparisonRow
from analysis.tables.decide import undecided_words
from analysis.tables.seedplan import SeedsByRow, lost_to_unreadable, plan_seeds

Baselines = dict[tuple, System | None]
"""Stratum -> its baseline system (None: no baseline, so its systems are not compared)."""
Groups = dict[tuple[str, tuple[int, ...]], list[System]]
"""(baseline name, seeds shared with it) -> the systems compared with that baseline on those seeds."""


@dataclass(frozen=True)
class Spread:
    """How uncertain one difference is, for its MDE and seeds needed: the table's test's standard error and
    degrees of freedom (None: normal), and the difference's variance components (`analysis.stats.crossed`)."""

    std_error: float
    df: int | None
    components: crossed.VarianceComponents
    pooled_components: crossed.VarianceComponents  # the seed part pooled over the group's systems
    pooled_systems: int  # S: the pooled seed part has S (R - 1) degrees of freedom


Spreads = dict[str, Spread]
"""System name -> the spread of its difference from the baseline."""


class StatisticsCache:
    """Sufficient statistics per (system, seed, metric), computed once (corpus BLEU tokenises text)."""

    def __init__(self, matched: MatchedSystems) -> None:
        self.matched = matched
        self._cache: dict[tuple[str, int, str], np.ndarray] = {}

    def run(self, system: System, seed: int, spec: MetricSpec) -> np.ndarray:
        """Statistics `[n, d]` of one run."""
        key = (system.name, seed, spec.name)
        if key not in self._cache:
            classes = self.matched.classes or self.matched.labels
            self._cache[key] = spec.statistics(self.matched.frame(system, seed), classes)
        return self._cache[key]

    def system(self, system: System, seeds: Sequence[int], spec: MetricSpec) -> np.ndarray:
        """Statistics `[R, n, d]` of a system's runs on `seeds`."""
        return np.stack([self.run(system, seed, spec) for seed in seeds])  # [R, n, d]

    def scores(self, system: System, seeds: Sequence[int], spec: MetricSpec) -> np.ndarray:
        """Per-example scores `[R, n]` of a per-example metric (NaN: unscored) on `seeds`."""
        return np.stack([self.matched.frame(system, seed)[spec.column].to_numpy(np.float64) for seed in seeds])


@dataclass(frozen=True)
class GroupTests:
    """Every test of one comparison group: S systems against one baseline on the seeds they share."""

    paired: significance.PairedBootstrap
    randomized: significance.Randomization
    mcnemar: significance.McNemar | None  # 0/1 metrics only
    ttest: across_seeds.SeedTest | None  # two seeds or more
    wilcoxon: across_seeds.SeedTest | None
    crossed: crossed.CrossedTest  # the default with two seeds or more (one seed: a paired t over examples)
    pooled: pooled.PooledCrossedTest  # both crossed tests; `crossed` is its `test` with options.pooled


def compose_rows(
    matched: MatchedSystems,
    choice: MetricChoice,
    baselines: Baselines,
    options: AnalysisOptions,
    notes: list[str],
) -> list[ComparisonRow]:
    """The table's rows, metric by metric (see the module's docstring); mismatches are added to `notes`."""
    cache = StatisticsCache(matched)
    seeds = plan_seeds(matched, baselines, notes)
    rows: list[ComparisonRow] = []
    for spec in choice.specs:
        systems = [system for system in matched.systems if choice.applies(spec, system)]
        rows += metric_rows(matched, spec, systems, baselines, seeds, cache, options, notes)
    return rows


def metric_rows(
    matched: MatchedSystems,
    spec: MetricSpec,
    systems: list[System],
    baselines: Baselines,
    seeds: SeedsByRow,
    cache: StatisticsCache,
    options: AnalysisOptions,
    notes: list[str],
) -> list[ComparisonRow]:
    """The rows of one metric (for the `systems` that have it), in table order, compared, corrected, with MDEs."""
    _note_unscored(matched, spec, systems, seeds, notes)
    rows = _system_rows(matched, spec, systems, baselines, seeds, cache, options)
    spreads: Spreads = {}
    for (baseline_name, group_seeds), members in _comparison_groups(spec, systems, baselines, seeds, notes).items():
        tests = _run_tests(cache, spec, matched.system(baseline_name), group_seeds, members, options)
        test = options.test_for(len(group_seeds))
        for index, system in enumerate(members):
            spreads[system.name] = _fill_comparison(rows[system.name], tests, index, test, group_seeds)
        notes += _test_notes(spec, test, group_seeds, members)
        if test == "crossed" and len(group_seeds) >= 2 and len(members) >= 2:
            names = ", ".join(system.name for system in members)
            use = "used" if options.pooled else "not used (--pooled off); its MDE shown"
            notes.append(
                f"{spec.name}: pooled seed part for {names} vs {baseline_name}: {tests.pooled.reason[0]}, {use}"
            )
    ordered = _table_order(systems, rows)
    _correct(ordered, spreads, options, spec)
    return ordered


def _note_unscored(
    matched: MatchedSystems, spec: MetricSpec, systems: list[System], seeds: SeedsByRow, notes: list[str]
) -> None:
    """Note runs with examples that have no score (e.g. the judge's): left out of the mean, still paired."""
    if spec.kind != "mean":
        return
    n_examples = len(matched.example_ids)
    for system in systems:
        for seed in seeds[system.name]:
            unscored = int(matched.frame(system, seed)[spec.column].isna().sum())
            if unscored:
                notes.append(
                    f"{spec.name}: {unscored} of {n_examples} examples have no score in "
                    f"{system.runs[seed].name}; left out of its mean (the other examples stay paired)"
                )


def _system_rows(
    matched: MatchedSystems,
    spec: MetricSpec,
    systems: list[System],
    baselines: Baselines,
    seeds: SeedsByRow,
    cache: StatisticsCache,
    options: AnalysisOptions,
) -> dict[str, ComparisonRow]:
    """Each system on its row's seeds: estimate, CI, per-seed scores; systems with the same seeds share a draw."""
    rows: dict[str, ComparisonRow] = {}
    by_seeds: dict[tuple[int, ...], list[System]] = {}
    for system in systems:
        by_seeds.setdefault(seeds[system.name], []).append(system)
    for row_seeds, members in by_seeds.items():
        block = np.stack([cache.system(system, row_seeds, spec) for system in members])  # [S, R, n, d]
        cis = intervals.bootstrap_cis(
            block,
            finalize=spec.finalize,
            n_resamples=options.n_resamples,
            seed=options.seed,
            method=options.ci,
            confidence=options.confidence,
        )
        per_seed = sufficient.per_run_scores(block, spec.finalize)  # [S, R]
        for index, system in enumerate(members):
            baseline = baselines.get(system.stratum)
            rows[system.name] = ComparisonRow(
                metric=spec.name,
                system=system.name,
                baseline=baseline.name if baseline else None,
                is_baseline=baseline is system,
                settings=dict(system.settings),
                n_examples=len(matched.example_ids),
                seeds=list(row_seeds),
                estimate=float(cis.estimate[index]),
                ci_low=float(cis.low[index]),
                ci_high=float(cis.high[index]),
                ci_method=cis.method,
                seed_scores={seed: float(score) for seed, score in zip(row_seeds, per_seed[index], strict=True)},
                system_id=system.system_id or "",
                unhealthy={seed: list(flags) for seed, flags in system.unhealthy(row_seeds).items()},
                seeds_unreadable=lost_to_unreadable(system, baseline, row_seeds),
            )
    return rows


def _comparison_groups(
    spec: MetricSpec, systems: list[System], baselines: Baselines, seeds: SeedsByRow, notes: list[str]
) -> Groups:
    """Systems grouped by (baseline, row seeds), so that each group shares one resample draw."""
    groups: Groups = {}
    for system in systems:
        baseline = baselines.get(system.stratum)
        if baseline is None or baseline is system or not set(seeds[system.name]) <= set(baseline.runs):
            continue  # no baseline, the baseline itself, or no seed in common (noted once by plan_seeds)
        if baseline not in systems:
            notes.append(f"{spec.name}: {system.name} not compared: its baseline {baseline.name} has no {spec.name}")
            continue
        groups.setdefault((baseline.name, seeds[system.name]), []).append(system)
    return groups


def _run_tests(
    cache: StatisticsCache,
    spec: MetricSpec,
    baseline: System,
    seeds: tuple[int, ...],
    members: list[System],
    options: AnalysisOptions,
) -> GroupTests:
    """Every test of `members` against `baseline` on `seeds`: baseline `[R, n, d]`, systems `[S, R, n, d]`."""
    finalize = spec.finalize
    base = cache.system(baseline, seeds, spec)
    block = np.stack([cache.system(system, seeds, spec) for system in members])
    paired = significance.paired_bootstrap(
        base,
        block,
        finalize=finalize,
        n_resamples=options.n_resamples,
        seed=options.seed,
        method=options.ci,
        confidence=options.confidence,
    )
    randomized = significance.approximate_randomization(
        base, block, finalize=finalize, n_trials=options.n_resamples, seed=options.seed
    )
    mcnemar = None
    if spec.binary:
        mcnemar = significance.mcnemar_exact(
            cache.scores(baseline, seeds, spec),
            np.stack([cache.scores(s, seeds, spec) for s in members]),
        )
    ttest = wilcoxon = None
    if len(seeds) >= 2:
        base_seed_scores = sufficient.per_run_scores(base, finalize)  # [R]
        system_seed_scores = sufficient.per_run_scores(block, finalize)  # [S, R]
        ttest = across_seeds.paired_ttest(base_seed_scores, system_seed_scores, confidence=options.confidence)
        wilcoxon = across_seeds.wilcoxon_signed_rank(base_seed_scores, system_seed_scores)
    if spec.kind == "mean":  # per-example scores: differences directly (NaN: jackknife over the scored ones)
        base_scores = cache.scores(baseline, seeds, spec)
        block_scores = np.stack([cache.scores(system, seeds, spec) for system in members])
        both = pooled.pooled_crossed_test(base_scores, block_scores, confidence=options.confidence, nan_policy="omit")
    else:  # corpus metrics: per-example influence pseudo-values
        both = pooled.pooled_crossed_test(base, block, finalize=finalize, confidence=options.confidence)
    crossed_test = both.test if options.pooled else both.per_comparison
    return GroupTests(paired, randomized, mcnemar, ttest, wilcoxon, crossed_test, both)


def _fill_comparison(row: ComparisonRow, tests: GroupTests, index: int, test: str, seeds: tuple[int, ...]) -> Spread:
    """Write system `index`'s comparison into its row; returns its difference's spread (MDE, seeds needed)."""
    paired, ttest, cross = tests.paired, tests.ttest, tests.crossed
    row.comparison_seeds = list(seeds)
    row.baseline_estimate = float(paired.point[0])  # the baseline on these seeds: delta = estimate - this
    row.p_bootstrap = float(paired.p_value[index])
    row.p_randomization = float(tests.randomized.p_value[index])
    row.p_mcnemar = _p_value(tests.mcnemar, index)
    row.p_ttest = _p_value(ttest, index)
    row.p_wilcoxon = _p_value(tests.wilcoxon, index)
    row.p_crossed = float(cross.p_value[index])
    row.p_crossed_pooled = float(tests.pooled.pooled.p_value[index])
    row.homogeneity_p = float(tests.pooled.homogeneity_p[0])
    row.seed_part_pooled = bool(cross is tests.pooled.test and tests.pooled.used_pooled[0] and len(seeds) >= 2)
    components = _components_of(cross.components, index)
    shared = (_components_of(tests.pooled.pooled_components, index), tests.pooled.n_systems)
    row.var_seed, row.var_example, row.var_residual = (
        float(part[0]) for part in (components.seed, components.example, components.residual)
    )
    row.test = test
    row.delta = float(paired.delta[index])
    uses_t = test == "t-test" and ttest is not None
    if uses_t:
        row.delta_low, row.delta_high, row.delta_ci = float(ttest.low[index]), float(ttest.high[index]), "t"
    elif test == "crossed":
        row.delta_low, row.delta_high, row.delta_ci = float(cross.low[index]), float(cross.high[index]), "crossed-t"
    else:
        row.delta_low, row.delta_high = float(paired.delta_low[index]), float(paired.delta_high[index])
        row.delta_ci = f"bootstrap-{paired.method}"
    row.p_value = {
        "crossed": row.p_crossed,
        "paired-bootstrap": row.p_bootstrap,
        "randomization": row.p_randomization,
        "mcnemar": row.p_mcnemar,
        "t-test": row.p_ttest,
        "wilcoxon": row.p_wilcoxon,
    }[test]
    if uses_t:
        return Spread(float(ttest.std_error[index]), len(seeds) - 1, components, *shared)  # the t-test's df
    return Spread(float(paired.delta_std_error[index]), None, components, *shared)


def _components_of(components: crossed.VarianceComponents, index: int) -> crossed.VarianceComponents:
    """System `index`'s variance components (one-element arrays)."""
    part = slice(index, index + 1)
    return replace(
        components, seed=components.seed[part], example=components.example[part], residual=components.residual[part]
    )


def _p_value(result: significance.McNemar | across_seeds.SeedTest | None, index: int) -> float:
    """System `index`'s p-value from a test's result, NaN when the test was not run."""
    return float(result.p_value[index]) if result is not None else math.nan


def _test_notes(spec: MetricSpec, test: str, seeds: tuple[int, ...], members: list[System]) -> list[str]:
    """Why a group has no p-value, or a p-value that cannot reach significance."""
    notes = []
    if test in ("t-test", "wilcoxon") and len(seeds) < 2:
        notes.append(
            f"{spec.name}: --test {test} needs >= 2 seed-matched runs; {len(seeds)} for "
            f"{', '.join(s.name for s in members)} (no p-value)"
        )
    if test == "wilcoxon" and 2 <= len(seeds) <= 5:
        notes.append(f"{spec.name}: Wilcoxon over {len(seeds)} seeds cannot reach p < 0.0625")
    return notes


def _table_order(systems: list[System], rows: dict[str, ComparisonRow]) -> list[ComparisonRow]:
    """Rows by stratum (in order of first appearance), each stratum's baseline first."""
    ordered = []
    for stratum in dict.fromkeys(system.stratum for system in systems):
        members = [system for system in systems if system.stratum == stratum]
        members.sort(key=lambda system: not rows[system.name].is_baseline)
        ordered += [rows[system.name] for system in members]
    return ordered


def _correct(rows: list[ComparisonRow], spreads: Spreads, options: AnalysisOptions, spec: MetricSpec) -> None:
    """Correct the p-values across the metric's comparisons, mark significance, and set each row's power figures:
    MDE, seeds needed for its observed delta and for the target effect, and words for what cannot be true."""
    compared = [row for row in rows if row.compared and not math.isnan(row.p_value)]
    adjusted = power.adjust_pvalues(np.array([row.p_value for row in compared]), options.correction) if compared else []
    for row, p_adjusted in zip(compared, adjusted, strict=True):
        row.p_adjusted = float(p_adjusted)
        row.significant = bool(p_adjusted < options.alpha)
    family = max(1, len(compared))
    target = options.target_effect / spec.scale if options.target_effect is not None else math.nan
    for row in rows:
        spread = spreads.get(row.system)
        if spread is not None:
            _power_figures(row, spread, options, family, target)
            row.undecided = undecided_words(row, spec) or ""


def _power_figures(row: ComparisonRow, spread: Spread, options: AnalysisOptions, family: int, target: float) -> None:
    """The row's MDE (of its test, at 80% power and the family's Bonferroni level), and the seeds the crossed
    test needs (at the study's n examples) to detect its observed delta and the target effect."""
    if row.test == "crossed":
        own = crossed_planning.minimum_detectable_effect(spread.components, alpha=options.alpha, n_comparisons=family)
        row.mde = row.mde_per_comparison = float(own[0])
        if len(row.comparison_seeds) >= 2:  # both MDEs; the table's is that of the test behind the p-value
            shared = crossed_planning.minimum_detectable_effect(
                spread.pooled_components,
                alpha=options.alpha,
                n_comparisons=family,
                pooled_systems=spread.pooled_systems,
            )
            row.mde_pooled = float(shared[0])
            row.mde = row.mde_pooled if row.seed_part_pooled else row.mde

    else:
        row.mde = float(
            power.minimum_detectable_effect(spread.std_error, alpha=options.alpha, n_comparisons=family, df=spread.df)
        )
    for effect, field_name in ((row.delta, "seeds_needed"), (target, "seeds_needed_target")):
        needed = crossed_planning.seeds_needed(spread.components, effect, alpha=options.alpha, n_comparisons=family)
        setattr(row, field_name, float(needed[0]))
    row.target_effect = target
