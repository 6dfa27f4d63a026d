"""Everything a run needs before its first step: data, model + tokenizer, every split tokenised once."""

from __future__ import annotations

import platform
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from r2d.config import REPRODUCIBLE_ATEN_PATH, REPRODUCIBLE_PINS, Config, ResourcesConfig, pins_missing
from r2d.data import Dataset, load_dataset
from r2d.model.modeling import load_model, tokenizer_corpus
from r2d.overrides import ConfigError
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


def check_pins(resources: ResourcesConfig) -> None:
    """In reproducible mode, stop (one line) unless this process computes on the pinned CPU code paths:
    the switches must be in its environment and ATen must have taken the pinned path (it reads its
    switch once, at the first vectorised kernel: set after that, it is too late)."""
    if not resources.reproducible:
        return
    if platform.machine().lower() not in ("x86_64", "amd64"):
        raise ConfigError(f"resources.reproducible: pins x86-64 code paths; this machine is {platform.machine()}",
                          ("resources.reproducible",), "x86-64 only")
    wrong = [f"{k}={v or '(unset)'}" for k, v in pins_missing().items()]
    path = torch.backends.cpu.get_cpu_capability()
    if path != REPRODUCIBLE_ATEN_PATH:
        wrong.append(f"ATen path {path} (a CPU without AVX2, or the switch set after torch started)")
    if wrong:
        pins = " ".join(f"{k}={v}" for k, v in REPRODUCIBLE_PINS.items())
        raise ConfigError(f"resources.reproducible: CPU code paths not pinned ({', '.join(wrong)}): `r2d train` "
                          f"sets them itself; another caller must start Python with {pins}",
                          ("resources.reproducible",), "CPU code paths not pinned")


def prepare(cfg: Config, device: torch.device) -> Prepared:
    """Check the CPU pins (reproducible mode), seed, load data, build model + tokenizer, tokenise every split."""
    check_pins(cfg.resources)
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
