"""Bootstrap confidence intervals for S systems at once: the bootstrap distribution, percentile and BCa bounds.

Conventions follow `scipy.stats.bootstrap` (checked in tests/test_analysis_stats.py): linear
quantiles, BCa's z0 from the "mean" percentile of the estimate, acceleration from the jackknife.
With several seeds the distribution is the stratified seed x example bootstrap and the interval a
percentile one (BCa's jackknife acceleration is defined for one level of resampling).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.special import ndtr, ndtri

from analysis.stats.resampling import DEFAULT_RESAMPLES, as_stats, bootstrap_sums, check_examples, check_finite
from analysis.stats.sufficient import Finalize

CiMethod = Literal["bca", "percentile"]

# A bootstrap distribution narrower than this (relative) is degenerate: float32 sums of equal
# scores differ by round-off (~1e-8 relative), real sampling spread is orders of magnitude larger.
_DEGENERATE_TOLERANCE = 1e-6


def bootstrap_distribution(
    stats: np.ndarray,
    finalize: Finalize,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    resample_seeds: bool = True,
) -> np.ndarray:
    """Bootstrap distribution `[B, S]` of S systems' scores from statistics `[S, R, n, d]`.

    Examples are resampled with one draw shared by every system and run (pairing); with R > 1
    seeds, seeds are resampled too (one draw shared by every system: seed-matched), so that
    seed-to-seed variance is inside the interval. A system's score is the mean over its seeds.
    The two levels are drawn independently (a crossed design: every seed was evaluated on the same
    examples), which makes the interval conservative (see `analysis.stats.significance.paired_bootstrap`).
    """
    n_systems, n_runs, n, d = stats.shape
    rng = np.random.default_rng(seed)
    flat = np.ascontiguousarray(stats.transpose(2, 0, 1, 3).reshape(n, n_systems * n_runs * d))
    per_run = finalize(bootstrap_sums(flat, n_resamples, rng).reshape(n_resamples, n_systems, n_runs, d))
    if n_runs == 1 or not resample_seeds:
        return per_run.mean(axis=-1)
    seed_draws = rng.integers(0, n_runs, size=(n_resamples, n_runs))
    seed_counts = np.zeros((n_resamples, n_runs))
    np.add.at(seed_counts, (np.arange(n_resamples)[:, None], seed_draws), 1.0)
    return np.einsum("bsr,br->bs", per_run, seed_counts) / n_runs


def point_and_jackknife(stats: np.ndarray, finalize: Finalize) -> tuple[np.ndarray, np.ndarray]:
    """Scores `[S]` and leave-one-example-out jackknife scores `[S, n]` (mean over seeds)."""
    totals = stats.sum(axis=2)  # [S, R, d]
    point = finalize(totals).mean(axis=-1)
    jackknife = finalize(totals[:, :, None, :] - stats).mean(axis=1)  # [S, n]
    return point, jackknife


@dataclass(frozen=True)
class Interval:
    """A point estimate with a bootstrap confidence interval.

    `degenerate` marks a bootstrap distribution with no spread (e.g. all scores equal): the interval
    is then the point itself, where BCa would be undefined (scipy returns NaN and warns).
    """

    estimate: float
    low: float
    high: float
    std_error: float
    method: str
    confidence: float
    n_resamples: int
    degenerate: bool = False


def interval_bounds(
    distribution: np.ndarray,
    estimate: np.ndarray,
    jackknife: np.ndarray | None,
    method: CiMethod,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised percentile / BCa bounds for each column of `distribution[B, k]`; and a degenerate mask."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = (1.0 - confidence) / 2.0
    spread = distribution.max(axis=0) - distribution.min(axis=0)
    degenerate = spread <= _DEGENERATE_TOLERANCE * np.maximum(1.0, np.abs(estimate))
    if method == "percentile":
        levels = np.broadcast_to(np.array([alpha, 1.0 - alpha])[:, None], (2, distribution.shape[1]))
    elif method == "bca":
        if jackknife is None:
            raise ValueError("BCa needs jackknife replicates")
        n_resamples = distribution.shape[0]
        # z0 from the "mean" percentile of the estimate in its bootstrap distribution, as scipy does
        below = (distribution < estimate).sum(axis=0) + (distribution <= estimate).sum(axis=0)
        z0 = ndtri(below / (2.0 * n_resamples))
        # acceleration from the jackknife (Efron & Tibshirani 14.15); 0 when the jackknife is flat
        centred = jackknife.mean(axis=-1, keepdims=True) - jackknife
        numerator = (centred**3).sum(axis=-1)
        denominator = 6.0 * (centred**2).sum(axis=-1) ** 1.5
        with np.errstate(invalid="ignore", divide="ignore"):
            accel = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 0.0)
            levels = np.stack(
                [ndtr(z0 + (z0 + z) / (1.0 - accel * (z0 + z))) for z in (ndtri(alpha), ndtri(1.0 - alpha))]
            )
        # an estimate outside its own bootstrap distribution leaves z0 infinite: fall back to percentiles
        levels = np.where(np.isfinite(levels), levels, np.array([alpha, 1.0 - alpha])[:, None])
    else:
        raise ValueError(f"method must be 'bca' or 'percentile', got {method!r}")
    low, high = _column_quantiles(distribution, levels)
    low = np.where(degenerate, estimate, low)
    high = np.where(degenerate, estimate, high)
    return low, high, degenerate


def _column_quantiles(distribution: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantile `levels[q, k]` of each column k of `distribution[B, k]`, numpy's default (linear) method."""
    ordered = np.sort(distribution, axis=0)
    position = np.clip(levels, 0.0, 1.0) * (ordered.shape[0] - 1)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, ordered.shape[0] - 1)
    columns = np.arange(ordered.shape[1])
    low_values, high_values = ordered[below, columns], ordered[above, columns]
    return low_values + (position - below) * (high_values - low_values)


@dataclass(frozen=True)
class Intervals:
    """Vectorised `Interval`s for S systems (arrays of length S)."""

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    std_error: np.ndarray
    degenerate: np.ndarray
    method: str
    confidence: float
    n_resamples: int
    distribution: np.ndarray = field(repr=False)  # [B, S], for plots and further tests

    def __getitem__(self, index: int) -> Interval:
        return Interval(
            float(self.estimate[index]),
            float(self.low[index]),
            float(self.high[index]),
            float(self.std_error[index]),
            self.method,
            self.confidence,
            self.n_resamples,
            bool(self.degenerate[index]),
        )


def effective_method(method: CiMethod, n_runs: int, resample_seeds: bool) -> CiMethod:
    """BCa's jackknife acceleration is defined for one level of resampling; with seeds, percentile."""
    if method not in ("bca", "percentile"):
        raise ValueError(f"method must be 'bca' or 'percentile', got {method!r}")
    return "percentile" if (n_runs > 1 and resample_seeds) else method


@dataclass(frozen=True)
class SharedBootstrap:
    """One resample draw shared by S systems: scores `point[S]`, jackknife `[S, n]`, distribution `[B, S]`."""

    point: np.ndarray
    jackknife: np.ndarray
    distribution: np.ndarray
    method: CiMethod  # the interval method that applies (percentile when seeds are resampled)


def shared_bootstrap(
    stats: np.ndarray,
    finalize: Finalize,
    *,
    method: CiMethod,
    n_resamples: int,
    seed: int,
    resample_seeds: bool,
) -> SharedBootstrap:
    """Score, jackknife and bootstrap the statistics `[S, R, n, d]` of S systems (undefined scores refused)."""
    point, jackknife = point_and_jackknife(stats, finalize)
    check_finite(point, "score")
    method = effective_method(method, stats.shape[1], resample_seeds)
    distribution = bootstrap_distribution(
        stats, finalize, n_resamples=n_resamples, seed=seed, resample_seeds=resample_seeds
    )
    return SharedBootstrap(point, jackknife, distribution, method)


def intervals_from(
    distribution: np.ndarray,
    point: np.ndarray,
    jackknife: np.ndarray,
    method: CiMethod,
    confidence: float,
    n_resamples: int,
) -> Intervals:
    """`Intervals` of S systems from their distribution `[B, S]`, scores `[S]` and jackknife `[S, n]`."""
    low, high, degenerate = interval_bounds(distribution, point, jackknife, method, confidence)
    return Intervals(
        point,
        low,
        high,
        distribution.std(axis=0, ddof=1),
        degenerate,
        method,
        confidence,
        n_resamples,
        distribution,
    )


def bootstrap_cis(
    values: np.ndarray,
    *,
    finalize: Finalize | None = None,
    method: CiMethod = "bca",
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    resample_seeds: bool = True,
    nan_policy: Literal["raise", "omit"] = "raise",
) -> Intervals:
    """Bootstrap CIs for S systems at once: `[S, n]`, `[S, R, n]`; with finalize `[S, n, d]`, `[S, R, n, d]`.

    All systems share one resample draw (so their intervals are comparable and computed in one
    matrix product). With several seeds (R > 1) the interval is a percentile interval of the
    stratified seed x example bootstrap (see `bootstrap_distribution`); `method` applies to R = 1.
    """
    stats, finalize_fn = as_stats(values, finalize, nan_policy, "values")
    if stats.ndim == 3:
        stats = stats[:, None]
    if stats.ndim != 4:
        raise ValueError(f"values of shape {np.shape(values)} do not fit [S, (R,) n] or [S, (R,) n, d]")
    check_examples(stats.shape[2])
    shared = shared_bootstrap(
        stats, finalize_fn, method=method, n_resamples=n_resamples, seed=seed, resample_seeds=resample_seeds
    )
    return intervals_from(shared.distribution, shared.point, shared.jackknife, shared.method, confidence, n_resamples)


def bootstrap_ci(
    values: np.ndarray,
    *,
    finalize: Finalize | None = None,
    method: CiMethod = "bca",
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    resample_seeds: bool = True,
    nan_policy: Literal["raise", "omit"] = "raise",
) -> Interval:
    """Bootstrap CI of one system's score over examples (and seeds): `[n]`, `[R, n]`, `[n, d]` or `[R, n, d]`.

    Without `finalize` the score is the mean of per-example scores (accuracy, sentence BLEU,
    BERTScore...); with it, any sum-decomposable corpus metric (macro-F1, corpus BLEU), recomputed
    on every resample. Percentile and BCa agree with `scipy.stats.bootstrap` within Monte Carlo error.
    """
    return bootstrap_cis(
        np.asarray(values, dtype=np.float64)[None],
        finalize=finalize,
        method=method,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        resample_seeds=resample_seeds,
        nan_policy=nan_policy,
    )[0]
