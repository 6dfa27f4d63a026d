"""The statistics modules (analysis.stats.sufficient, intervals, significance, across_seeds, power) against references
(scipy, statsmodels, sacreBLEU, scikit-learn), calibration, edge cases.

Monte Carlo tolerances are a few standard errors of the quantity compared, so that the tests
check the definitions (a wrong convention is off by far more) without being flaky; every draw is seeded.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis.stats import across_seeds, intervals, power, significance, sufficient

ALPHA = 0.05
WORDS = (
    "the patient should see a doctor today home care is fine urgent care for chest pain fever "
    "since yesterday with cough rash child adult nurse advice call back tomorrow if worse"
).split()


def _sentences(rng: np.random.Generator, n: int) -> list[str]:
    return [" ".join(rng.choice(WORDS, rng.integers(4, 18))) for _ in range(n)]


def _corrupt(rng: np.random.Generator, sentences: list[str], rate: float) -> list[str]:
    def replace(word: str) -> str:
        return word if rng.random() > rate else str(rng.choice(WORDS))

    return [" ".join(replace(word) for word in sentence.split()) for sentence in sentences]


def _macro_f1_reference(gold: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Macro-F1 over the classes present in gold or predictions (scikit-learn's default), from codes 0..n_classes-1."""
    scores = []
    for k in range(n_classes):
        tp = np.sum((gold == k) & (pred == k))
        support = np.sum(gold == k) + np.sum(pred == k)
        if support:
            scores.append(2 * tp / support)
    return float(np.mean(scores))


# --------------------------------------------------------------------------------------------------
# Intervals vs scipy.stats.bootstrap
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_mean_interval_matches_scipy_bootstrap(method: str) -> None:
    rng = np.random.default_rng(1)
    scores = rng.gamma(2.0, 10.0, size=150)  # skewed, like sentence BLEU: BCa and percentile differ
    ours = intervals.bootstrap_ci(scores, method=method, n_resamples=5000, seed=2)
    reference = scipy_stats.bootstrap(
        (scores,), np.mean, n_resamples=5000, method=method.upper() if method == "bca" else method, rng=3
    )
    std_error = scores.std(ddof=1) / np.sqrt(len(scores))
    assert ours.estimate == pytest.approx(scores.mean())
    assert ours.method == method and not ours.degenerate
    # quantile Monte Carlo error at B = 5000 is ~0.04 SE per bound; allow ~4 sd of the difference
    assert abs(ours.low - reference.confidence_interval.low) < 0.2 * std_error
    assert abs(ours.high - reference.confidence_interval.high) < 0.2 * std_error
    assert ours.std_error == pytest.approx(reference.standard_error, rel=0.05)


def test_bca_differs_from_percentile_on_skewed_data() -> None:
    """Guards the comparison above: on skewed data the two methods must disagree beyond MC error."""
    scores = np.random.default_rng(4).lognormal(0.0, 1.2, size=60)
    bca = intervals.bootstrap_ci(scores, method="bca", n_resamples=5000)
    percentile = intervals.bootstrap_ci(scores, method="percentile", n_resamples=5000)
    assert bca.high - percentile.high > 0.2 * bca.std_error


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_corpus_metric_interval_matches_scipy_bootstrap(method: str) -> None:
    """Macro-F1 recomputed per resample (our counts @ one-hot statistics) vs scipy resampling label pairs."""
    rng = np.random.default_rng(5)
    labels = ["home care", "see doctor", "urgent", "emergency"]
    gold = rng.choice(4, size=120, p=[0.4, 0.3, 0.2, 0.1])
    pred = np.where(rng.random(120) < 0.7, gold, rng.integers(0, 5, size=120))  # code 4: an invalid output
    names = np.array(labels + ["banana"])
    ours = intervals.bootstrap_ci(
        sufficient.macro_f1_stats(names[gold], names[pred], labels),
        finalize=sufficient.macro_f1_from_sums,
        method=method,
        n_resamples=3000,
        seed=6,
    )
    reference = scipy_stats.bootstrap(
        (gold, pred),
        lambda g, p: _macro_f1_reference(g, p, 5),  # the invalid output is a class (F1 0)
        paired=True,
        vectorized=False,
        n_resamples=3000,
        method=method.upper() if method == "bca" else method,
        rng=7,
    )
    assert ours.estimate == pytest.approx(_macro_f1_reference(gold, pred, 5))
    tolerance = 0.25 * reference.standard_error
    assert abs(ours.low - reference.confidence_interval.low) < tolerance
    assert abs(ours.high - reference.confidence_interval.high) < tolerance


def test_macro_f1_matches_scikit_learn() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(8)
    labels = ["yes", "no", "maybe"]
    gold = rng.choice(labels, 80)
    pred = np.where(rng.random(80) < 0.6, gold, rng.choice(labels + ["unsure"], 80))
    ours = sufficient.macro_f1_from_sums(sufficient.macro_f1_stats(gold, pred, labels).sum(axis=0))
    # scikit-learn's default labels: the union of gold and predicted values ("unsure" is a class, F1 0)
    assert ours == pytest.approx(f1_score(gold, pred, average="macro"))
    absent = sufficient.macro_f1_stats(gold, pred, labels + ["never seen"]).sum(axis=0)
    assert sufficient.macro_f1_from_sums(absent) == pytest.approx(ours)  # a class absent from both is not averaged


def test_corpus_bleu_from_statistics_matches_sacrebleu() -> None:
    from sacrebleu.metrics import BLEU

    rng = np.random.default_rng(9)
    references = _sentences(rng, 120)
    hypotheses = _corrupt(rng, references, 0.4)
    per_sentence = sufficient.bleu_stats(hypotheses, references)
    assert sufficient.bleu_from_sums(per_sentence.sum(axis=0)) == pytest.approx(
        BLEU().corpus_score(hypotheses, [references]).score, abs=1e-9
    )
    for effective_order in (False, True):
        bleu = BLEU(effective_order=effective_order)
        subsets = [rng.choice(120, size=rng.integers(1, 4)) for _ in range(100)]  # short: zero-match orders
        ours = sufficient.bleu_from_sums(
            np.stack([per_sentence[s].sum(axis=0) for s in subsets]), effective_order=effective_order
        )
        reference = [bleu._compute_score_from_stats(list(per_sentence[s].sum(axis=0))).score for s in subsets]
        np.testing.assert_allclose(ours, reference, atol=1e-9)


# --------------------------------------------------------------------------------------------------
# Paired tests vs sacreBLEU's own implementation
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bleu_systems() -> tuple[np.ndarray, np.ndarray, list]:
    """A baseline and three systems of BLEU statistics, plus sacreBLEU's named systems and references."""
    rng = np.random.default_rng(10)
    references = _sentences(rng, 200)
    baseline = _corrupt(rng, references, 0.35)
    systems = [_corrupt(rng, references, rate) for rate in (0.34, 0.29, 0.36)]
    base_stats = sufficient.bleu_stats(baseline, references)
    system_stats = np.stack([sufficient.bleu_stats(h, references) for h in systems])
    named = [("baseline", baseline)] + [(f"system{i}", h) for i, h in enumerate(systems)]
    return base_stats, system_stats, [named, references]


@pytest.mark.parametrize("test_type", ["bs", "ar"])
def test_paired_tests_match_sacrebleu(bleu_systems, test_type: str, monkeypatch) -> None:
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    base_stats, system_stats, (named, references) = bleu_systems
    trials = 2000
    monkeypatch.setenv("SACREBLEU_SEED", "12345")
    _, scores = PairedTest(named, {"BLEU": BLEU()}, [references], test_type=test_type, n_samples=trials)()
    reference = np.array([result.p_value for result in scores["BLEU"][1:]])
    if test_type == "bs":
        ours = significance.paired_bootstrap(
            base_stats,
            system_stats,
            finalize=sufficient.bleu_from_sums,
            n_resamples=trials,
            seed=1,
            convention="sacrebleu",
        ).p_value
    else:
        ours = significance.approximate_randomization(
            base_stats,
            system_stats,
            finalize=sufficient.bleu_from_sums,
            n_trials=trials,
            seed=1,
            convention="sacrebleu",
        ).p_value
    assert reference.max() > 0.05 and reference.min() < 0.01  # the comparison covers both regimes
    mc_error = np.sqrt(np.maximum(reference * (1 - reference), 1e-3) * 2 / trials)
    np.testing.assert_array_less(np.abs(ours - reference), 4 * mc_error + 1e-3)


def test_two_sided_bootstrap_agrees_with_randomization_where_sacrebleu_halves_it(bleu_systems) -> None:
    """sacreBLEU's bootstrap p-value is about half the randomisation one (a one-sided tail); ours is not."""
    base_stats, system_stats, _ = bleu_systems
    options = {"finalize": sufficient.bleu_from_sums, "seed": 3}
    randomized = significance.approximate_randomization(base_stats, system_stats, n_trials=4000, **options).p_value
    two_sided = significance.paired_bootstrap(base_stats, system_stats, n_resamples=4000, **options).p_value
    sacrebleu = significance.paired_bootstrap(
        base_stats, system_stats, n_resamples=4000, convention="sacrebleu", **options
    ).p_value
    moderate = randomized > 0.05
    np.testing.assert_allclose(two_sided[moderate], randomized[moderate], rtol=0.3)
    assert np.all(sacrebleu[moderate] < 0.7 * randomized[moderate])


# --------------------------------------------------------------------------------------------------
# Exact tests vs scipy / statsmodels
# --------------------------------------------------------------------------------------------------


def test_mcnemar_matches_statsmodels() -> None:
    from statsmodels.stats.contingency_tables import mcnemar

    rng = np.random.default_rng(11)
    baseline = (rng.random(300) < 0.7).astype(float)
    flips = (0.0, 0.02, 0.1, 0.3)
    systems = np.stack([np.where(rng.random(300) < flip, 1 - baseline, baseline) for flip in flips])
    ours = significance.mcnemar_exact(baseline, systems)
    for index, system in enumerate(systems):
        table = [
            [np.sum((baseline == 1) & (system == 1)), np.sum((baseline == 1) & (system == 0))],
            [np.sum((baseline == 0) & (system == 1)), np.sum((baseline == 0) & (system == 0))],
        ]
        reference = mcnemar(table, exact=True)
        assert ours.p_value[index] == pytest.approx(reference.pvalue, rel=1e-12, abs=1e-15)
        assert min(ours.baseline_only[index], ours.system_only[index]) == reference.statistic
    assert ours.p_value[0] == 1.0  # no discordant pair


def test_seed_tests_match_scipy() -> None:
    rng = np.random.default_rng(12)
    baseline = rng.normal(0.70, 0.01, size=7)
    systems = baseline + rng.normal([[0.0], [0.005], [0.02]], 0.01, size=(3, 7))
    ttest = across_seeds.paired_ttest(baseline, systems)
    for index, system in enumerate(systems):
        reference = scipy_stats.ttest_rel(system, baseline)
        assert ttest.statistic[index] == pytest.approx(reference.statistic, rel=1e-12)
        assert ttest.p_value[index] == pytest.approx(reference.pvalue, rel=1e-12)
        low, high = reference.confidence_interval(0.95)
        assert (ttest.low[index], ttest.high[index]) == (pytest.approx(low), pytest.approx(high))


@pytest.mark.parametrize("n_seeds", [5, 9, 16])
def test_wilcoxon_matches_scipy_with_ties_and_zeros(n_seeds: int) -> None:
    """Per-seed accuracies tie and repeat: scipy then runs an exact permutation test (we enumerate it)."""
    rng = np.random.default_rng(n_seeds)
    baseline = np.round(rng.normal(0.7, 0.02, size=n_seeds), 2)
    systems = np.stack(
        [baseline + np.round(rng.normal(shift, 0.02, size=n_seeds), 2) for shift in (0.0, 0.01, 0.03)]
        + [baseline + rng.normal(0.01, 0.02, size=n_seeds)]
    )
    systems[0, :2] = baseline[:2]  # zero differences
    ours = across_seeds.wilcoxon_signed_rank(baseline, systems)
    for index, system in enumerate(systems):
        reference = scipy_stats.wilcoxon(system, baseline)
        assert ours.statistic[index] == reference.statistic
        assert ours.p_value[index] == pytest.approx(reference.pvalue, rel=1e-12)


@pytest.mark.parametrize("method", ["holm", "bonferroni"])
def test_corrections_match_statsmodels(method: str) -> None:
    from statsmodels.stats.multitest import multipletests

    p_values = np.array([0.001, 0.04, 0.03, 0.2, 0.011, 0.5, 0.04])
    reference = multipletests(p_values, method=method)[1]
    np.testing.assert_allclose(power.adjust_pvalues(p_values, method), reference)
    with_gaps = np.array([0.01, np.nan, 0.04, 0.03])  # tests not run stay out of the family
    adjusted = power.adjust_pvalues(with_gaps, method)
    assert np.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2, 3]], multipletests(with_gaps[[0, 2, 3]], method=method)[1])


def test_minimum_detectable_effect() -> None:
    assert power.minimum_detectable_effect(1.0) == pytest.approx(1.959964 + 0.841621, rel=1e-6)
    assert power.minimum_detectable_effect(1.0, n_comparisons=10) > power.minimum_detectable_effect(1.0)
    assert power.minimum_detectable_effect(1.0, df=4) > power.minimum_detectable_effect(1.0)


# --------------------------------------------------------------------------------------------------
# Calibration: A/A comparisons reject at about alpha; power at the minimum detectable effect
# --------------------------------------------------------------------------------------------------


def _aa_correctness(
    rng: np.random.Generator,
    experiments: int,
    n: int,
    runs: int | None = None,
    seed_sd: float = 0.0,
    shift: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of 0/1 correctness from one distribution: shared example difficulty, independent outcomes."""
    shape = (experiments, n) if runs is None else (experiments, runs, n)
    difficulty = rng.normal(0.8, 1.5, size=(experiments, 1, n) if runs else (experiments, n))
    p = 1 / (1 + np.exp(-difficulty))
    seed_a = rng.normal(0, seed_sd, size=(experiments, runs, 1)) if runs else 0.0
    seed_b = rng.normal(0, seed_sd, size=(experiments, runs, 1)) if runs else 0.0
    a = (rng.random(shape) < np.clip(p + seed_a, 0, 1)).astype(float)
    b = (rng.random(shape) < np.clip(p + seed_b + shift, 0, 1)).astype(float)
    return a, b


def test_calibration_of_example_level_tests() -> None:
    """1,000 A/A pairs: each default test rejects at 0.03-0.07; sacreBLEU's bootstrap convention does not."""
    rng = np.random.default_rng(13)
    a, b = _aa_correctness(rng, 1000, 200)
    bootstrap = significance.paired_bootstrap(a, b, n_resamples=1000, seed=1, method="percentile")
    randomized = significance.approximate_randomization(a, b, n_trials=1000, seed=2)
    rates = {
        "paired bootstrap": np.mean(bootstrap.p_value < ALPHA),
        "randomization": np.mean(randomized.p_value < ALPHA),
        "mcnemar": np.mean(significance.mcnemar_exact(a, b).p_value < ALPHA),
        "interval excludes 0": np.mean((bootstrap.delta_low > 0) | (bootstrap.delta_high < 0)),
    }
    latent = rng.gamma(2.0, 10.0, size=(1000, 200))  # skewed, like sentence BLEU; an exchangeable pair
    continuous_a, continuous_b = latent + rng.normal(0, 5, size=(2, 1000, 200))
    continuous = significance.paired_bootstrap(continuous_a, continuous_b, n_resamples=1000, seed=3, method="bca")
    rates["paired bootstrap, continuous"] = np.mean(continuous.p_value < ALPHA)
    rates["BCa interval excludes 0"] = np.mean((continuous.delta_low > 0) | (continuous.delta_high < 0))
    print("A/A rejection rates at alpha 0.05:", {k: round(float(v), 3) for k, v in rates.items()})
    for name, rate in rates.items():
        assert 0.03 <= rate <= 0.07, (name, rate)
    sacrebleu = significance.paired_bootstrap(a, b, n_resamples=1000, seed=1, convention="sacrebleu")
    sacrebleu_rate = np.mean(sacrebleu.p_value < ALPHA)
    assert sacrebleu_rate > 0.08  # documented: reproduce sacreBLEU with it, do not use it for decisions


@pytest.mark.parametrize("correction", ["holm", "bonferroni"])
def test_family_wise_error_after_correction(correction: str) -> None:
    """600 families of 5 A/A comparisons: the corrected family-wise error rate stays in 0.03-0.07."""
    rng = np.random.default_rng(14)
    families, m = 600, 5
    a, b = _aa_correctness(rng, families * m, 150)
    p_values = significance.paired_bootstrap(a, b, n_resamples=1000, seed=4, method="percentile").p_value
    adjusted = power.adjust_pvalues(p_values.reshape(families, m), correction)
    family_wise = np.mean((adjusted < ALPHA).any(axis=1))
    print(f"{correction}: family-wise A/A error {family_wise:.3f}")
    assert 0.03 <= family_wise <= 0.07


def test_calibration_and_power_of_seed_level_tests() -> None:
    """Per-seed scores of A/A runs: t-test (5 seeds) and Wilcoxon (10 seeds) reject at 0.03-0.07;
    the two-way seed x example bootstrap is conservative (documented); power at the MDE is about 80%."""
    rng = np.random.default_rng(15)
    a, b = _aa_correctness(rng, 800, 150, runs=5, seed_sd=0.01)
    t_rate = np.mean(across_seeds.paired_ttest(a.mean(-1), b.mean(-1)).p_value < ALPHA)
    a10, b10 = _aa_correctness(rng, 800, 150, runs=10, seed_sd=0.01)
    w_rate = np.mean(across_seeds.wilcoxon_signed_rank(a10.mean(-1), b10.mean(-1)).p_value < ALPHA)
    two_way_rate = np.mean(significance.paired_bootstrap(a[:400], b[:400], n_resamples=500, seed=5).p_value < ALPHA)
    print(f"A/A over seeds: t-test {t_rate:.3f}, Wilcoxon {w_rate:.3f}, two-way bootstrap {two_way_rate:.3f}")
    assert 0.03 <= t_rate <= 0.07 and 0.03 <= w_rate <= 0.07
    assert two_way_rate <= ALPHA

    # power: plant a difference equal to the MDE computed from one A/A pair's standard error
    planted = power.minimum_detectable_effect(np.sqrt(2 * 0.01**2 / 5 + 2 * 0.2 / (5 * 150)), df=4)
    shifted_a, shifted_b = _aa_correctness(rng, 800, 150, runs=5, seed_sd=0.01, shift=float(planted))
    achieved_power = np.mean(across_seeds.paired_ttest(shifted_a.mean(-1), shifted_b.mean(-1)).p_value < ALPHA)
    print(f"t-test power at a planted difference of {planted:.4f} (its MDE): {achieved_power:.2f}")
    assert 0.6 <= achieved_power <= 0.95


def test_power_of_paired_bootstrap_at_its_mde() -> None:
    rng = np.random.default_rng(16)
    a, b = _aa_correctness(rng, 600, 300)
    standard_error = significance.paired_bootstrap(a[:50], b[:50], n_resamples=1000).delta_std_error.mean()
    planted = float(power.minimum_detectable_effect(standard_error))
    a, b = _aa_correctness(rng, 600, 300, shift=planted)
    achieved_power = np.mean(significance.paired_bootstrap(a, b, n_resamples=1000, seed=6).p_value < ALPHA)
    print(f"paired bootstrap power at a planted difference of {planted:.3f} (its MDE): {achieved_power:.2f}")
    assert 0.65 <= achieved_power <= 0.92


# --------------------------------------------------------------------------------------------------
# Edge cases
# --------------------------------------------------------------------------------------------------


def test_all_equal_scores_are_degenerate_not_nan() -> None:
    interval = intervals.bootstrap_ci(np.full(40, 0.7), method="bca", n_resamples=500)
    assert interval.degenerate and interval.low == interval.high == pytest.approx(0.7)
    scores = np.random.default_rng(17).random(40)
    identical = significance.paired_bootstrap(scores, scores[None], n_resamples=500)
    assert identical.p_value[0] == 1.0 and identical.delta[0] == 0.0 and identical.degenerate[0]
    assert significance.approximate_randomization(scores, scores[None], n_trials=500).p_value[0] == 1.0
    # sacreBLEU's strict ">" calls identical systems significant; documented, available for reproduction
    assert significance.approximate_randomization(scores, scores[None], n_trials=500, convention="sacrebleu").p_value[
        0
    ] == pytest.approx(1 / 501)


def test_too_few_examples_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 10 examples"):
        intervals.bootstrap_ci(np.arange(7.0))
    with pytest.raises(ValueError, match="at least 10 examples"):
        significance.paired_bootstrap(np.arange(7.0), np.arange(7.0)[None])
    assert significance.mcnemar_exact(np.array([1, 0, 1]), np.array([[1, 1, 1]])).p_value[0] == 1.0  # exact: any n


def test_nan_scores_raise_unless_omitted() -> None:
    scores = np.random.default_rng(18).random(50)
    scores[[3, 9]] = np.nan
    with pytest.raises(ValueError, match="2 of 50 scores are NaN"):
        intervals.bootstrap_ci(scores)
    interval = intervals.bootstrap_ci(scores, nan_policy="omit", n_resamples=500)
    assert interval.estimate == pytest.approx(np.nanmean(scores))
    with pytest.raises(ValueError, match="0/1"):
        significance.mcnemar_exact(np.where(np.isnan(scores), np.nan, 1.0), np.ones((1, 50)))


def test_different_example_sets_and_seed_counts_are_errors() -> None:
    rng = np.random.default_rng(19)
    with pytest.raises(ValueError, match="same runs and examples"):
        significance.paired_bootstrap(rng.random(50), rng.random((2, 49)))
    with pytest.raises(ValueError, match="at least 2 seed-matched runs"):
        across_seeds.paired_ttest(rng.random(1), rng.random((2, 1)))
    with pytest.raises(ValueError, match="match seeds first"):
        across_seeds.wilcoxon_signed_rank(rng.random(3), rng.random((2, 4)))


def test_one_seed_equals_example_bootstrap_and_baselines_can_be_shared_or_paired() -> None:
    rng = np.random.default_rng(20)
    baseline, systems = rng.random(60), rng.random((3, 60))
    single = intervals.bootstrap_ci(baseline, n_resamples=800, seed=1)
    one_run = intervals.bootstrap_ci(baseline[None], n_resamples=800, seed=1)
    assert (single.low, single.high) == (one_run.low, one_run.high)
    shared = significance.paired_bootstrap(baseline, systems, n_resamples=800, seed=2)
    paired = significance.paired_bootstrap(np.repeat(baseline[None], 3, axis=0), systems, n_resamples=800, seed=2)
    np.testing.assert_allclose(shared.p_value, paired.p_value)
    np.testing.assert_allclose(shared.delta_low, paired.delta_low, atol=1e-6)  # float32 sums


def test_seed_stratified_interval_contains_seed_variance() -> None:
    """Runs whose seeds differ a lot: resampling seeds widens the interval beyond examples-only."""
    rng = np.random.default_rng(21)
    runs = (rng.random((4, 300)) < (0.7 + np.array([[-0.06], [0.0], [0.03], [0.06]]))).astype(float)
    with_seeds = intervals.bootstrap_ci(runs, n_resamples=2000)
    examples_only = intervals.bootstrap_ci(runs, n_resamples=2000, resample_seeds=False)
    assert with_seeds.method == "percentile"  # BCa is for one level of resampling
    assert with_seeds.high - with_seeds.low > 1.5 * (examples_only.high - examples_only.low)
