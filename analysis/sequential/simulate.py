"""The adaptive procedure and the fixed design run on many simulated sweeps at once (tests, bench).

Input: per-run metric values `[R, 1 + C, S]` of R sweeps, system 0 the shared baseline, C
configurations, S >= the design's last look seeds (seed s of every system drawn together). The
adaptive procedure reads the design's looks in order; a configuration stops getting seeds when its
comparison closes, the baseline when all have closed. Trials count one per (system, seed) run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from analysis.sequential.decisions import OPEN, UNDECIDED, boundary_table, decide_look, summary_statistics
from analysis.sequential.design import Design


@dataclass(frozen=True)
class Outcome:
    """Per sweep and comparison: final status codes `[R, C]`, the look it closed at (0: never) `[R, C]`,
    seeds each comparison used `[R, C]`, and trials per sweep `[R]` (configurations + baseline)."""

    status: np.ndarray
    closed_at: np.ndarray
    seeds: np.ndarray
    trials: np.ndarray


def run_adaptive(values: np.ndarray, design: Design, margin: float, cache_path=None) -> Outcome:
    """The group-sequential procedure of `design` on sweeps `[R, 1 + C, S]` (one metric, margin in its units)."""
    values = np.asarray(values, dtype=np.float64)
    sweeps, systems, seeds = values.shape
    if seeds < design.max_seeds:
        raise ValueError(f"values: {seeds} seeds per system, the design's last look needs {design.max_seeds}")
    comparisons = systems - 1
    differences = values[:, 1:, :] - values[:, :1, :]
    efficacy, equivalence = boundary_table(design, comparisons, cache_path=cache_path)
    status = np.zeros((sweeps, comparisons), dtype=np.int8)
    closed_at = np.zeros((sweeps, comparisons), dtype=np.int16)
    used = np.zeros((sweeps, comparisons), dtype=np.int16)
    for look, n in enumerate(design.looks):
        open_before = status == OPEN
        if not open_before.any():
            break
        mean, sd, _ = summary_statistics(differences[..., :n])
        status = decide_look(
            mean,
            sd,
            np.full(mean.shape, float(n)),
            status,
            efficacy[look],
            equivalence[look],
            margin,
            tested=open_before,
        )
        used = np.where(open_before, n, used)
        closed_at = np.where(open_before & (status != OPEN), look + 1, closed_at)
    status = np.where(status == OPEN, UNDECIDED, status).astype(np.int8)
    return Outcome(status, closed_at, used, used.sum(axis=1) + used.max(axis=1))


def run_fixed(values: np.ndarray, n_seeds: int, alpha: float, margin: float) -> Outcome:
    """The fixed design on the first `n_seeds` seeds: a t-test over seeds per comparison at alpha / C
    (Bonferroni), `equivalent` when its interval lies inside +/-margin, else undecided."""
    values = np.asarray(values, dtype=np.float64)
    differences = values[:, 1:, :n_seeds] - values[:, :1, :n_seeds]
    comparisons = differences.shape[1]
    mean, sd, _ = summary_statistics(differences)
    critical = scipy_stats.t.isf(alpha / comparisons / 2.0, n_seeds - 1)
    status = np.zeros(mean.shape, dtype=np.int8)
    status = decide_look(
        mean, sd, np.full(mean.shape, float(n_seeds)), status, np.full(comparisons, critical), critical, margin
    )
    status = np.where(status == OPEN, UNDECIDED, status).astype(np.int8)
    used = np.full(mean.shape, n_seeds, dtype=np.int16)
    return Outcome(status, np.where(status != UNDECIDED, 1, 0), used, np.full(len(mean), (comparisons + 1) * n_seeds))
