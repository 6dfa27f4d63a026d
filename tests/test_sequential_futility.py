"""Non-binding futility (analysis.sequential.decisions.futile): stops only where neither answer is within
reach, removes decisions but never adds or changes one, and saves trials under A/A."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.sequential import Design, evaluate_look, start_state, state_from_json
from analysis.sequential.decisions import UNDECIDED, futile
from analysis.sequential.simulate import run_adaptive

SMALL_SIM = 100_000


def test_futile_only_when_neither_a_difference_nor_equivalence_is_within_reach():
    # 3 of 11 seeds, a last-look boundary of 3.0, margin 2 points, threshold 0.1
    mean = np.array([0.0, 10.0, 0.0, 3.0, np.nan])
    sd = np.array([5.0, 5.0, 1.0, 5.0, np.nan])
    stop = futile(mean, sd, np.full(5, 3.0), 11, 3.0, 2.0, 0.1)
    # A/A-like noise: stop; a large trend: detection likely; a tight interval: equivalence within reach;
    # a moderate trend: conditional power above 0.1; no variance yet: never futile
    assert list(stop) == [True, False, False, False, False]
    assert not futile(0.0, 5.0, 11.0, 11, 3.0, 2.0, 0.1)  # at the last look there is nothing to stop early


def test_design_names_its_futility_and_checks_it():
    design = Design(looks=(3, 5), futility=0.1, n_sim=SMALL_SIM)
    assert "non-binding futility below conditional power 0.1" in design.signature()
    assert "futility" not in Design(looks=(3, 5)).signature()
    with pytest.raises(ValueError, match="futility must be in"):
        Design(looks=(3, 5), futility=1.0)


def test_futility_removes_decisions_never_adds_or_changes_one_and_saves_trials(tmp_path):
    rng = np.random.default_rng(4)
    values = rng.normal(0.0, 4.0, (3000, 4, 11))
    values[:1000, 1:, :] += 9.0  # a third of the sweeps with a large effect, the rest A/A
    common = {"looks": (3, 5, 7, 9, 11), "margins": {"m": 2.0}, "n_sim": SMALL_SIM}
    plain = run_adaptive(values, Design(**common), 2.0, cache_path=tmp_path / "b.json")
    stopping = run_adaptive(values, Design(**common, futility=0.05), 2.0, cache_path=tmp_path / "b.json")
    # Bonferroni: each comparison reads its own boundaries, so a stop can only turn a decision into undecided
    assert np.all((stopping.status == plain.status) | (stopping.status == UNDECIDED))
    null = slice(1000, None)
    assert stopping.trials[null].mean() < 0.6 * plain.trials[null].mean()  # A/A: most stop at an early look
    power = lambda outcome: np.isin(outcome.status[:1000], (1, 2)).mean()  # noqa: E731
    assert power(stopping) >= power(plain) - 0.04  # the price (bench: 0.839 -> 0.808 at the MDE, fixed 0.803)


def test_evaluate_look_stops_a_futile_comparison_with_its_reason(tmp_path):
    design = Design(looks=(3, 6, 9), margins={"correct": 2.0}, futility=0.1, n_sim=SMALL_SIM)
    base = {0: 50.0, 1: 54.0, 2: 46.0}
    values = {"correct": {"base": base,
                          "noisy": {s: v + d for (s, v), d in zip(base.items(), (4.0, -5.0, 1.0))},  # mean 0, sd 4.6
                          "up": {s: v + d for (s, v), d in zip(base.items(), (6.0, 7.0, 5.0))}}}  # open, on its way
    result = evaluate_look(values, start_state(design, "base"), cache_path=tmp_path / "b.json")
    noisy = next(c for c in result.decisions if c.system == "noisy")
    assert noisy.status == "undecided" and noisy.reason.startswith("futile at look 1") and noisy.closed_at_look == 1
    assert noisy.seeds_to_show_equivalence is not None
    assert "noisy" not in result.needs_seeds and "up" in result.needs_seeds  # no more seeds for it
    assert "futile at look 1" in result.table()
    again = state_from_json(result.state.to_json())
    assert again.design.futility == 0.1 and again.comparison("correct", "noisy").status == "undecided"
