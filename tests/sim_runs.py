"""Simulated r2d runs with known truth, written by r2d's own run-directory writer (`r2d.train.evaluate.write_run_dir`).

The truth is a crossed random-effects model on the logit of "this run gets this example right":

    logit P(correct) = mu_system + example_i + seed_(system, r) + interaction_(system, i)

with example difficulties drawn per test set (the test set is a sample of the population), one
effect per training run (seed variance), and per-example differences between systems. Two systems
with equal `mu` have equal population accuracy (A/A); `logit_shift` plants a known accuracy
difference. Run directories hold what `r2d train` writes (config.yaml, metrics.json, run.json with
system_id, settings and health, predictions/test.csv), so `analysis` reads them as it reads real runs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import optimize
from scipy.special import expit

from analysis.load.runs import load_run_dirs
from analysis.report import build_report
from analysis.stats import crossed, crossed_planning
from analysis.tables.comparison import ComparisonRow
from r2d.config import Config, load_config
from r2d.scoring.health import FLAGS
from r2d.train.evaluate import write_run_dir
from r2d.train.record import write_run_record

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "triage-tiny.yaml"
LABELS = ["home care", "see doctor", "urgent care", "emergency"]
WORDS = "patient should see doctor home care urgent pain fever since yesterday today chest cough rash".split()
_CONFIGS: dict[tuple[str, ...], Config] = {}
AA_BASELINE = ("variant=constant_mix", "stage2.alpha=0.5")  # two configurations differing in a free setting
AA_SYSTEM = ("variant=constant_mix", "stage2.alpha=0.6")


@dataclass(frozen=True)
class Population:
    """Standard deviations (logit scale) of the random effects: examples, runs (seeds), system x example."""

    sd_example: float = 1.0
    sd_seed: float = 0.0
    sd_interaction: float = 0.0

    @property
    def total_sd(self) -> float:
        return float(np.sqrt(self.sd_example**2 + self.sd_seed**2 + self.sd_interaction**2))


@dataclass(frozen=True)
class ExampleSet:
    """One test set drawn from the population: gold labels, difficulties, reference rationales."""

    gold: np.ndarray
    difficulty: np.ndarray
    references: list[str]


def population_accuracy(mu: float, population: Population) -> float:
    """E[expit(mu + Z)], Z ~ N(0, total_sd^2), by Gauss-Hermite quadrature."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    return float((weights * expit(mu + population.total_sd * nodes)).sum() / weights.sum())


def logit_shift(mu: float, accuracy_delta: float, population: Population) -> float:
    """The shift of `mu` that changes the population accuracy by `accuracy_delta`."""
    target = population_accuracy(mu, population) + accuracy_delta
    return float(optimize.brentq(lambda shift: population_accuracy(mu + shift, population) - target, -10, 10))


def draw_test_set(rng: np.random.Generator, n: int, population: Population) -> ExampleSet:
    gold = rng.choice(LABELS, n)
    references = [" ".join(rng.choice(WORDS, rng.integers(5, 12))) for _ in range(n)]
    return ExampleSet(gold, rng.normal(0.0, population.sd_example, n), references)


def simulate_rows(
    rng: np.random.Generator,
    test_set: ExampleSet,
    mu: float,
    *,
    seed_effect: float = 0.0,
    interaction: np.ndarray | None = None,
    rationales: bool = True,
) -> list[dict]:
    """One run's predictions rows (r2d.schema.PREDICTION_COLUMNS): label right with the model's probability.

    A wrong label is another label of the set; `rationales=False` is a variant that writes none (sft).
    """
    n = len(test_set.gold)
    logit = mu + test_set.difficulty + seed_effect + (0.0 if interaction is None else interaction)
    correct = rng.random(n) < expit(logit)
    gold_index = np.array([LABELS.index(gold) for gold in test_set.gold])
    wrong = np.array(LABELS)[(gold_index + rng.integers(1, len(LABELS), n)) % len(LABELS)]
    pred = np.where(correct, test_set.gold, wrong)
    nan = float("nan")
    if rationales:
        hypotheses = [
            " ".join(w if keep else str(rng.choice(WORDS)) for w, keep in zip(ref.split(), rng.random(20) < 0.7))
            for ref in test_set.references
        ]
        scores = {"bleu": rng.gamma(2, 10, n), "bertscore_f1": rng.beta(8, 2, n), "consistent": rng.random(n) < 0.8}
    else:
        hypotheses = [""] * n
        scores = {"bleu": np.full(n, nan), "bertscore_f1": np.full(n, nan), "consistent": np.full(n, nan)}
    return [
        {
            "id": f"q{i:04d}",
            "gold_label": str(test_set.gold[i]),
            "pred_label": str(pred[i]),
            "label_valid": 1,
            "correct": int(correct[i]),
            "gold_rationale": test_set.references[i],
            "pred_rationale": hypotheses[i],
            "bleu": float(scores["bleu"][i]),
            "bertscore_p": float(scores["bertscore_f1"][i]),
            "bertscore_r": float(scores["bertscore_f1"][i]),
            "bertscore_f1": float(scores["bertscore_f1"][i]),
            "consistent": float(scores["consistent"][i]),
            "judge": nan,
        }
        for i in range(n)
    ]


def config(overrides: tuple[str, ...], seed: int, name: str) -> Config:
    """The resolved config of configs/triage-tiny.yaml with `overrides`, `seed` and `run_name` (loaded once)."""
    if overrides not in _CONFIGS:
        _CONFIGS[overrides] = load_config(CONFIG, list(overrides))
    return _CONFIGS[overrides].model_copy(update={"seed": seed, "run_name": name})


def write_sim_run(
    root: Path,
    name: str,
    overrides: tuple[str, ...],
    seed: int,
    rows: list[dict] | None,
    *,
    unhealthy: tuple[str, ...] = (),
    labels: list[str] | None = None,
) -> Path:
    """A run directory as `r2d train` writes it; `rows=None` writes a FAILED run (run.json only)."""
    cfg = config(tuple(overrides), seed, name)
    out = root / name
    flags = {flag: flag in unhealthy for flag in FLAGS}
    if rows is None:
        write_run_record(cfg, out, status="FAILED", splits=[], labels=[], error="RuntimeError: boom", health=flags)
        return out
    summary = {"splits": {"test": {"n": len(rows)}}, "health": flags}
    write_run_dir(out, cfg, labels or LABELS, {"test": rows}, summary, health=flags)
    return out


def replicate_comparison(
    root: Path,
    rng: np.random.Generator,
    *,
    n: int,
    n_seeds: int,
    population: Population,
    accuracy_delta: float = 0.0,
    mu: float = 0.3,
    n_resamples: int = 1000,
    test: str = "auto",
) -> ComparisonRow:
    """One simulated study through the whole report path: a fresh test set, two configurations (constant_mix
    at alpha 0.5 and 0.6) with population accuracies `accuracy_delta` apart, `n_seeds` runs each, written by
    r2d's writer, read back and reported; returns the compared row (accuracy). `root` is removed afterwards."""
    test_set = draw_test_set(rng, n, population)
    shift = logit_shift(mu, accuracy_delta, population) if accuracy_delta else 0.0
    for name, overrides, system_mu in (("a", AA_BASELINE, mu), ("b", AA_SYSTEM, mu + shift)):
        interaction = rng.normal(0.0, population.sd_interaction, n)
        for seed in range(n_seeds):
            effect = rng.normal(0.0, population.sd_seed)
            rows = simulate_rows(
                rng, test_set, system_mu, seed_effect=effect, interaction=interaction, rationales=False
            )
            write_sim_run(root, f"{name}-s{seed}", overrides, seed, rows)
    try:
        report = build_report(
            load_run_dirs([root]),
            metrics=["correct"],
            baseline="alpha=0.5",
            n_resamples=n_resamples,
            test=test,
            plots=False,
            seed=int(rng.integers(2**31)),
        )
    finally:
        shutil.rmtree(root)
    return next(row for row in report.rows if row.compared)


def design_mde(rows: list[ComparisonRow], *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The crossed test's MDE at the variance components averaged over replications' rows (their method-of-
    moments estimates are unbiased up to truncation at 0): the design's own MDE, up to Monte Carlo error."""
    components = crossed.VarianceComponents(
        seed=np.array([np.mean([row.var_seed for row in rows])]),
        example=np.array([np.mean([row.var_example for row in rows])]),
        residual=np.array([np.mean([row.var_residual for row in rows])]),
        n_seeds=len(rows[0].comparison_seeds),
        n_examples=rows[0].n_examples,
    )
    return float(crossed_planning.minimum_detectable_effect(components, alpha=alpha, power=power)[0])
