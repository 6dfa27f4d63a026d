"""Paired significance tests of S systems against a baseline on the same examples (and seed-matched runs).

The paired bootstrap (with the difference's CI), approximate randomisation, and exact McNemar for
0/1 metrics; one resample draw serves every system. Tests whose unit is a training run (t-test,
Wilcoxon over seeds) are in `analysis.stats.across_seeds`.

Conventions, chosen to be checkable against references (see tests/test_analysis_stats.py):
`paired_bootstrap(..., convention="sacrebleu")` and `approximate_randomization(..., convention="sacrebleu")`
reproduce `sacrebleu.significance` exactly in definition (the +1 p-value); the default conventions
are two-sided tests that are calibrated (A/A comparisons reject at alpha). McNemar matches statsmodels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np
from scipy import stats as scipy_stats

from analysis.stats.intervals import CiMethod, Intervals, interval_bounds, intervals_from, shared_bootstrap
from analysis.stats.resampling import (
    DEFAULT_RESAMPLES,
    check_finite,
    single_threaded_blas,
    sum_dtype,
    swap_masks,
    systems_and_baseline,
)
from analysis.stats.sufficient import Finalize

Convention = Literal["two-sided", "sacrebleu"]

# Relative tolerance when comparing a resampled statistic with the observed one (float round-off).
_TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class PairedBootstrap:
    """Paired bootstrap of S systems against a baseline (arrays of length S).

    `delta` = system - baseline, with its CI (the effect size with its uncertainty), its bootstrap
    standard error (for the minimum detectable effect), and the test's p-value. The baseline's and
    systems' own intervals come from the same draw and are computed when first read.
    """

    delta: np.ndarray
    delta_low: np.ndarray
    delta_high: np.ndarray
    delta_std_error: np.ndarray
    p_value: np.ndarray
    degenerate: np.ndarray
    method: str
    convention: str
    n_resamples: int
    confidence: float
    distribution: np.ndarray = field(repr=False)  # [B, Sb + S]: baseline(s), then systems
    point: np.ndarray = field(repr=False)
    jackknife: np.ndarray = field(repr=False)
    n_baselines: int = 1

    def _intervals(self, columns: np.ndarray) -> Intervals:
        return intervals_from(
            self.distribution[:, columns],
            self.point[columns],
            self.jackknife[columns],
            self.method,
            self.confidence,
            self.n_resamples,
        )

    @cached_property
    def baseline(self) -> Intervals:
        """The baseline's (or baselines') own intervals, from the same draw."""
        return self._intervals(np.arange(self.n_baselines))

    @cached_property
    def systems(self) -> Intervals:
        """The systems' own intervals, from the same draw."""
        return self._intervals(np.arange(self.n_baselines, self.distribution.shape[1]))


def _p_value_shift(differences: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Two-sided shifted-null bootstrap p-value: how often |delta* - delta| >= |delta| (+1 / B+1).

    The bootstrap distribution centred on the observed difference stands in for the null
    distribution (Berg-Kirkpatrick et al. 2012's `delta(x*) > 2 delta(x)`, made two-sided).
    """
    tolerance = _TIE_TOLERANCE * np.maximum(1.0, np.abs(observed))
    exceed = (np.abs(differences - observed) >= np.abs(observed) - tolerance).sum(axis=0)
    return (exceed + 1.0) / (differences.shape[0] + 1.0)


def _p_value_sacrebleu(differences: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """sacreBLEU's paired-bootstrap p-value: |d*| - mean|d*| > |d|, counted with +1 over B + 1."""
    absolute = np.abs(differences)
    centred = absolute - absolute.mean(axis=0)
    exceed = (centred > np.abs(observed)).sum(axis=0)
    return (exceed + 1.0) / (differences.shape[0] + 1.0)


def paired_bootstrap(
    baseline: np.ndarray,
    systems: np.ndarray,
    *,
    finalize: Finalize | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
    method: CiMethod = "bca",
    convention: Convention = "two-sided",
    resample_seeds: bool = True,
    nan_policy: Literal["raise", "omit"] = "raise",
) -> PairedBootstrap:
    """Paired bootstrap test of S systems against a baseline on the same examples (and seeds).

    `baseline` has the systems' shape without their leading axis (one baseline shared by all), or
    with it (one baseline per system, e.g. simulated A/A pairs). One resample draw serves every
    system, so 20 systems cost one matrix product. `convention="two-sided"` (default) is the
    calibrated shifted-null test; `"sacrebleu"` reproduces `sacrebleu.significance`'s definition,
    which compares |delta*| - mean|delta*| with |delta| and so rejects about twice as often as
    alpha in A/A comparisons (measured in the tests): use it to reproduce sacreBLEU numbers.

    With several seeds (R > 1) the resampling is stratified (seeds and examples, see
    `bootstrap_distribution`). Measured in A/A simulations, that two-way bootstrap counts the
    seed x example noise about three times (Owen 2007's pigeonhole bootstrap), so its test is
    conservative (rejection rate well under alpha) unless seed-to-seed variance dominates, and with
    3 seeds it can be anti-conservative when it does. Across seeds, prefer `across_seeds.paired_ttest` for the
    test (calibrated), and read this interval as a conservative one that includes seed variance.
    """
    if convention not in ("two-sided", "sacrebleu"):
        raise ValueError(f"convention must be 'two-sided' or 'sacrebleu', got {convention!r}")
    base, syst, finalize_fn = systems_and_baseline(baseline, systems, finalize, nan_policy)
    n_base = base.shape[0]
    stacked = np.concatenate([base, syst], axis=0)
    shared = shared_bootstrap(
        stacked, finalize_fn, method=method, n_resamples=n_resamples, seed=seed, resample_seeds=resample_seeds
    )
    point, jackknife, distribution, method = shared.point, shared.jackknife, shared.distribution, shared.method
    base_index = np.zeros(syst.shape[0], dtype=int) if n_base == 1 else np.arange(syst.shape[0])
    sys_dist, base_dist = distribution[:, n_base:], distribution[:, base_index]
    differences = sys_dist - base_dist
    delta = point[n_base:] - point[base_index]
    delta_jack = jackknife[n_base:] - jackknife[base_index]
    delta_low, delta_high, degenerate = interval_bounds(differences, delta, delta_jack, method, confidence)
    p_value = (_p_value_shift if convention == "two-sided" else _p_value_sacrebleu)(differences, delta)

    return PairedBootstrap(
        delta=delta,
        delta_low=delta_low,
        delta_high=delta_high,
        delta_std_error=differences.std(axis=0, ddof=1),
        p_value=p_value,
        degenerate=degenerate,
        method=method,
        convention=convention,
        n_resamples=n_resamples,
        confidence=confidence,
        distribution=distribution,
        point=point,
        jackknife=jackknife,
        n_baselines=n_base,
    )


@dataclass(frozen=True)
class Randomization:
    """Approximate randomisation of S systems against a baseline: observed differences and p-values."""

    delta: np.ndarray
    p_value: np.ndarray
    n_trials: int
    convention: str


def approximate_randomization(
    baseline: np.ndarray,
    systems: np.ndarray,
    *,
    finalize: Finalize | None = None,
    n_trials: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    convention: Convention = "two-sided",
    nan_policy: Literal["raise", "omit"] = "raise",
) -> Randomization:
    """Paired approximate randomisation test (sacreBLEU / multeval's definition, +1 p-value).

    Each trial swaps each example's pair of outputs with probability 1/2 (per seed-matched run
    when there are several seeds) and recomputes |score(A') - score(B')|. The p-value is
    (1 + #trials at least as extreme) / (trials + 1); `convention="sacrebleu"` counts strictly
    greater, as sacreBLEU does, which calls identical systems significant (p = 1 / (trials + 1)),
    whereas the default counts ties, so that A/A comparisons of discrete metrics stay calibrated.
    """
    if convention not in ("two-sided", "sacrebleu"):
        raise ValueError(f"convention must be 'two-sided' or 'sacrebleu', got {convention!r}")
    base, syst, finalize_fn = systems_and_baseline(baseline, systems, finalize, nan_policy)
    base = np.broadcast_to(base, syst.shape)
    base_tot, syst_tot = base.sum(axis=2), syst.sum(axis=2)  # [S, R, d]
    observed = (finalize_fn(syst_tot) - finalize_fn(base_tot)).mean(axis=-1)
    check_finite(observed, "score difference")
    rng = np.random.default_rng(seed)
    with single_threaded_blas():
        statistic = _randomization_statistic(base, syst, base_tot, syst_tot, finalize_fn, n_trials, rng)
    absolute = np.abs(observed)
    if convention == "sacrebleu":
        exceed = (statistic > absolute).sum(axis=0)
    else:
        exceed = (statistic >= absolute - _TIE_TOLERANCE * np.maximum(1.0, absolute)).sum(axis=0)
    return Randomization(observed, (exceed + 1.0) / (n_trials + 1.0), n_trials, convention)


def _randomization_statistic(
    base: np.ndarray,
    syst: np.ndarray,
    base_tot: np.ndarray,
    syst_tot: np.ndarray,
    finalize_fn: Finalize,
    n_trials: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """|score(A') - score(B')| per trial and system `[trials, S]`, averaged over seed-matched runs."""
    n_systems, n_runs, n, d = syst.shape
    statistic = np.zeros((n_trials, n_systems))
    for run in range(n_runs):
        # shuffled baseline A' = B + mask @ (A - B); the other pseudo-system is (A + B) - A'
        flat_diff = np.ascontiguousarray((base[:, run] - syst[:, run]).transpose(1, 0, 2).reshape(n, -1))
        dtype = sum_dtype(flat_diff)
        weights = flat_diff.astype(dtype)
        start = 0
        for masks in swap_masks(n, n_trials, rng, dtype):
            swapped = (masks @ weights).astype(np.float64).reshape(len(masks), n_systems, d)
            shuffled_a = syst_tot[:, run] + swapped
            shuffled_b = base_tot[:, run] + syst_tot[:, run] - shuffled_a
            statistic[start : start + len(masks)] += finalize_fn(shuffled_a) - finalize_fn(shuffled_b)
            start += len(masks)
    return np.abs(statistic / n_runs)


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test: discordant counts and two-sided binomial p-values (arrays of length S)."""

    baseline_only: np.ndarray  # baseline right, system wrong
    system_only: np.ndarray  # system right, baseline wrong
    p_value: np.ndarray


def mcnemar_exact(baseline_correct: np.ndarray, systems_correct: np.ndarray) -> McNemar:
    """Exact McNemar test for accuracy, as `statsmodels.stats.contingency_tables.mcnemar(exact=True)`.

    Inputs are 0/1 per example: baseline `[n]` (or `[R, n]`), systems `[S, n]` (or `[S, R, n]`); a
    baseline with the systems' leading axis pairs one baseline with each system.
    With several seeds the discordant pairs are pooled over seed-matched runs, which treats
    (seed, example) pairs as independent: a per-example test, it ignores seed variance.
    p = min(1, 2 * BinomCDF(min(b, c); b + c, 1/2)); with no discordant pair, p = 1.
    """
    base = np.asarray(baseline_correct, dtype=np.float64)
    syst = np.asarray(systems_correct, dtype=np.float64)
    for arr, what in ((base, "baseline"), (syst, "systems")):
        if np.isnan(arr).any() or not np.isin(arr, (0.0, 1.0)).all():
            raise ValueError(f"McNemar needs 0/1 correctness per example; {what} has other values or NaN")
    if syst.ndim == 1:  # one system against the baseline
        base, syst = base[None], syst[None]
    elif base.ndim == syst.ndim - 1:  # one baseline shared by every system
        base = base[None]
    if base.ndim != syst.ndim or base.shape[1:] != syst.shape[1:] or base.shape[0] not in (1, syst.shape[0]):
        raise ValueError(
            f"baseline {np.shape(baseline_correct)} and systems {np.shape(systems_correct)} "
            "do not hold the same runs and examples"
        )
    axes = tuple(range(1, syst.ndim))
    baseline_only = ((base == 1) & (syst == 0)).sum(axis=axes)
    system_only = ((base == 0) & (syst == 1)).sum(axis=axes)
    smaller = np.minimum(baseline_only, system_only)
    p_value = np.minimum(1.0, 2.0 * scipy_stats.binom.cdf(smaller, baseline_only + system_only, 0.5))
    return McNemar(baseline_only, system_only, p_value)
