"""What a sweep's parent MLflow run carries (issue 26 item 4): the report, not a second copy of its
children's predictions. sweeps/_common.analyse_sweep on a real MLflow (sqlite) store whose child runs
hold predictions, without Ray or training."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from r2d.sweep.run import FinishedSweep

from .conftest import ROOT
from .test_analysis_report import write_run


def _all_artifacts(client, run_id: str, path: str | None = None) -> list[str]:
    found = []
    for info in client.list_artifacts(run_id, path):
        found += _all_artifacts(client, run_id, info.path) if info.is_dir else [info.path]
    return found


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # MLflow's own SQLAlchemy usage
def test_parent_run_gets_the_report_and_no_predictions(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    sys.path.insert(0, str(ROOT / "sweeps"))
    try:
        from _common import analyse_sweep
    finally:
        sys.path.remove(str(ROOT / "sweeps"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("schedules", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment, run_name="sweep", tags={"r2d.sweep_id": "sw-1"}).info.run_id
    for variant, skill in (("r2d", 0.7), ("sft", 0.55)):
        for seed in (0, 1):
            run_dir = write_run(tmp_path / "local", variant=variant, seed=seed, skill=skill)
            record = json.loads((run_dir / "run.json").read_text())
            child = client.create_run(experiment, run_name=record["run_name"], tags={
                "r2d.sweep_id": "sw-1", "mlflow.parentRunId": parent, "r2d.variant": variant, "r2d.seed": str(seed)})
            client.log_artifacts(child.info.run_id, str(run_dir))
            client.set_terminated(child.info.run_id)
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    analyse_sweep(FinishedSweep(uri, "schedules", "sw-1", parent, sweep_dir, None, [], None))
    attached = _all_artifacts(client, parent)
    assert "analysis/significance.md" in attached and "analysis/significance.csv" in attached
    # the children's predictions were downloaded for the report, beside it, and are not attached
    assert not [p for p in attached if "predictions" in p or p.endswith(("test.csv", "dev.csv"))], attached
    assert list((sweep_dir / "report-cache").rglob("predictions/test.csv"))
    assert "| system |" in client.get_run(parent).data.tags["mlflow.note.content"]
