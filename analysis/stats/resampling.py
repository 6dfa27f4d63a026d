"""The resampling engine under every interval and test: canonical shapes, resample draws, one matrix product.

A bootstrap resample is a row of resample counts `c[n]` (how often each example was drawn), so its
sums are `c @ stats` and its score `finalize(c @ stats)` (see `analysis.stats.sufficient`); an
approximate-randomisation trial is a row of swap masks. Resampling B times is then one matrix
product `counts[B, n] @ stats[n, systems * d]`, shared by all systems (one draw of counts for
everyone is also what makes the comparisons *paired*). That is why 20 systems x 10,000 resamples x
1,000 examples cost about as much as one system.

Array shapes, everywhere in the statistics modules (examples on the last axis for per-example scores):
- per-example scores (metric = their mean): one run `[n]`, seed-matched runs `[R, n]`;
- sufficient statistics (any metric, with `finalize`): `[n, d]` or `[R, n, d]`;
- several systems add a leading axis: `[S, n]`, `[S, R, n]`, `[S, n, d]`, `[S, R, n, d]`.
The R axis holds runs with different training seeds on the same examples; the score of a system is
then the mean over seeds of the per-seed metric, and the bootstrap resamples seeds as well as
examples (stratified: seeds and examples are drawn independently, the same draws for every system).
`as_stats` and `systems_and_baseline` bring every input to the canonical `[S, R, n, d]`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from analysis.stats.sufficient import Finalize, mean_from_sums, mean_stats

try:  # threadpoolctl ships with scikit-learn (an MLflow dependency); without it BLAS keeps its threads
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - a laptop with numpy and scipy only
    threadpool_limits = None

DEFAULT_RESAMPLES = 10_000
MIN_EXAMPLES = 10
"""Below this many examples resampling cannot stand in for the sampling distribution: we refuse."""

# Rows of resample counts generated at once: bounds memory (rows * n * 8 bytes) and stays cache-friendly.
_CHUNK_CELLS = 500_000


def as_stats(values: np.ndarray, finalize: Finalize | None, nan_policy: str, what: str) -> tuple[np.ndarray, Finalize]:
    """Per-example scores `[..., n]` (no `finalize`: their mean) or statistics `[..., n, d]` -> `[..., n, d]`."""
    arr = np.asarray(values, dtype=np.float64)
    if finalize is None:
        return mean_stats(arr, nan_policy=nan_policy), mean_from_sums  # type: ignore[arg-type]
    if np.isnan(arr).any():
        raise ValueError(f"{what}: sufficient statistics contain NaN")
    return arr, finalize


def systems_and_baseline(
    baseline: np.ndarray, systems: np.ndarray, finalize: Finalize | None, nan_policy: str
) -> tuple[np.ndarray, np.ndarray, Finalize]:
    """Canonical `[Sb, R, n, d]` baseline (Sb = 1 shared, or S one per system) and `[S, R, n, d]` systems."""
    base, finalize_fn = as_stats(baseline, finalize, nan_policy, "baseline")
    syst, _ = as_stats(systems, finalize, nan_policy, "systems")
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
    check_examples(syst.shape[2])
    return base, syst, finalize_fn


def _describe(stats: np.ndarray) -> str:
    return f"{stats.shape[1]} run(s) x {stats.shape[2]} examples"


def check_examples(n: int) -> None:
    """Refuse to resample fewer than `MIN_EXAMPLES` examples."""
    if n < MIN_EXAMPLES:
        raise ValueError(
            f"resampling needs at least {MIN_EXAMPLES} examples, got {n}: with fewer, the bootstrap "
            "distribution cannot stand in for the sampling distribution"
        )


def sum_dtype(flat_stats: np.ndarray) -> type:
    """float32 when every weighted sum stays below 2^24 (float32 is exact on such integers), else float64.

    Resample counts are small integers and most statistics are counts too (correct, n-grams, classes),
    so float32 sums are exact where ties matter; for continuous scores its ~1e-7 relative error is
    far below Monte Carlo error. Half the bytes make the memory-bound matrix product about twice as fast.
    """
    largest = float(np.abs(flat_stats).max()) if flat_stats.size else 0.0
    return np.float32 if largest * flat_stats.shape[0] < 2**24 else np.float64


def resample_counts(
    n: int, n_resamples: int, rng: np.random.Generator, dtype: type = np.float64
) -> Iterator[np.ndarray]:
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
def single_threaded_blas() -> Iterator[None]:
    """Run thin matrix products on one BLAS thread.

    `counts[rows, n] @ stats[n, k]` with small k is memory-bound: extra BLAS threads only add
    synchronisation, and on a shared 2-core machine they made resampling 3x slower (bench/bench_analysis.py).
    Without threadpoolctl this is a no-op.
    """
    if threadpool_limits is None:  # pragma: no cover - a laptop with numpy and scipy only
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def bootstrap_sums(flat_stats: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """`[B, k]` sums of `flat_stats[n, k]` over B bootstrap resamples of its rows (one matrix product)."""
    dtype = sum_dtype(flat_stats)
    weights = flat_stats.astype(dtype)
    out = np.empty((n_resamples, flat_stats.shape[1]), dtype=dtype)
    start = 0
    with single_threaded_blas():
        for counts in resample_counts(flat_stats.shape[0], n_resamples, rng, dtype):
            np.matmul(counts, weights, out=out[start : start + len(counts)])
            start += len(counts)
    return out.astype(np.float64)


def swap_masks(n: int, n_trials: int, rng: np.random.Generator, dtype: type = np.float64) -> Iterator[np.ndarray]:
    """Yield blocks `[rows, n]` of fair coin flips (1 = swap this example's outputs between the systems)."""
    rows = max(1, _CHUNK_CELLS // max(n, 1))
    for start in range(0, n_trials, rows):
        yield rng.integers(0, 2, size=(min(rows, n_trials - start), n), dtype=np.int8).astype(dtype)


def check_finite(scores: np.ndarray, what: str) -> None:
    """Refuse undefined scores `[S]` (NaN or infinite), e.g. a mean over no scored example."""
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{what} is undefined for some system (e.g. a run with no scored example)")
