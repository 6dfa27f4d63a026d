"""Pre-tokenised examples and a deterministic batch order.

Every prompt form is tokenised once, up front: the explain prompt conditioned on *each* label of
the closed set is stored per example, so scheduled sampling picks a row instead of re-tokenising
text at every step (the authors' structure re-tokenised, which is much of its cost).

The batch order is a pure function of (seed, step): step t takes positions t*B .. t*B+B-1 of an
endless sequence of seeded permutations. A resumed run therefore sees exactly the batches an
uninterrupted one would, and N workers split each global batch into equal contiguous shards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from r2d.data import Example
from r2d.model import prompts


@dataclass
class TokenizedSplit:
    ids: list[str]
    label_index: list[int]  # gold label's index in the label set
    predict: list[list[int]]  # "predict: x"
    explain: list[list[int]]  # "explain: x"
    explain_given: list[list[list[int]]]  # [label k]["given label: k, explain: x"] per example
    label_targets: list[list[int]]
    rationale_targets: list[list[int]]

    def __len__(self) -> int:
        return len(self.ids)


def tokenize_split(
    examples: list[Example], labels: list[str], tokenizer: PreTrainedTokenizerBase, max_input: int, max_target: int
) -> TokenizedSplit:
    def tok(texts: list[str], max_len: int) -> list[list[int]]:
        return tokenizer(texts, truncation=True, max_length=max_len)["input_ids"] if texts else []

    xs = [e.input for e in examples]
    return TokenizedSplit(
        ids=[e.id for e in examples],
        label_index=[labels.index(e.label) for e in examples],
        predict=tok([prompts.predict(x) for x in xs], max_input),
        explain=tok([prompts.explain(x) for x in xs], max_input),
        explain_given=[tok([prompts.explain_given(lab, x) for x in xs], max_input) for lab in labels],
        label_targets=tok([e.label for e in examples], max_target),
        rationale_targets=tok([e.rationale for e in examples], max_target),
    )


def pad(rows: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest row; returns (ids, attention mask)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    ids = ids.to(device)
    return ids, (ids != pad_id).long()


def pad_targets(rows: list[list[int]], pad_id: int, device: torch.device) -> torch.Tensor:
    ids, mask = pad(rows, pad_id, device)
    return ids.masked_fill(mask == 0, -100)


class BatchOrder:
    """Global batch indices for a step, from seeded permutations; shard by rank."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.n)}
        return self._perms[epoch]

    def global_batch(self, step: int) -> list[int]:
        start = step * self.batch_size
        return [int(self._perm(p // self.n)[p % self.n]) for p in range(start, start + self.batch_size)]

    def shard(self, step: int, rank: int, world_size: int) -> list[int]:
        batch = self.global_batch(step)
        per_rank = len(batch) // world_size
        return batch[rank * per_rank : (rank + 1) * per_rank]


def step_uniforms(seed: int, step: int, n: int) -> np.ndarray:
    """The scheduled-sampling draws of one global batch: a function of (seed, step) only."""
    return np.random.default_rng([seed, 7919, step]).random(n)


@dataclass
class Batch:
    """The tensors of one (micro-)batch, built from row indices of a TokenizedSplit."""

    split: TokenizedSplit
    rows: list[int]
    pad_id: int
    device: torch.device

    def inputs(self, field_rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return pad([field_rows[i] for i in self.rows], self.pad_id, self.device)

    def targets(self, field_rows: list[list[int]]) -> torch.Tensor:
        return pad_targets([field_rows[i] for i in self.rows], self.pad_id, self.device)

    def predict(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """("predict: x" ids, mask, label targets)."""
        return (*self.inputs(self.split.predict), self.targets(self.split.label_targets))

    def explain(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """("explain: x" ids, mask, rationale targets)."""
        return (*self.inputs(self.split.explain), self.targets(self.split.rationale_targets))

    def explain_given(self, label_index: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """("given label: l, explain: x" ids, mask, rationale targets), l per example by index."""
        given = [self.split.explain_given[k][i] for k, i in zip(label_index, self.rows, strict=True)]
        return (*pad(given, self.pad_id, self.device), self.targets(self.split.rationale_targets))

    def gold_labels(self) -> list[int]:
        return [self.split.label_index[i] for i in self.rows]
