"""MLflow: one run per training, params = the flattened resolved config, metrics per evaluation,
artifacts = the run directory (config, metrics.json, predictions), and a terminal status that is
always set: FINISHED, or FAILED with the error as a tag. A run is never left RUNNING.

The driver (this process, or a Tune trial) creates and ends the run; the training worker of rank 0
only logs into it by id, so a restarted worker goes on logging into the same run.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

from r2d import schema
from r2d.config import Config, flatten
from r2d.variants import resolve

DEFAULT_URI = "sqlite:///mlflow.db"  # MLflow 3's own default store, in the working directory


def tracking_uri(cfg: Config) -> str:
    """The configured URI; a relative sqlite path is made absolute, because Ray workers run elsewhere."""
    uri = cfg.tracking.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        uri = prefix + os.path.abspath(uri[len(prefix):])
    return uri


def client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def experiment_id(uri: str, name: str) -> str:
    c = client(uri)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if uri.startswith("sqlite:///"):  # artifacts beside the database, wherever the process runs from
        location = Path(uri[len("sqlite:///"):]).resolve().parent.joinpath("mlruns").as_uri()
    try:
        return c.create_experiment(name, artifact_location=location)
    except Exception:  # created concurrently by another trial
        return c.get_experiment_by_name(name).experiment_id


def run_tags(cfg: Config, extra: dict[str, str] | None = None) -> dict[str, str]:
    from r2d.evaluate import git_commit

    tags = {
        "r2d.variant": cfg.variant,
        "r2d.dataset": cfg.data.dataset,
        "r2d.rationale_source": cfg.data.rationale_source,
        "r2d.seed": str(cfg.seed),
        "r2d.schedule_shape": cfg.stage2.schedule.shape,
    }
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    tags.update(extra or {})
    return tags


def start_run(cfg: Config, parent_run_id: str | None = None, tags: dict[str, str] | None = None,
              run_name: str | None = None) -> tuple[str, str]:
    """Create a run with params and tags; returns (tracking uri, run id)."""
    from mlflow.entities import Param, RunTag

    uri = tracking_uri(cfg)
    c = client(uri)
    all_tags = run_tags(cfg, tags)
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = c.create_run(experiment_id(uri, cfg.tracking.experiment), run_name=run_name or cfg.run_name,
                       tags=all_tags)
    params = [Param(k, str(v)[:6000]) for k, v in flatten(cfg.to_dict()).items()]
    for i in range(0, len(params), 100):  # log_batch takes at most 100 params per call
        c.log_batch(run.info.run_id, params=params[i : i + 100])
    c.log_batch(run.info.run_id, tags=[RunTag("mlflow.runName", run.info.run_name)])
    return uri, run.info.run_id


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
        from mlflow.entities import Metric

        logged = self._last_logged()
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, s) for s, rec in records for k, v in rec.items()
                   if isinstance(v, (int, float)) and s > logged.get(k.split("/")[0], -1)]
        c = client(self.uri)
        for i in range(0, len(metrics), 1000):
            c.log_batch(self.run_id, metrics=metrics[i : i + 1000])


def log_final(uri: str, run_id: str, out_dir: Path, summary: dict[str, Any], log_model: bool = False) -> None:
    """Final metrics per split and the run directory as artifacts (weights only if asked)."""
    from mlflow.entities import Metric

    c = client(uri)
    now = int(time.time() * 1000)
    metrics = [Metric(f"{split}/{k}", float(v), now, 0) for split, m in summary.get("splits", {}).items()
               for k, v in m.items() if isinstance(v, (int, float))]
    if "stage2" in summary:  # the model-selection score, the sweep's objective
        metrics.append(Metric("best_dev_macro_f1", float(summary["stage2"]["best_dev_macro_f1"]), now, 0))
    if metrics:
        c.log_batch(run_id, metrics=metrics)
    for note in summary.get("notes", []):
        c.set_tag(run_id, "r2d.note", note[:5000])
    for name in (schema.RUN_FILE, schema.CONFIG_FILE, schema.METRICS_FILE):
        if (out_dir / name).exists():
            c.log_artifact(run_id, str(out_dir / name))
    if (out_dir / schema.PREDICTIONS_DIR).is_dir():
        c.log_artifacts(run_id, str(out_dir / schema.PREDICTIONS_DIR), schema.PREDICTIONS_DIR)
    if log_model and (out_dir / "model").is_dir():
        c.log_artifacts(run_id, str(out_dir / "model"), "model")


def end_run(uri: str, run_id: str, error: BaseException | str | None = None) -> None:
    c = client(uri)
    if error is not None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        c.set_tag(run_id, "r2d.error", text[:5000])
        c.set_terminated(run_id, status="FAILED")
    else:
        c.set_terminated(run_id, status="FINISHED")


def annotate_run_record(out_dir: Path, **fields: Any) -> None:
    path = Path(out_dir) / schema.RUN_FILE
    if path.exists():
        record = json.loads(path.read_text())
        record.update(fields)
        path.write_text(json.dumps(record, indent=1))


def mark_failed(cfg: Config, out_dir: Path, err: BaseException) -> None:
    """A run directory of a failed run says so (run.json status FAILED), never looks complete."""
    from r2d.evaluate import write_run_record

    out_dir.mkdir(parents=True, exist_ok=True)
    write_run_record(cfg, out_dir, status="FAILED", splits=[], labels=[], error=f"{type(err).__name__}: {err}")


def tracked_run(cfg: Config, out_dir: Path, parent_run_id: str | None = None,
                tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Train in this process (one worker), tracked in MLflow when `tracking.enabled`."""
    from r2d.train import Runtime, run

    out_dir = Path(out_dir)
    runtime = Runtime(checkpoint_dir=out_dir / "checkpoints")
    latest = out_dir / "checkpoints" / "latest"
    if latest.exists():
        runtime.resume_from = latest  # a run directory with a checkpoint continues from it
    if not cfg.tracking.enabled:
        try:
            return run(cfg, out_dir, runtime)
        except BaseException as err:
            mark_failed(resolve(cfg), out_dir, err)
            raise
    uri, run_id = start_run(cfg, parent_run_id, tags)
    runtime.on_report = MetricLogger(uri, run_id)
    try:
        summary = run(cfg, out_dir, runtime)
        annotate_run_record(out_dir, mlflow_run_id=run_id, **({"sweep_id": tags.get("r2d.sweep_id")} if tags else {}))
        log_final(uri, run_id, out_dir, summary, cfg.tracking.log_model)
    except BaseException as err:
        mark_failed(resolve(cfg), out_dir, err)
        log_final(uri, run_id, out_dir, {})
        end_run(uri, run_id, error=err if not isinstance(err, KeyboardInterrupt) else "KeyboardInterrupt")
        traceback.print_exc()
        raise
    end_run(uri, run_id)
    return summary
