"""The losses of each objective, over one model that does every task through prompts.

Stage 1 is `explain`; Stage 2 is the variant's objective (r2d/variants.py):
- `label_only` (sft): L_pred
- `multitask` (dss): a L_pred + (1 - a) L_expl, rationale on "explain: x"
- `joint` (r2d and its ablations): a L_pred + (1 - a) L_expl, rationale on "given label: l, explain: x",
  l chosen per example by scheduled sampling (r2d/train/sampling.py) between the predict and explain passes.
Losses are per-example token means averaged over examples, so a global batch split over N workers
gives the same gradient as one worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from r2d.train.batches import Batch
from r2d.train.sampling import ScheduledSampler


def per_example_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Token-mean cross-entropy per example (targets use -100 for padding). [B, L, V], [B, L] -> [B]"""
    ce = nn.functional.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=-100, reduction="none")
    counts = (targets != -100).sum(-1).clamp(min=1)
    return ce.sum(-1) / counts


class TaskModel(nn.Module):
    """One forward for all of a step's tasks, so DDP sees a single forward per backward.

    `choose_explain` (joint objective) is called between the predict pass and the explain pass with
    the predict pass's encoder states, and returns the explain batch to use.
    """

    wraps_seq2seq = True  # r2d.model.decode.unwrap looks through it

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, predict=None, explain=None, choose_explain=None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if predict is not None:
            ids, mask, targets = predict
            res = self.model(input_ids=ids, attention_mask=mask, labels=targets)
            out["pred"] = per_example_ce(res.logits, targets)
            if choose_explain is not None:
                explain = choose_explain(res.encoder_last_hidden_state, ids, mask)
        if explain is not None:
            ids, mask, targets = explain
            res = self.model(input_ids=ids, attention_mask=mask, labels=targets)
            out["expl"] = per_example_ce(res.logits, targets)
        return out


@dataclass
class Step:
    """What one micro-batch's objective needs besides the batch: the step's a(t), p(t) and draws."""

    step: int
    micro: int
    alpha: float
    p: float
    draws: np.ndarray
    sampler: ScheduledSampler | None
    used_predicted: list[int] = field(default_factory=list)  # filled by the joint objective


def _explain(model: nn.Module, batch: Batch, s: Step) -> tuple[torch.Tensor, dict]:
    out = model(explain=batch.explain())
    return out["expl"].mean(), out


def _label_only(model: nn.Module, batch: Batch, s: Step) -> tuple[torch.Tensor, dict]:
    out = model(predict=batch.predict())
    return out["pred"].mean(), out


def _multitask(model: nn.Module, batch: Batch, s: Step) -> tuple[torch.Tensor, dict]:
    out = model(predict=batch.predict(), explain=batch.explain())
    return s.alpha * out["pred"].mean() + (1 - s.alpha) * out["expl"].mean(), out


def _joint(model: nn.Module, batch: Batch, s: Step) -> tuple[torch.Tensor, dict]:
    def choose_explain(encoder_states, ids, mask):
        label_idx, used = s.sampler.choose(model, encoder_states, ids, mask, batch.gold_labels(), s.draws,
                                           s.p, s.step, s.micro)
        s.used_predicted.extend(used)
        return batch.explain_given(label_idx)

    out = model(predict=batch.predict(), choose_explain=choose_explain)
    return s.alpha * out["pred"].mean() + (1 - s.alpha) * out["expl"].mean(), out


OBJECTIVES: dict[str, Callable[[nn.Module, Batch, Step], tuple[torch.Tensor, dict]]] = {
    "explain": _explain, "label_only": _label_only, "multitask": _multitask, "joint": _joint,
}
