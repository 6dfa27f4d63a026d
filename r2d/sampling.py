"""Task-level scheduled sampling: which label each example's rationale is conditioned on.

Per example, with probability p(t) (r2d/schedules.py) the model's own predicted label, else the
gold one. Predicted labels come from the predict pass's encoder states (no gradient): scored over
the closed label set (`score`) or by greedy generation as the authors did (`generate`; an output
outside the set keeps the gold label). `confidence_adaptive` also gates each draw by the model's
confidence (`ConfidenceGate`). The draws are a function of (seed, step) (r2d.batches.step_uniforms),
so a resumed or distributed run samples exactly as a single uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from r2d.config import Config
from r2d.decode import LabelScorer, generate_text
from r2d.schedules import ConfidenceGate


class ScheduledSampler:
    """Chooses, per example, the label index to condition the rationale on."""

    def __init__(self, cfg: Config, labels: list[str], scorer: LabelScorer, tokenizer: PreTrainedTokenizerBase,
                 rank: int):
        sch = cfg.stage2.schedule
        self.labels, self.scorer, self.tokenizer, self.rank = labels, scorer, tokenizer, rank
        self.decoding = cfg.stage2.label_decoding
        self.seed = cfg.seed
        self.gate = ConfidenceGate(sch.tau_reset_steps, sch.confidence_temperature)
        self.gated = sch.shape == "confidence_adaptive"

    def choose(self, model: torch.nn.Module, encoder_states: torch.Tensor, input_ids: torch.Tensor,
               mask: torch.Tensor, gold: list[int], draws: np.ndarray, p: float, step: int, micro: int,
               ) -> tuple[list[int], list[int]]:
        """(label index per example, 1 where the draw chose the predicted label)."""
        use = [u < p for u in draws]
        if not any(use):
            return gold, [0] * len(gold)
        if self.decoding == "score":
            best_idx, confidence = self.scorer(model, encoder_states, mask)
            pred = best_idx.tolist()
        else:  # the authors' way: greedy generation, outside-the-set kept as gold
            max_new = self.scorer.label_ids.shape[1] + 2
            texts = generate_text(model, input_ids, mask, self.tokenizer, max_new)
            pred = [self.labels.index(t.strip().lower()) if t.strip().lower() in self.labels else -1 for t in texts]
            confidence = self.scorer(model, encoder_states, mask)[1]
        if self.gated:
            accept = self.gate.accept_probability(confidence.tolist(), step)
            gen = np.random.default_rng([self.seed, 104729, step, micro, self.rank])
            use = [u and gen.random() < q for u, q in zip(use, accept)]
        label_idx = [pr if (u and pr >= 0) else g for u, pr, g in zip(use, pred, gold)]
        return label_idx, [int(u) for u in use]
