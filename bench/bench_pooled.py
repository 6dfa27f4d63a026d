"""Calibration and power of the pooled crossed test (`analysis.stats.pooled`) against the per-comparison one.

    nice -n 19 .venv/bin/python bench/bench_pooled.py               # the README table
    nice -n 19 .venv/bin/python bench/bench_pooled.py --sims 300    # a smoke run

Each simulated study: a baseline and S = 4 systems, R seeds each, n examples, accuracy (0/1 outcomes):

    logit[k, r, i] = difficulty_i + g_ki + c_r + u_kr + effect * [k = 1]

difficulty ~ N(1.4, 3) shared (as `analysis.stats.simulation`), g_ki ~ N(0, 0.75 / sqrt 2) per-example system
differences, c_r ~ N(0, 0.2) a seed effect shared by every system (cancels in a paired difference),
u_kr the seed x system effect, sd 0.2 (about 2 accuracy points per run), drawn per scenario: normal,
heavy-tailed (t with 3 df, same sd), bimodal (+-0.2 with N(0, 0.05) jitter), and heterogeneous: one
system (k = 1) or the baseline with sd 0.6 (9x the variance). For each cell it reports the rejection rate
at alpha 0.05 over every comparison (and over the comparisons with system 1, the one the heterogeneity
hits), for the per-comparison test, the pooled test without a check, and the pooled test behind
Bartlett's and Brown-Forsythe's homogeneity checks at `--level` (and Bartlett's at 0.5); the share of
studies pooled; and with a planted effect on system 1, the power of each on that comparison and the
median MDEs (80% power, one comparison) of both tests. Exits 1 when a checked pooled A/A rate leaves [0.03, 0.07].
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import expit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.stats import crossed, pooled  # noqa: E402

ALPHA = 0.05
TARGET = (0.03, 0.07)
SYSTEMS = 4
SEED_SD = 0.2
SCENARIOS = ("normal", "heavy-t3", "bimodal", "hetero-system", "hetero-baseline")
CHUNK = 250


def seed_effects(rng: np.random.Generator, scenario: str, shape: tuple[int, ...]) -> np.ndarray:
    """u[sims, K, R, 1] of a scenario (sd SEED_SD, except the heterogeneous row's 3 x)."""
    if scenario == "heavy-t3":
        return rng.standard_t(3, size=shape) * SEED_SD / np.sqrt(3.0)
    if scenario == "bimodal":
        return rng.choice([-1.0, 1.0], size=shape) * np.sqrt(SEED_SD**2 - 0.05**2) + rng.normal(0, 0.05, shape)
    u = rng.normal(0.0, SEED_SD, size=shape)
    if scenario == "hetero-system":
        u[:, 1] *= 3.0
    elif scenario == "hetero-baseline":
        u[:, 0] *= 3.0
    return u


def simulate(rng: np.random.Generator, scenario: str, sims: int, n_seeds: int, n: int, effect: float) -> np.ndarray:
    """Paired differences `[sims, S, R, n]` of 0/1 outcomes (systems 1..S minus the baseline)."""
    k = SYSTEMS + 1
    logits = rng.normal(1.4, 3.0, size=(sims, 1, 1, n)) + rng.normal(0.0, 0.75 / np.sqrt(2.0), size=(sims, k, 1, n))
    logits = (
        logits + rng.normal(0.0, 0.2, size=(sims, 1, n_seeds, 1)) + seed_effects(rng, scenario, (sims, k, n_seeds, 1))
    )
    logits[:, 1] += effect
    outcomes = (rng.random(logits.shape) < expit(logits)).astype(np.float64)
    return outcomes[:, 1:] - outcomes[:, :1]


def run_cell(scenario: str, n_seeds: int, n: int, sims: int, effect: float, level: float, seed: int, mde_sims: int):
    """Rejection indicators per test `[sims, S]`, pooled shares, and MDEs of one cell."""
    rng = np.random.default_rng([seed, n_seeds, n, SCENARIOS.index(scenario), int(effect * 1000)])
    rejects: dict[str, list[np.ndarray]] = {}
    shares: dict[str, list[np.ndarray]] = {"bartlett": [], "levene": []}
    mdes: list[tuple[np.ndarray, np.ndarray]] = []
    for start in range(0, sims, CHUNK):
        size = min(CHUNK, sims - start)
        d = simulate(rng, scenario, size, n_seeds, n, effect)
        result = pooled.pooled_test_from_differences(d, resolution=crossed.lattice_step(d), level=level)
        levene_p = pooled.homogeneity_p_values(pooled.interaction_residuals(d.mean(axis=3)), "levene")
        per = result.per_comparison.p_value.reshape(size, SYSTEMS) < ALPHA
        pool = result.pooled.p_value.reshape(size, SYSTEMS) < ALPHA
        bartlett_ok = (result.homogeneity_p >= level)[:, None]
        strict_ok = (result.homogeneity_p >= STRICT_LEVEL)[:, None]
        levene_ok = (levene_p >= level)[:, None]
        for name, value in (
            ("per-comparison", per),
            ("pooled, no check", pool),
            ("pooled + Bartlett", np.where(bartlett_ok, pool, per)),
            (f"pooled + Bartlett at {STRICT_LEVEL}", np.where(strict_ok, pool, per)),
            ("pooled + Brown-Forsythe", np.where(levene_ok, pool, per)),
        ):
            rejects.setdefault(name, []).append(value)
        shares["bartlett"].append(bartlett_ok[:, 0])
        shares["levene"].append(levene_ok[:, 0])
        if start < mde_sims:
            mdes.append(pooled.both_mdes(result))
    out = {name: np.concatenate(parts) for name, parts in rejects.items()}
    share = {name: float(np.concatenate(parts).mean()) for name, parts in shares.items()}
    if not mdes:
        return out, share, (float("nan"), float("nan"))
    mde_pooled = np.concatenate([m[0] for m in mdes])
    mde_per = np.concatenate([m[1] for m in mdes])
    return out, share, (float(np.median(mde_pooled)), float(np.median(mde_per)))


STRICT_LEVEL = 0.5
TESTS = (
    "per-comparison",
    "pooled, no check",
    "pooled + Bartlett",
    f"pooled + Bartlett at {STRICT_LEVEL}",
    "pooled + Brown-Forsythe",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000, help="simulated studies per cell")
    parser.add_argument("--mde-sims", type=int, default=250, help="studies per cell whose MDEs are computed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--effect", type=float, default=0.3, help="planted logit shift of system 1")
    parser.add_argument("--level", type=float, default=pooled.HOMOGENEITY_LEVEL, help="homogeneity check level")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.process_time()
    mc = np.sqrt(0.05 * 0.95 / args.sims)
    print(
        f"A/A rejection at alpha {ALPHA} over all {SYSTEMS} comparisons (and over the comparison with system 1), "
        f"{args.sims} studies a cell, {args.examples} examples; Monte Carlo sd of a rate near 0.05 <= {mc:.4f}; "
        f"checks at level {args.level}.\n"
    )
    print("| scenario | seeds | " + " | ".join(TESTS) + " | pooled share: B · BF |")
    print("|---|---|" + "---|" * (len(TESTS) + 1))
    misses = []
    power_lines = []
    for scenario in SCENARIOS:
        for n_seeds in args.seeds:
            null, share, _ = run_cell(scenario, n_seeds, args.examples, args.sims, 0.0, args.level, args.seed, 0)
            cells = [f"{null[t].mean():.3f} ({null[t][:, 0].mean():.3f})" for t in TESTS]
            print(
                f"| {scenario} | {n_seeds} | "
                + " | ".join(cells)
                + f" | {share['bartlett']:.2f} · {share['levene']:.2f} |"
            )
            misses += [
                (scenario, n_seeds, t, null[t].mean())
                for t in ("pooled + Bartlett",)
                if not TARGET[0] <= null[t].mean() <= TARGET[1] or not TARGET[0] <= null[t][:, 0].mean() <= TARGET[1]
            ]
            planted, _, (mde_pool, mde_per) = run_cell(
                scenario, n_seeds, args.examples, args.sims, args.effect, args.level, args.seed, args.mde_sims
            )
            power = " | ".join(f"{planted[t][:, 0].mean():.3f}" for t in TESTS)
            power_lines.append(f"| {scenario} | {n_seeds} | {power} | {100 * mde_pool:.2f} · {100 * mde_per:.2f} |")
            print(
                f"... {scenario}, {n_seeds} seeds: {time.process_time() - start:.0f} s CPU", file=sys.stderr, flush=True
            )
    print(f"\nPower on the comparison with system 1 (planted logit shift {args.effect}), and the median MDE in points")
    print(f"(pooled · per comparison; 80% power, alpha 0.05, one comparison; {args.mde_sims} studies a cell)\n")
    print("| scenario | seeds | " + " | ".join(TESTS) + " | MDE pooled · per comparison |")
    print("|---|---|" + "---|" * (len(TESTS) + 1))
    print("\n".join(power_lines))
    print(f"\nCPU time: {time.process_time() - start:.0f} s")
    for scenario, n_seeds, test, rate in misses:
        print(f"MISS: {test} A/A {rate:.3f} (or its system-1 rate) outside {TARGET} at {scenario}, {n_seeds} seeds")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
