"""Label decoding (score | generate) and rationale generation.

`score` runs the encoder once and scores every label of the closed set by its sequence
log-probability in one batched decoder pass: cheaper than generation and never outside the set.
`generate` is greedy decoding as the authors did; an output outside the label set is kept
verbatim and flagged (`valid=False`), never mapped to a label.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from r2d.data import normalise_label


def unwrap(model: torch.nn.Module) -> PreTrainedModel:
    """The HF model under DDP and TaskModel wrappers (generate and the encoder live there)."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif getattr(model, "wraps_seq2seq", False):
            model = model.model
        else:
            return model  # type: ignore[return-value]


def encode(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int, device: torch.device) -> dict:
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {k: v.to(device) for k, v in enc.items()}


@dataclass
class LabelPredictions:
    labels: list[str]  # predicted label, verbatim if outside the set
    valid: list[bool]  # in the label set?
    confidence: list[float]  # exp(mean token log-prob) of the predicted label (score mode; NaN for generate)


class LabelScorer:
    """Scores a closed label set given encoder states: one decoder pass over (batch x labels)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, labels: list[str], device: torch.device):
        self.labels = labels
        ids = encode(tokenizer, labels, 32, device)["input_ids"]  # [K, Lk], eos-terminated
        self.label_ids = ids
        self.label_mask = ids != tokenizer.pad_token_id

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module, encoder_states: torch.Tensor, attention_mask: torch.Tensor):
        model = unwrap(model)
        batch, num_labels = encoder_states.shape[0], len(self.labels)
        states = encoder_states.detach().repeat_interleave(num_labels, dim=0)  # [B*K, L, d]
        mask = attention_mask.repeat_interleave(num_labels, dim=0)
        targets = self.label_ids.repeat(batch, 1)  # [B*K, Lk]
        token_mask = self.label_mask.repeat(batch, 1)
        decoder_targets = targets.masked_fill(~token_mask, -100)
        out = model(encoder_outputs=(states,), attention_mask=mask, labels=decoder_targets)
        logp = torch.log_softmax(out.logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        logp = (logp * token_mask).view(batch, num_labels, -1)
        seq_logp = logp.sum(-1)  # [B, K] sequence log-probability
        best = seq_logp.argmax(-1)
        lengths = self.label_mask.sum(-1).to(logp.dtype)  # [K]
        mean_logp = seq_logp.gather(1, best.unsqueeze(1)).squeeze(1) / lengths[best]
        return best, mean_logp.exp()

    def predict(self, model, input_ids, attention_mask) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            states = unwrap(model).encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self(model, states, attention_mask)


@torch.no_grad()
def generate_text(model, input_ids, attention_mask, tokenizer, max_new_tokens: int) -> list[str]:
    out = unwrap(model).generate(
        input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1
    )
    return tokenizer.batch_decode(out, skip_special_tokens=True)


@torch.no_grad()
def generate_with_confidence(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    tokenizer: PreTrainedTokenizerBase,
    max_new_tokens: int,
) -> tuple[list[str], torch.Tensor]:
    """Greedy generation as `generate_text`, and each output's confidence: exp of the mean token
    log-probability of the tokens it generated, up to and including its first eos (the scorer counts a
    label's eos too). The log-probabilities are those of the generation's own decoder passes (raw logits,
    before any logits processor), so they belong to exactly the tokens generated."""
    out = unwrap(model).generate(
        input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens, do_sample=False,
        num_beams=1, output_logits=True, return_dict_in_generate=True,
    )
    tokens = out.sequences[:, -len(out.logits):]  # the generated tokens, after the decoder start token
    logp = torch.stack(out.logits, 1).float().log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    eos = tokens == tokenizer.eos_token_id
    counted = (eos.cumsum(-1) - eos.long()) == 0  # a finished sequence is padded after its eos: not its tokens
    mean_logp = (logp * counted).sum(-1) / counted.sum(-1).clamp(min=1)
    return tokenizer.batch_decode(out.sequences, skip_special_tokens=True), mean_logp.exp()


def predict_labels(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    scorer: LabelScorer,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    mode: str,
) -> LabelPredictions:
    """Predicted labels for a batch of encoded predict prompts, by `score` or greedy `generate`."""
    if mode == "score":
        best, conf = scorer.predict(model, input_ids, attention_mask)
        return LabelPredictions([scorer.labels[i] for i in best.tolist()], [True] * len(best), conf.tolist())
    max_new = int(scorer.label_ids.shape[1]) + 2
    texts = [normalise_label(t) for t in generate_text(model, input_ids, attention_mask, tokenizer, max_new)]
    valid = [t in scorer.labels for t in texts]
    return LabelPredictions(texts, valid, [float("nan")] * len(texts))  # generation gives no confidence here
