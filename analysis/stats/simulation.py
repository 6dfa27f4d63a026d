"""Simulated studies with known truth: a system and a baseline, R seeds each, scored on n test examples.

Used to measure calibration and power (tests/test_analysis_crossed.py, bench/bench_calibration.py).
Every simulation draws new examples, seeds and outcomes from one latent logit per run and example:

    logit[system, r, i] = difficulty_i + sign * g_i / 2 + u[system, r] + effect * [system is the candidate]

`difficulty_i` ~ N(difficulty_mean, difficulty_sd) is shared by both systems (most examples are easy
or hard for every run, as for fine-tuned models: two seeds disagree on about 21% of examples);
`g_i` ~ N(0, example_sd) is a per-example difference between the systems (sign +1 for the
candidate, -1 for the baseline) whose population mean is 0 by symmetry; `u` ~ N(0, seed_sd) is each
training run's shift. Metrics read the logit as (arrays `[sims, 2, R, n]`, index 0 the candidate):

- accuracy: correct ~ Bernoulli(sigmoid(logit)), a fresh outcome per run and example (the
  seed x example interaction);
- a continuous score on 0-100 (like sentence BLEU or BERTScore): 100 * sigmoid(logit + N(0, 1));
- macro-F1: three classes (shares 0.55 / 0.34 / 0.11, like PubMedQA's yes / no / maybe); a wrong
  answer picks another class in proportion to the shares;
- corpus BLEU: sacreBLEU statistics with n-gram precision sigmoid(logit / 2 - 0.5) ** order (matches
  binomial, drawn by its rounded normal approximation: 10x faster than `Generator.binomial` here).

With effect = 0 the two systems have equal population means for every metric (they are exchangeable).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

CLASS_SHARES = (0.55, 0.34, 0.11)
BLEU_ORDER = 4


@dataclass(frozen=True)
class Scenario:
    """Where the variance of the paired differences comes from (standard deviations on the logit scale)."""

    name: str
    seed_sd: float
    example_sd: float
    difficulty_sd: float = 3.0
    difficulty_mean: float = 1.4


SCENARIOS: dict[str, Scenario] = {
    "seed": Scenario("seed variance only (run accuracy sd 3 points)", seed_sd=0.3, example_sd=0.0),
    "example": Scenario("example variance only (outcome noise, no seed shifts)", seed_sd=0.0, example_sd=0.0),
    "both": Scenario("both (seed sd 2 points, per-example differences sd 0.1)", seed_sd=0.2, example_sd=0.75),
    "per-example": Scenario("equal means, per-example differences sd 0.2 (seed sd 1 point)", 0.1, 1.55),
    "per-example-no-seed": Scenario("equal means, per-example differences sd 0.2, no seed shifts", 0.0, 1.55),
}
"""The calibration scenarios. example_sd 1.55 gives per-example true differences of sd 0.20 on the
probability scale (0.75: 0.10); seed_sd 0.1 / 0.2 / 0.3 gives one run's accuracy an sd of 1 / 2 / 3 points."""


def simulate_logits(
    rng: np.random.Generator, scenario: Scenario, sims: int, n_seeds: int, n: int, effect: float = 0.0
) -> np.ndarray:
    """Latent logits `[sims, 2, R, n]` (candidate, baseline) of `sims` independent studies."""
    difficulty = rng.normal(scenario.difficulty_mean, scenario.difficulty_sd, size=(sims, 1, 1, n))
    logits = np.broadcast_to(difficulty, (sims, 2, n_seeds, n)).copy()
    if scenario.example_sd > 0:
        half = rng.normal(0.0, scenario.example_sd / 2.0, size=(sims, 1, n))
        logits[:, 0] += half
        logits[:, 1] -= half
    if scenario.seed_sd > 0:
        logits += rng.normal(0.0, scenario.seed_sd, size=(sims, 2, n_seeds, 1))
    logits[:, 0] += effect
    return logits


def binary_scores(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    """0/1 correctness per run and example (accuracy), same shape as `logits`."""
    return (rng.random(logits.shape) < expit(logits)).astype(np.float64)


def continuous_scores(rng: np.random.Generator, logits: np.ndarray, noise_sd: float = 1.0) -> np.ndarray:
    """A bounded continuous score on 0-100 per run and example, same shape as `logits`."""
    return 100.0 * expit(logits + rng.normal(0.0, noise_sd, size=logits.shape))


def classification_stats(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    """Macro-F1 statistics `[..., n, 3K]` (`sufficient.macro_f1_stats` layout) of 3-class predictions.

    Gold labels are shared by the runs of one simulation (`logits[:, :, :, i]` is one example).
    """
    shares = np.asarray(CLASS_SHARES)
    n_classes = shares.size
    sims, _, _, n = logits.shape
    gold = rng.choice(n_classes, size=(sims, 1, 1, n), p=shares)
    correct = rng.random(logits.shape) < expit(logits)
    # a wrong answer: another class, in proportion to the shares of the other classes
    other = np.where(np.arange(n_classes) == gold[..., None], 0.0, shares)  # [sims, 1, 1, n, K]
    cumulative = np.cumsum(other / other.sum(axis=-1, keepdims=True), axis=-1)
    wrong = (rng.random(logits.shape)[..., None] > cumulative).sum(axis=-1)
    pred = np.where(correct, gold, np.minimum(wrong, n_classes - 1))
    labels = np.arange(n_classes)
    gold_onehot = np.broadcast_to(gold[..., None] == labels, logits.shape + (n_classes,))
    pred_onehot = pred[..., None] == labels
    return np.concatenate([gold_onehot & pred_onehot, gold_onehot, pred_onehot], axis=-1).astype(np.float64)


def bleu_stats(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    """Corpus-BLEU statistics `[..., n, 2 + 2 * 4]` (`sufficient.bleu_stats` layout): lengths, matches, totals."""
    sims, _, _, n = logits.shape
    ref_len = 8.0 + rng.poisson(12.0, size=(sims, 1, 1, n))
    hyp_len = np.maximum(1.0, ref_len + np.round(rng.normal(0.0, 2.0, size=logits.shape)))
    precision = expit(logits / 2.0 - 0.5)
    orders = np.arange(1, BLEU_ORDER + 1)
    totals = np.maximum(hyp_len[..., None] - orders + 1.0, 0.0)
    rate = precision[..., None] ** orders  # matches ~ Binomial(totals, rate), by its rounded normal approximation
    noise = rng.standard_normal(totals.shape) * np.sqrt(totals * rate * (1.0 - rate))
    matches = np.clip(np.round(totals * rate + noise), 0.0, totals)
    lengths = np.stack([hyp_len, np.broadcast_to(ref_len, logits.shape)], axis=-1)
    return np.concatenate([lengths, matches, totals], axis=-1)
