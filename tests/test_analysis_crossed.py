"""The crossed seed x example test (analysis.stats.crossed): estimator, reductions, calibration, power, planning.

Calibration bands are binomial: a test with true rejection rate 0.05 lands inside the central 99.9%
interval of Binomial(N, 0.05) / N with probability 0.999, so a failure means miscalibration, not bad
luck (the draws are seeded anyway). For N = 2000 that is about [0.035, 0.066].
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from analysis.stats import across_seeds, crossed, crossed_planning, pseudo_values, simulation, sufficient

ALPHA = 0.05


def binomial_band(n_draws: int, rate: float = ALPHA, coverage: float = 0.999) -> tuple[float, float]:
    tail = (1.0 - coverage) / 2.0
    low, high = scipy_stats.binom.ppf([tail, 1.0 - tail], n_draws, rate)
    return low / n_draws, high / n_draws


def gaussian_differences(rng, sims, n_seeds, n, seed_sd, example_sd, residual_sd, mu=0.0) -> np.ndarray:
    """Differences drawn from the crossed model itself: mu + a_r + b_i + e_ri, `[sims, R, n]`."""
    return (
        mu
        + rng.normal(0.0, seed_sd, (sims, n_seeds, 1))
        + rng.normal(0.0, example_sd, (sims, 1, n))
        + rng.normal(0.0, residual_sd, (sims, n_seeds, n))
    )


# --------------------------------------------------------------------------------------------------
# The estimator
# --------------------------------------------------------------------------------------------------

HAND_MADE = np.array(  # 3 seeds x 5 examples
    [
        [1.0, 0.0, -1.0, 0.5, 2.0],
        [0.0, 1.0, -1.0, 1.5, 1.0],
        [2.0, 0.0, 0.0, 0.5, 3.0],
    ]
)


def test_mean_squares_match_a_direct_computation_and_statsmodels() -> None:
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    d = HAND_MADE
    n_seeds, n = d.shape
    grand = d.mean()
    seed_ss = sum(n * (d[r].mean() - grand) ** 2 for r in range(n_seeds))
    example_ss = sum(n_seeds * (d[:, i].mean() - grand) ** 2 for i in range(n))
    residual_ss = sum((d[r, i] - d[r].mean() - d[:, i].mean() + grand) ** 2 for r in range(n_seeds) for i in range(n))
    squares = crossed.mean_squares(d[None])
    assert squares.grand_mean[0] == pytest.approx(grand)
    assert squares.seed[0] == pytest.approx(seed_ss / (n_seeds - 1), rel=1e-12)
    assert squares.example[0] == pytest.approx(example_ss / (n - 1), rel=1e-12)
    assert squares.residual[0] == pytest.approx(residual_ss / ((n_seeds - 1) * (n - 1)), rel=1e-12)

    frame = pd.DataFrame(
        {"d": d.ravel(), "seed": np.repeat(np.arange(n_seeds), n), "example": np.tile(np.arange(n), n_seeds)}
    )
    table = anova_lm(ols("d ~ C(seed) + C(example)", data=frame).fit())
    assert squares.seed[0] == pytest.approx(table.loc["C(seed)", "mean_sq"], rel=1e-10)
    assert squares.example[0] == pytest.approx(table.loc["C(example)", "mean_sq"], rel=1e-10)
    assert squares.residual[0] == pytest.approx(table.loc["Residual", "mean_sq"], rel=1e-10)

    components = crossed.variance_components(squares)
    assert components.residual[0] == pytest.approx(squares.residual[0])
    assert components.seed[0] == pytest.approx(max(0.0, (squares.seed[0] - squares.residual[0]) / n))
    assert components.example[0] == pytest.approx(max(0.0, (squares.example[0] - squares.residual[0]) / n_seeds))


def test_variance_of_the_mean_is_the_sum_of_the_parts() -> None:
    """seed part + example part = (MS_seed + MS_example - MS_residual) / (R n) when the example part shows."""
    rng = np.random.default_rng(1)
    d = gaussian_differences(rng, 1, 4, 300, 0.1, 0.5, 0.5)
    result = crossed.crossed_test_from_differences(d)
    squares = result.mean_squares
    expected = (squares.seed + squares.example - squares.residual) / (4 * 300)
    assert result.std_error[0] ** 2 == pytest.approx(expected[0], rel=1e-12)


def test_one_seed_is_the_paired_t_test_over_examples() -> None:
    rng = np.random.default_rng(2)
    baseline = rng.normal(size=60)
    systems = baseline + rng.normal(0.1, 1.0, size=(3, 60))
    result = crossed.crossed_test(baseline, systems)
    reference = scipy_stats.ttest_rel(systems, np.broadcast_to(baseline, systems.shape), axis=1)
    np.testing.assert_allclose(result.p_value, reference.pvalue, rtol=1e-10)
    np.testing.assert_allclose(result.statistic, reference.statistic, rtol=1e-10)
    interval = reference.confidence_interval(0.95)
    np.testing.assert_allclose(result.low, interval.low, rtol=1e-10)
    np.testing.assert_allclose(result.high, interval.high, rtol=1e-10)
    assert result.n_seeds == 1 and np.isnan(result.components.seed).all()


def test_without_an_example_part_it_is_the_t_test_over_seeds() -> None:
    """No per-example differences shown: the test is today's paired t over seeds (df = R - 1)."""
    rng = np.random.default_rng(3)
    d = gaussian_differences(rng, 1, 5, 200, 0.3, 0.0, 0.5)
    result = crossed.crossed_test_from_differences(d)
    seed_means = d.mean(axis=2)
    ttest = across_seeds.paired_ttest(np.zeros(5), seed_means)
    squares = result.mean_squares
    assert squares.example[0] / squares.residual[0] < scipy_stats.f.isf(crossed.EXAMPLE_PRETEST_LEVEL, 199, 4 * 199)
    assert result.p_value[0] == pytest.approx(ttest.p_value[0], rel=1e-6)
    assert result.low[0] == pytest.approx(ttest.low[0], rel=1e-9)


def test_interval_and_p_value_agree_and_shapes() -> None:
    rng = np.random.default_rng(4)
    base = rng.random((3, 80))
    systems = base + rng.normal(0.02, 0.2, size=(6, 3, 80))
    shared = crossed.crossed_test(base, systems)
    per_system = crossed.crossed_test(np.broadcast_to(base, systems.shape), systems)
    np.testing.assert_allclose(shared.p_value, per_system.p_value)
    excludes_zero = (shared.low > 0) | (shared.high < 0)
    np.testing.assert_array_equal(excludes_zero, shared.p_value < 0.05)
    assert shared.delta.shape == shared.p_value.shape == shared.components.seed.shape == (6,)


def test_edge_cases() -> None:
    rng = np.random.default_rng(5)
    base = (rng.random((2, 50)) < 0.7).astype(float)
    same = crossed.crossed_test(base, base[None])
    assert same.p_value[0] == 1.0 and same.delta[0] == 0.0
    shifted = crossed.crossed_test(base, base[None] + 0.5)  # a constant difference (on a lattice of step 0.5)
    assert shifted.p_value[0] < 0.01 and np.isfinite(shifted.statistic[0])
    # two seeds with equal deltas on 0/1 scores: MS_seed = 0, floored at the rounding variance, t finite
    system = base.copy()
    flips = [np.flatnonzero(base[r] == 0)[:3] for r in range(2)]
    for r, index in enumerate(flips):
        system[r, index] = 1.0
    tie = crossed.crossed_test(base, system[None])
    assert tie.mean_squares.seed[0] == 0.0 and np.isfinite(tie.statistic[0]) and tie.p_value[0] > 0
    assert pseudo_values.lattice_step(system - base) == 1.0
    assert pseudo_values.lattice_step(rng.random(10)) == 0.0
    with pytest.raises(ValueError, match="at least 10 examples"):
        crossed.crossed_test(base[:, :5], base[None, :, :5])


def test_pseudo_values() -> None:
    rng = np.random.default_rng(6)
    scores = rng.random((2, 40))
    stats = sufficient.mean_stats(scores)
    for pseudo in (pseudo_values.influence_pseudo_values, pseudo_values.jackknife_pseudo_values):
        theta, psi = pseudo(stats, sufficient.mean_from_sums)
        np.testing.assert_allclose(psi, scores, atol=1e-9)  # for a mean, the scores themselves
        np.testing.assert_allclose(theta, scores.mean(axis=1))
    logits = simulation.simulate_logits(rng, simulation.SCENARIOS["both"], 2, 3, 120)
    for statistics, finalize in (
        (simulation.classification_stats(rng, logits), sufficient.macro_f1_from_sums),
        (simulation.bleu_stats(rng, logits), sufficient.bleu_from_sums),
    ):
        theta, psi = pseudo_values.influence_pseudo_values(statistics, finalize)
        np.testing.assert_allclose(psi.mean(axis=-1), theta, rtol=1e-9)  # average exactly to the metric
        np.testing.assert_allclose(theta, finalize(statistics.sum(axis=-2)))
        jack_theta, jack = pseudo_values.jackknife_pseudo_values(statistics, finalize)
        assert np.corrcoef(psi.ravel(), jack.ravel())[0, 1] > 0.95
    result = crossed.crossed_test(statistics[:, 1], statistics[:, 0], finalize=sufficient.bleu_from_sums)
    np.testing.assert_allclose(result.delta, (theta[:, 0] - theta[:, 1]).mean(axis=-1))


# --------------------------------------------------------------------------------------------------
# Calibration (A/A) and power
# --------------------------------------------------------------------------------------------------

CELLS = [  # scenario, seeds, examples: one cell per scenario, 2 to 10 seeds
    ("seed", 2, 200),
    ("example", 3, 100),
    ("both", 5, 200),
    ("per-example", 3, 300),
    ("per-example-no-seed", 10, 100),
]


@pytest.mark.parametrize(("scenario", "n_seeds", "n"), CELLS)
def test_a_a_calibration_accuracy(scenario: str, n_seeds: int, n: int) -> None:
    """2,000 simulated A/A studies (0/1 correctness, equal population accuracy) per scenario."""
    rng = np.random.default_rng([n_seeds, n, len(scenario)])
    logits = simulation.simulate_logits(rng, simulation.SCENARIOS[scenario], 2000, n_seeds, n)
    correct = simulation.binary_scores(rng, logits)
    rate = np.mean(crossed.crossed_test(correct[:, 1], correct[:, 0]).p_value < ALPHA)
    low, high = binomial_band(2000)
    print(f"{scenario}, {n_seeds} seeds, {n} examples: A/A rejection {rate:.3f} (band {low:.3f}-{high:.3f})")
    assert low <= rate <= high


def test_a_a_calibration_one_seed_and_corpus_metrics() -> None:
    """One seed (example noise only): the t over examples; macro-F1 and BLEU through pseudo-values."""
    rng = np.random.default_rng(7)
    logits = simulation.simulate_logits(rng, simulation.SCENARIOS["example"], 2000, 1, 200)
    correct = simulation.binary_scores(rng, logits)
    rates = {"one seed": np.mean(crossed.crossed_test(correct[:, 1, 0], correct[:, 0, 0]).p_value < ALPHA)}
    logits = simulation.simulate_logits(rng, simulation.SCENARIOS["per-example"], 800, 3, 150)
    f1 = simulation.classification_stats(rng, logits)
    test = crossed.crossed_test(f1[:, 1], f1[:, 0], finalize=sufficient.macro_f1_from_sums)
    rates["macro-F1"] = np.mean(test.p_value < ALPHA)
    bleu = simulation.bleu_stats(rng, logits)
    test = crossed.crossed_test(bleu[:, 1], bleu[:, 0], finalize=sufficient.bleu_from_sums)
    rates["BLEU"] = np.mean(test.p_value < ALPHA)
    print("A/A rejection:", {k: round(float(v), 3) for k, v in rates.items()})
    assert binomial_band(2000)[0] <= rates["one seed"] <= binomial_band(2000)[1]
    for name in ("macro-F1", "BLEU"):
        assert binomial_band(800)[0] <= rates[name] <= binomial_band(800)[1], name


@pytest.mark.parametrize(("n_seeds", "n", "components"), [(3, 200, (0.03, 0.2, 0.5)), (5, 100, (0.05, 0.05, 0.5))])
def test_power_at_the_claimed_minimum_detectable_effect(n_seeds: int, n: int, components: tuple) -> None:
    """A difference planted at the MDE the function claims is found with power 0.8 (binomial band)."""
    seed_sd, example_sd, residual_sd = components
    truth = crossed.VarianceComponents(
        np.array([seed_sd**2]), np.array([example_sd**2]), np.array([residual_sd**2]), n_seeds, n
    )
    mde = float(crossed_planning.minimum_detectable_effect(truth)[0])
    rng = np.random.default_rng(8)
    d = gaussian_differences(rng, 2000, n_seeds, n, seed_sd, example_sd, residual_sd, mu=mde)
    achieved = np.mean(crossed.crossed_test_from_differences(d).p_value < ALPHA)
    low, high = binomial_band(2000, rate=0.8)
    print(f"{n_seeds} seeds x {n}: power {achieved:.3f} at the claimed MDE {mde:.4f} (band {low:.3f}-{high:.3f})")
    assert low <= achieved <= high


# --------------------------------------------------------------------------------------------------
# Planning: seeds needed
# --------------------------------------------------------------------------------------------------


def test_seeds_needed_is_monotone_and_says_cannot() -> None:
    components = crossed.VarianceComponents(
        seed=np.array([0.03**2, 0.01**2]), example=np.array([0.1**2, 0.3**2]), residual=np.array([0.25, 0.25]),
        n_seeds=3, n_examples=200,
    )  # fmt: skip
    effects = np.array([0.005, 0.02, 0.03, 0.05, 0.08, 0.2])
    needed = np.stack([crossed_planning.seeds_needed(components, effect) for effect in effects])
    print("seeds needed:", needed.T.tolist())
    assert np.all(needed[1:] <= needed[:-1])  # a larger effect never needs more seeds
    # the example part alone: 0.3 / sqrt(200) = 0.021 standard error, so 0.03 is out of reach at any R
    assert np.isinf(needed[2, 1]) and np.isfinite(needed[-1]).all()
    floor = crossed_planning.minimum_detectable_effect(components, n_seeds=crossed_planning.MAX_SEEDS)
    assert floor[1] > 0.03 and np.isinf(crossed_planning.seeds_needed(components, floor * 0.99)).all()
    # and the answer is right: at the seeds needed the MDE is at most the effect, one seed fewer it is not
    k = crossed_planning.seeds_needed(components, 0.08)
    for index in range(2):
        at_k = crossed_planning.minimum_detectable_effect(components, n_seeds=int(k[index]))[index]
        below = crossed_planning.minimum_detectable_effect(components, n_seeds=int(k[index]) - 1)[index]
        assert at_k <= 0.08 < below or k[index] == 2
    one_seed = crossed.variance_components(crossed.mean_squares(np.random.default_rng(9).random((2, 1, 50))))
    assert np.isnan(crossed_planning.seeds_needed(one_seed, 0.1)).all()
    assert np.isfinite(crossed_planning.minimum_detectable_effect(one_seed)).all()
    assert np.isinf(crossed_planning.seeds_needed(components, 0.0)).all()
