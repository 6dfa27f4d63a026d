"""Calibration and power of the significance table through the whole report path (issue 10, item 7).

Each replication is one simulated study: a fresh test set drawn from a population, two configurations
(constant_mix at alpha 0.5 and 0.6) with known population accuracies, `--seeds` runs each, written as
run directories by r2d's own writer (`r2d.train.evaluate.write_run_dir`), read back by `analysis.load.runs`,
grouped by `analysis.load.systems` and reported by `analysis.report.build_report` with `--test auto`
(tests/sim_runs.py: `replicate_comparison`). Per world:

1. A/A (equal population accuracy): the share of replications whose table marks the difference
   significant (corrected p < alpha; one comparison). Target: within [0.03, 0.07].
2. Planted delta: the population accuracy difference set to the design's MDE (the default test's MDE
   at the variance components the A/A reports measured, averaged: the truth up to Monte Carlo error);
   the share of replications that find it is the power actually had, against the 80% claimed. The
   MDEs the reports printed (median and root mean square) are shown beside it.

    .venv/bin/python bench/bench_report_calibration.py [--reps 1000] [--power-reps 400] [--examples 300]

Worlds (logit-scale standard deviations: examples, seeds, system x example): `both` (1.0, 0.3, 0.3) at 3
seeds (a seed sd of about 7 accuracy points per run), `examples` (1.0, 0, 0.3) at one seed, and `realistic`
(1.0, 0.1, 0.3) at 5 seeds (about 2.4 points per run). Exits 1 if an A/A rate misses the target.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import sim_runs as sim  # noqa: E402

ALPHA = 0.05
TARGET = (0.03, 0.07)
WORLDS = {  # name -> (population, seeds per system)
    "both": (sim.Population(sd_example=1.0, sd_seed=0.3, sd_interaction=0.3), 3),
    "examples": (sim.Population(sd_example=1.0, sd_seed=0.0, sd_interaction=0.3), 1),
    "realistic": (sim.Population(sd_example=1.0, sd_seed=0.1, sd_interaction=0.3), 5),
}


def _run(world: str, n_seeds: int, args: argparse.Namespace, delta: float, reps: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for rep in range(reps):
            rows.append(
                sim.replicate_comparison(
                    Path(scratch) / f"rep{rep}",
                    rng,
                    n=args.examples,
                    n_seeds=n_seeds,
                    population=WORLDS[world][0],
                    accuracy_delta=delta,
                    n_resamples=args.resamples,
                )
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000, help="A/A replications per world")
    parser.add_argument("--power-reps", type=int, default=400, help="planted-delta replications per world")
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--worlds", nargs="+", default=list(WORLDS), choices=list(WORLDS))
    parser.add_argument("--seed", type=int, default=0, help="offsets the simulations' random seeds")
    args = parser.parse_args()
    print(
        "| world | seeds | n | test | A/A rate (reps) | design MDE | reported MDE: median, rms | "
        "power at the design MDE (reps) | time |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    failed = False
    for world in args.worlds:
        index = list(WORLDS).index(world)  # a world draws the same simulations whichever others run
        n_seeds = WORLDS[world][1]
        start = time.perf_counter()
        null = _run(world, n_seeds, args, 0.0, args.reps, seed=100 + index + args.seed)
        rate = float(np.mean([row.significant for row in null]))
        mde = sim.design_mde(null)
        reported = np.array([row.mde for row in null])
        planted = _run(world, n_seeds, args, mde, args.power_reps, seed=200 + index + args.seed)
        found = float(np.mean([row.significant and row.delta > 0 for row in planted]))
        elapsed = time.perf_counter() - start
        tests = "+".join(sorted({row.test for row in null}))
        failed |= not TARGET[0] <= rate <= TARGET[1]
        print(
            f"| {world} | {n_seeds} | {args.examples} | {tests} | {rate:.3f} ({args.reps}) | {100 * mde:.2f} | "
            f"{100 * np.median(reported):.2f}, {100 * np.sqrt(np.mean(reported**2)):.2f} | "
            f"{found:.3f} ({args.power_reps}) | {elapsed / 60:.1f} min |",
            flush=True,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
