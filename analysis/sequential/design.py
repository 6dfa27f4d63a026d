"""The design of an adaptive (group-sequential) study: looks, alpha, spending, margins, correction.

`Design` is validated on construction (one-line ValueError naming the field), has a short
`signature()` for reports, and a JSON round trip (`to_json` / `design_from_json`) so that a resumed
sweep keeps the same design and never restarts its error budget.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Literal

from analysis.sequential.boundaries import DEFAULT_N_SIM, SPENDING_NAMES, Spending, check_looks

Correction = Literal["bonferroni", "holm"]

DEFAULT_MARGINS: dict[str, float] = {"correct": 2.0, "macro_f1": 2.0, "corpus_bleu": 1.0}
"""Equivalence margins in points (the report's display units: percentage points, BLEU points) of the
metrics that decide by default: 2 points of accuracy or macro-F1, 1 BLEU point. A difference inside
+/- margin is read as "no practical difference". Override per metric (`--margin METRIC=POINTS`)."""

KNOWN_MARGINS: dict[str, float] = {
    **DEFAULT_MARGINS,
    "bleu": 1.0,
    "bleu_paper": 0.01,  # the paper's BLEU on its 0-1 scale
    "bertscore_f1": 1.0,
    "consistent": 2.0,
    "judge": 2.0,
}
"""Margins used when a metric is named without one (`margins_from_options`)."""


@dataclass(frozen=True)
class Design:
    """A group-sequential design over seeds, shared by every comparison of a study.

    `looks`: seeds per system at each planned look (strictly increasing, the first >= 2: the t
    statistic needs a variance). `margins`: metric -> equivalence margin in points; its keys are the
    metrics that decide (a system needs seeds while any of its comparisons on them is open).
    `correction` is across the comparisons of one metric (the report's family). `n_sim` and
    `calibration_seed` fix the Monte Carlo calibration of the t boundaries; `power` is the power the
    seeds-needed figure of an undecided comparison is planned for. `futility` > 0 stops a comparison
    at an interim look as undecided when neither answer is within reach by the last look
    (`decisions.futile`: conditional power under the current trend below it, and equivalence out of reach).
    """

    looks: tuple[int, ...]
    alpha: float = 0.05
    spending: Spending = "obf"
    margins: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MARGINS))
    correction: Correction = "bonferroni"
    n_sim: int = DEFAULT_N_SIM
    calibration_seed: int = 0
    power: float = 0.8
    futility: float = 0.0  # conditional-power threshold of the non-binding futility stop; 0: none

    def __post_init__(self) -> None:
        object.__setattr__(self, "looks", check_looks(self.looks, minimum=2))
        object.__setattr__(self, "margins", {str(key): float(value) for key, value in dict(self.margins).items()})
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.spending not in SPENDING_NAMES:
            raise ValueError(f"spending must be one of {sorted(SPENDING_NAMES)}, got {self.spending!r}")
        if self.correction not in ("bonferroni", "holm"):
            raise ValueError(f"correction must be 'bonferroni' or 'holm', got {self.correction!r}")
        if not self.margins:
            raise ValueError("margins: expected at least one METRIC=POINTS, got none")
        for metric, margin in self.margins.items():
            if not (math.isfinite(margin) and margin > 0):
                raise ValueError(f"margin for {metric} must be a positive number of points, got {margin}")
        if int(self.n_sim) != self.n_sim or self.n_sim < 10_000:
            raise ValueError(f"n_sim must be a whole number >= 10000, got {self.n_sim}")
        if not 0.0 < self.power < 1.0:
            raise ValueError(f"power must be in (0, 1), got {self.power}")
        if not 0.0 <= self.futility < 1.0:
            raise ValueError(f"futility must be in [0, 1), got {self.futility}")

    @property
    def max_seeds(self) -> int:
        """Seeds per system at the last look: the most a comparison can use."""
        return self.looks[-1]

    def signature(self) -> str:
        """One line naming the design, e.g. `looks 3,5,7 seeds | Lan-DeMets O'Brien-Fleming-type alpha 0.05 | ...`."""
        margins = ",".join(f"{metric}=+/-{margin:g}" for metric, margin in sorted(self.margins.items()))
        return (
            f"looks {','.join(map(str, self.looks))} seeds | {SPENDING_NAMES[self.spending]} spending, two-sided "
            f"alpha {self.alpha:g} | t boundaries by simulation ({self.n_sim} sweeps, seed {self.calibration_seed}) | "
            f"equivalence margins {margins} | {self.correction.capitalize()} across comparisons per metric"
            + (f" | non-binding futility below conditional power {self.futility:g}" if self.futility else "")
        )

    def to_dict(self) -> dict:
        """Plain JSON-able fields."""
        record = asdict(self)
        record["looks"] = list(self.looks)
        return record

    def to_json(self) -> str:
        """The design as JSON (`design_from_json` reads it back equal)."""
        return json.dumps(self.to_dict(), sort_keys=True)


def design_from_dict(record: dict) -> Design:
    """A Design from `Design.to_dict()` output; unknown or missing fields are a one-line ValueError."""
    if not isinstance(record, dict):
        raise ValueError(f"design: expected a JSON object, got {type(record).__name__}")
    known = set(Design.__dataclass_fields__)
    unknown = sorted(set(record) - known)
    if unknown:
        raise ValueError(f"design: unknown field(s) {unknown}; expected some of {sorted(known)}")
    if "looks" not in record:
        raise ValueError("design: the field 'looks' is missing")
    return Design(**{**record, "looks": tuple(record["looks"])})


def design_from_json(text: str) -> Design:
    """A Design from `Design.to_json()`."""
    try:
        record = json.loads(text)
    except ValueError as error:
        raise ValueError(f"design: not valid JSON ({error})") from None
    return design_from_dict(record)


def margins_from_options(options: list[str] | None, metrics: list[str] | None = None) -> dict[str, float]:
    """Margins from `METRIC=POINTS` strings over the defaults (or over `metrics` with KNOWN_MARGINS).

    A metric named in `metrics` with no known margin and none given is a one-line ValueError.
    """
    chosen = list(metrics) if metrics else list(DEFAULT_MARGINS)
    given: dict[str, float] = {}
    for option in options or []:
        metric, sep, points = option.partition("=")
        if not sep or not metric:
            raise ValueError(f"--margin: expected METRIC=POINTS, got {option!r}")
        try:
            given[metric] = float(points)
        except ValueError:
            raise ValueError(f"--margin {metric}: expected a number of points, got {points!r}") from None
    margins = {}
    for metric in dict.fromkeys(chosen + list(given)):
        if metric in given:
            margins[metric] = given[metric]
        elif metric in KNOWN_MARGINS:
            margins[metric] = KNOWN_MARGINS[metric]
        else:
            raise ValueError(f"--margin: metric {metric!r} has no default margin; give one as {metric}=POINTS")
        if not (math.isfinite(margins[metric]) and margins[metric] > 0):
            raise ValueError(f"--margin {metric}: must be a positive number of points, got {margins[metric]:g}")
    return margins
