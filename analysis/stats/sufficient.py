"""Metrics as sums of per-example sufficient statistics: `stats[n, d]` and `finalize(sums[..., d]) -> score[...]`.

Every metric here is a function of *sums* of per-example statistics: accuracy is sum(correct) /
sum(1), macro-F1 a function of per-class true-positive, gold and predicted counts, corpus BLEU a
function of summed n-gram matches, totals and lengths. So a run's data for a metric is an array
`stats[n, d]` plus a `finalize` function, and any resample of the examples is scored as
`finalize(counts @ stats)` (see `analysis.stats.resampling`). Functions come in pairs:

| metric                          | statistics `[n, d]`                  | finalize            |
|---------------------------------|--------------------------------------|---------------------|
| mean of per-example scores      | `mean_stats`: (score, counted)       | `mean_from_sums`    |
| macro-F1                        | `macro_f1_stats`: (tp, gold, pred)xK | `macro_f1_from_sums`|
| corpus BLEU                     | `bleu_stats`: sacreBLEU's statistics | `bleu_from_sums`    |
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from sacrebleu.metrics import BLEU

Finalize = Callable[[np.ndarray], np.ndarray]
"""`finalize(sums[..., d]) -> scores[...]`: a metric from summed sufficient statistics, over any leading axes."""


def mean_stats(scores: np.ndarray, *, nan_policy: Literal["raise", "omit"] = "raise") -> np.ndarray:
    """Per-example scores `[..., n]` -> sufficient statistics `[..., n, 2]` = (score, counted).

    Carrying the count makes the mean a ratio of sums, so leaving NaN scores out (`nan_policy="omit"`,
    e.g. examples the LLM judge did not score) keeps every other example paired by position.
    """
    scores = np.asarray(scores, dtype=np.float64)
    counted = ~np.isnan(scores)
    if nan_policy == "raise" and not counted.all():
        raise ValueError(
            f"{int((~counted).sum())} of {scores.size} scores are NaN; pass nan_policy='omit' to leave "
            "them out of the mean (the examples stay paired)"
        )
    if nan_policy not in ("raise", "omit"):
        raise ValueError(f"nan_policy must be 'raise' or 'omit', got {nan_policy!r}")
    return np.stack([np.where(counted, scores, 0.0), counted.astype(np.float64)], axis=-1)


def mean_from_sums(sums: np.ndarray) -> np.ndarray:
    """finalize() of `mean_stats`: sum of scores / number of scored examples."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums[..., 0] / sums[..., 1]


def macro_f1_classes(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] = ()) -> list[str]:
    """The classes macro-F1 is taken over: `labels`, then every other gold or predicted value, sorted.

    scikit-learn's `f1_score(average="macro")` with its default labels averages over the sorted union of
    gold and predicted values, so an output outside the label set is a class of its own (never gold:
    F1 0). Classes absent from both gold and predictions drop out in `macro_f1_from_sums`.
    """
    known = list(dict.fromkeys(str(label) for label in labels))
    extra = sorted({str(value) for value in (*gold, *pred)} - set(known))
    return known + extra


def macro_f1_stats(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Per-example statistics `[n, 3K]` for macro-F1: one-hot (true positive, gold, predicted) per class.

    The K classes are `macro_f1_classes(gold, pred, labels)`: `labels` plus any other value seen, so a
    prediction outside the label set counts as an error for its gold class and as a prediction of its
    own class (F1 0), as in scikit-learn. Pass the study's classes as `labels` so every run has the same K.
    """
    gold_arr = np.asarray(gold, dtype=object)
    pred_arr = np.asarray(pred, dtype=object)
    if gold_arr.shape != pred_arr.shape or gold_arr.ndim != 1:
        raise ValueError(f"gold and pred must be 1-D of one length: {gold_arr.shape} vs {pred_arr.shape}")
    classes = macro_f1_classes(gold_arr.tolist(), pred_arr.tolist(), labels)
    gold_onehot = np.stack([gold_arr == label for label in classes], axis=-1).astype(np.float64)
    pred_onehot = np.stack([pred_arr == label for label in classes], axis=-1).astype(np.float64)
    return np.concatenate([gold_onehot * pred_onehot, gold_onehot, pred_onehot], axis=-1)


def macro_f1_from_sums(sums: np.ndarray) -> np.ndarray:
    """finalize() of `macro_f1_stats`: mean F1 over the classes present (in gold or predictions).

    This is scikit-learn's `f1_score(average="macro")` with its default labels (the union of gold and
    predicted values), the definition the paper's authors used and `r2d.scoring.metrics.LabelMetrics` uses: a
    class never predicted nor gold is not averaged (also within a resample), a class predicted but
    never gold scores F1 0.
    """
    n_classes = sums.shape[-1] // 3
    true_pos = sums[..., :n_classes]
    gold = sums[..., n_classes : 2 * n_classes]
    pred = sums[..., 2 * n_classes :]
    present = (gold + pred) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(present, 2.0 * true_pos / np.where(present, gold + pred, 1.0), 0.0)
        return f1.sum(axis=-1) / present.sum(axis=-1)


def bleu_stats(hypotheses: Sequence[str], references: Sequence[str], **bleu_options: object) -> np.ndarray:
    """Per-sentence sacreBLEU sufficient statistics `[n, 2 + 2 * order]`: lengths, n-gram matches, totals.

    The same statistics sacreBLEU's own significance tests resample, so corpus BLEU of any
    resample is `bleu_from_sums(counts @ stats)` and agrees with `BLEU().corpus_score` on it.
    """
    bleu = BLEU(**bleu_options)
    hyps = ["" if h is None else str(h) for h in hypotheses]
    refs = ["" if r is None else str(r) for r in references]
    return np.asarray(bleu._extract_corpus_statistics(hyps, [refs]), dtype=np.float64)


def bleu_from_sums(
    sums: np.ndarray,
    *,
    smooth_method: Literal["exp", "none", "floor"] = "exp",
    smooth_value: float | None = None,
    effective_order: bool = False,
) -> np.ndarray:
    """finalize() of `bleu_stats`: sacreBLEU's `compute_bleu`, vectorised over leading axes (0-100).

    Defaults are sacreBLEU's corpus defaults (exp smoothing, no effective order).
    """
    sums = np.asarray(sums, dtype=np.float64)
    order = (sums.shape[-1] - 2) // 2
    sys_len, ref_len = sums[..., 0], sums[..., 1]
    correct, total = sums[..., 2 : 2 + order], sums[..., 2 + order :]
    if smooth_value is None:
        smooth_value = 0.1 if smooth_method == "floor" else 0.0
    floor_log = -9999999999.0  # sacreBLEU's my_log(0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        safe_sys_len = np.where(sys_len > 0, sys_len, 1.0)
        short = np.where(sys_len > 0, np.exp(1.0 - ref_len / safe_sys_len), 0.0)
        brevity = np.where(sys_len >= ref_len, 1.0, short)
        log_precisions = np.full(correct.shape, floor_log)
        stopped = np.zeros(sys_len.shape, dtype=bool)  # an order with no n-grams ends sacreBLEU's loop
        smooth_mteval = np.ones(sys_len.shape)
        effective = np.full(sys_len.shape, float(order))
        for k in range(order):
            stopped = stopped | (total[..., k] == 0)
            live = ~stopped
            if effective_order:
                effective = np.where(live, k + 1.0, effective)
            safe_total = np.where(live, total[..., k], 1.0)
            zero = live & (correct[..., k] == 0)
            precision = np.where(live & ~zero, 100.0 * correct[..., k] / safe_total, 0.0)
            if smooth_method == "exp":
                smooth_mteval = np.where(zero, smooth_mteval * 2.0, smooth_mteval)
                precision = np.where(zero, 100.0 / (smooth_mteval * safe_total), precision)
            elif smooth_method == "floor":
                precision = np.where(zero, 100.0 * smooth_value / safe_total, precision)
            positive = precision > 0
            log_precisions[..., k] = np.where(positive, np.log(np.where(positive, precision, 1.0)), floor_log)
        use = np.arange(order) < effective[..., None]
        score = brevity * np.exp((log_precisions * use).sum(axis=-1) / effective)
    return np.where(correct.sum(axis=-1) == 0, 0.0, score)


def per_run_scores(stats: np.ndarray, finalize: Finalize) -> np.ndarray:
    """Each run's score `[..., R]` from statistics `[..., R, n, d]`: the spread across seeds."""
    return finalize(np.asarray(stats).sum(axis=-2))
