"""Composing the table's rows: one `ComparisonRow` per (system, metric), from the statistics modules.

Per metric:
1. each system on its own: mean over seeds, bootstrap CI, per-seed scores (systems with the same
   seeds share one resample draw);
2. each system against its stratum's baseline, grouped by (baseline, seeds in common) so that a
   group shares one draw: the paired bootstrap, randomisation, McNemar (0/1 metrics), and the t-test
   and Wilcoxon over seeds (two seeds or more); the table's test gives the row's delta CI and p;
3. the rows in table order (strata, baseline first), p-values corrected across the metric's
   comparisons, and each difference's minimum detectable effect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis import across_seeds, intervals, power, significance, sufficient
from analysis.metrics import MetricSpec
from analysis.options import AnalysisOptions
from analysis.systems import MatchedSystems, System
from analysis.tables import ComparisonRow

Baselines = dict[tuple, System | None]
"""Stratum -> its baseline system (None: no baseline, so its systems are not compared)."""
Groups = dict[tuple[str, tuple[int, ...]], list[System]]
"""(baseline name, seeds shared with it) -> the systems compared with that baseline on those seeds."""
StdErrors = dict[str, tuple[float, int | None]]
"""System name -> (standard error of its difference, the t-test's degrees of freedom or None): for its MDE."""


class StatisticsCache:
    """Sufficient statistics per (system, seed, metric), computed once (corpus BLEU tokenises text)."""

    def __init__(self, matched: MatchedSystems) -> None:
        self.matched = matched
        self._cache: dict[tuple[str, int, str], np.ndarray] = {}

    def run(self, system: System, seed: int, spec: MetricSpec) -> np.ndarray:
        """Statistics `[n, d]` of one run."""
        key = (system.name, seed, spec.name)
        if key not in self._cache:
            self._cache[key] = spec.statistics(self.matched.frame(system, seed), self.matched.labels)
        return self._cache[key]

    def system(self, system: System, seeds: Sequence[int], spec: MetricSpec) -> np.ndarray:
        """Statistics `[R, n, d]` of a system's runs on `seeds`."""
        return np.stack([self.run(system, seed, spec) for seed in seeds])  # [R, n, d]

    def correctness(self, system: System, seeds: Sequence[int], spec: MetricSpec) -> np.ndarray:
        """0/1 scores `[R, n]` of a system's runs on `seeds` (for McNemar)."""
        return np.stack([self.matched.frame(system, seed)[spec.column].to_numpy(np.float64) for seed in seeds])


@dataclass(frozen=True)
class GroupTests:
    """Every test of one comparison group: S systems against one baseline on the seeds they share."""

    paired: significance.PairedBootstrap
    randomized: significance.Randomization
    mcnemar: significance.McNemar | None  # 0/1 metrics only
    ttest: across_seeds.SeedTest | None  # two seeds or more
    wilcoxon: across_seeds.SeedTest | None


def compose_rows(
    matched: MatchedSystems,
    specs: Sequence[MetricSpec],
    baselines: Baselines,
    options: AnalysisOptions,
    notes: list[str],
) -> list[ComparisonRow]:
    """The table's rows, metric by metric (see the module's docstring); mismatches are added to `notes`."""
    cache = StatisticsCache(matched)
    rows: list[ComparisonRow] = []
    for spec in specs:
        rows += metric_rows(matched, spec, baselines, cache, options, notes)
    return rows


def metric_rows(
    matched: MatchedSystems,
    spec: MetricSpec,
    baselines: Baselines,
    cache: StatisticsCache,
    options: AnalysisOptions,
    notes: list[str],
) -> list[ComparisonRow]:
    """The rows of one metric, in table order, compared, corrected and with their MDEs."""
    _note_unscored(matched, spec, notes)
    rows = _system_rows(matched, spec, baselines, cache, options)
    std_errors: StdErrors = {}
    for (baseline_name, seeds), members in _comparison_groups(matched, spec, baselines, notes).items():
        tests = _run_tests(cache, spec, matched.system(baseline_name), seeds, members, options)
        test = options.test_for(len(seeds))
        for index, system in enumerate(members):
            std_errors[system.name] = _fill_comparison(rows[system.name], tests, index, test, seeds)
        notes += _test_notes(spec, test, seeds, members)
    ordered = _table_order(matched, rows)
    _correct(ordered, std_errors, options)
    return ordered


def _note_unscored(matched: MatchedSystems, spec: MetricSpec, notes: list[str]) -> None:
    """Note runs with examples that have no score (e.g. the judge's): left out of the mean, still paired."""
    if spec.kind != "mean":
        return
    n_examples = len(matched.example_ids)
    for system in matched.systems:
        for seed in system.seeds:
            unscored = int(matched.frame(system, seed)[spec.column].isna().sum())
            if unscored:
                notes.append(
                    f"{spec.name}: {unscored} of {n_examples} examples have no score in "
                    f"{system.runs[seed].name}; left out of its mean (the other examples stay paired)"
                )


def _system_rows(
    matched: MatchedSystems,
    spec: MetricSpec,
    baselines: Baselines,
    cache: StatisticsCache,
    options: AnalysisOptions,
) -> dict[str, ComparisonRow]:
    """Each system on its own: estimate, CI, per-seed scores; systems with the same seeds share a draw."""
    rows: dict[str, ComparisonRow] = {}
    by_seeds: dict[tuple[int, ...], list[System]] = {}
    for system in matched.systems:
        by_seeds.setdefault(tuple(system.seeds), []).append(system)
    for seeds, members in by_seeds.items():
        block = np.stack([cache.system(system, seeds, spec) for system in members])  # [S, R, n, d]
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
                seeds=list(seeds),
                estimate=float(cis.estimate[index]),
                ci_low=float(cis.low[index]),
                ci_high=float(cis.high[index]),
                ci_method=cis.method,
                seed_scores={seed: float(score) for seed, score in zip(seeds, per_seed[index], strict=True)},
            )
    return rows


def _comparison_groups(matched: MatchedSystems, spec: MetricSpec, baselines: Baselines, notes: list[str]) -> Groups:
    """Systems grouped by (baseline, seeds in common), so that each group shares one resample draw."""
    groups: Groups = {}
    for system in matched.systems:
        baseline = baselines.get(system.stratum)
        if baseline is None or baseline is system:
            continue
        shared = tuple(seed for seed in system.seeds if seed in baseline.runs)
        if not shared:
            notes.append(f"{spec.name}: {system.name} shares no seed with {baseline.name}; not compared")
            continue
        groups.setdefault((baseline.name, shared), []).append(system)
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
            cache.correctness(baseline, seeds, spec),
            np.stack([cache.correctness(s, seeds, spec) for s in members]),
        )
    ttest = wilcoxon = None
    if len(seeds) >= 2:
        base_seed_scores = sufficient.per_run_scores(base, finalize)  # [R]
        system_seed_scores = sufficient.per_run_scores(block, finalize)  # [S, R]
        ttest = across_seeds.paired_ttest(base_seed_scores, system_seed_scores, confidence=options.confidence)
        wilcoxon = across_seeds.wilcoxon_signed_rank(base_seed_scores, system_seed_scores)
    return GroupTests(paired, randomized, mcnemar, ttest, wilcoxon)


def _fill_comparison(
    row: ComparisonRow, tests: GroupTests, index: int, test: str, seeds: tuple[int, ...]
) -> tuple[float, int | None]:
    """Write system `index`'s comparison into its row; returns its difference's (std error, df) for the MDE."""
    paired, ttest = tests.paired, tests.ttest
    row.comparison_seeds = list(seeds)
    row.p_bootstrap = float(paired.p_value[index])
    row.p_randomization = float(tests.randomized.p_value[index])
    row.p_mcnemar = _p_value(tests.mcnemar, index)
    row.p_ttest = _p_value(ttest, index)
    row.p_wilcoxon = _p_value(tests.wilcoxon, index)
    row.test = test
    row.delta = float(paired.delta[index])
    uses_t = test == "t-test" and ttest is not None
    if uses_t:
        row.delta_low, row.delta_high = float(ttest.low[index]), float(ttest.high[index])
        row.delta_ci = "t"
    else:
        row.delta_low, row.delta_high = float(paired.delta_low[index]), float(paired.delta_high[index])
        row.delta_ci = f"bootstrap-{paired.method}"
    row.p_value = {
        "paired-bootstrap": row.p_bootstrap,
        "randomization": row.p_randomization,
        "mcnemar": row.p_mcnemar,
        "t-test": row.p_ttest,
        "wilcoxon": row.p_wilcoxon,
    }[test]
    if uses_t:
        return float(ttest.std_error[index]), len(seeds) - 1  # the t-test's degrees of freedom
    return float(paired.delta_std_error[index]), None


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


def _table_order(matched: MatchedSystems, rows: dict[str, ComparisonRow]) -> list[ComparisonRow]:
    """Rows by stratum (in order of first appearance), each stratum's baseline first."""
    ordered = []
    for stratum in dict.fromkeys(system.stratum for system in matched.systems):
        members = [system for system in matched.systems if system.stratum == stratum]
        members.sort(key=lambda system: not rows[system.name].is_baseline)
        ordered += [rows[system.name] for system in members]
    return ordered


def _correct(rows: list[ComparisonRow], std_errors: StdErrors, options: AnalysisOptions) -> None:
    """Correct the p-values across the metric's comparisons, mark significance, and set each MDE."""
    compared = [row for row in rows if row.compared and not math.isnan(row.p_value)]
    adjusted = power.adjust_pvalues(np.array([row.p_value for row in compared]), options.correction) if compared else []
    for row, p_adjusted in zip(compared, adjusted, strict=True):
        row.p_adjusted = float(p_adjusted)
        row.significant = bool(p_adjusted < options.alpha)
    for row in rows:
        if row.system in std_errors:
            std_error, df = std_errors[row.system]
            row.mde = float(
                power.minimum_detectable_effect(
                    std_error, alpha=options.alpha, n_comparisons=max(1, len(compared)), df=df
                )
            )
