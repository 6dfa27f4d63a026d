"""Scheduled sampling when labels are generated (`stage2.label_decoding: generate`), on the tiny-t5 preset.

A tiny T5 is taught, in a few hundred optimizer steps on three prompts (no trainer, no data loader),
to generate: for prompt 0, "see doctor today" by greedy decoding while the closed-set scorer prefers
"home care" (the greedy path's first token is likelier, the whole shorter label more probable); for
prompt 1, "emergency department"; for prompt 2, "call routine", which is not a label. Each test first
checks that the model does so, then what the sampler makes of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from r2d.config import Config, load_config
from r2d.data import load_dataset
from r2d.model import prompts
from r2d.model.decode import LabelScorer, generate_text
from r2d.model.modeling import load_model, tokenizer_corpus
from r2d.train.sampling import ScheduledSampler

from .conftest import tiny_overrides

GENERATED = ["see doctor today", "emergency department", "call routine"]
# (prompt, target) pairs: prompt 0's first token "see" 5/9 vs "home" 4/9, then "doctor" 3/5 vs "routine" 2/5
TEACH = ([(0, "see doctor today")] * 3 + [(0, "see routine visit")] * 2 + [(0, "home care")] * 4
         + [(1, "emergency department")] * 3 + [(2, "call routine")] * 3)


@dataclass
class Taught:
    cfg: Config
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    labels: list[str]
    ids: torch.Tensor
    mask: torch.Tensor

    def sampler(self, shape: str, decoding: str = "generate") -> ScheduledSampler:
        cfg = self.cfg.model_copy(deep=True)
        cfg.stage2.label_decoding, cfg.stage2.schedule.shape = decoding, shape
        scorer = LabelScorer(self.tokenizer, self.labels, torch.device("cpu"))
        return ScheduledSampler(cfg, self.labels, scorer, self.tokenizer, rank=0)

    def choose(self, sampler: ScheduledSampler, gold: list[int]) -> tuple[list[int], list[int]]:
        """Every draw picks the predicted label (p = 1), at a step past any gate reset."""
        states = self.model.encoder(input_ids=self.ids, attention_mask=self.mask).last_hidden_state
        return sampler.choose(self.model, states, self.ids, self.mask, gold, np.zeros(len(gold)), 1.0, 10, 0)


@pytest.fixture(scope="module")
def taught(cache_dir) -> Taught:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a loaded 2-core machine: two spinning threads make these steps 10x slower
    try:
        return _teach(cache_dir)
    finally:
        torch.set_num_threads(threads)


def _teach(cache_dir) -> Taught:
    cfg = load_config(None, tiny_overrides(cache_dir))
    ds = load_dataset(cfg.data)
    model, tokenizer = load_model(cfg.model, seed=0, tokenizer_texts=tokenizer_corpus(ds.train, ds.labels))
    inputs = [prompts.predict(example.input) for example in ds.train[:3]]

    def encode(texts: list[str]):
        return tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")

    enc = encode([inputs[i] for i, _ in TEACH])
    targets = encode([target for _, target in TEACH]).input_ids
    targets = targets.masked_fill(targets == tokenizer.pad_token_id, -100)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask, labels=targets).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    batch = encode(inputs)
    taught = Taught(cfg, model, tokenizer, ds.labels, batch.input_ids, batch.attention_mask)
    max_new = LabelScorer(tokenizer, ds.labels, torch.device("cpu")).label_ids.shape[1] + 2
    assert generate_text(model, taught.ids, taught.mask, tokenizer, max_new) == GENERATED, "the teaching failed"
    assert ds.labels.index("call ambulance") == 4 and "call routine" not in ds.labels
    return taught


def _sequence_confidence(taught: Taught) -> list[float]:
    """exp(mean token log-prob) of each greedy output, by one teacher-forced pass over the generated ids
    (up to and including the first eos): computed apart from the code under test."""
    max_new = LabelScorer(taught.tokenizer, taught.labels, torch.device("cpu")).label_ids.shape[1] + 2
    with torch.no_grad():
        sequences = taught.model.generate(input_ids=taught.ids, attention_mask=taught.mask, max_new_tokens=max_new,
                                          do_sample=False, num_beams=1)
        logits = taught.model(input_ids=taught.ids, attention_mask=taught.mask,
                              decoder_input_ids=sequences[:, :-1]).logits
    confidences = []
    for row, tokens in zip(torch.log_softmax(logits.float(), -1), sequences[:, 1:]):
        eos = (tokens == taught.tokenizer.eos_token_id).nonzero()
        end = int(eos[0]) + 1 if len(eos) else len(tokens)
        confidences.append(float(row[torch.arange(end), tokens[:end]].mean().exp()))
    return confidences


def _spy_on_gate(sampler: ScheduledSampler, monkeypatch) -> list[list[float]]:
    """The confidences the sampler hands its gate, one list per call (the gate still decides)."""
    seen: list[list[float]] = []
    accept = sampler.gate.accept_probability
    monkeypatch.setattr(sampler.gate, "accept_probability", lambda c, step: seen.append(list(c)) or accept(c, step))
    return seen


def test_generated_label_outside_the_set_conditions_on_gold_and_is_not_used(taught):
    labels, used = taught.choose(taught.sampler("linear"), gold=[4, 4, 4])
    assert labels == [2, 3, 4]  # the two generated labels; the gold label where "call routine" came out
    assert used == [1, 1, 0]  # ... which is not counted as a used predicted label


def test_confidence_gate_gets_the_generated_sequence_confidence(taught, monkeypatch):
    sampler = taught.sampler("confidence_adaptive")
    seen = _spy_on_gate(sampler, monkeypatch)
    labels, used = taught.choose(sampler, gold=[4, 4, 4])

    expected = _sequence_confidence(taught)
    assert seen == [pytest.approx(expected[:2], abs=1e-5)]  # the labels generated; not "call routine"
    assert sampler.gate.count == 2 and labels[2] == 4 and used[2] == 0
    # the scorer would have said "home care" for prompt 0, with another confidence: the test tells them apart
    states = taught.model.encoder(input_ids=taught.ids, attention_mask=taught.mask).last_hidden_state
    best, scored = sampler.scorer(taught.model, states, taught.mask)
    assert taught.labels[int(best[0])] == "home care" and abs(float(scored[0]) - expected[0]) > 0.05


def test_score_mode_gates_on_the_scored_labels(taught, monkeypatch):
    """The control: with `score`, every prediction is a label and the gate sees the scorer's confidences."""
    sampler = taught.sampler("confidence_adaptive", decoding="score")
    seen = _spy_on_gate(sampler, monkeypatch)
    labels, used = taught.choose(sampler, gold=[4, 4, 4])
    states = taught.model.encoder(input_ids=taught.ids, attention_mask=taught.mask).last_hidden_state
    best, scored = sampler.scorer(taught.model, states, taught.mask)
    assert seen == [pytest.approx(scored.tolist(), abs=1e-6)]
    assert [label for label, u in zip(labels, used) if u] == [i for i, u in zip(best.tolist(), used) if u]
