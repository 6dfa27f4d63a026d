"""MLflow calls, and nothing else from r2d: runs, params, metrics, artifacts, terminal states.

r2d/run/runner.py decides what to log and when; this module only talks to the tracking server. A run
is created by a driver (this process, or a Tune trial) and ended by it; the training worker of
rank 0 only logs metrics into it by id (`MetricLogger`), so a restarted worker goes on logging
into the same run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

MAX_PARAMS_PER_CALL = 100  # log_batch takes at most 100 params per call
MAX_METRICS_PER_CALL = 1000


def client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


# MLflow 3's UI opens an experiment of unknown kind on its (empty) traces view; a model-training
# experiment opens on the runs table, the sweep's parent run with its children.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def experiment_id(uri: str, name: str) -> str:
    """The experiment's id, created if missing (artifacts beside a sqlite database)."""
    c = client(uri)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if uri.startswith("sqlite:///"):  # artifacts beside the database, wherever the process runs from
        location = Path(uri[len("sqlite:///"):]).resolve().parent.joinpath("mlruns").as_uri()
    try:
        return c.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
    except Exception:  # created concurrently by another trial
        return c.get_experiment_by_name(name).experiment_id


def start_run(uri: str, experiment: str, run_name: str | None, params: dict[str, Any], tags: dict[str, str],
              parent_run_id: str | None = None) -> str:
    """Create a RUNNING run with params and tags (a child when `parent_run_id`); returns its id."""
    c = client(uri)
    all_tags = dict(tags)
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = c.create_run(experiment_id(uri, experiment), run_name=run_name, tags=all_tags)
    flat = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(flat), MAX_PARAMS_PER_CALL):
        c.log_batch(run.info.run_id, params=flat[i : i + MAX_PARAMS_PER_CALL])
    c.log_batch(run.info.run_id, tags=[RunTag("mlflow.runName", run.info.run_name)])
    return run.info.run_id


def log_metrics(uri: str, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
    for i in range(0, len(batch), MAX_METRICS_PER_CALL):
        client(uri).log_batch(run_id, metrics=batch[i : i + MAX_METRICS_PER_CALL])


def log_artifacts(uri: str, run_id: str, out_dir: Path, files: list[str], dirs: list[str]) -> None:
    """The listed files and folders of `out_dir` that exist, at the same relative paths."""
    c = client(uri)
    for name in files:
        if (out_dir / name).exists():
            c.log_artifact(run_id, str(out_dir / name))
    for name in dirs:
        if (out_dir / name).is_dir():
            c.log_artifacts(run_id, str(out_dir / name), name)


def set_tags(uri: str, run_id: str, tags: dict[str, str]) -> None:
    c = client(uri)
    for key, value in tags.items():
        c.set_tag(run_id, key, str(value)[:5000])


def end_run(uri: str, run_id: str, status: str = "FINISHED", error: str | None = None) -> None:
    """FINISHED, FAILED or KILLED; the reason of a failure as the tag r2d.error."""
    if error is not None:
        set_tags(uri, run_id, {"r2d.error": error})
    client(uri).set_terminated(run_id, status=status)


def reopen_run(uri: str, run_id: str) -> None:
    client(uri).update_run(run_id, status="RUNNING")


def search_runs(uri: str, experiment: str, filter_string: str, max_results: int = 1000) -> list:
    return client(uri).search_runs([experiment_id(uri, experiment)], filter_string=filter_string,
                                   max_results=max_results)


def store_exists(uri: str) -> bool:
    """False for a local store (sqlite file, file-store folder) that does not exist yet: reading it
    must not create it (a --dry-run creates nothing)."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).is_file()
    if uri.startswith("file:") or "://" not in uri:
        return Path(uri.removeprefix("file://").removeprefix("file:")).is_dir()
    return True


def finished_trials(uri: str, experiment: str) -> dict[tuple[str, int], dict[str, Any]]:
    """(system_id, seed) -> the newest FINISHED training run of the experiment with that identity:
    {"run_id", "duration_s"}. Read-only: an experiment or a local store that does not exist is empty."""
    if not store_exists(uri):
        return {}
    exp = client(uri).get_experiment_by_name(experiment)
    if exp is None:
        return {}
    runs = client(uri).search_runs([exp.experiment_id], "attributes.status = 'FINISHED'", max_results=5000,
                                   order_by=["attributes.start_time DESC"])
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for r in runs:
        tags = r.data.tags
        if "r2d.system_id" not in tags or "r2d.seed" not in tags:  # sweep parents
            continue
        key = (tags["r2d.system_id"], int(tags["r2d.seed"]))
        if key not in out:
            duration = (r.info.end_time - r.info.start_time) / 1000 if r.info.end_time else None
            out[key] = {"run_id": r.info.run_id, "duration_s": duration}
    return out


def close_running(uri: str, experiment: str, sweep_id: str, keep: str, why: str) -> int:
    """Runs of a sweep left RUNNING by a dead process end as KILLED, with why; `keep` is left alone."""
    runs = search_runs(uri, experiment, f"tags.`r2d.sweep_id` = '{sweep_id}' and attributes.status = 'RUNNING'")
    closed = [r for r in runs if r.info.run_id != keep]
    for r in closed:
        end_run(uri, r.info.run_id, "KILLED", why)
    return len(closed)


class MetricLogger:
    """`Runtime.on_report` for rank 0: logs the metrics gathered since the last checkpoint.

    After a worker restart the run resumes from the last checkpoint Ray registered, which can be
    older than the last metrics logged (Ray registers checkpoints asynchronously). Steps already in
    MLflow are then re-executed from that checkpoint but not logged twice: on CPU the rerun is
    deterministic (batch order, RNG state and sampling draws are restored), so the values are the same.
    """

    def __init__(self, uri: str, run_id: str):
        self.uri, self.run_id = uri, run_id
        self._logged: dict[str, int] | None = None  # stage prefix -> last step already in MLflow

    def _last_logged(self) -> dict[str, int]:
        if self._logged is None:
            c = client(self.uri)
            self._logged = {}
            for prefix in ("stage1", "stage2"):
                history = c.get_metric_history(self.run_id, f"{prefix}/step")
                if history:
                    self._logged[prefix] = max(m.step for m in history)
            if self._logged:
                c.set_tag(self.run_id, "r2d.resumed_after_step", json.dumps(self._logged))
        return self._logged

    def __call__(self, step: int, records: list[tuple[int, dict]]) -> None:
        logged = self._last_logged()
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, s) for s, rec in records for k, v in rec.items()
                   if isinstance(v, (int, float)) and s > logged.get(k.split("/")[0], -1)]
        c = client(self.uri)
        for i in range(0, len(metrics), MAX_METRICS_PER_CALL):
            c.log_batch(self.run_id, metrics=metrics[i : i + MAX_METRICS_PER_CALL])
