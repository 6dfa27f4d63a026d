"""Weights and training state on this worker's disk: the best model so far, and resumable checkpoints.

A checkpoint directory holds `model/` (save_pretrained), `state.pt` (`TrainState` plus optimizer,
LR schedule, grad scaler, confidence gate and RNG states) and `best_model/` (the best weights so
far), so a resumed run continues exactly where an uninterrupted one would be.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from r2d.decode import unwrap

STATE_FILE = "state.pt"


@dataclass
class TrainState:
    """Where a stage's selection stands: the scalars a checkpoint must restore."""

    stage: int
    step: int  # the last step run
    best: float  # best selection score so far (Stage 1: dev loss, lower is better; Stage 2: dev macro-F1)
    best_step: int
    bad_evals: int  # evaluations without improvement, counted once patience applies


def save_weights(model: nn.Module, directory: Path) -> None:
    """Weights only, on this worker's disk. (transformers' save_pretrained writes on rank 0 only
    once torch.distributed is up, so it cannot keep a per-worker copy.)"""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    save_model(unwrap(model), str(directory / "model.safetensors"))


def load_weights(model: nn.Module, directory: Path) -> None:
    """Load weights saved by save_weights or save_pretrained (tied embeddings are stored once)."""
    missing, unexpected = load_model(unwrap(model), str(Path(directory) / "model.safetensors"), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"{directory}: weights do not fit the model ({missing[:3]} {unexpected[:3]})")


def save_checkpoint(path: Path, model: nn.Module, state: TrainState, best_dir: Path, **components: Any) -> None:
    """model/, state.pt (the TrainState, each component's state_dict, RNG) and best_model/."""
    path.mkdir(parents=True, exist_ok=True)
    unwrap(model).save_pretrained(str(path / "model"))
    payload = {**asdict(state), **{name: c.state_dict() for name, c in components.items()},
               "torch_rng": torch.get_rng_state(), "best_model": "best_model"}
    torch.save(payload, path / STATE_FILE)
    shutil.copytree(best_dir, path / "best_model")


def load_checkpoint(path: Path, model: nn.Module) -> dict[str, Any] | None:
    """The saved state of a checkpoint directory (weights loaded into `model`), or None if it has none."""
    if not (Path(path) / STATE_FILE).exists():
        return None
    state = torch.load(Path(path) / STATE_FILE, weights_only=False)
    state["best_model"] = str(Path(path) / "best_model")
    load_weights(model, Path(path) / "model")
    return state


def restore(state: dict[str, Any], best_dir: Path, **components: Any) -> TrainState:
    """Load each component's state_dict and the RNG, copy the best weights; returns the TrainState."""
    for name, component in components.items():
        component.load_state_dict(state[name])
    torch.set_rng_state(state["torch_rng"])
    if state.get("best_model") is not None:
        shutil.rmtree(best_dir, ignore_errors=True)
        shutil.copytree(state["best_model"], best_dir)
    return TrainState(state["stage"], state["step"], state["best"], state["best_step"], state["bad_evals"])
