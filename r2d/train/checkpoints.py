"""Weights and training state on this worker's disk: the best model so far, and resumable checkpoints.

A checkpoint directory holds `model/` (save_pretrained), `state.pt` (`TrainState` plus optimizer,
LR schedule, grad scaler, confidence gate and RNG states) and `best_model/` (the best weights so
far), so a resumed run continues exactly where an uninterrupted one would be.

RNG states: torch's CPU generator (`torch_rng`), numpy's and Python's global ones (`numpy_rng`,
`python_rng`), and, when the run used CUDA, every visible device's generator (`cuda_rng`: dropout on
a GPU draws from there, not from the CPU generator). Checkpoints written before a key existed load
as before: what they lack is left as the stage's seeding made it.
"""

from __future__ import annotations

import random
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn

from r2d.model.decode import unwrap

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
    payload = {**asdict(state), **{name: c.state_dict() for name, c in components.items()}, **rng_states(),
               "best_model": "best_model"}
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
    restore_rng_states(state)
    if state.get("best_model") is not None:
        shutil.rmtree(best_dir, ignore_errors=True)
        shutil.copytree(state["best_model"], best_dir)
    return TrainState(state["stage"], state["step"], state["best"], state["best_step"], state["bad_evals"])


def rng_states() -> dict[str, Any]:
    """This process's RNG states, under the keys `restore_rng_states` reads."""
    states: dict[str, Any] = {"torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
                              "python_rng": random.getstate()}
    # Only once CUDA is initialised: before that no CUDA generator has drawn anything, and asking
    # for its state would create a CUDA context on every visible GPU of a run that trains on the CPU.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda_rng"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(state: dict[str, Any]) -> None:
    """Set the RNGs a checkpoint saved; a key it lacks (an older checkpoint) is left alone."""
    torch.set_rng_state(state["torch_rng"])
    if "numpy_rng" in state:
        np.random.set_state(state["numpy_rng"])
    if "python_rng" in state:
        random.setstate(state["python_rng"])
    if state.get("cuda_rng") is not None:
        _restore_cuda_rng(state["cuda_rng"])


def _restore_cuda_rng(saved: list[torch.Tensor]) -> None:
    """One state per device, restored only onto as many visible devices; else a warning: the run goes on,
    but its GPU randomness (dropout) no longer follows the uninterrupted run's."""
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available != len(saved):
        here = f"{available} CUDA device(s) visible here" if available else "CUDA is not available here"
        warnings.warn(
            f"checkpoint: CUDA RNG states of {len(saved)} device(s) saved, {here}: not restored, so the "
            "resumed run's GPU randomness (dropout) differs from an uninterrupted run's",
            RuntimeWarning, stacklevel=3,
        )
        return
    torch.cuda.set_rng_state_all(saved)
