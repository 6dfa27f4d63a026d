"""RNG states in resumable checkpoints (r2d/train/checkpoints.py): torch CPU, numpy, Python, and CUDA's.

This machine has no GPU. The CPU tests run as they would anywhere; the CUDA branches (a GPU run
saving its devices' states, restoring them onto as many devices or warning on a mismatch) are
exercised by monkeypatching `torch.cuda`, as each test's docstring says.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from r2d.train.checkpoints import STATE_FILE, TrainState, load_checkpoint, restore, save_checkpoint, save_weights

STATE = TrainState(2, 9, 0.5, 7, 1)


def tiny_t5() -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    return T5ForConditionalGeneration(T5Config(vocab_size=50, d_model=16, d_ff=32, d_kv=8, num_layers=1,
                                               num_decoder_layers=1, num_heads=2, decoder_start_token_id=0))


def _draws() -> tuple[list[float], list[float], list[float]]:
    """The next numbers of each generator a checkpoint restores (torch CPU, numpy, Python)."""
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def _save(tmp_path, seed: int = 5):
    """A checkpoint at tmp_path/ckpt taken with every generator seeded by `seed`; returns the draws that follow."""
    model = tiny_t5()
    save_weights(model, tmp_path / "best")
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    save_checkpoint(tmp_path / "ckpt", model, STATE, tmp_path / "best")
    return _draws()


def _load(tmp_path) -> dict:
    return load_checkpoint(tmp_path / "ckpt", tiny_t5())


def _scramble() -> None:
    torch.manual_seed(999)
    np.random.seed(999)
    random.seed(999)


def test_round_trip_without_cuda_restores_torch_numpy_and_python_rngs(tmp_path):
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        pytest.skip("this process has used CUDA: its checkpoints carry CUDA states (the tests below)")
    expected = _save(tmp_path)
    state = _load(tmp_path)
    assert "cuda_rng" not in state  # no CUDA used: no CUDA key, and no CUDA context created to ask
    _scramble()
    assert restore(state, tmp_path / "best_again") == STATE
    assert _draws() == expected


def test_a_checkpoint_from_before_the_new_keys_loads(tmp_path):
    """The format before numpy, Python and CUDA states: only `torch_rng`. It loads and restores torch's RNG."""
    expected_torch = _save(tmp_path)[0]
    path = tmp_path / "ckpt" / STATE_FILE
    old = torch.load(path, weights_only=False)
    for key in ("numpy_rng", "python_rng", "cuda_rng"):
        old.pop(key, None)
    torch.save(old, path)

    state = _load(tmp_path)
    _scramble()
    numpy_then, python_then = np.random.get_state()[1].copy(), random.getstate()
    assert restore(state, tmp_path / "best_again") == STATE
    assert torch.rand(3).tolist() == expected_torch
    assert (np.random.get_state()[1] == numpy_then).all() and random.getstate() == python_then  # left alone


def test_cuda_states_on_a_machine_without_cuda_warn_and_restore_the_rest(tmp_path, monkeypatch):
    """A GPU run's checkpoint resumed where CUDA is not available. `torch.cuda.is_available` is patched to
    False so that a GPU machine runs this test as a CPU-only one does (on this machine it is False anyway)."""
    expected = _save(tmp_path)
    state = _load(tmp_path)
    state["cuda_rng"] = [torch.zeros(16, dtype=torch.uint8)] * 2  # as a 2-GPU run saved them
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _scramble()
    with pytest.warns(RuntimeWarning, match=r"CUDA RNG states of 2 device\(s\) saved, CUDA is not available here: "
                                            r"not restored"):
        assert restore(state, tmp_path / "best_again") == STATE
    assert _draws() == expected  # everything else restored


def _fake_cuda(monkeypatch, devices: int) -> list:
    """Patches `torch.cuda` into a machine with `devices` initialised GPUs (needed to reach the CUDA
    branches on a machine without one); returns the list that records set_rng_state_all's calls."""
    restored: list = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: devices)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all",
                        lambda: [torch.full((16,), i, dtype=torch.uint8) for i in range(devices)])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    return restored


def test_cuda_states_are_saved_under_their_key_and_restored_onto_as_many_devices(tmp_path, monkeypatch):
    """`torch.cuda` patched to 2 GPUs: the saved states, and what restore hands back to CUDA."""
    restored = _fake_cuda(monkeypatch, devices=2)
    _save(tmp_path)
    state = _load(tmp_path)
    assert [t.tolist() for t in state["cuda_rng"]] == [[0] * 16, [1] * 16]
    restore(state, tmp_path / "best_again")
    assert len(restored) == 1 and [t.tolist() for t in restored[0]] == [[0] * 16, [1] * 16]


def test_cuda_states_of_another_device_count_warn_and_are_not_restored(tmp_path, monkeypatch):
    """`torch.cuda` patched to 2 GPUs when saving and 1 when resuming (e.g. a smaller GPU worker)."""
    _fake_cuda(monkeypatch, devices=2)
    expected = _save(tmp_path)
    restored = _fake_cuda(monkeypatch, devices=1)
    state = _load(tmp_path)
    _scramble()
    with pytest.warns(RuntimeWarning, match=r"CUDA RNG states of 2 device\(s\) saved, 1 CUDA device\(s\) visible"):
        restore(state, tmp_path / "best_again")
    assert restored == [] and _draws() == expected  # the CPU-side generators are restored all the same
