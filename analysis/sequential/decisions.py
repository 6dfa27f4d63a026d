"""Decisions of a family of comparisons at one look: better / worse / equivalent / open / undecided.

Vectorised over any leading axes (`[...]`, e.g. simulated sweeps) and the family's C comparisons.
A comparison is the paired per-seed difference d_s = system - baseline on seed s (higher is better),
read through `t = mean / sd * sqrt(n)` against group-sequential t boundaries (`boundaries`).

- better / worse: |t| >= the efficacy boundary at this look (two-sided), sign of the mean.
- equivalent within +/-m: the repeated confidence interval mean +/- c * sd / sqrt(n), with c the
  boundary at the Bonferroni level alpha / C, lies inside (-m, m).
- open otherwise; `undecided` once the last look (or a stop) is reached, or earlier when the design
  has a futility threshold and neither answer is within reach by the last look (`futile`, non-binding).

Why the error is controlled (Bonferroni): under any true difference delta, (mean - delta) / sd *
sqrt(n) is the null t process, so the repeated intervals cover delta at every look simultaneously
with probability >= 1 - alpha / C (Jennison & Turnbull 2000, ch. 9); every wrong decision (better or
worse when delta = 0 or of the other sign, equivalent when |delta| >= m) needs a non-covering
interval, so the family-wise error over all comparisons, looks and decision kinds is <= alpha.

Holm (group-sequential, Maurer & Bretz 2013): the level of each not-yet-rejected comparison is
alpha / (number not rejected); a rejection (better / worse) raises the others' levels, which then use
the boundaries of the same spending function at the raised level, re-tested at the current look
until nothing more is rejected. Equivalence keeps the Bonferroni level alpha / C (its error is
not covered by the Holm argument); a comparison closed as equivalent keeps its share of alpha.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats

from analysis.sequential.boundaries import t_boundaries
from analysis.sequential.design import Design
from analysis.stats.crossed_planning import MAX_SEEDS, t_test_power

OPEN, BETTER, WORSE, EQUIVALENT, UNDECIDED = 0, 1, 2, 3, 4
STATUS_NAMES = ("open", "better", "worse", "equivalent", "undecided")


def summary_statistics(differences: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, sd, n) `[...]` of differences `[..., S]` over seeds, NaN entries (missing seeds) left out."""
    d = np.asarray(differences, dtype=np.float64)
    present = ~np.isnan(d)
    n = present.sum(axis=-1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(present, d, 0.0).sum(axis=-1) / n
        squares = np.where(present, (d - mean[..., None]) ** 2, 0.0).sum(axis=-1)
        sd = np.sqrt(squares / (n - 1.0))
    return mean, sd, n


def boundary_table(
    design: Design, n_comparisons: int, looks: tuple[int, ...] | None = None, cache_path=None
) -> tuple[np.ndarray, np.ndarray]:
    """Efficacy boundaries `[K, C]` and equivalence boundaries `[K]` for a family of C comparisons.

    Column j - 1 of the efficacy table is the boundary when j comparisons are not rejected: level
    alpha / j under Holm, alpha / C for every j under Bonferroni. The equivalence (repeated interval)
    boundary is always at alpha / C. `looks` defaults to the design's planned looks.
    """
    if n_comparisons < 1:
        raise ValueError(f"n_comparisons must be >= 1, got {n_comparisons}")
    looks = design.looks if looks is None else looks
    max_seeds = max(design.max_seeds, looks[-1])

    def at(level: float) -> np.ndarray:
        return t_boundaries(
            looks, level, design.spending, max_seeds=max_seeds, n_sim=design.n_sim,
            seed=design.calibration_seed, cache_path=cache_path,
        )  # fmt: skip

    bonferroni = at(design.alpha / n_comparisons)
    if design.correction == "bonferroni":
        return np.repeat(bonferroni[:, None], n_comparisons, axis=1), bonferroni
    holm = np.stack([at(design.alpha / active) for active in range(1, n_comparisons + 1)], axis=1)
    return holm, bonferroni


def decide_look(
    mean: np.ndarray,
    sd: np.ndarray,
    n: np.ndarray,
    status: np.ndarray,
    efficacy_critical: np.ndarray,
    equivalence_critical: np.ndarray,
    margin: float,
    *,
    tested: np.ndarray | None = None,
) -> np.ndarray:
    """New status codes `[..., C]` after one look.

    `mean`, `sd`, `n`: `[..., C]` over each comparison's seeds at this look; `status`: codes `[..., C]`
    before it (only OPEN comparisons can change); `efficacy_critical`: `[..., C, C]` (last axis: the
    boundary when j comparisons are not rejected, `boundary_table`'s row, broadcast); `equivalence_critical`:
    `[..., C]`; `tested` `[..., C]` marks comparisons with new seeds at this look (default: all). A
    comparison with fewer than 2 seeds or sd 0 is not tested (no variance estimate to read it by).
    """
    mean, sd, n = (np.asarray(array, dtype=np.float64) for array in (mean, sd, n))
    status = np.array(status, dtype=np.int8, copy=True)
    family = status.shape[-1]
    testable = (n >= 2) & (sd > 0) & np.isfinite(mean) & np.isfinite(sd)
    if tested is not None:
        testable &= np.asarray(tested, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        abs_t = np.where(testable, np.abs(mean) / sd * np.sqrt(n), 0.0)
    critical = np.broadcast_to(efficacy_critical, status.shape + (family,))
    for _ in range(family):  # each pass rejects at least one comparison, or stops
        rejected = (status == BETTER) | (status == WORSE)
        active = family - rejected.sum(axis=-1, keepdims=True)  # [..., 1]
        index = np.broadcast_to(np.maximum(active - 1, 0), status.shape)[..., None]
        boundary = np.take_along_axis(critical, index, axis=-1)[..., 0]
        new = testable & (status == OPEN) & (abs_t >= boundary)
        if not new.any():
            break
        status = np.where(new, np.where(mean > 0, BETTER, WORSE), status).astype(np.int8)
    with np.errstate(invalid="ignore"):
        half_width = np.asarray(equivalence_critical) * sd / np.sqrt(n)
        inside = np.abs(mean) + half_width < margin
    return np.where(testable & (status == OPEN) & inside, EQUIVALENT, status).astype(np.int8)


def futile(
    mean: np.ndarray, sd: np.ndarray, n: np.ndarray, max_n: int, final_critical: float, margin: float, threshold: float
) -> np.ndarray:
    """Non-binding futility `[...]` at an interim look: neither answer is within reach by the last look.

    Detection out of reach: the conditional power to cross the last look's boundary `final_critical`
    (a t boundary with `max_n - 1` df) under the current trend is below `threshold`. Brownian-motion
    form (Lan & Wittes 1988) at information fraction f = n / max_n, the t values carried to the normal
    scale by their tail probabilities: CP = P(Z > (z_final - z / sqrt(f)) / sqrt(1 - f)).
    Equivalence out of reach: the last look's repeated interval with the current mean and sd,
    |mean| + final_critical * sd / sqrt(max_n), does not fit inside +/-margin.

    Non-binding: the boundaries ignore it, so stopping only removes decisions and cannot raise any
    error rate (type I, or false equivalence); the approximation decides only how many trials it saves.
    NaN inputs (no variance yet) are never futile.
    """
    mean, sd, n = (np.asarray(array, dtype=np.float64) for array in (mean, sd, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.abs(mean) / sd * np.sqrt(n)
        z = scipy_stats.norm.isf(scipy_stats.t.sf(t, np.maximum(n - 1.0, 1.0)))
        z_final = scipy_stats.norm.isf(scipy_stats.t.sf(final_critical, max_n - 1.0))
        fraction = n / max_n
        power = scipy_stats.norm.sf((z_final - z / np.sqrt(fraction)) / np.sqrt(1.0 - fraction))
        no_detection = (fraction < 1.0) & (power < threshold)
        no_equivalence = np.abs(mean) + final_critical * sd / np.sqrt(max_n) >= margin
    return no_detection & no_equivalence & np.isfinite(t)


def fixed_design_seeds(
    effect: np.ndarray, sd: np.ndarray, level: float, power: float = 0.8, max_seeds: int = MAX_SEEDS
) -> np.ndarray:
    """Seeds `[...]` a fixed two-sided t-test over seeds at `level` needs to detect `effect` with `power`.

    Exact under the noncentral t (`crossed_planning.t_test_power`), per-seed sd `sd`; inf when no
    count up to `max_seeds` does (or the effect is 0), NaN when sd is unknown.
    """
    effect, sd = np.broadcast_arrays(np.abs(np.asarray(effect, float)), np.asarray(sd, float))
    grid = np.arange(2, max_seeds + 1, dtype=np.float64)
    df = grid - 1.0
    critical = scipy_stats.t.isf(level / 2.0, df)
    with np.errstate(invalid="ignore", divide="ignore"):
        noncentrality = np.where(sd[..., None] > 0, effect[..., None] / sd[..., None], np.inf) * np.sqrt(grid)
    noncentrality = np.where(np.isfinite(noncentrality), noncentrality, 1e6)
    reached = t_test_power(noncentrality, df, critical) >= power
    first = np.where(reached.any(axis=-1), grid[reached.argmax(axis=-1)], np.inf)
    return np.where(np.isnan(sd) | np.isnan(effect), np.nan, first)


def equivalence_seeds(
    mean: np.ndarray, sd: np.ndarray, margin: float, level: float, max_seeds: int = MAX_SEEDS
) -> np.ndarray:
    """Seeds `[...]` at which a fixed design's interval at `level` around `mean` (sd held) fits in +/-margin.

    inf when |mean| >= margin or no count up to `max_seeds` suffices; NaN when sd is unknown.
    """
    mean, sd = np.broadcast_arrays(np.asarray(mean, float), np.asarray(sd, float))
    grid = np.arange(2, max_seeds + 1, dtype=np.float64)
    half = scipy_stats.t.isf(level / 2.0, grid - 1.0) * sd[..., None] / np.sqrt(grid)
    inside = np.abs(mean[..., None]) + half < margin
    first = np.where(inside.any(axis=-1), grid[inside.argmax(axis=-1)], np.inf)
    return np.where(np.isnan(sd) | np.isnan(mean), np.nan, first)
