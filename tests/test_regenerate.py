"""`r2d regenerate` re-trains a recorded run and compares its predictions byte for byte."""

from __future__ import annotations

import json

from mlflow import MlflowClient

from r2d.cli import main
from r2d.config import load_config
from r2d.run import runner
from r2d.run.regenerate import pick_trial, setting_differences

from .conftest import tiny_overrides


def test_regenerate_a_recorded_run_is_identical(cache_dir, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = load_config(None, tiny_overrides(cache_dir, **{"tracking.enabled": "true", "tracking.tracking_uri": uri,
                                                        "seed": 4}))
    runner.train(cfg, tmp_path / "run")
    run_id = json.loads((tmp_path / "run/run.json").read_text())["mlflow_run_id"]
    client = MlflowClient(uri)  # file the training under a sweep parent, as a sweep does
    parent = client.create_run(client.get_run(run_id).info.experiment_id, tags={"r2d.kind": "sweep"}).info.run_id
    client.set_tag(run_id, "mlflow.parentRunId", parent)
    capsys.readouterr()
    code = main(["regenerate", "--parent-run-id", parent, "--seed", "4", "--tracking-uri", uri,
                 "--out", str(tmp_path / "again")])
    assert capsys.readouterr().out.splitlines() == [f"trial: run {run_id}", "identical"] and code == 0


def test_pick_trial_descends_an_adaptive_parent(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("e")

    def run(parent: str | None, status: str = "FINISHED", **tags: str) -> str:
        parent_tag = {"mlflow.parentRunId": parent} if parent else {}
        run_id = client.create_run(experiment, tags=tags | parent_tag).info.run_id
        client.set_terminated(run_id, status)
        return run_id

    adaptive = run(None, **{"r2d.kind": "adaptive"})
    look = run(adaptive, **{"r2d.kind": "sweep"})
    failed = run(look, "FAILED", **{"r2d.system_id": "a", "r2d.seed": "0", "r2d.trial_id": "t0"})
    first = run(look, **{"r2d.system_id": "a", "r2d.seed": "1", "r2d.trial_id": "t1"})
    second = run(look, **{"r2d.system_id": "b", "r2d.seed": "1", "r2d.trial_id": "t2"})
    assert pick_trial(client, adaptive) == first != failed
    assert pick_trial(client, look, trial="t2") == second
    assert pick_trial(client, adaptive, seed=1, trial="t2") == second
    try:
        pick_trial(client, adaptive, seed=0)
    except ValueError as err:  # the FAILED seed-0 run is not a trial to regenerate
        assert str(err).startswith("--seed 0: no FINISHED training matches") and "t1 (seed 1)" in str(err)
    else:
        raise AssertionError("a seed with no FINISHED training must be refused")


def test_differences_name_the_recorded_settings():
    recorded = {"r2d.env.torch": "2.12.0", "r2d.env.cpu_model": "A", "r2d.env.MKL_CBWR": "AVX2", "r2d.seed": "0"}
    here = {"r2d.env.torch": "2.13.0", "r2d.env.cpu_model": "A"}
    assert setting_differences(recorded, here) == ["MKL_CBWR: recorded AVX2, here (unset)",
                                                   "torch: recorded 2.12.0, here 2.13.0"]


def test_unknown_run_id_is_one_line(tmp_path, capsys):
    code = main(["regenerate", "--run-id", "0" * 32, "--tracking-uri", f"sqlite:///{tmp_path / 'empty.db'}"])
    ours = [line for line in capsys.readouterr().err.splitlines() if line.startswith("r2d:")]  # not MLflow's logs
    assert code == 2 and len(ours) == 1 and ours[0].startswith("r2d: error: --run-id 000") and "not found" in ours[0]
