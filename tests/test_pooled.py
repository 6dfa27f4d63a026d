"""The pooled crossed test (analysis.stats.pooled): mean squares by hand, homogeneity fallback, A/A size, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.special import expit

from analysis.stats import crossed, crossed_planning, pooled


def _constructed() -> np.ndarray:
    """Differences [S=2, R=3, n=4]: per-seed means 1, 2, 6 (system 1) and 0, 0, 3 (system 2), example noise."""
    shape = np.array([-1.5, 0.5, 0.5, 0.5])  # sums to 0: the per-seed means are the offsets below
    seed_means = np.array([[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]])
    return seed_means[:, :, None] + shape[None, None, :] * np.array([[1.0, 2.0, 1.0], [1.0, 1.0, 2.0]])[:, :, None]


def test_interaction_mean_square_by_hand() -> None:
    d = _constructed()
    result = pooled.pooled_test_from_differences(d, check="bartlett")
    # Table of per-seed means, baseline row 0: [[0,0,0],[1,2,6],[0,0,3]]; grand 4/3; row means 0, 3, 1;
    # column means 1/3, 2/3, 3. Residual = y - row - col + grand.
    table = np.array([[0.0, 0, 0], [1, 2, 6], [0, 0, 3]])
    row, col, grand = table.mean(1), table.mean(0), table.mean()
    residual = table - row[:, None] - col[None, :] + grand
    by_hand = (residual**2).sum() / (2 * 2)  # S (R - 1) = 4 df
    # residuals [[1, 2/3, -5/3], [-1, -1/3, 4/3], [0, -1/3, 1/3]]: sum of squares 22/3, over 4 df
    assert by_hand == pytest.approx(11.0 / 6.0)
    assert result.interaction_df == 4
    assert result.interaction_ms[0] == pytest.approx(11.0 / 6.0)
    # pooled seed part 2 MS_int / R; example part as the per-comparison test's (same squares)
    _, example_part, _ = crossed.estimated_parts(crossed.mean_squares(d), 0.0)
    expected_se = np.sqrt(2.0 * by_hand / 3.0 + example_part)
    np.testing.assert_allclose(result.pooled.std_error, expected_se)
    np.testing.assert_allclose(result.pooled.delta, [3.0, 1.0])
    # the per-comparison seed part is the variance of the per-seed means over R: var(1,2,6)/3, var(0,0,3)/3
    per_seed = np.array([np.var([1, 2, 6], ddof=1), np.var([0, 0, 3], ddof=1)]) / 3.0
    np.testing.assert_allclose(result.per_comparison.std_error, np.sqrt(per_seed + example_part))


def test_one_system_pooled_equals_per_comparison() -> None:
    rng = np.random.default_rng(1)
    d = rng.normal(size=(1, 5, 40)) + rng.normal(0, 2.0, size=(1, 5, 1))
    result = pooled.pooled_test_from_differences(d)
    single = crossed.crossed_test_from_differences(d)
    np.testing.assert_allclose(result.pooled.p_value, single.p_value)
    np.testing.assert_allclose(result.pooled.std_error, single.std_error)
    assert result.interaction_df == 4 and bool(result.used_pooled[0])


def test_pure_seed_noise_gives_the_exact_anova_t() -> None:
    """No example part: t = contrast / sqrt(2 MS_int / R) with S (R - 1) df, the textbook ANOVA contrast."""
    rng = np.random.default_rng(2)
    per_seed = rng.normal(size=(4, 5))
    d = np.repeat(per_seed[:, :, None], 30, axis=2)  # constant over examples: no example variance
    result = pooled.pooled_test_from_differences(d)
    table = np.vstack([np.zeros(5), per_seed])
    residual = table - table.mean(1, keepdims=True) - table.mean(0, keepdims=True) + table.mean()
    ms = (residual**2).sum() / 16
    t = per_seed.mean(axis=1) / np.sqrt(2 * ms / 5)
    np.testing.assert_allclose(result.pooled.statistic, t)
    np.testing.assert_allclose(result.pooled.p_value, 2 * scipy_stats.t.sf(np.abs(t), 16), rtol=1e-6)


def test_heterogeneous_seed_variance_falls_back_to_per_comparison() -> None:
    rng = np.random.default_rng(3)
    per_seed = rng.normal(size=(4, 6)) * np.array([1.0, 1.0, 1.0, 20.0])[:, None]
    d = per_seed[:, :, None] + rng.normal(0, 0.1, size=(4, 6, 30))
    result = pooled.pooled_test_from_differences(d)
    assert not result.used_pooled[0]
    assert result.homogeneity_p[0] < pooled.HOMOGENEITY_LEVEL
    assert "per comparison" in result.reason[0]
    np.testing.assert_array_equal(result.test.p_value, result.per_comparison.p_value)
    homogeneous = pooled.pooled_test_from_differences(rng.normal(size=(4, 6, 1)) + rng.normal(0, 0.1, (4, 6, 30)))
    if homogeneous.used_pooled[0]:  # the check is random; when it pools, the p-values are the pooled ones
        np.testing.assert_array_equal(homogeneous.test.p_value, homogeneous.pooled.p_value)


def test_both_mdes_and_pooled_planning() -> None:
    rng = np.random.default_rng(4)
    d = rng.normal(0, 0.3, size=(4, 5, 1)) + rng.normal(size=(4, 5, 200))
    result = pooled.pooled_test_from_differences(d)
    mde_pooled, mde_per = pooled.both_mdes(result)
    assert mde_pooled.shape == mde_per.shape == (4,)
    assert np.all(np.isfinite(mde_pooled)) and np.all(np.isfinite(mde_per))
    # at equal components, more seed degrees of freedom give a smaller MDE
    components = result.per_comparison.components
    assert np.all(
        crossed_planning.minimum_detectable_effect(components, pooled_systems=4)
        < crossed_planning.minimum_detectable_effect(components)
    )


def test_aa_size_small_simulation() -> None:
    """A/A: 4 systems and a baseline, 5 seeds, 100 examples, accuracy; 300 studies x 4 comparisons."""
    rng = np.random.default_rng(5)
    sims, k, seeds, n = 300, 5, 5, 100
    logits = rng.normal(1.4, 3.0, (sims, 1, 1, n)) + rng.normal(0, 0.5, (sims, k, 1, n))
    logits = logits + rng.normal(0, 0.2, (sims, k, seeds, 1))
    outcomes = (rng.random(logits.shape) < expit(logits)).astype(float)
    d = outcomes[:, 1:] - outcomes[:, :1]
    result = pooled.pooled_test_from_differences(d, resolution=1.0)
    rate = float((result.test.p_value < 0.05).mean())
    pooled_rate = float((result.pooled.p_value < 0.05).mean())
    # 1,200 correlated comparisons: 99.9% band for a rate of 0.05 from 300 studies is about +-0.04
    assert 0.01 <= rate <= 0.09, rate
    assert 0.01 <= pooled_rate <= 0.09, pooled_rate
    assert 0.3 < float(result.used_pooled.mean()) < 1.0  # the check pools most homogeneous studies, not all


def test_scores_interface_matches_differences() -> None:
    rng = np.random.default_rng(6)
    baseline = (rng.random((3, 50)) < 0.6).astype(float)
    systems = (rng.random((3, 3, 50)) < 0.6).astype(float)
    result = pooled.pooled_crossed_test(baseline, systems)
    direct = pooled.pooled_test_from_differences(systems - baseline[None], resolution=1.0)
    np.testing.assert_allclose(result.pooled.p_value, direct.pooled.p_value)


def test_one_seed_is_the_t_over_examples() -> None:
    rng = np.random.default_rng(7)
    result = pooled.pooled_test_from_differences(rng.normal(size=(3, 1, 40)))
    assert not result.used_pooled[0] and "one seed" in result.reason[0]
    np.testing.assert_array_equal(result.test.p_value, result.per_comparison.p_value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"differences": np.zeros((4, 5))}, "differences must be"),
        ({"differences": np.zeros((2, 3, 4)), "level": 1.5}, "homogeneity level"),
        ({"differences": np.zeros((2, 3, 4)), "confidence": 0.0}, "confidence"),
        ({"differences": np.ones((3, 3, 4)) + np.arange(3)[None, :, None], "check": "cochran"}, "homogeneity check"),
    ],
)
def test_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pooled.pooled_test_from_differences(**kwargs)


def test_report_shows_both_mdes_and_uses_the_pooled_p_only_when_asked(tmp_path) -> None:
    from analysis.load.runs import load_run_dirs
    from analysis.report import build_report  # the report path (pandas, sacrebleu) only for this test
    from tests.test_analysis_report import write_run

    root = tmp_path / "runs"
    for shape, transition, skill in [("linear", 0.6, 0.7), ("linear", 0.3, 0.72), ("exponential", 0.3, 0.69)]:
        for seed in range(3):
            write_run(root, variant="r2d", shape=shape, transition=transition, seed=seed, skill=skill, n=60)
    runs = load_run_dirs([root])
    reports = {
        flag: build_report(runs, metrics=["accuracy"], n_resamples=200, plots=False, pooled=flag)
        for flag in (False, True)
    }
    for flag, report in reports.items():
        compared = [row for row in report.rows if row.compared]
        assert len(compared) == 2 and all(row.test == "crossed" for row in compared)
        for row in compared:
            assert np.isfinite(row.mde_pooled) and np.isfinite(row.mde_per_comparison)
            assert row.seed_part_pooled == (flag and row.homogeneity_p >= pooled.HOMOGENEITY_LEVEL)
            expected = row.p_crossed_pooled if row.seed_part_pooled else row.p_crossed
            assert row.p_value == expected
            assert row.mde == (row.mde_pooled if row.seed_part_pooled else row.mde_per_comparison)
        assert any("pooled seed part for" in note for note in report.notes)
    off = {row.system: row for row in reports[False].rows if row.compared}
    on = {row.system: row for row in reports[True].rows if row.compared}
    for name, row in off.items():  # the same both MDEs either way; only the p-value's test changes
        assert row.mde_pooled == on[name].mde_pooled and row.mde_per_comparison == on[name].mde_per_comparison
    assert "pooled ·" in reports[False].markdown or all(row.significant for row in off.values())
