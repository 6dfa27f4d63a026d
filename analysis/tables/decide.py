"""Never print a number that cannot be true: intervals and MDEs wider than the metric's range become words.

A metric lives on a bounded range (accuracy, macro-F1, BERTScore: 0-100 %; BLEU: 0-100), so a
difference's CI or minimum detectable effect wider than that range says nothing except that the
design cannot decide (e.g. a t-test over 2 seeds, 1 degree of freedom: BLEU Δ -24.4 [-336.0, +287.2],
MDE 1,594.6). Such a row says so in words, with the seeds it would take:
"undecided with 2 seeds: about 9 seeds needed to detect 5.0 points at 80% power".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from analysis.metrics import MetricSpec
from analysis.stats.crossed_planning import MAX_SEEDS
from analysis.tables.comparison import ComparisonRow

POWER = 0.8  # the power every MDE and seeds-needed figure is stated at


def _wider(low: float, high: float, span: float) -> bool:
    return not (math.isnan(low) or math.isnan(high)) and high - low > span


def value_ci_fits(row: ComparisonRow, spec: MetricSpec) -> bool:
    """Whether the row's own CI is no wider than the metric's range."""
    return not _wider(row.ci_low, row.ci_high, spec.span)


def undecided_words(row: ComparisonRow, spec: MetricSpec) -> str | None:
    """Words for a compared row whose delta CI or MDE is wider than the metric's range; None when they fit.

    The seeds needed are for the `--target-effect` when given, else for the observed delta.
    """
    if not row.compared:
        return None
    if not (_wider(row.delta_low, row.delta_high, spec.span) or (not math.isnan(row.mde) and row.mde > spec.span)):
        return None
    n_seeds = len(row.comparison_seeds)
    head = f"undecided with {n_seeds} seed{'' if n_seeds == 1 else 's'}"
    targeted = not math.isnan(row.target_effect)
    effect = row.target_effect if targeted else row.delta
    needed = row.seeds_needed_target if targeted else row.seeds_needed
    points = f"{abs(effect) * spec.scale:.{1 if abs(effect) * spec.scale >= 1 else 2}f} points"
    what = "the target effect" if targeted else "the observed Δ"
    if math.isnan(needed):
        return f"{head}: seed variance unknown with one seed; run more seeds"
    if math.isinf(needed):
        return f"{head}: more than {MAX_SEEDS} seeds needed to detect {what} ({points}) at {POWER:.0%} power"
    return f"{head}: about {int(needed)} seeds needed to detect {what} ({points}) at {POWER:.0%} power"


def _seeds(needed: float) -> str:
    if math.isnan(needed):
        return "?"
    return f">{MAX_SEEDS}" if math.isinf(needed) else str(int(needed))


def seeds_needed_notes(
    rows: Sequence[ComparisonRow], specs: Sequence[MetricSpec], target_effect: float | None, n_examples: int
) -> list[str]:
    """One note per metric: each comparison's seeds needed for its observed Δ (and the target effect), 80% power."""
    notes = []
    for spec in specs:
        parts = []
        for row in rows:
            if row.metric != spec.name or not row.compared:
                continue
            part = f"{row.system} {_seeds(row.seeds_needed)} (Δ {abs(row.delta) * spec.scale:.2f})"
            if target_effect is not None:
                part += f", {_seeds(row.seeds_needed_target)} (target)"
            parts.append(part)
        if parts:
            target = f" and for the target effect {target_effect:g} points" if target_effect is not None else ""
            notes.append(
                f"seeds needed ({spec.name}, {n_examples} examples, {POWER:.0%} power, for the observed Δ{target}): "
                + "; ".join(parts)
            )
    return notes
