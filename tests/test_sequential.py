"""Group-sequential boundaries, decisions, design and state (analysis.sequential): fast checks.

Published constants: Lan-DeMets spending, K = 5 equally spaced looks, two-sided alpha 0.05 split
0.025 per side, as computed by the R packages ldbounds (Reboussin, DeMets, Kim & Lan 2000,
Controlled Clinical Trials 21:190-207) and gsDesign (sfLDOF / sfLDPocock):
O'Brien-Fleming-type 4.8769, 3.3569, 2.6803, 2.2898, 2.0310; Pocock-type 2.4380, 2.4268, 2.4101,
2.3966, 2.3859.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import f1_score

from analysis.load.runs import Run
from analysis.load.systems import MatchedSystems, System
from analysis.sequential import (
    Design,
    calibrate_t_boundaries,
    design_from_json,
    evaluate_look,
    fixed_design_seeds,
    margins_from_options,
    normal_boundaries,
    per_seed_values,
    spent_alpha,
    start_state,
    state_from_json,
    t_boundaries,
)
from analysis.sequential.boundaries import cache_key, simulate_null_t
from analysis.sequential.decisions import BETTER, EQUIVALENT, OPEN, WORSE, decide_look
from analysis.sequential.simulate import expected_trials, run_adaptive

OBF_K5 = [4.8769, 3.3569, 2.6803, 2.2898, 2.0310]
POCOCK_K5 = [2.4380, 2.4268, 2.4101, 2.3966, 2.3859]
SMALL_SIM = 100_000


def test_spending_functions_spend_alpha_by_the_end():
    fractions = np.linspace(0.0, 1.0, 11)
    for spending in ("obf", "pocock"):
        spent = spent_alpha(fractions, 0.05, spending)
        assert spent[0] == 0.0 and spent[-1] == pytest.approx(0.05, abs=1e-12)
        assert np.all(np.diff(spent) > 0)
    assert spent_alpha(0.2, 0.05, "obf") < 2e-6 < spent_alpha(0.2, 0.05, "pocock")


def test_normal_boundaries_match_published_constants():
    np.testing.assert_allclose(normal_boundaries(np.arange(1, 6) / 5, 0.05, "obf"), OBF_K5, atol=2e-4)
    np.testing.assert_allclose(normal_boundaries(np.arange(1, 6) / 5, 0.05, "pocock"), POCOCK_K5, atol=2e-4)
    assert normal_boundaries([1.0], 0.05)[0] == pytest.approx(stats.norm.isf(0.025), abs=1e-9)


def test_normal_boundaries_spend_exactly_alpha_by_an_independent_integration():
    bounds = normal_boundaries([0.3, 0.7, 1.0], 0.05, "obf")
    t = np.array([0.3, 0.7, 1.0])
    correlation = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    inside = stats.multivariate_normal(cov=correlation).cdf(bounds, lower_limit=-bounds)
    assert 1.0 - inside == pytest.approx(0.05, abs=2e-5)


def test_t_boundaries_first_look_is_exact_and_the_null_crossing_rate_is_alpha():
    looks = (3, 5, 8)
    bounds = calibrate_t_boundaries(looks, 0.05, "pocock", n_sim=SMALL_SIM, seed=1)
    first_spend = spent_alpha(3 / 8, 0.05, "pocock")
    assert bounds[0] == pytest.approx(stats.t.isf(first_spend / 2.0, 2))
    fresh = simulate_null_t(looks, SMALL_SIM, seed=2)  # an independent null sample
    crossed = (fresh >= bounds).any(axis=1).mean()
    assert abs(crossed - 0.05) < 4 * np.sqrt(0.05 * 0.95 / SMALL_SIM)
    normal = normal_boundaries(np.array(looks) / 8, 0.05, "pocock")
    assert np.all(bounds > normal)  # estimated variance: wider than the known-variance boundaries


def test_t_boundaries_approach_the_normal_ones_with_many_seeds():
    bounds = calibrate_t_boundaries((1500, 3000), 0.05, "obf", n_sim=4 * SMALL_SIM, seed=3)
    np.testing.assert_allclose(bounds, normal_boundaries([0.5, 1.0], 0.05, "obf"), atol=0.03)


def test_t_boundaries_are_cached_and_read_back(tmp_path):
    cache = tmp_path / "bounds.json"
    first = t_boundaries((3, 5), 0.05, "obf", n_sim=20_000, seed=0, cache_path=cache)
    entries = json.loads(cache.read_text())
    key = cache_key((3, 5), None, 0.05, "obf", 20_000, 0)
    assert entries[key] == pytest.approx(list(first))
    entries[key] = [7.0, 3.0]  # a planted value proves the second call reads the file
    cache.write_text(json.dumps(entries))
    assert list(t_boundaries((3, 5), 0.05, "obf", n_sim=20_000, seed=0, cache_path=cache)) == [7.0, 3.0]


def test_decide_look_reads_planted_effects_and_equivalence():
    mean = np.array([5.0, -5.0, 0.1, 0.5])
    sd = np.array([1.0, 1.0, 0.2, 3.0])
    n = np.full(4, 8.0)
    status = np.zeros(4, dtype=np.int8)
    critical = np.full(4, 4.0)
    decided = decide_look(mean, sd, n, status, critical, critical, margin=1.0)
    assert list(decided) == [BETTER, WORSE, EQUIVALENT, OPEN]
    closed = decide_look(-mean, sd, n, decided, critical, critical, margin=1.0)
    assert list(closed) == [BETTER, WORSE, EQUIVALENT, OPEN]  # a closed comparison never reopens or flips


def test_holm_passes_alpha_on_after_a_rejection():
    mean, sd, n = np.array([5.0, 1.3]), np.ones(2), np.full(2, 4.0)  # t = 10 and 2.6
    status, no_equivalence = np.zeros(2, dtype=np.int8), np.full(2, 99.0)
    holm = np.array([2.5, 3.0])  # the boundary when 1 comparison is not rejected, when 2 are
    bonferroni = np.array([3.0, 3.0])
    assert list(decide_look(mean, sd, n, status, holm, no_equivalence, 0.1)) == [BETTER, BETTER]
    assert list(decide_look(mean, sd, n, status, bonferroni, no_equivalence, 0.1)) == [BETTER, OPEN]


@pytest.mark.parametrize("correction", ["bonferroni", "holm"])
def test_family_wise_error_under_a_a_is_at_most_alpha(tmp_path, correction):
    design = Design(looks=(3, 5, 7), margins={"m": 0.05}, correction=correction, n_sim=SMALL_SIM)
    rng = np.random.default_rng(11)
    sweeps = 6000
    values = rng.standard_normal((sweeps, 4, 7))  # 3 configurations equal to the baseline
    outcome = run_adaptive(values, design, margin=0.05, cache_path=tmp_path / "b.json")
    errors = np.isin(outcome.status, (BETTER, WORSE, EQUIVALENT)).any(axis=1).mean()
    assert errors <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / sweeps)
    assert errors > 0.01  # not vacuous: the procedure does reject at about its level


def test_fixed_design_seeds_match_the_paired_t_test_table():
    # a standardised effect of 1 at two-sided 0.05 and 80% power needs 10 pairs (noncentral t, exact)
    assert fixed_design_seeds(1.0, 1.0, 0.05, 0.8) == 10
    assert np.isinf(fixed_design_seeds(0.0, 1.0, 0.05, 0.8))


def _values(truth: dict[str, float], seeds: int, rng) -> dict[str, dict[int, float]]:
    return {
        system: {seed: 50.0 + shift + rng.normal(0.0, 1.0) for seed in range(seeds)} for system, shift in truth.items()
    }


def test_evaluate_look_closes_comparisons_and_resumes_from_json(tmp_path):
    design = Design(looks=(3, 6, 9), margins={"macro_f1": 2.0}, n_sim=SMALL_SIM)
    rng = np.random.default_rng(5)
    values = _values({"base": 0.0, "up": 8.0, "down": -8.0, "same": 0.0}, 9, rng)
    values["same"] = {seed: values["base"][seed] + 0.05 * rng.standard_normal() for seed in range(9)}
    state = start_state(design, "base")
    for look, seeds in enumerate(design.looks):
        shown = {system: {seed: v for seed, v in runs.items() if seed < seeds} for system, runs in values.items()}
        result = evaluate_look({"macro_f1": shown}, state, cache_path=tmp_path / "b.json")
        state = state_from_json(result.state.to_json())
        if result.done:
            break
        assert result.next_seeds == design.looks[look + 1] and result.needs_seeds[0] == "base"
    decisions = {comparison.system: comparison.status for comparison in state.comparisons}
    assert decisions == {"up": "better", "down": "worse", "same": "equivalent"}
    assert state.design == design and "looks 3,6,9" in design.signature()


def test_undecided_at_the_last_look_says_why_and_what_a_fixed_design_needs(tmp_path):
    design = Design(looks=(3, 4), margins={"correct": 0.5}, n_sim=SMALL_SIM)
    rng = np.random.default_rng(2)
    values = {"correct": _values({"base": 0.0, "noisy": 0.3}, 4, rng)}
    state = start_state(design, "base")
    first = {system: {seed: v for seed, v in runs.items() if seed < 3} for system, runs in values["correct"].items()}
    evaluate_look({"correct": first}, state, cache_path=tmp_path / "b.json")
    result = evaluate_look(values, state, stop_reason="budget spent", cache_path=tmp_path / "b.json")
    (comparison,) = result.decisions
    assert result.done and comparison.status == "undecided" and comparison.reason == "budget spent"
    assert comparison.seeds_to_detect is not None and comparison.seeds_to_detect >= 2
    row = next(line for line in result.table().splitlines() if "| noisy |" in line)
    assert comparison.seeds_to_show_equivalence == float("inf")  # the observed 1.95 is beyond the margin 0.5
    assert f"undecided (budget spent; seeds a fixed design needs: equivalence never, detection " \
           f"{comparison.seeds_to_detect:.0f})" in row
    with pytest.raises(ValueError, match="planned looks are done"):
        evaluate_look(values, state)


def test_design_round_trips_through_json():
    design = Design(looks=(2, 4, 8), alpha=0.1, spending="pocock", margins={"correct": 1.5}, correction="holm")
    assert design_from_json(design.to_json()) == design


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"looks": (3, 5), "margins": {"correct": 0.0}}, "margin for correct must be a positive"),
        ({"looks": (3, 5), "margins": {"correct": -1.0}}, "margin for correct must be a positive"),
        ({"looks": (5, 3)}, "strictly increasing"),
        ({"looks": (1, 3)}, "at least 2 seeds"),
        ({"looks": ()}, "at least one seed count"),
        ({"looks": (3, 4.5)}, "whole seed counts"),
        ({"looks": (3, "x")}, "whole seed counts"),
        ({"looks": (3, 5), "alpha": 1.5}, "alpha must be in"),
        ({"looks": (3, 5), "spending": "linear"}, "spending must be one of"),
        ({"looks": (3, 5), "correction": "hochberg"}, "correction must be"),
        ({"looks": (3, 5), "margins": {}}, "at least one METRIC=POINTS"),
    ],
)
def test_bad_design_is_a_one_line_value_error(arguments, message):
    with pytest.raises(ValueError, match=message) as error:
        Design(**arguments)
    assert "\n" not in str(error.value)


def test_bad_margin_options_and_values_are_one_line_errors():
    assert margins_from_options(["macro_f1=3"]) == {"correct": 2.0, "macro_f1": 3.0, "corpus_bleu": 1.0}
    for option, message in [("macro_f1", "METRIC=POINTS"), ("correct=x", "a number"), ("correct=0", "positive")]:
        with pytest.raises(ValueError, match=message):
            margins_from_options([option])
    with pytest.raises(ValueError, match="no default margin"):
        margins_from_options(None, ["rouge"])
    with pytest.raises(ValueError, match="is missing"):
        evaluate_look({"correct": {"base": {0: 1.0}}}, start_state(Design(looks=(2, 3), margins={"bleu": 1.0}), "base"))
    with pytest.raises(ValueError, match="design: unknown field"):
        design_from_json('{"looks": [2, 3], "speed": 1}')


def test_expected_trials_for_a_dry_run(tmp_path):
    design = Design(looks=(3, 5, 7), margins={"m": 1.0}, n_sim=SMALL_SIM)
    figures = expected_trials(design, 3, 2.0, {"none": 0.0, "large": 10.0}, n_sweeps=500, cache_path=tmp_path / "b")
    assert figures["maximum"] == 28.0
    assert figures["large"] < figures["none"] <= 28.0  # large effects close early; no difference runs on


def test_per_seed_values_are_each_runs_metric_in_points():
    labels = ["no", "yes"]
    gold = np.array(["yes", "no", "yes", "yes"])
    predictions = {("base", 0): ["yes", "no", "no", "no"], ("base", 1): gold, ("up", 0): gold, ("up", 1): gold}
    systems = {}
    for (name, seed), predicted in predictions.items():
        frame = pd.DataFrame({"id": list("abcd"), "gold_label": gold, "pred_label": predicted})
        frame["correct"] = (frame["gold_label"] == frame["pred_label"]).astype(float)
        run = Run(f"{name}-{seed}", {"seed": seed}, "memory", predictions=frame.set_index("id", drop=False))
        systems.setdefault(name, System(name, {}, {})).runs[seed] = run
    matched = MatchedSystems(list(systems.values()), list("abcd"), labels, "test", None, [], [], [], classes=labels)
    values = per_seed_values(matched, ["correct", "macro_f1"])
    assert values["correct"] == {"base": {0: 50.0, 1: 100.0}, "up": {0: 100.0, 1: 100.0}}
    assert values["macro_f1"]["base"][0] == pytest.approx(100 * f1_score(gold, predictions["base", 0], average="macro"))
