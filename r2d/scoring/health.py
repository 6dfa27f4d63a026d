"""Health of one training, from its own logs and predictions (DESIGN section 5).

A sweep on any cluster will contain trainings that collapsed, diverged or were still learning when
their budget ran out; these flags say so, per run, in run.json, as MLflow tags and in the sweep's
table, so a table of means is never read without them.

- `collapsed`: the rationales are degenerate: for most examples (> `COLLAPSE_SHARE`) empty or equal
  to a label, or one string for most examples. Variants that write no rationale cannot collapse.
- `still_improving`: the best dev score came at the last evaluation: selection and patience never
  acted, and a longer budget would likely change the result.
- `diverged`: a non-finite loss, or a Stage 2 label loss (L_pred) that rose: the mean of its last
  tenth of steps (after the loss-weight warm-up) above the mean of its first tenth. L_pred, not the
  total: scheduled sampling legitimately raises L_expl as more rationales are conditioned on
  predicted labels. Fewer than `MIN_TREND_STEPS` steps cannot tell.
- `early_stopped`: patience ended Stage 2 before its budget (informational, not unhealthy).
- `failed`: the run ended FAILED or KILLED.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

COLLAPSE_SHARE = 0.5
MIN_TREND_STEPS = 20
FLAGS = ("collapsed", "still_improving", "diverged", "early_stopped", "failed")
UNHEALTHY = ("collapsed", "still_improving", "diverged", "failed")  # early stopping is healthy


def collapsed(rationales: Sequence[str], labels: Sequence[str]) -> bool:
    """Most rationales empty or a label, or one string for most examples."""
    if not rationales:
        return False
    norm = [r.strip().lower() for r in rationales]
    label_set = {label.strip().lower() for label in labels}
    degenerate = sum(1 for r in norm if not r or r in label_set) / len(norm)
    most_common = Counter(norm).most_common(1)[0][1] / len(norm)
    return degenerate > COLLAPSE_SHARE or most_common > COLLAPSE_SHARE


def loss_trend(losses: Sequence[float], skip: int = 0) -> tuple[float, float]:
    """(mean of the first tenth, mean of the last tenth) of a loss trace, after `skip` warm-up steps;
    NaN when the trace is too short to tell."""
    tail = list(losses[int(skip):])
    if len(tail) < MIN_TREND_STEPS:
        return math.nan, math.nan
    k = len(tail) // 10
    return sum(tail[:k]) / k, sum(tail[-k:]) / k


def flags(stage2: dict, rationales: Sequence[str] | None, labels: Sequence[str]) -> dict[str, bool]:
    """The flags of a finished run: `stage2` is metrics.json's Stage 2 block (best_step, steps,
    stopped_early, loss_trend), `rationales` the last evaluated split's, None if the variant writes none."""
    first, last = stage2.get("loss_trend", (math.nan, math.nan))
    return {
        "collapsed": rationales is not None and collapsed(rationales, labels),
        "still_improving": not stage2["stopped_early"] and stage2["best_step"] == stage2["steps"] - 1,
        "diverged": last > first,  # a non-finite loss fails the run instead (failed_flags)
        "early_stopped": bool(stage2["stopped_early"]),
        "failed": False,
    }


def failed_flags(diverged: bool) -> dict[str, bool]:
    """The flags of a run that ended FAILED or KILLED (a NaN loss also counts as diverged)."""
    return {**dict.fromkeys(FLAGS, False), "failed": True, "diverged": diverged}


def unhealthy(health: dict[str, bool]) -> list[str]:
    """The names of the flags that make a run unhealthy, in FLAGS order."""
    return [name for name in UNHEALTHY if health.get(name)]


# What to try, per unhealthy flag (the settings named are the config's).
ADVICE = {
    "collapsed": "the rationales are degenerate (empty, a label, or one string): try a higher stage2.lr, "
                 "a lower stage2.alpha, or more stage1.max_steps",
    "still_improving": "the best dev score came at the last evaluation: try more stage2.max_steps",
    "diverged": "the label loss rose (or was not finite): try a lower stage2.lr",
    "failed": "the run did not finish: see run.json's error",
}


def health_line(health: dict[str, bool]) -> str:
    """One line for the console at the end of a training: its flags and what to try."""
    bad = unhealthy(health)
    if not bad:
        stopped = " (stopped early by patience)" if health.get("early_stopped") else ""
        return f"health: healthy{stopped}"
    return "health: " + "; ".join(f"{name}: {ADVICE[name]}" for name in bad)
