"""Adaptive seeds with sequential error control (issue 23): stop each comparison when its answer is known.

- `boundaries`  Lan-DeMets spending; normal boundaries by numerical integration; t boundaries by
                simulation of the scale-free null, cached in JSON
- `design`      `Design` (looks, alpha, spending, margins, correction): validation, signature, JSON
- `decisions`   vectorised decisions of a family at one look (Bonferroni or group-sequential Holm),
                non-binding futility (`futile`), and the seeds a fixed design would need
- `look`        the driver's entry point: `evaluate_look(values, state)` -> decisions, systems needing seeds
- `simulate`    the procedure and the fixed design on many simulated sweeps at once; `expected_trials` (dry run)

The statistic is the paired t over seeds of per-run metric differences (system - baseline, same
seed): it answers for these test examples (the example part of the crossed test is not in it).
"""

from analysis.sequential.boundaries import calibrate_t_boundaries, normal_boundaries, spent_alpha, t_boundaries
from analysis.sequential.decisions import boundary_table, decide_look, fixed_design_seeds
from analysis.sequential.design import DEFAULT_MARGINS, Design, design_from_json, margins_from_options
from analysis.sequential.look import (
    LookResult,
    SequentialState,
    evaluate_look,
    per_seed_values,
    start_state,
    state_from_json,
)
from analysis.sequential.simulate import expected_trials, run_adaptive, run_fixed

__all__ = [
    "DEFAULT_MARGINS",
    "Design",
    "LookResult",
    "SequentialState",
    "boundary_table",
    "calibrate_t_boundaries",
    "decide_look",
    "design_from_json",
    "evaluate_look",
    "expected_trials",
    "fixed_design_seeds",
    "margins_from_options",
    "normal_boundaries",
    "per_seed_values",
    "run_adaptive",
    "run_fixed",
    "spent_alpha",
    "start_state",
    "state_from_json",
    "t_boundaries",
]
