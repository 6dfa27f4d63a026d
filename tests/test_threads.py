"""resources.torch_threads is configuration: resolved once at load, applied in the training, recorded."""

from __future__ import annotations

import json

import torch
import yaml

from r2d import runner
from r2d.config import load_config

from .conftest import tiny_overrides


def test_unset_threads_resolve_from_the_config_not_the_machine():
    def threads(**overrides) -> int:
        return load_config(None, [f"{k}={v}" for k, v in overrides.items()]).resources.torch_threads

    assert threads(**{"resources.cpus_per_worker": 2.0}) == 2
    assert threads(**{"resources.cpus_per_worker": 0.5}) == 1
    assert threads(**{"resources.cpus_per_worker": 4.0, "resources.torch_threads": 3}) == 3


def test_training_runs_with_and_records_the_configured_threads(cache_dir, tmp_path, monkeypatch):
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2  # a count the process does not already have
    seen: list[int] = []
    real_step = torch.optim.AdamW.step

    def counting_step(self, *args, **kwargs):  # the thread count while optimiser steps run
        seen.append(torch.get_num_threads())
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", counting_step)
    cfg = load_config(None, tiny_overrides(cache_dir, **{"resources.torch_threads": wanted}))
    try:
        runner.train(cfg, tmp_path / "run")
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {wanted}
    assert json.loads((tmp_path / "run/run.json").read_text())["torch_threads"] == wanted
    assert yaml.safe_load((tmp_path / "run/config.yaml").read_text())["resources"]["torch_threads"] == wanted
