"""The adaptive procedure and the fixed design run on many simulated sweeps at once (tests, bench).

Input: per-run metric values `[R, 1 + C, S]` of R sweeps, system 0 the shared baseline, C
configurations, S >= the design's last look seeds (seed s of every system drawn together). The
adaptive procedure reads the design's looks in order; a configuration stops getting seeds when its
comparison closes (or, with a futility threshold, stops as undecided), the baseline when all have
closed. Trials count one per (system, seed) run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from analysis.sequential.decisions import OPEN, UNDECIDED, boundary_table, decide_look, futile, summary_statistics
from analysis.sequential.design import Correction, Design


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
        if design.futility and look < len(design.looks) - 1:
            stop = futile(mean, sd, np.full(mean.shape, float(n)), design.max_seeds, equivalence[-1], margin,
                          design.futility)
            status = np.where(open_before & (status == OPEN) & stop, UNDECIDED, status).astype(np.int8)
        used = np.where(open_before, n, used)
        closed_at = np.where(open_before & (status != OPEN), look + 1, closed_at)
    status = np.where(status == OPEN, UNDECIDED, status).astype(np.int8)
    return Outcome(status, closed_at, used, used.sum(axis=1) + used.max(axis=1))


def run_fixed(
    values: np.ndarray, n_seeds: int, alpha: float, margin: float, correction: Correction = "bonferroni"
) -> Outcome:
    """The fixed design on the first `n_seeds` seeds: a t-test over seeds per comparison, Bonferroni
    (alpha / C) or Holm (step-down), `equivalent` when its interval at alpha / C lies inside
    +/-margin, else undecided."""
    values = np.asarray(values, dtype=np.float64)
    differences = values[:, 1:, :n_seeds] - values[:, :1, :n_seeds]
    comparisons = differences.shape[1]
    mean, sd, _ = summary_statistics(differences)
    critical = scipy_stats.t.isf(alpha / comparisons / 2.0, n_seeds - 1)
    active = np.arange(1, comparisons + 1)  # Holm: the level when `active` comparisons are not rejected
    efficacy = scipy_stats.t.isf(alpha / active / 2.0, n_seeds - 1) if correction == "holm" else critical
    status = np.zeros(mean.shape, dtype=np.int8)
    status = decide_look(
        mean,
        sd,
        np.full(mean.shape, float(n_seeds)),
        status,
        np.broadcast_to(efficacy, (comparisons,)),
        critical,
        margin,
    )
    status = np.where(status == OPEN, UNDECIDED, status).astype(np.int8)
    used = np.full(mean.shape, n_seeds, dtype=np.int16)
    return Outcome(status, np.where(status != UNDECIDED, 1, 0), used, np.full(len(mean), (comparisons + 1) * n_seeds))


def expected_trials(
    design: Design,
    n_configurations: int,
    sd_difference: float,
    effects: dict[str, float],
    *,
    margin: float | None = None,
    n_sweeps: int = 4000,
    seed: int = 0,
    cache_path=None,
) -> dict[str, float]:
    """Planning figures for `--dry-run`: the maximum trials and the mean trials under each scenario.

    Normal planning assumptions: per-seed differences with sd `sd_difference` (points), every
    configuration at the true difference `effects[name]` (e.g. {"no difference": 0, "the MDE": 6.6}).
    `margin` defaults to the design's first margin. Returns {"maximum": ..., name: mean trials, ...}.
    """
    if not sd_difference > 0:
        raise ValueError(f"sd_difference must be positive, got {sd_difference}")
    margin = next(iter(design.margins.values())) if margin is None else margin
    rng = np.random.default_rng(seed)
    figures = {"maximum": float((n_configurations + 1) * design.max_seeds)}
    for name, effect in effects.items():
        # baseline 0, configurations at `effect`; each run carries half the difference's variance
        shape = (n_sweeps, n_configurations + 1, design.max_seeds)
        values = rng.normal(0.0, sd_difference / np.sqrt(2.0), shape)
        values[:, 1:, :] += effect
        figures[name] = float(run_adaptive(values, design, margin, cache_path=cache_path).trials.mean())
    return figures
