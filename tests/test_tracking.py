"""MLflow tracking in process (sqlite store): params, metrics per evaluation, artifacts, terminal states."""

import json

import pytest
from mlflow import MlflowClient

from r2d.config import load_config
from r2d.run.runner import train

from .conftest import tiny_overrides


def test_relative_sqlite_uri_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert load_config().tracking.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    cfg = load_config(None, ["tracking.tracking_uri=http://127.0.0.1:5000"])
    assert cfg.tracking.tracking_uri == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///rel/m.db")
    assert load_config().tracking.tracking_uri == f"sqlite:///{tmp_path}/rel/m.db"


def test_finished_and_failed_runs(cache_dir, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    extra = {"tracking.enabled": "true", "tracking.tracking_uri": uri, "tracking.experiment": "unit"}
    train(load_config(None, tiny_overrides(cache_dir, **extra)), tmp_path / "ok")
    with pytest.raises(FloatingPointError):
        train(load_config(None, tiny_overrides(cache_dir, **extra, **{"debug.inject_nan_at_step": 0})),
                    tmp_path / "bad")
    c = MlflowClient(uri)
    runs = {r.info.status: r for r in c.search_runs([c.get_experiment_by_name("unit").experiment_id])}
    assert set(runs) == {"FINISHED", "FAILED"}
    ok = runs["FINISHED"]
    assert ok.info.run_id == json.loads((tmp_path / "ok/run.json").read_text())["mlflow_run_id"]
    assert ok.data.params["variant"] == "r2d" and "stage2.schedule.cap" in ok.data.params
    assert [m.step for m in c.get_metric_history(ok.info.run_id, "stage2/loss")] == list(range(6))
    assert "r2d.error" not in ok.data.tags
    assert "non-finite loss nan at stage 2 step 0" in runs["FAILED"].data.tags["r2d.error"]
    assert runs["FAILED"].data.tags["r2d.health"] == "diverged,failed"
    assert ok.data.tags["r2d.health.failed"] == "false" and "r2d.health" in ok.data.tags
    assert {a.path for a in c.list_artifacts(runs["FAILED"].info.run_id)} == {"run.json"}
