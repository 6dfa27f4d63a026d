"""Calibration and power of the crossed seed x example test, side by side with today's tests.

    .venv/bin/python bench/bench_calibration.py            # the README tables (about 5 minutes of CPU)
    .venv/bin/python bench/bench_calibration.py --quick    # a subset with fewer simulations (under a minute)

Simulated studies (`analysis.stats.simulation`): a system and a baseline with equal population means (A/A),
R seeds each, n test examples, in five scenarios of where the variance comes from. For each cell
(scenario x R x n) it reports the rejection rate at alpha 0.05 of

- the crossed test (`analysis.stats.crossed.crossed_test`; with one seed the paired t over examples),
- today's paired t-test over seeds (`analysis.stats.across_seeds.paired_ttest`, R >= 2),
- the example-level paired bootstrap at one seed (`analysis.stats.significance.paired_bootstrap`, R = 1 rows),

for accuracy and a continuous 0-100 score on every cell, macro-F1 and corpus BLEU (through
pseudo-values) on the 100- and 300-example cells; then the power of the three tests on the same
simulations with a planted effect (the candidate's logit + `--effect`) for accuracy. Exits 1 when a
crossed-test A/A rate leaves [0.03, 0.07] in a cell with at least 1,000 simulations and R >= 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scipy import stats as scipy_stats  # noqa: E402

from analysis.stats import across_seeds, crossed, simulation, sufficient  # noqa: E402
from analysis.stats.significance import paired_bootstrap  # noqa: E402

ALPHA = 0.05
TARGET = (0.03, 0.07)
CHUNK_CELLS = 4_000_000  # simulated (system, run, example) outcomes generated at once
METRICS = {  # name -> (scores or statistics from logits, finalize)
    "accuracy": (simulation.binary_scores, None),
    "continuous": (simulation.continuous_scores, None),
    "macro-F1": (simulation.classification_stats, sufficient.macro_f1_from_sums),
    "BLEU": (simulation.bleu_stats, sufficient.bleu_from_sums),
}


def _rejections(values: np.ndarray, finalize, n_seeds: int, bootstrap_seed: int | None) -> dict[str, np.ndarray]:
    """Reject-at-alpha indicators `[sims]` of each test on simulated studies `values[sims, 2, R, n(, d)]`."""
    candidate, baseline = values[:, 0], values[:, 1]
    out = {"crossed": crossed.crossed_test(baseline, candidate, finalize=finalize).p_value < ALPHA}
    if n_seeds >= 2:
        per_run = (lambda v: v.mean(axis=-1)) if finalize is None else (lambda v: finalize(v.sum(axis=-2)))
        out["t over seeds"] = across_seeds.paired_ttest(per_run(baseline), per_run(candidate)).p_value < ALPHA
    if bootstrap_seed is not None:
        test = paired_bootstrap(
            baseline[:, 0],
            candidate[:, 0],
            finalize=finalize,
            n_resamples=1000,
            seed=bootstrap_seed,
            method="percentile",
        )
        out["bootstrap, 1 seed"] = test.p_value < ALPHA
    return out


def run_cell(
    scenario: str, n_seeds: int, n: int, sims: int, metrics: list[str], *, effect: float, seed: int, bootstrap: bool
) -> dict[str, dict[str, float]]:
    """Rejection rates {metric: {test: rate}} over `sims` simulated studies of one cell (chunked)."""
    rng = np.random.default_rng([seed, n_seeds, n, list(simulation.SCENARIOS).index(scenario)])
    chunk = max(50, CHUNK_CELLS // (2 * n_seeds * n))
    counts: dict[str, dict[str, float]] = {metric: {} for metric in metrics}
    deltas: dict[str, list[np.ndarray]] = {metric: [] for metric in metrics}
    for start in range(0, sims, chunk):
        size = min(chunk, sims - start)
        logits = simulation.simulate_logits(rng, simulation.SCENARIOS[scenario], size, n_seeds, n, effect)
        for metric in metrics:
            make, finalize = METRICS[metric]
            values = make(rng, logits)
            bootstrap_seed = int(rng.integers(2**31)) if bootstrap and n_seeds == 1 else None
            for test, rejected in _rejections(values, finalize, n_seeds, bootstrap_seed).items():
                counts[metric][test] = counts[metric].get(test, 0.0) + float(rejected.sum())
            per_run = values.mean(axis=-1) if finalize is None else finalize(values.sum(axis=-2))
            deltas[metric].append((per_run[:, 0] - per_run[:, 1]).mean(axis=-1))
    rates = {metric: {test: count / sims for test, count in tests.items()} for metric, tests in counts.items()}
    for metric in metrics:
        rates[metric]["mean delta"] = float(np.concatenate(deltas[metric]).mean())
    return rates


def _fmt(rates: dict[str, float], tests: list[str]) -> str:
    return " · ".join(f"{rates[t]:.3f}" if t in rates else "–" for t in tests)


def calibration_table(results, metric: str, seeds: list[int], ns: list[int], tests: list[str]) -> str:
    lines = [f"| scenario | seeds | {' | '.join(f'n = {n}' for n in ns)} |", "|---|---|" + "---|" * len(ns)]
    for scenario in simulation.SCENARIOS:
        for n_seeds in seeds:
            cells = [results.get((scenario, n_seeds, n, metric)) for n in ns]
            if all(cell is None for cell in cells):
                continue
            row = [_fmt(cell, tests) if cell is not None else "" for cell in cells]
            lines.append(f"| {scenario} | {n_seeds} | {' | '.join(row)} |")
    return "\n".join(lines)


def population_summary(rng: np.random.Generator) -> str:
    """Per scenario: sd of the per-example true differences (probability scale) and of one run's accuracy."""
    lines = ["| scenario | per-example true difference sd | one run's accuracy sd (points) |", "|---|---|---|"]
    for key, scenario in simulation.SCENARIOS.items():
        logits = simulation.simulate_logits(rng, scenario, 1, 200, 20_000)  # one study, 200 seeds
        probabilities = 1.0 / (1.0 + np.exp(-logits[0]))  # [2, R, n]
        true_difference = probabilities[0].mean(axis=0) - probabilities[1].mean(axis=0)
        lines.append(
            f"| {key}: {scenario.name} | {true_difference.std():.3f} | {100 * probabilities[1].mean(-1).std():.2f} |"
        )
    return "\n".join(lines)


def simulate_all(args, sims: int, corpus_sims: int, seeds: list[int], ns: list[int], corpus_cells: set):
    """Every cell's A/A rates {(scenario, R, n, metric): {test: rate}}, and accuracy's power with the planted effect."""
    start = time.process_time()
    results, power = {}, {}
    for scenario in simulation.SCENARIOS:
        for n_seeds in seeds:
            for n in ns:
                aa = run_cell(
                    scenario, n_seeds, n, sims, ["accuracy", "continuous"], effect=0.0, seed=args.seed, bootstrap=True
                )
                results.update({(scenario, n_seeds, n, metric): rates for metric, rates in aa.items()})
                planted = run_cell(
                    scenario, n_seeds, n, sims, ["accuracy"], effect=args.effect, seed=args.seed, bootstrap=True
                )
                power[(scenario, n_seeds, n, "accuracy")] = planted["accuracy"]
                if (n_seeds, n) in corpus_cells:
                    corpus = run_cell(
                        scenario,
                        n_seeds,
                        n,
                        corpus_sims,
                        ["macro-F1", "BLEU"],
                        effect=0.0,
                        seed=args.seed,
                        bootstrap=False,
                    )
                    results.update({(scenario, n_seeds, n, metric): rates for metric, rates in corpus.items()})
            print(
                f"... {scenario}, {n_seeds} seeds: {time.process_time() - start:.0f} s CPU", file=sys.stderr, flush=True
            )
    return results, power


def summary(results) -> str:
    """Per metric: the A/A range over the R >= 2 cells and how many lie in [0.03, 0.07]; one seed per scenario."""
    lines = []
    for metric in METRICS:
        cells = {key: rates for key, rates in results.items() if key[3] == metric}
        parts = []
        for test in ("crossed", "t over seeds"):
            rates = [r[test] for key, r in cells.items() if key[1] >= 2]
            inside = sum(TARGET[0] <= rate <= TARGET[1] for rate in rates)
            parts.append(f"{test} {min(rates):.3f}-{max(rates):.3f} ({inside}/{len(rates)} in [0.03, 0.07])")
        one_seed = []
        for scenario in simulation.SCENARIOS:
            rates = [
                (r["crossed"], r["bootstrap, 1 seed"]) for key, r in cells.items() if key[1] == 1 and key[0] == scenario
            ]
            if rates:
                crossed_rates, boot = zip(*rates)
                one_seed.append(
                    f"{scenario} {min(crossed_rates):.3f}-{max(crossed_rates):.3f} / {min(boot):.3f}-{max(boot):.3f}"
                )
        lines.append(f"- {metric}: " + "; ".join(parts))
        if one_seed:
            lines.append("  - one seed (t over examples / bootstrap): " + "; ".join(one_seed))
    return "\n".join(lines)


def exact_size_table(levels=(0.05, 0.01, 0.0025), nus=(1, 2, 4, 9), grid: int = 2000) -> str:
    """Exact normal-theory size / alpha of the df rule and of Welch-Satterthwaite, min-max over the ratio of the parts.

    With the example part c2 known and the seed part estimated as c1 * X, X ~ chi2_nu / nu, the
    statistic is Z sqrt(1 + theta) / sqrt(1 + theta X) (theta = c1 / c2); a test with critical value
    k(u), u = theta X, has size E_X[2 Phi(-k(u) sqrt((1 + u) / (1 + theta)))], here over theta in 0..1e5.
    """
    thetas = np.concatenate([[0.0], np.logspace(-3, 5, 49)])[:, None]
    header = " | ".join(f"alpha {level}: rule · Welch" for level in levels)
    lines = [f"| seeds | {header} |", "|---|" + "---|" * len(levels)]
    for nu in nus:
        x = scipy_stats.chi2.ppf((np.arange(grid) + 0.5) / grid, nu) / nu
        u = thetas * x[None]
        cells = []
        for level in levels:
            with np.errstate(divide="ignore"):
                welch = np.where(u > 0, nu * (1.0 + 1.0 / u) ** 2, np.inf)
            spans = []
            for df in (crossed.crossed_df(u, 1.0, nu + 1, level), np.minimum(welch, 1e10)):
                critical = scipy_stats.t.isf(level / 2.0, df)
                size = (2.0 * scipy_stats.norm.sf(critical * np.sqrt((u + 1.0) / (thetas + 1.0)))).mean(axis=1) / level
                spans.append(f"{size.min():.2f}-{size.max():.2f}")
            cells.append(" · ".join(spans))
        lines.append(f"| {nu + 1} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer simulations and cells (a smoke run)")
    parser.add_argument("--sims", type=int, default=None, help="simulations per cell (default 4000; quick 300)")
    parser.add_argument("--corpus-sims", type=int, default=None, help="for macro-F1 and BLEU (default 1000)")
    parser.add_argument("--effect", type=float, default=0.4, help="planted logit shift for the power table")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sims = args.sims or (300 if args.quick else 4000)
    corpus_sims = args.corpus_sims or (200 if args.quick else 1000)
    seeds = [1, 2, 5] if args.quick else [1, 2, 3, 5, 10]
    ns = [100, 300] if args.quick else [100, 300, 600]
    corpus_cells = {(r, 100) for r in seeds if r >= 2} | ({(3, 300)} if not args.quick else set())
    start = time.process_time()
    results, power = simulate_all(args, sims, corpus_sims, seeds, ns, corpus_cells)

    tests = ["crossed", "t over seeds", "bootstrap, 1 seed"]
    print(f"## A/A rejection at alpha 0.05: crossed · t over seeds · bootstrap at 1 seed ({sims} simulations a cell)\n")
    for metric in ("accuracy", "continuous"):
        print(f"### {metric}\n\n{calibration_table(results, metric, seeds, ns, tests)}\n")
    for metric in ("macro-F1", "BLEU"):
        print(f"### {metric}, through pseudo-values: crossed · t over seeds ({corpus_sims} simulations a cell)\n")
        print(
            calibration_table(
                results, metric, [s for s in seeds if s >= 2], sorted({n for _, n in corpus_cells}), tests[:2]
            )
        )
        print()
    effects = [rates["mean delta"] for rates in power.values()]
    span = f"{100 * min(effects):.1f} to {100 * max(effects):.1f} points"
    print(f"## Power, accuracy: planted logit shift {args.effect} (mean delta {span}): crossed · t · bootstrap\n")
    print(calibration_table(power, "accuracy", seeds, ns, tests) + "\n")
    print("## The scenarios\n\n" + population_summary(np.random.default_rng(args.seed)) + "\n")
    print("## Exact normal-theory size / alpha, min-max over the seed : example variance ratio\n")
    print(exact_size_table() + "\n")
    print("## Summary: A/A rates over the cells\n\n" + summary(results) + "\n")
    print(f"CPU time: {time.process_time() - start:.0f} s")
    misses = [
        (key, rates["crossed"])
        for key, rates in results.items()
        if key[1] >= 2
        and not TARGET[0] <= rates["crossed"] <= TARGET[1]
        and (sims if key[3] in ("accuracy", "continuous") else corpus_sims) >= 1000
    ]
    for key, rate in misses:
        print(f"MISS: crossed A/A {rate:.3f} outside {TARGET} at {key}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
