"""The metrics a report can show, each as per-example sufficient statistics + a finalize function.

Per-example metrics (a column of the predictions file, averaged) and corpus metrics (recomputed
from the label or rationale columns on every resample) go through the same statistics engine
(`analysis.stats.sufficient`, resampled by `analysis.stats.resampling`), so every test and interval
applies to every metric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.stats import sufficient
from r2d.schema import CORPUS_METRICS, PER_EXAMPLE_METRICS


@dataclass(frozen=True)
class MetricSpec:
    """How to compute, display and test one metric."""

    name: str  # as given on the command line and in the CSV
    label: str  # as shown in tables and plots
    scale: float  # display multiplier (fractions are shown as percentages)
    kind: str  # "mean" (a predictions column), "macro_f1" or "corpus_bleu"
    binary: bool = False  # 0/1 per example: McNemar applies
    column: str | None = None
    display_range: float = 100.0  # the metric's range in display units (0-100 % or 0-100 BLEU)

    @property
    def span(self) -> float:
        """The width of the metric's range in its raw units (1.0 for fractions, 100 for BLEU)."""
        return self.display_range / self.scale

    @property
    def finalize(self) -> Callable[[np.ndarray], np.ndarray]:
        """The metric from summed statistics: `finalize(sums[..., d]) -> scores[...]`."""
        return {
            "mean": sufficient.mean_from_sums,
            "macro_f1": sufficient.macro_f1_from_sums,
            "corpus_bleu": sufficient.bleu_from_sums,
        }[self.kind]

    def statistics(self, frame: pd.DataFrame, labels: list[str]) -> np.ndarray:
        """Sufficient statistics `[n, d]` of one run's (matched) predictions."""
        if self.kind == "mean":
            return sufficient.mean_stats(frame[self.column].to_numpy(dtype=np.float64), nan_policy="omit")
        if self.kind == "macro_f1":
            return sufficient.macro_f1_stats(frame["gold_label"].to_numpy(), frame["pred_label"].to_numpy(), labels)
        return sufficient.bleu_stats(frame["pred_rationale"].tolist(), frame["gold_rationale"].tolist())

    def available(self, frame: pd.DataFrame) -> bool:
        """Whether the run has this metric at all (an unconfigured judge leaves its column empty)."""
        if self.kind == "mean":
            return self.column in frame.columns and bool(frame[self.column].notna().any())
        if self.kind == "corpus_bleu":  # a run that wrote rationales has sentence BLEU (0 for empty ones)
            return bool(frame["bleu"].notna().any() or (frame["pred_rationale"] != "").any())
        return True


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("correct", "accuracy", 100.0, "mean", binary=True, column="correct"),
        MetricSpec("macro_f1", "macro-F1", 100.0, "macro_f1"),
        MetricSpec("corpus_bleu", "BLEU", 1.0, "corpus_bleu"),
        MetricSpec("bleu", "sentence BLEU", 1.0, "mean", column="bleu"),
        # the authors' BLEU (NLTK sentence BLEU, method4), on the paper's own 0-1 scale
        MetricSpec("bleu_paper", "BLEU (paper, 0-1)", 1.0, "mean", column="bleu_paper", display_range=1.0),
        MetricSpec("bertscore_f1", "BERTScore F1", 100.0, "mean", column="bertscore_f1"),
        MetricSpec("bertscore_p", "BERTScore P", 100.0, "mean", column="bertscore_p"),
        MetricSpec("bertscore_r", "BERTScore R", 100.0, "mean", column="bertscore_r"),
        MetricSpec("consistent", "consistency", 100.0, "mean", binary=True, column="consistent"),
        MetricSpec("judge", "judge", 100.0, "mean", column="judge"),
        MetricSpec("label_valid", "valid label", 100.0, "mean", binary=True, column="label_valid"),
    )
}
ALIASES = {"accuracy": "correct", "acc": "correct", "bertscore": "bertscore_f1", "consistency": "consistent"}
DEFAULT_METRICS = ("correct", "macro_f1", "corpus_bleu", "bleu_paper", "bertscore_f1", "consistent", "judge")

assert set(PER_EXAMPLE_METRICS) <= set(METRICS) and set(CORPUS_METRICS) <= set(METRICS)


def resolve_metric(name: str) -> MetricSpec | None:
    """The spec for a metric name or alias (None if unknown)."""
    return METRICS.get(ALIASES.get(name, name))
