"""Issue 24 item 2: 16 concurrent trial loggers (separate processes) against a real MLflow server on a
real PostgreSQL 15: every run, metric point and artifact is there afterwards, none FAILED, and the
server never reported 'database is locked'."""

from mlflow.tracking import MlflowClient

from tests.servers import mlflow_server, postgres
from tests.tracking_load import ARTIFACT, METRIC, run_load

LOGGERS, STEPS = 16, 20


def test_sixteen_loggers_on_postgres_lose_nothing(tmp_path):
    (tmp_path / "artifacts").mkdir()
    with postgres() as db, mlflow_server(db, tmp_path / "artifacts") as uri:
        result = run_load(uri, "load", LOGGERS, STEPS)
        assert result.errors == []
        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("load").experiment_id], max_results=100)
        assert len(runs) == LOGGERS
        assert {r.info.status for r in runs} == {"FINISHED"}
        for run in runs:
            history = client.get_metric_history(run.info.run_id, METRIC)
            assert sorted(m.step for m in history) == list(range(STEPS))
            assert [a.path for a in client.list_artifacts(run.info.run_id)] == [ARTIFACT]
            assert set(run.data.params) == {"seed", "stage2.schedule.shape"}
    server_logs = "".join(p.read_text() for p in tmp_path.glob("mlflow-server-*.log"))
    assert "database is locked" not in server_logs
