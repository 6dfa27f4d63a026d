"""Bootstrap intervals and paired significance tests over per-example predictions: pure, vectorised, seeded.

One idea carries the module. Every metric here is a function of *sums of per-example sufficient
statistics*: accuracy is sum(correct) / sum(1), macro-F1 a function of per-class true-positive, gold
and predicted counts, corpus BLEU a function of summed n-gram matches, totals and lengths. So a
system's data is an array `stats[n, d]` plus a `finalize(sums[..., d]) -> score[...]` function, and

- a bootstrap resample is a row of resample counts `c[n]`: its score is `finalize(c @ stats)`;
- a jackknife replicate (for BCa) is `finalize(total - stats[i])`;
- an approximate-randomisation trial swaps some examples between two systems: `B + mask @ (A - B)`.

Resampling B times is then one matrix product `counts[B, n] @ stats[n, systems * d]`, shared by all
systems (one draw of counts for everyone is also what makes the comparisons *paired*). That is why
20 systems x 10,000 resamples x 1,000 examples costs about as much as one system.

Array shapes, everywhere in this module (examples on the last axis for per-example scores):
- per-example scores (metric = their mean): one run `[n]`, seed-matched runs `[R, n]`;
- sufficient statistics (any metric, with `finalize`): `[n, d]` or `[R, n, d]`;
- several systems add a leading axis: `[S, n]`, `[S, R, n]`, `[S, n, d]`, `[S, R, n, d]`.
The R axis holds runs with different training seeds on the same examples; the score of a system is
then the mean over seeds of the per-seed metric, and the bootstrap resamples seeds as well as
examples (stratified: seeds and examples are drawn independently, the same draws for every system).

Conventions, chosen to be checkable against references (see tests/test_analysis_stats.py):
- percentile and BCa intervals follow `scipy.stats.bootstrap` (linear quantiles, BCa's z0 from the
  "mean" percentile of the estimate, acceleration from the jackknife);
- `paired_bootstrap(..., convention="sacrebleu")` and `approximate_randomization(...,
  convention="sacrebleu")` reproduce `sacrebleu.significance` exactly in definition (the +1 p-value);
  the default conventions are two-sided tests that are calibrated (A/A comparisons reject at alpha).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Literal

import numpy as np
from scipy import stats as scipy_stats
from scipy.special import ndtr, ndtri

Finalize = Callable[[np.ndarray], np.ndarray]
CiMethod = Literal["bca", "percentile"]
Convention = Literal["two-sided", "sacrebleu"]
Correction = Literal["holm", "bonferroni", "none"]

DEFAULT_RESAMPLES = 10_000
MIN_EXAMPLES = 10
"""Below this many examples resampling cannot stand in for the sampling distribution: we refuse."""

# Rows of resample counts generated at once: bounds memory (rows * n * 8 bytes) and stays cache-friendly.
_CHUNK_CELLS = 500_000
# Relative tolerance when comparing a resampled statistic with the observed one (float round-off).
_TIE_TOLERANCE = 1e-9
# A bootstrap distribution narrower than this (relative) is degenerate: float32 sums of equal
# scores differ by round-off (~1e-8 relative), real sampling spread is orders of magnitude larger.
_DEGENERATE_TOLERANCE = 1e-6


# --------------------------------------------------------------------------------------------------
# Metrics as sufficient statistics
# --------------------------------------------------------------------------------------------------


def mean_stats(scores: np.ndarray, *, nan_policy: Literal["raise", "omit"] = "raise") -> np.ndarray:
    """Per-example scores `[..., n]` -> sufficient statistics `[..., n, 2]` = (score, counted).

    Carrying the count makes the mean a ratio of sums, so leaving NaN scores out (`nan_policy="omit"`,
    e.g. examples the LLM judge did not score) keeps every other example paired by position.
    """
    scores = np.asarray(scores, dtype=np.float64)
    counted = ~np.isnan(scores)
    if nan_policy == "raise" and not counted.all():
        raise ValueError(
            f"{int((~counted).sum())} of {scores.size} scores are NaN; pass nan_policy='omit' to leave "
            "them out of the mean (the examples stay paired)"
        )
    if nan_policy not in ("raise", "omit"):
        raise ValueError(f"nan_policy must be 'raise' or 'omit', got {nan_policy!r}")
    return np.stack([np.where(counted, scores, 0.0), counted.astype(np.float64)], axis=-1)


def mean_from_sums(sums: np.ndarray) -> np.ndarray:
    """finalize() of `mean_stats`: sum of scores / number of scored examples."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums[..., 0] / sums[..., 1]


def macro_f1_stats(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Per-example statistics `[n, 3K]` for macro-F1: one-hot (true positive, gold, predicted) per class.

    A prediction outside `labels` counts as an error for its gold class and as no class's
    prediction: an invalid output is its own error class, never mapped onto a label.
    """
    labels = list(labels)
    gold_arr = np.asarray(gold, dtype=object)
    pred_arr = np.asarray(pred, dtype=object)
    if gold_arr.shape != pred_arr.shape or gold_arr.ndim != 1:
        raise ValueError(f"gold and pred must be 1-D of one length: {gold_arr.shape} vs {pred_arr.shape}")
    gold_onehot = np.stack([gold_arr == label for label in labels], axis=-1).astype(np.float64)
    pred_onehot = np.stack([pred_arr == label for label in labels], axis=-1).astype(np.float64)
    return np.concatenate([gold_onehot * pred_onehot, gold_onehot, pred_onehot], axis=-1)


def macro_f1_from_sums(sums: np.ndarray) -> np.ndarray:
    """finalize() of `macro_f1_stats`: mean F1 over the classes present (in gold or predictions).

    Averaging over present classes equals scikit-learn's `f1_score(average="macro")` with
    `labels` = the label-set classes seen in gold or predictions; a resample in which a rare class
    vanishes entirely then does not score it as F1 = 0.
    """
    n_classes = sums.shape[-1] // 3
    true_pos = sums[..., :n_classes]
    gold = sums[..., n_classes : 2 * n_classes]
    pred = sums[..., 2 * n_classes :]
    present = (gold + pred) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(present, 2.0 * true_pos / np.where(present, gold + pred, 1.0), 0.0)
        return f1.sum(axis=-1) / present.sum(axis=-1)


def bleu_stats(hypotheses: Sequence[str], references: Sequence[str], **bleu_options: object) -> np.ndarray:
    """Per-sentence sacreBLEU sufficient statistics `[n, 2 + 2 * order]`: lengths, n-gram matches, totals.

    The same statistics sacreBLEU's own significance tests resample, so corpus BLEU of any
    resample is `bleu_from_sums(counts @ stats)` and agrees with `BLEU().corpus_score` on it.
    """
    from sacrebleu.metrics import BLEU

    bleu = BLEU(**bleu_options)
    hyps = ["" if h is None else str(h) for h in hypotheses]
    refs = ["" if r is None else str(r) for r in references]
    return np.asarray(bleu._extract_corpus_statistics(hyps, [refs]), dtype=np.float64)


def bleu_from_sums(
    sums: np.ndarray,
    *,
    smooth_method: Literal["exp", "none", "floor"] = "exp",
    smooth_value: float | None = None,
    effective_order: bool = False,
) -> np.ndarray:
    """finalize() of `bleu_stats`: sacreBLEU's `compute_bleu`, vectorised over leading axes (0-100).

    Defaults are sacreBLEU's corpus defaults (exp smoothing, no effective order).
    """
    sums = np.asarray(sums, dtype=np.float64)
    order = (sums.shape[-1] - 2) // 2
    sys_len, ref_len = sums[..., 0], sums[..., 1]
    correct, total = sums[..., 2 : 2 + order], sums[..., 2 + order :]
    if smooth_value is None:
        smooth_value = 0.1 if smooth_method == "floor" else 0.0
    floor_log = -9999999999.0  # sacreBLEU's my_log(0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        safe_sys_len = np.where(sys_len > 0, sys_len, 1.0)
        short = np.where(sys_len > 0, np.exp(1.0 - ref_len / safe_sys_len), 0.0)
        brevity = np.where(sys_len >= ref_len, 1.0, short)
        log_precisions = np.full(correct.shape, floor_log)
        stopped = np.zeros(sys_len.shape, dtype=bool)  # an order with no n-grams ends sacreBLEU's loop
        smooth_mteval = np.ones(sys_len.shape)
        effective = np.full(sys_len.shape, float(order))
        for k in range(order):
            stopped = stopped | (total[..., k] == 0)
            live = ~stopped
            if effective_order:
                effective = np.where(live, k + 1.0, effective)
            safe_total = np.where(live, total[..., k], 1.0)
            zero = live & (correct[..., k] == 0)
            precision = np.where(live & ~zero, 100.0 * correct[..., k] / safe_total, 0.0)
            if smooth_method == "exp":
                smooth_mteval = np.where(zero, smooth_mteval * 2.0, smooth_mteval)
                precision = np.where(zero, 100.0 / (smooth_mteval * safe_total), precision)
            elif smooth_method == "floor":
                precision = np.where(zero, 100.0 * smooth_value / safe_total, precision)
            positive = precision > 0
            log_precisions[..., k] = np.where(positive, np.log(np.where(positive, precision, 1.0)), floor_log)
        use = np.arange(order) < effective[..., None]
        score = brevity * np.exp((log_precisions * use).sum(axis=-1) / effective)
    return np.where(correct.sum(axis=-1) == 0, 0.0, score)


def bleu_finalizer(**options: object) -> Finalize:
    """A `finalize` for `bleu_stats` with non-default smoothing (e.g. `effective_order=True`)."""
    return partial(bleu_from_sums, **options)


# --------------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------------


def _as_stats(values: np.ndarray, finalize: Finalize | None, nan_policy: str, what: str) -> tuple[np.ndarray, Finalize]:
    """Per-example scores or sufficient statistics -> statistics with an explicit feature axis."""
    arr = np.asarray(values, dtype=np.float64)
    if finalize is None:
        return mean_stats(arr, nan_policy=nan_policy), mean_from_sums  # type: ignore[arg-type]
    if np.isnan(arr).any():
        raise ValueError(f"{what}: sufficient statistics contain NaN")
    return arr, finalize


def _systems_and_baseline(
    baseline: np.ndarray, systems: np.ndarray, finalize: Finalize | None, nan_policy: str
) -> tuple[np.ndarray, np.ndarray, Finalize]:
    """Canonical `[Sb, R, n, d]` baseline (Sb = 1 shared, or S one per system) and `[S, R, n, d]` systems."""
    base, finalize_fn = _as_stats(baseline, finalize, nan_policy, "baseline")
    syst, _ = _as_stats(systems, finalize, nan_policy, "systems")
    if syst.ndim not in (3, 4):
        raise ValueError(
            "systems must be [S, n] or [S, R, n] per-example scores, or [S, n, d] / [S, R, n, d] sufficient "
            f"statistics with finalize; got shape {np.shape(systems)}"
        )
    if base.ndim == syst.ndim - 1:  # one baseline shared by every system
        base = base[None]
    elif base.ndim != syst.ndim:  # else one baseline per system
        raise ValueError(
            f"baseline shape {np.shape(baseline)} fits neither systems shape {np.shape(systems)} without its "
            "leading axis (a shared baseline) nor with it (one baseline per system)"
        )
    if syst.ndim == 3:  # a single run per system: add the seed axis
        base, syst = base[:, None], syst[:, None]
    if base.shape[0] not in (1, syst.shape[0]) or base.shape[1:] != syst.shape[1:]:
        raise ValueError(
            "baseline and systems must hold the same runs and examples (pair by seed and example id first): "
            f"baseline {_describe(base)} vs systems {_describe(syst)}"
        )
    _check_examples(syst.shape[2])
    return base, syst, finalize_fn


def _describe(stats: np.ndarray) -> str:
    return f"{stats.shape[1]} run(s) x {stats.shape[2]} examples"


def _check_examples(n: int) -> None:
    if n < MIN_EXAMPLES:
        raise ValueError(
            f"resampling needs at least {MIN_EXAMPLES} examples, got {n}: with fewer, the bootstrap "
            "distribution cannot stand in for the sampling distribution"
        )


# --------------------------------------------------------------------------------------------------
# Resampling engines
# --------------------------------------------------------------------------------------------------


def _sum_dtype(flat_stats: np.ndarray) -> type:
    """float32 when every weighted sum stays below 2^24 (float32 is exact on such integers), else float64.

    Resample counts are small integers and most statistics are counts too (correct, n-grams, classes),
    so float32 sums are exact where ties matter; for continuous scores its ~1e-7 relative error is
    far below Monte Carlo error. Half the bytes make the memory-bound matrix product about twice as fast.
    """
    largest = float(np.abs(flat_stats).max()) if flat_stats.size else 0.0
    return np.float32 if largest * flat_stats.shape[0] < 2**24 else np.float64


def resample_counts(n: int, n_resamples: int, rng: np.random.Generator, dtype: type = np.float64):
    """Yield blocks of bootstrap resample counts `[rows, n]`: row b counts how often each example was drawn.

    Drawing indices then counting them with one `bincount` (offset per row) is several times cheaper
    than `Generator.multinomial`, and counts (not indices) are what the matrix product needs.
    """
    rows = max(1, _CHUNK_CELLS // max(n, 1))
    offsets = (np.arange(rows, dtype=np.intp) * n)[:, None]
    for start in range(0, n_resamples, rows):
        block = min(rows, n_resamples - start)
        draws = rng.integers(0, n, size=(block, n), dtype=np.intp)
        draws += offsets[:block]
        yield np.bincount(draws.ravel(), minlength=block * n).reshape(block, n).astype(dtype)


@contextmanager
def _single_threaded_blas():
    """Run thin matrix products on one BLAS thread.

    `counts[rows, n] @ stats[n, k]` with small k is memory-bound: extra BLAS threads only add
    synchronisation, and on a shared 2-core machine they made resampling 3x slower (bench/bench_analysis.py).
    threadpoolctl ships with scikit-learn (an MLflow dependency); without it this is a no-op.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a laptop with numpy and scipy only
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _bootstrap_sums(flat_stats: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """`[B, k]` sums of `flat_stats[n, k]` over B bootstrap resamples of its rows (one matrix product)."""
    dtype = _sum_dtype(flat_stats)
    weights = flat_stats.astype(dtype)
    out = np.empty((n_resamples, flat_stats.shape[1]), dtype=dtype)
    start = 0
    with _single_threaded_blas():
        for counts in resample_counts(flat_stats.shape[0], n_resamples, rng, dtype):
            np.matmul(counts, weights, out=out[start : start + len(counts)])
            start += len(counts)
    return out.astype(np.float64)


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
    examples), which makes the interval conservative (see `paired_bootstrap`).
    """
    n_systems, n_runs, n, d = stats.shape
    rng = np.random.default_rng(seed)
    flat = np.ascontiguousarray(stats.transpose(2, 0, 1, 3).reshape(n, n_systems * n_runs * d))
    per_run = finalize(_bootstrap_sums(flat, n_resamples, rng).reshape(n_resamples, n_systems, n_runs, d))
    if n_runs == 1 or not resample_seeds:
        return per_run.mean(axis=-1)
    seed_draws = rng.integers(0, n_runs, size=(n_resamples, n_runs))
    seed_counts = np.zeros((n_resamples, n_runs))
    np.add.at(seed_counts, (np.arange(n_resamples)[:, None], seed_draws), 1.0)
    return np.einsum("bsr,br->bs", per_run, seed_counts) / n_runs


def _point_and_jackknife(stats: np.ndarray, finalize: Finalize) -> tuple[np.ndarray, np.ndarray]:
    """Scores `[S]` and leave-one-example-out jackknife scores `[S, n]` (mean over seeds)."""
    totals = stats.sum(axis=2)  # [S, R, d]
    point = finalize(totals).mean(axis=-1)
    jackknife = finalize(totals[:, :, None, :] - stats).mean(axis=1)  # [S, n]
    return point, jackknife


def per_run_scores(stats: np.ndarray, finalize: Finalize) -> np.ndarray:
    """Each run's score `[..., R]` from statistics `[..., R, n, d]`: the spread across seeds."""
    return finalize(np.asarray(stats).sum(axis=-2))


# --------------------------------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------------------------------


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


def _interval_arrays(
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


def _effective_method(method: CiMethod, n_runs: int, resample_seeds: bool) -> CiMethod:
    """BCa's jackknife acceleration is defined for one level of resampling; with seeds, percentile."""
    if method not in ("bca", "percentile"):
        raise ValueError(f"method must be 'bca' or 'percentile', got {method!r}")
    return "percentile" if (n_runs > 1 and resample_seeds) else method


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
    stats, finalize_fn = _as_stats(values, finalize, nan_policy, "values")
    if stats.ndim == 3:
        stats = stats[:, None]
    if stats.ndim != 4:
        raise ValueError(f"values of shape {np.shape(values)} do not fit [S, (R,) n] or [S, (R,) n, d]")
    _check_examples(stats.shape[2])
    point, jackknife = _point_and_jackknife(stats, finalize_fn)
    _check_finite(point, "score")
    method = _effective_method(method, stats.shape[1], resample_seeds)
    distribution = bootstrap_distribution(
        stats, finalize_fn, n_resamples=n_resamples, seed=seed, resample_seeds=resample_seeds
    )
    low, high, degenerate = _interval_arrays(distribution, point, jackknife, method, confidence)
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


def _check_finite(scores: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{what} is undefined for some system (e.g. a run with no scored example)")


# --------------------------------------------------------------------------------------------------
# Paired tests on the same examples
# --------------------------------------------------------------------------------------------------


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
        dist = self.distribution[:, columns]
        low, high, flat = _interval_arrays(
            dist, self.point[columns], self.jackknife[columns], self.method, self.confidence
        )
        return Intervals(
            self.point[columns],
            low,
            high,
            dist.std(axis=0, ddof=1),
            flat,
            self.method,
            self.confidence,
            self.n_resamples,
            dist,
        )

    @cached_property
    def baseline(self) -> Intervals:
        return self._intervals(np.arange(self.n_baselines))

    @cached_property
    def systems(self) -> Intervals:
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
    3 seeds it can be anti-conservative when it does. Across seeds, prefer `paired_ttest` for the
    test (calibrated), and read this interval as a conservative one that includes seed variance.
    """
    if convention not in ("two-sided", "sacrebleu"):
        raise ValueError(f"convention must be 'two-sided' or 'sacrebleu', got {convention!r}")
    base, syst, finalize_fn = _systems_and_baseline(baseline, systems, finalize, nan_policy)
    n_base = base.shape[0]
    stacked = np.concatenate([base, syst], axis=0)
    point, jackknife = _point_and_jackknife(stacked, finalize_fn)
    _check_finite(point, "score")
    method = _effective_method(method, syst.shape[1], resample_seeds)
    distribution = bootstrap_distribution(
        stacked, finalize_fn, n_resamples=n_resamples, seed=seed, resample_seeds=resample_seeds
    )
    base_index = np.zeros(syst.shape[0], dtype=int) if n_base == 1 else np.arange(syst.shape[0])
    sys_dist, base_dist = distribution[:, n_base:], distribution[:, base_index]
    differences = sys_dist - base_dist
    delta = point[n_base:] - point[base_index]
    delta_jack = jackknife[n_base:] - jackknife[base_index]
    delta_low, delta_high, degenerate = _interval_arrays(differences, delta, delta_jack, method, confidence)
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


def swap_masks(n: int, n_trials: int, rng: np.random.Generator, dtype: type = np.float64):
    """Yield blocks `[rows, n]` of fair coin flips (1 = swap this example's outputs between the systems)."""
    rows = max(1, _CHUNK_CELLS // max(n, 1))
    for start in range(0, n_trials, rows):
        yield rng.integers(0, 2, size=(min(rows, n_trials - start), n), dtype=np.int8).astype(dtype)


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
    base, syst, finalize_fn = _systems_and_baseline(baseline, systems, finalize, nan_policy)
    base = np.broadcast_to(base, syst.shape)
    base_tot, syst_tot = base.sum(axis=2), syst.sum(axis=2)  # [S, R, d]
    observed = (finalize_fn(syst_tot) - finalize_fn(base_tot)).mean(axis=-1)
    _check_finite(observed, "score difference")
    rng = np.random.default_rng(seed)
    with _single_threaded_blas():
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
        dtype = _sum_dtype(flat_diff)
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


# --------------------------------------------------------------------------------------------------
# Tests across seeds (the unit is a training run)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedTest:
    """A test over seed-matched runs, per system (arrays of length S).

    `delta` is the mean over seeds of system - baseline; for the t-test, `low`/`high` are its
    t-interval and `std_error` its standard error (NaN for Wilcoxon, which has no such interval).
    """

    delta: np.ndarray
    statistic: np.ndarray
    p_value: np.ndarray
    n_seeds: int
    low: np.ndarray
    high: np.ndarray
    std_error: np.ndarray


def _seed_differences(baseline_scores: np.ndarray, systems_scores: np.ndarray, test: str) -> np.ndarray:
    base = np.asarray(baseline_scores, dtype=np.float64)
    syst = np.asarray(systems_scores, dtype=np.float64)
    syst = syst[None] if syst.ndim == 1 else syst
    if syst.shape[-1] != base.shape[-1]:
        raise ValueError(f"{test}: baseline has {base.shape[-1]} seeds, systems {syst.shape[-1]}: match seeds first")
    if syst.shape[-1] < 2:
        raise ValueError(f"{test} needs at least 2 seed-matched runs per system, got {syst.shape[-1]}")
    differences = syst - base
    if np.isnan(differences).any():
        raise ValueError(f"{test}: per-seed scores contain NaN")
    return differences


def paired_ttest(baseline_scores: np.ndarray, systems_scores: np.ndarray, *, confidence: float = 0.95) -> SeedTest:
    """Paired t-test over seed-matched runs (`scipy.stats.ttest_rel`, two-sided), system - baseline.

    Inputs are per-seed scores: baseline `[R]` (or `[S, R]`), systems `[S, R]`. The unit is a training
    run, so the test generalises over seeds on this test set; in simulated A/A comparisons it holds its
    level even with 3 seeds, where a seed x example bootstrap cannot (see `paired_bootstrap`). When
    every difference is zero the test is undefined (scipy: NaN); we return t = 0, p = 1.
    """
    differences = _seed_differences(baseline_scores, systems_scores, "paired t-test")
    n_seeds = differences.shape[-1]
    mean = differences.mean(axis=-1)
    std_error = differences.std(axis=-1, ddof=1) / math.sqrt(n_seeds)
    with np.errstate(invalid="ignore", divide="ignore"):
        statistic = np.where(
            std_error > 0,
            mean / np.where(std_error > 0, std_error, 1.0),
            np.where(mean == 0, 0.0, np.sign(mean) * np.inf),
        )
    p_value = np.minimum(1.0, 2.0 * scipy_stats.t.sf(np.abs(statistic), n_seeds - 1))
    half_width = scipy_stats.t.ppf(0.5 + confidence / 2.0, n_seeds - 1) * std_error
    return SeedTest(mean, statistic, p_value, n_seeds, mean - half_width, mean + half_width, std_error)


_WILCOXON_ENUMERATE_MAX = 13  # scipy's own limit for a deterministic (exact) permutation test


def wilcoxon_signed_rank(baseline_scores: np.ndarray, systems_scores: np.ndarray) -> SeedTest:
    """Wilcoxon signed-rank test over seed-matched runs (`scipy.stats.wilcoxon` defaults, two-sided).

    With up to 13 seeds the null distribution is enumerated over all 2^R sign flips, for all systems
    at once: that is scipy's exact distribution without ties and its exact permutation test with
    ties or zero differences (per-seed scores of 0/1 metrics tie often), where scipy takes ~0.1 s a
    call. With 5 seeds or fewer the smallest two-sided p-value is 2 / 2^R >= 0.0625, so it cannot
    reject at 0.05: use more seeds or the t-test. When every difference is zero, statistic 0, p = 1.
    """
    differences = _seed_differences(baseline_scores, systems_scores, "Wilcoxon test")
    n_seeds = differences.shape[-1]
    statistic = np.zeros(differences.shape[0])
    p_value = np.ones(differences.shape[0])
    tested = np.any(differences != 0, axis=-1)
    if n_seeds <= _WILCOXON_ENUMERATE_MAX:
        if tested.any():
            statistic[tested], p_value[tested] = _wilcoxon_enumerated(differences[tested])
    else:
        for row in np.flatnonzero(tested):
            result = scipy_stats.wilcoxon(differences[row])
            statistic[row], p_value[row] = result.statistic, result.pvalue
    missing = np.full(differences.shape[0], np.nan)
    return SeedTest(differences.mean(axis=-1), statistic, p_value, n_seeds, missing, missing, missing)


def _wilcoxon_enumerated(differences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-sided signed-rank p-values `[S]` over all sign flips (zeros dropped, tied ranks averaged)."""
    nonzero = differences != 0
    ranks = scipy_stats.rankdata(np.where(nonzero, np.abs(differences), np.nan), axis=-1, nan_policy="omit")
    ranks = np.where(nonzero, ranks, 0.0)
    r_plus = np.where(differences > 0, ranks, 0.0).sum(axis=-1)
    r_minus = np.where(differences < 0, ranks, 0.0).sum(axis=-1)
    n_seeds = differences.shape[-1]
    signs = 1 - 2 * ((np.arange(2**n_seeds)[:, None] >> np.arange(n_seeds)) & 1)  # [2^R, R] of +-1
    null = ((signs[None] * differences[:, None, :]) > 0).astype(np.float64) @ ranks[..., None]  # [S, 2^R, 1]
    null = null[..., 0]
    slack = np.abs(100 * np.finfo(np.float64).eps * r_plus)[:, None]  # scipy.stats.permutation_test's
    less = (null <= r_plus[:, None] + slack).mean(axis=-1)
    greater = (null >= r_plus[:, None] - slack).mean(axis=-1)
    return np.minimum(r_plus, r_minus), np.minimum(1.0, 2.0 * np.minimum(less, greater))


# --------------------------------------------------------------------------------------------------
# Many comparisons, effect sizes, power
# --------------------------------------------------------------------------------------------------


def adjust_pvalues(p_values: np.ndarray, method: Correction = "holm", axis: int = -1) -> np.ndarray:
    """Family-wise corrected p-values along `axis` (one family per slice): Holm, Bonferroni or none.

    Matches `statsmodels.stats.multitest.multipletests`; NaN p-values (tests not run) are left out
    of the family and stay NaN.
    """
    if method not in ("holm", "bonferroni", "none"):
        raise ValueError(f"correction must be 'holm', 'bonferroni' or 'none', got {method!r}")
    p = np.moveaxis(np.asarray(p_values, dtype=np.float64), axis, -1)
    flat = p.reshape(-1, p.shape[-1]) if p.ndim else p.reshape(1, 1)
    adjusted = np.full(flat.shape, np.nan)
    for row, values in enumerate(flat):
        present = ~np.isnan(values)
        family = values[present]
        m = family.size
        if m == 0 or method == "none":
            adjusted[row, present] = family
            continue
        if method == "bonferroni":
            adjusted[row, present] = np.minimum(1.0, family * m)
            continue
        order = np.argsort(family, kind="stable")
        stepped = np.maximum.accumulate((m - np.arange(m)) * family[order])
        out = np.empty(m)
        out[order] = np.minimum(1.0, stepped)
        adjusted[row, present] = out
    return np.moveaxis(adjusted.reshape(p.shape), -1, axis) if p.ndim else adjusted.reshape(())


def minimum_detectable_effect(
    std_error: np.ndarray | float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    n_comparisons: int = 1,
    df: float | None = None,
) -> np.ndarray:
    """Smallest true difference a two-sided test detects with `power`, given the difference's standard error.

    MDE = (z_{1 - alpha'/2} + z_{power}) * SE, with alpha' = alpha / n_comparisons: the Bonferroni
    level, which is also the first (strictest) step of Holm, so the figure is conservative for Holm.
    With `df` (a t-test over seeds) t quantiles replace z. With the bootstrap SE of the paired
    difference this covers corpus metrics; a non-significant difference smaller than the MDE means
    "not detectable with this many examples and seeds", not "no effect".
    """
    level = alpha / max(1, n_comparisons)
    if df is None:
        factor = ndtri(1.0 - level / 2.0) + ndtri(power)
    else:
        factor = scipy_stats.t.ppf(1.0 - level / 2.0, df) + scipy_stats.t.ppf(power, df)
    return factor * np.asarray(std_error, dtype=np.float64)
