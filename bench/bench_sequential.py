"""Proof by simulation of the adaptive (group-sequential) design of `analysis.sequential` (issue 23).

    nice -n 19 .venv/bin/python bench/bench_sequential.py                 # the README table (20,000 sweeps a cell)
    nice -n 19 .venv/bin/python bench/bench_sequential.py --sweeps 2000   # a quick look

A simulated sweep: a baseline and C = 3 configurations (the default study's shape), each run on the
same seeds. A run's metric (points) is `mu_system + a[system, seed] + e[system, seed]`: `a` the
seed x system term (training randomness, sd --seed-sd), `e` the example-level residual of one run
averaged over the test examples (sd --residual-sd). The per-example systematic part (s2_b) is
shared by every seed of a pair, so it is a fixed shift of the paired differences on one test set
and is left out (the sequential t answers for these test examples). Noise models of `a`: normal;
t with 3 df scaled to sd --seed-sd (heavy tails); and 'divergent' (normal, plus with probability
--divergent-rate a run that diverged: --divergent-drop points lower).

Per scenario it runs the adaptive procedure (`analysis.sequential.simulate.run_adaptive`) and the
fixed design (`run_fixed`: --fixed-seeds seeds, t-tests with the same correction) on the same sweeps; reports:
the family-wise error (any wrong decision of any kind: better or worse where the true difference is 0
or of the other sign, equivalent where it is at least the margin) with its 95% Monte Carlo interval; power (per
comparison, `better`) at the fixed design's minimum detectable effect; the false-equivalence rate at a
true difference of exactly the margin; the trials used (mean, 10th / 50th / 90th percentile, max).
Exits 1 when an adaptive cell's family-wise error exceeds alpha or its upper 95% bound alpha + 0.005.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scipy import stats as scipy_stats  # noqa: E402

from analysis.sequential import Design  # noqa: E402
from analysis.sequential.decisions import BETTER, EQUIVALENT, WORSE  # noqa: E402
from analysis.sequential.simulate import Outcome, run_adaptive, run_fixed  # noqa: E402
from analysis.stats.crossed_planning import noncentrality_for_power  # noqa: E402

COMPARISONS = 3
NOISES = ("normal", "t3", "divergent")


def seed_effects(rng: np.random.Generator, shape: tuple[int, ...], noise: str, args: argparse.Namespace) -> np.ndarray:
    """The seed x system term `[...]` under one noise model, in points."""
    if noise == "normal":
        return rng.normal(0.0, args.seed_sd, shape)
    if noise == "t3":
        return rng.standard_t(3, shape) * args.seed_sd / np.sqrt(3.0)  # t3 has variance 3
    diverged = rng.random(shape) < args.divergent_rate
    return rng.normal(0.0, args.seed_sd, shape) - args.divergent_drop * diverged


def simulate_sweeps(rng: np.random.Generator, effects: np.ndarray, noise: str, args: argparse.Namespace) -> np.ndarray:
    """Per-run metric values `[R, 1 + C, S]` (system 0 the baseline) with true differences `effects` `[C]`."""
    shape = (args.sweeps, 1 + COMPARISONS, args.max_seeds)
    means = np.concatenate([[0.0], effects])[None, :, None]
    return means + seed_effects(rng, shape, noise, args) + rng.normal(0.0, args.residual_sd, shape)


def minimum_detectable_effect(args: argparse.Namespace) -> float:
    """The fixed design's MDE (80% power, two-sided t over seeds at alpha / C), normal noise, exact noncentral t."""
    sd_difference = np.sqrt(2.0 * (args.seed_sd**2 + args.residual_sd**2))
    df = args.fixed_seeds - 1.0
    critical = scipy_stats.t.isf(args.alpha / COMPARISONS / 2.0, df)
    return (
        float(noncentrality_for_power(np.array(df), np.array(critical), power=0.8))
        * sd_difference
        / np.sqrt(args.fixed_seeds)
    )


def interval(successes: int, trials: int) -> str:
    """A rate with its 95% Monte Carlo interval (Wilson)."""
    rate = successes / trials
    z = 1.959964
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return f"{rate:.4f} [{max(0.0, centre - half):.4f}, {centre + half:.4f}]"


def trials_text(outcome: Outcome, fixed_trials: int) -> str:
    trials = outcome.trials
    p10, p50, p90 = np.percentile(trials, [10, 50, 90])
    saving = 1.0 - trials.mean() / fixed_trials
    return f"{trials.mean():.1f} ({p10:.0f} / {p50:.0f} / {p90:.0f}, max {trials.max()}) | {saving:+.0%}"


def scenario_rows(noise: str, design: Design, args: argparse.Namespace, mde: float, rng) -> tuple[list[str], bool]:
    """One noise model: the table rows and whether every adaptive family-wise error passed."""
    rows, passed = [], True
    margin = args.margin
    scenarios = {
        "A/A": np.zeros(COMPARISONS),
        "all at the MDE": np.full(COMPARISONS, mde),
        "all at 1.5 x MDE": np.full(COMPARISONS, 1.5 * mde),
        "one at the MDE, two A/A": np.array([mde, 0.0, 0.0]),
        "all at +margin": np.full(COMPARISONS, margin),
        "1.5 x MDE, 0, +margin": np.array([1.5 * mde, 0.0, margin]),
    }
    fixed_trials = (COMPARISONS + 1) * args.fixed_seeds
    for name, effects in scenarios.items():
        values = simulate_sweeps(rng, effects, noise, args)
        for label, outcome in (
            ("adaptive", run_adaptive(values, design, margin, cache_path=args.cache)),
            ("fixed", run_fixed(values, args.fixed_seeds, args.alpha, margin, design.correction)),
        ):
            null = effects == 0.0
            wrong = (
                (np.isin(outcome.status, (BETTER, WORSE)) & null)
                | ((outcome.status == BETTER) & (effects < 0))
                | ((outcome.status == WORSE) & (effects > 0))
                | ((outcome.status == EQUIVALENT) & (np.abs(effects) >= margin))
            )
            fwer = int(wrong.any(axis=1).sum())
            power = (outcome.status[:, ~null] == BETTER).mean() if (~null).any() else np.nan
            false_equivalent = (
                (outcome.status[:, effects == margin] == EQUIVALENT).mean() if name.endswith("margin") else np.nan
            )
            equivalent = (outcome.status == EQUIVALENT).mean()
            fwer_text = interval(fwer, args.sweeps)
            rows.append(
                f"| {noise} | {name} | {label} | {fwer_text} | {power:.3f} | {equivalent:.3f} | "
                f"{false_equivalent:.4f} | {trials_text(outcome, fixed_trials)} |".replace("nan", "-")
            )
            if label == "adaptive":
                rate = fwer / args.sweeps
                upper = rate + 1.959964 * np.sqrt(rate * (1 - rate) / args.sweeps)
                passed &= rate <= args.alpha and upper <= args.alpha + 0.005
    return rows, passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweeps", type=int, default=20_000, help="simulated sweeps per cell")
    parser.add_argument("--looks", type=int, nargs="+", default=[3, 5, 7, 9, 11], help="seeds at each look")
    parser.add_argument("--fixed-seeds", type=int, default=10, help="seeds of the fixed design")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--spending", choices=("obf", "pocock"), default="obf")
    parser.add_argument("--corrections", nargs="+", default=["bonferroni", "holm"])
    parser.add_argument("--futility", type=float, default=0.05,
                        help="non-binding futility: conditional power below which a comparison stops (0: never)")
    parser.add_argument("--margin", type=float, default=2.0, help="equivalence margin, points")
    parser.add_argument("--seed-sd", type=float, default=3.5, help="seed x system sd of a run's metric, points")
    parser.add_argument("--residual-sd", type=float, default=1.5, help="example-level residual sd of a run, points")
    parser.add_argument("--divergent-rate", type=float, default=0.1)
    parser.add_argument("--divergent-drop", type=float, default=15.0)
    parser.add_argument("--noises", nargs="+", choices=NOISES, default=list(NOISES))
    parser.add_argument("--cache", default=None, help="boundary cache JSON (default ~/.cache/r2d-analysis/...)")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    args.max_seeds = max(args.looks[-1], args.fixed_seeds)
    rng = np.random.default_rng(args.seed)
    mde = minimum_detectable_effect(args)
    print(
        f"fixed design: {args.fixed_seeds} seeds x {COMPARISONS + 1} systems; MDE {mde:.2f} points; "
        f"margin {args.margin:g}"
    )
    passed = True
    for correction in args.corrections:
        design = Design(tuple(args.looks), args.alpha, args.spending, {"metric": args.margin}, correction,
                        futility=args.futility)
        started = time.perf_counter()
        print(f"\n{design.signature()}\n")
        print(
            "| noise | truth | design | FWER, all kinds [95% MC] | power | equivalent | false equiv. "
            "| trials mean (p10 / p50 / p90, max) | saving vs fixed |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for noise in args.noises:
            rows, ok = scenario_rows(noise, design, args, mde, rng)
            passed &= ok
            print("\n".join(rows))
        print(f"\n({args.sweeps} sweeps per cell, {time.perf_counter() - started:.1f} s)")
    print("\nadaptive family-wise error within alpha in every cell (estimate, upper 95% <= alpha + 0.005):", passed)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
