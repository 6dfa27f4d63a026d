"""Verdicts in words, computed from a report's rows (never typed by hand): one per comparison that matters,
one summary per question, the spread across seeds, and how a comparison reads under each rationale source.

A comparison "matters" when it is a system against its baseline on a primary metric (accuracy,
macro-F1, BLEU: those the report computed). It is *decided* when its corrected p-value is below
alpha (the table's `*`), and the better system is the one the difference favours (every metric here
is higher-is-better). Otherwise it is *undecided*, and the sentence says what the design can detect
(its MDE) and how many seeds the observed difference would need, or `analysis.tables.decide`'s words when
the CI or MDE is wider than the metric's range.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from analysis.load.naming import format_setting
from analysis.metrics import MetricSpec
from analysis.stats.crossed_planning import MAX_SEEDS
from analysis.tables.comparison import ComparisonRow
from analysis.tables.decide import POWER
from analysis.tables.render import format_p

PRIMARY_METRICS = ("correct", "macro_f1", "corpus_bleu")
CORRECTION_LABELS = {"holm": "Holm", "bonferroni": "Bonferroni"}
SOURCE_KEY = "rationale_source"


@dataclass(frozen=True)
class Verdict:
    """One comparison in words. `better` is the system the difference favours (None: undecided)."""

    metric: str
    label: str  # the metric as printed
    system: str
    baseline: str
    better: str | None
    unhealthy: bool  # either side's runs include unhealthy ones (see the report's health notes)
    source: object  # the comparison's rationale source (its stratum)
    sentence: str

    @property
    def decided(self) -> bool:
        return self.better is not None


def primary_specs(specs: Sequence[MetricSpec]) -> list[MetricSpec]:
    """The primary metrics among those computed (accuracy, macro-F1, BLEU); all of them when none is primary."""
    return [spec for spec in specs if spec.name in PRIMARY_METRICS] or list(specs)


def _points(value: float, spec: MetricSpec, signed: bool = False) -> str:
    """A raw difference in display units, as the table prints it (1 decimal, 2 below 1)."""
    scaled = value * spec.scale
    digits = 1 if abs(scaled) >= 1 or scaled == 0 else 2
    return f"{scaled:+.{digits}f}" if signed else f"{scaled:.{digits}f}"


def _unit(spec: MetricSpec) -> str:
    return " points" if spec.display_range >= 100 else ""  # the paper's 0-1 BLEU has no points


def comparison_verdicts(
    rows: Sequence[ComparisonRow], specs: Sequence[MetricSpec], correction: str = "holm"
) -> list[Verdict]:
    """A verdict per compared row of each primary metric, in the table's order."""
    verdicts = []
    for spec in primary_specs(specs):
        metric_rows = [row for row in rows if row.metric == spec.name]
        baselines = {row.system: row for row in metric_rows if row.is_baseline}
        for row in metric_rows:
            if row.compared and row.baseline is not None:
                verdicts.append(comparison_verdict(row, spec, baselines.get(row.baseline), correction))
    return verdicts


def comparison_verdict(
    row: ComparisonRow, spec: MetricSpec, baseline_row: ComparisonRow | None, correction: str = "holm"
) -> Verdict:
    """`teacher_forcing vs r2d: macro-F1 -3.1 points [-5.0, -1.2], p = 0.004 (Holm): r2d is better, decided.`"""
    unit = _unit(spec)
    text = f"{row.system} vs {row.baseline}: {spec.label} {_points(row.delta, spec, signed=True)}{unit}"
    if not row.undecided:  # a CI wider than the metric's range is never printed (analysis.tables.decide)
        text += f" [{_points(row.delta_low, spec, True)}, {_points(row.delta_high, spec, True)}]"
    p_text = format_p(row.p_adjusted)
    if p_text == "-":
        text += ", no p-value"
    else:
        p_words = "< 0.001" if p_text == "<0.001" else f"= {p_text}"
        text += f", p {p_words} ({CORRECTION_LABELS.get(correction, correction)})"
    better = None
    if row.significant:
        better = row.system if row.delta > 0 else str(row.baseline)
        text += f": {better} is better, decided."
    else:
        text += ": " + _undecided(row, spec) + "."
    unhealthy = bool(row.unhealthy) or bool(baseline_row is not None and baseline_row.unhealthy)
    if unhealthy:
        text += " († unhealthy runs in this comparison: see the notes.)"
    source = row.settings.get(SOURCE_KEY)
    return Verdict(spec.name, spec.label, row.system, str(row.baseline), better, unhealthy, source, text)


def _undecided(row: ComparisonRow, spec: MetricSpec) -> str:
    """What a non-significant comparison can and cannot tell: its MDE and the seeds the observed Δ needs."""
    if row.undecided:
        return row.undecided
    unit = _unit(spec)
    n_seeds = len(row.comparison_seeds)
    these = "this seed" if n_seeds == 1 else f"these {n_seeds} seeds"
    parts = ["undecided"]
    if math.isfinite(row.mde):
        parts.append(
            f"the smallest difference {these} ({row.n_examples} examples) can detect at {POWER:.0%} power "
            f"is {_points(row.mde, spec)}{unit}"
        )
    observed = f"the observed difference ({_points(abs(row.delta), spec)}{unit})"
    if math.isnan(row.seeds_needed):
        parts.append("with one seed the seed variance is unknown: run more seeds to plan")
    elif math.isinf(row.seeds_needed):  # with that many seeds the seed part is gone: the examples limit
        parts.append(
            f"even {MAX_SEEDS} seeds would not detect {observed} on {row.n_examples} examples: "
            "more test examples would be needed"
        )
    else:
        parts.append(f"about {int(row.seeds_needed)} seeds would be needed to detect {observed}")
    return "; ".join(parts)


def _names(verdicts: Sequence[Verdict]) -> str:
    return f" ({', '.join(v.system for v in verdicts)})" if verdicts else ""


def summary_clauses(verdicts: Sequence[Verdict]) -> list[str]:
    """One clause per metric: `accuracy: of 3 comparisons with r2d, r2d is better than 1 (teacher_forcing), no
    system is better than r2d, 2 undecided (constant_mix, combined_ft)`."""
    clauses = []
    for label in dict.fromkeys(v.label for v in verdicts):
        metric = [v for v in verdicts if v.label == label]
        baselines = list(dict.fromkeys(v.baseline for v in metric))
        against = baselines[0] if len(baselines) == 1 else "the baseline of each source"
        # a one-word baseline reads well twice; a long name (settings) is named once, then "the baseline"
        base = baselines[0] if len(baselines) == 1 and " " not in baselines[0] else "the baseline"
        worse = [v for v in metric if v.decided and v.better == v.baseline]
        better = [v for v in metric if v.decided and v.better == v.system]
        undecided = [v for v in metric if not v.decided]
        if not better:
            beats = f"no system is better than {base}"
        else:
            beats = f"{len(better)} {'system is' if len(better) == 1 else 'systems are'} better than {base}"
            beats += _names(better)
        clause = (
            f"{label}: of {len(metric)} comparison{'s' if len(metric) != 1 else ''} with {against}, {base} is "
            f"better than {len(worse) or 'none'}{_names(worse)}, {beats}, {len(undecided)} undecided{_names(undecided)}"
        )
        shaky = sum(1 for v in metric if v.decided and v.unhealthy)
        if shaky:
            clause += f" ({shaky} decided comparison{'s' if shaky > 1 else ''} with unhealthy runs)"
        clauses.append(clause)
    return clauses


def summary_verdict(heading: str, verdicts: Sequence[Verdict]) -> str:
    """`Point 1, controls: accuracy: of 3 comparisons with r2d, ...; macro-F1: ...` (the clauses on one line)."""
    clauses = summary_clauses(verdicts)
    return f"{heading}: " + ("; ".join(clauses) if clauses else "no comparison could be made") + "."


def seed_stability(rows: Sequence[ComparisonRow], specs: Sequence[MetricSpec]) -> list[str]:
    """Per primary metric: the spread (sd) of each system's per-seed scores, smallest, median and largest."""
    lines = []
    for spec in primary_specs(specs):
        spread = [(row.seed_sd, row.system) for row in rows if row.metric == spec.name and len(row.seed_scores) > 1]
        if not spread:
            continue
        low, high = min(spread), max(spread)
        median = statistics.median(sd for sd, _ in spread)
        lines.append(
            f"Across seeds, {spec.label}: the sd of a system's per-seed scores is {_points(low[0], spec)} "
            f"({low[1]}) to {_points(high[0], spec)} ({high[1]}){_unit(spec)}, median {_points(median, spec)}; "
            "the per-seed scores are the points in the plots."
        )
    return lines


def _without_source(name: str, source: object) -> str:
    return name.replace(f" source={format_setting(source)}", "")


def source_readings(verdicts: Sequence[Verdict]) -> list[str]:
    """How each comparison reads under each rationale source, when the question spans several sources.

    The interaction is read from the per-source verdicts: no formal source x system test is computed.
    """
    if len({v.source for v in verdicts}) < 2:
        return []
    groups: dict[tuple[str, str, str], list[Verdict]] = {}
    for v in verdicts:
        key = (v.label, _without_source(v.system, v.source), _without_source(v.baseline, v.source))
        groups.setdefault(key, []).append(v)
    lines = []
    for (label, system, baseline), members in groups.items():
        if len(members) < 2:
            continue
        outcomes = [f"{_without_source(v.better, v.source)} better" if v.better else "undecided" for v in members]
        same = len(set(outcomes)) == 1
        lines.append(
            f"{system} vs {baseline}, {label}, by rationale source: "
            + "; ".join(f"{format_setting(v.source)}: {outcome}" for v, outcome in zip(members, outcomes, strict=True))
            + (": the same verdict under every source." if same else ": the verdict changes with the source.")
        )
    if lines:
        lines.append(
            "(The interaction is read from these per-source verdicts; no formal source x system interaction test "
            "is computed.)"
        )
    return lines
