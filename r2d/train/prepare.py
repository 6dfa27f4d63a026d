"""Everything a run needs before its first step: data, model + tokenizer, every split tokenised once."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from r2d.config import Config
from r2d.data import Dataset, load_dataset
from r2d.model.modeling import load_model, tokenizer_corpus
from r2d.train.batches import TokenizedSplit, tokenize_split


@dataclass
class Prepared:
    cfg: Config
    ds: Dataset
    model: nn.Module
    tokenizer: Any
    splits: dict[str, TokenizedSplit]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def prepare(cfg: Config, device: torch.device) -> Prepared:
    """Seed, load data, build model + tokenizer, tokenise every split."""
    seed_everything(cfg.seed)
    torch.set_num_threads(cfg.resources.torch_threads)  # resolved at config load, never None
    ds = load_dataset(cfg.data)
    # The initial weights are Stage 1's starting point when it trains (its seed), else Stage 2's.
    init_seed = cfg.stage_seed(1 if cfg.stage1.enabled else 2)
    model, tokenizer = load_model(cfg.model, init_seed, tokenizer_corpus(ds.train, ds.labels))
    model.to(device)
    d = cfg.data
    splits = {
        name: tokenize_split(ds.split(name), ds.labels, tokenizer, d.max_input_tokens, d.max_target_tokens)
        for name in ("train", "dev", "test")
    }
    return Prepared(cfg, ds, model, tokenizer, splits)
