"""Task-level scheduled sampling: which label each example's rationale is conditioned on.

Per example, with probability p(t) (r2d/train/schedules.py) the model's own predicted label, else the
gold one. Predicted labels come from the predict pass (no gradient): scored over the closed label
set from its encoder states (`score`), or by greedy generation as the authors did (`generate`).
`confidence_adaptive` also gates each draw by the model's confidence in its predicted label
(`ConfidenceGate`). The draws are a function of (seed, step) (r2d.train.batches.step_uniforms), so a
resumed or distributed run samples exactly as a single uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from r2d.config import Config
from r2d.model.decode import LabelScorer, generate_with_confidence
from r2d.train.schedules import ConfidenceGate


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
        """(label index per example, 1 where the rationale is conditioned on the predicted label).

        With `generate`, an output outside the label set is no label to condition on: that example's
        rationale is conditioned on its gold label, and it counts as not using a predicted label (0),
        whatever its draw; it is left out of the confidence gate too (its running mean tau is a mean of
        confidences in labels). The gate's confidence is that of the label generated: exp of the mean
        token log-probability of the generated sequence (`generate_with_confidence`).
        """
        use = [u < p for u in draws]
        if not any(use):
            return gold, [0] * len(gold)
        pred, confidence = self._predict(model, encoder_states, input_ids, mask)
        valid = [index >= 0 for index in pred]
        use = [u and ok for u, ok in zip(use, valid)]
        if self.gated:
            accept = self._accept_probability(confidence, valid, step)
            gen = np.random.default_rng([self.seed, 104729, step, micro, self.rank])
            use = [u and gen.random() < q for u, q in zip(use, accept)]
        label_idx = [pr if u else g for u, pr, g in zip(use, pred, gold)]
        return label_idx, [int(u) for u in use]

    def _predict(self, model: torch.nn.Module, encoder_states: torch.Tensor, input_ids: torch.Tensor,
                 mask: torch.Tensor) -> tuple[list[int], list[float]]:
        """(predicted label index per example, -1 outside the label set; the confidence in each prediction)."""
        if self.decoding == "score":
            best_idx, confidence = self.scorer(model, encoder_states, mask)
            return best_idx.tolist(), confidence.tolist()
        # the authors' way: greedy generation; the confidence is the generated sequence's own
        max_new = self.scorer.label_ids.shape[1] + 2
        texts, confidence = generate_with_confidence(model, input_ids, mask, self.tokenizer, max_new)
        labels = [text.strip().lower() for text in texts]
        return [self.labels.index(t) if t in self.labels else -1 for t in labels], confidence.tolist()

    def _accept_probability(self, confidence: list[float], valid: list[bool], step: int) -> list[float]:
        """The gate's acceptance probability per example; 0 for an output outside the label set, which
        is neither used nor fed to the gate's running mean."""
        accepted = iter(self.gate.accept_probability([c for c, ok in zip(confidence, valid) if ok], step))
        return [next(accepted) if ok else 0.0 for ok in valid]
