"""Benchmark behind the analysis targets: paired bootstrap, 10,000 resamples, 1,000 examples, 20 systems.

Targets (issue "Analysis: bootstrap CIs, paired significance tests..."): <= 2 s, and >= 20x faster than
looping `scipy.stats.bootstrap` over the 20 (system, baseline) pairs, both measured in this one run.

    .venv/bin/python bench/bench_analysis.py [--examples 1000] [--systems 20] [--resamples 10000]

Both sides compute a BCa interval of the paired difference of means for every system; ours also
computes every system's own interval and a p-value per system (more work, one shared resample draw).
Scores are continuous (BERTScore-like), the slower case for us (float64 sums; 0/1 scores are as fast).
Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.stats.significance import paired_bootstrap  # noqa: E402

TARGET_SECONDS = 2.0
TARGET_SPEEDUP = 20.0


def _mean_difference(system: np.ndarray, baseline: np.ndarray, axis: int = -1) -> np.ndarray:
    return system.mean(axis=axis) - baseline.mean(axis=axis)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--systems", type=int, default=20)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3, help="ours: median of this many timed runs")
    arguments = parser.parse_args()

    rng = np.random.default_rng(0)
    difficulty = rng.beta(8, 2, size=arguments.examples)
    baseline = np.clip(difficulty + rng.normal(0, 0.05, arguments.examples), 0, 1)
    shifts = np.linspace(-0.01, 0.01, arguments.systems)[:, None]
    systems = np.clip(difficulty + shifts + rng.normal(0, 0.05, (arguments.systems, arguments.examples)), 0, 1)

    paired_bootstrap(baseline, systems, n_resamples=200, seed=1)  # warm-up (imports, BLAS threads)
    ours_times = []
    for repeat in range(arguments.repeats):
        start = time.perf_counter()
        result = paired_bootstrap(baseline, systems, n_resamples=arguments.resamples, seed=repeat, method="bca")
        _ = result.systems, result.baseline  # every system's own interval too (computed on first read)
        ours_times.append(time.perf_counter() - start)
    ours = float(np.median(ours_times))

    scipy_stats.bootstrap((systems[0], baseline), _mean_difference, paired=True, n_resamples=200, rng=0)
    start = time.perf_counter()
    scipy_intervals = []
    for index in range(arguments.systems):
        reference = scipy_stats.bootstrap(
            (systems[index], baseline),
            _mean_difference,
            paired=True,
            vectorized=True,
            n_resamples=arguments.resamples,
            method="BCa",
            rng=index,
        )
        scipy_intervals.append(reference.confidence_interval)
    looped = time.perf_counter() - start

    largest_gap = max(
        max(abs(ours_low - ref.low), abs(ours_high - ref.high))
        for ours_low, ours_high, ref in zip(result.delta_low, result.delta_high, scipy_intervals, strict=True)
    )
    speedup = looped / ours
    print(f"machine: {os.cpu_count()} CPUs visible; numpy {np.__version__}")
    print(
        f"workload: {arguments.systems} systems vs 1 baseline, {arguments.examples} examples, "
        f"{arguments.resamples} resamples, BCa"
    )
    print(
        f"analysis.stats.significance.paired_bootstrap: {ours:.3f} s (median of {arguments.repeats}: "
        f"{', '.join(f'{t:.3f}' for t in ours_times)}), with p-values and per-system CIs"
    )
    print(f"scipy.stats.bootstrap looped:    {looped:.3f} s ({looped / arguments.systems:.3f} s per pair)")
    print(f"speed-up: {speedup:.1f}x   largest CI-bound gap vs scipy: {largest_gap:.2e} (Monte Carlo error)")
    ok_time, ok_speed = ours <= TARGET_SECONDS, speedup >= TARGET_SPEEDUP
    print(
        f"targets: <= {TARGET_SECONDS:g} s {'PASS' if ok_time else 'FAIL'}; "
        f">= {TARGET_SPEEDUP:g}x {'PASS' if ok_speed else 'FAIL'}"
    )
    return 0 if ok_time and ok_speed else 1


if __name__ == "__main__":
    sys.exit(main())
