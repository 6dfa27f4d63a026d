"""How a report computes its statistics: one validated `AnalysisOptions`, from the CLI or from Python.

The choices (tests, corrections, interval methods) and their labels live here, so that the
command line, the rows and the table's footer and signatures name them one way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from analysis.errors import InputError
from analysis.metrics import MetricSpec
from analysis.stats.resampling import DEFAULT_RESAMPLES

TESTS = ("auto", "crossed", "paired-bootstrap", "randomization", "mcnemar", "t-test", "wilcoxon")
CORRECTIONS = ("holm", "bonferroni")
CI_METHODS = ("bca", "percentile")
TEST_LABELS = {
    "crossed": "crossed seed x example test (seed and example variance)",
    "paired-bootstrap": "paired bootstrap",
    "randomization": "approximate randomisation",
    "mcnemar": "exact McNemar",
    "t-test": "paired t-test over seeds",
    "wilcoxon": "Wilcoxon signed-rank over seeds",
}
EXAMPLE_LEVEL_TESTS = ("randomization", "mcnemar")
"""Tests on (seed, example) pairs that, with several seeds, treat them as independent: they ignore seed variance."""
MIN_RESAMPLES = 100


@dataclass(frozen=True)
class AnalysisOptions:
    """The statistical settings of a report (the CLI's --resamples, --seed, --ci, --test, ...)."""

    n_resamples: int = DEFAULT_RESAMPLES
    seed: int = 0
    ci: str = "bca"
    confidence: float = 0.95
    test: str = "auto"
    correction: str = "holm"
    alpha: float = 0.05
    target_effect: float | None = None  # a difference to power for, in display units (points); None: none
    pooled: bool = False  # crossed test: seed x system variance pooled over a group's systems (analysis.stats.pooled)

    def validate(self) -> None:
        """Raise `InputError`, naming the option, for a value the report cannot use."""
        if self.test not in TESTS:
            raise InputError("--test", f"unknown test {self.test!r}; expected one of {', '.join(TESTS)}")
        if self.correction not in CORRECTIONS:
            raise InputError("--correction", f"unknown correction {self.correction!r}; expected holm or bonferroni")
        if self.ci not in CI_METHODS:
            raise InputError("--ci", f"unknown interval {self.ci!r}; expected bca or percentile")
        if self.n_resamples < MIN_RESAMPLES:
            raise InputError("--resamples", f"{self.n_resamples} resamples is too few; expected >= 100 (default 10000)")
        if self.target_effect is not None and not (math.isfinite(self.target_effect) and self.target_effect > 0):
            raise InputError(
                "--target-effect", f"expected a positive difference in points (e.g. 2), got {self.target_effect}"
            )
        if not 0 < self.alpha < 1:
            raise InputError("--alpha", f"expected a significance level in (0, 1), e.g. 0.05; got {self.alpha}")
        if not 0 < self.confidence < 1:
            raise InputError("--confidence", f"expected a confidence level in (0, 1), e.g. 0.95; got {self.confidence}")

    def check_metrics(self, specs: Sequence[MetricSpec]) -> None:
        """Raise `InputError` if the chosen test cannot run on a metric (McNemar needs 0/1 scores)."""
        if self.test == "mcnemar":
            not_binary = [spec.name for spec in specs if not spec.binary]
            if not_binary:
                raise InputError(
                    "--test",
                    f"mcnemar: expected 0/1 metrics (correct, consistent, label_valid), got {', '.join(not_binary)}",
                )

    def test_for(self, n_seeds: int) -> str:
        """The test behind the table's p-values for a comparison over `n_seeds` seed-matched runs.

        `auto`: the paired bootstrap with one seed; with several, the crossed seed x example test
        (`analysis.stats.crossed`), which accounts for training randomness and for the sampling of test examples.
        """
        if self.test == "auto":
            return "crossed" if n_seeds >= 2 else "paired-bootstrap"
        return self.test
