"""resources.torch_threads is configuration: resolved once at load, applied in the training, recorded."""

from __future__ import annotations

import importlib.metadata
import json
import platform

import torch
import yaml

from r2d.config import load_config
from r2d.run import runner

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
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # set ISA switches are recorded
    cfg = load_config(None, tiny_overrides(cache_dir, **{"resources.torch_threads": wanted}))
    try:
        runner.train(cfg, tmp_path / "run")
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {wanted}
    assert json.loads((tmp_path / "run/run.json").read_text())["torch_threads"] == wanted
    env = json.loads((tmp_path / "run/run.json").read_text())["environment"]
    assert env["torch"] == importlib.metadata.version("torch") and env["python"] == platform.python_version()
    assert {"transformers", "ray", "mlflow", "optuna", "sacrebleu", "bert-score", "git_commit", "cpu_model"} <= set(env)
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2" and "MKL_CBWR" not in env
    assert yaml.safe_load((tmp_path / "run/config.yaml").read_text())["resources"]["torch_threads"] == wanted



def test_mlflow_tags_name_the_versions(cache_dir):
    from r2d.train.record import run_tags  # the tags runner.train gives a training's MLflow run

    tags = run_tags(load_config(None, tiny_overrides(cache_dir)))
    assert tags["r2d.env.torch"] == importlib.metadata.version("torch")
    assert {f"r2d.env.{n}" for n in ("python", "transformers", "ray", "mlflow", "optuna", "sacrebleu",
                                     "bert-score", "cpu_model")} <= set(tags)
