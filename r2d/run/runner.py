"""A run's life, once: resolved config -> MLflow run -> in this process or on Ray Train -> end state.

`train()` is the one way a training runs: `r2d train` (with or without `--workers`) and every sweep
trial call it. It starts the MLflow run (a sweep's child, or top level) when `tracking.enabled`,
trains, writes the run record, logs the run directory, and always ends the run: FINISHED, FAILED
(an error, e.g. a NaN loss) or KILLED (interrupted). The run directory's run.json says the same, so
nothing half-written looks complete. A sweep's parent run has the same guarantee (`sweep_run`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from r2d import schema
from r2d.config import Config, flatten
from r2d.run import tracking
from r2d.run.distributed import ensure_ray, fetch_run_dir, make_trainer
from r2d.scoring import health
from r2d.train.loop import NonFiniteLoss, run
from r2d.train.record import annotate_run_record, final_metrics, health_tags, run_tags, write_run_record
from r2d.train.runtime import Runtime
from r2d.train.stage1_store import Stage1Store

RUN_FILES = [schema.RUN_FILE, schema.CONFIG_FILE, schema.METRICS_FILE]


def end_state(err: BaseException) -> tuple[str, str]:
    """(MLflow status, reason) of a run that raised `err`."""
    if isinstance(err, KeyboardInterrupt):
        return "KILLED", f"interrupted ({err})" if str(err) else "interrupted"
    return "FAILED", f"{type(err).__name__}: {err}"


def train(cfg: Config, out_dir: Path, *, on_ray: bool = False, runtime: Runtime | None = None,
          run_id: str | None = None, parent_run_id: str | None = None, tags: dict[str, str] | None = None,
          callbacks: list | None = None) -> dict[str, Any]:
    """Train and evaluate one resolved config into `out_dir`; returns its summary (metrics.json).

    In this process (`runtime`: where it reports and checkpoints; default, local checkpoints under
    `out_dir`) or on Ray Train (`on_ray`). `run_id`: continue that MLflow run (a restarted trial)
    instead of starting one."""
    out_dir = Path(out_dir)
    if run_id and cfg.tracking.enabled:
        tracking.reopen_run(cfg.tracking.tracking_uri, run_id)
    elif cfg.tracking.enabled:
        run_id = tracking.start_run(cfg.tracking.tracking_uri, cfg.tracking.experiment, cfg.run_name,
                                    flatten(cfg.to_dict()), run_tags(cfg, tags), parent_run_id)
    uri = cfg.tracking.tracking_uri
    try:
        summary = _on_ray(cfg, out_dir, run_id, callbacks) if on_ray else _here(cfg, out_dir, run_id, runtime)
        if run_id:
            annotate_run_record(out_dir, mlflow_run_id=run_id, sweep_id=(tags or {}).get("r2d.sweep_id"))
            tracking.set_tags(uri, run_id, health_tags(summary["health"]))
            t = time.time()
            _log_run_dir(cfg, run_id, out_dir, summary)
            if on_ray:  # the driver's share of a Ray training's overhead
                summary["timings"]["driver_s"] += time.time() - t
    except BaseException as err:
        status, reason = end_state(err)
        flags = health.failed_flags(diverged=NonFiniteLoss.__name__ in reason)
        write_run_record(cfg, out_dir, status=status, splits=[], labels=[], error=reason, health=flags)
        if run_id:
            tracking.set_tags(uri, run_id, health_tags(flags))
            _log_run_dir(cfg, run_id, out_dir, {})
            tracking.end_run(uri, run_id, status, reason)
        raise
    if run_id:
        tracking.end_run(uri, run_id)
    return summary


def _here(cfg: Config, out_dir: Path, run_id: str | None, runtime: Runtime | None) -> dict[str, Any]:
    """In this process, one worker; by default a run directory with a checkpoint continues from it."""
    if runtime is None:
        runtime = Runtime(checkpoint_dir=out_dir / "checkpoints")
        latest = out_dir / "checkpoints" / "latest"
        if latest.exists():
            runtime.resume_from = latest
    if run_id:
        runtime.on_report = tracking.MetricLogger(cfg.tracking.tracking_uri, run_id)
        runtime.run_id = run_id
    return run(cfg, out_dir, runtime)


def _on_ray(cfg: Config, out_dir: Path, run_id: str | None, callbacks: list | None) -> dict[str, Any]:
    """On Ray Train (TorchTrainer, `resources.num_workers` workers); the run directory copied back."""
    t_called = time.time()
    ensure_ray(cfg)
    name = f"{cfg.run_name or 'r2d'}-{run_id or os.urandom(4).hex()}"
    t_fit = time.time()
    trainer = make_trainer(cfg, name, (cfg.tracking.tracking_uri, run_id) if run_id else None, callbacks)
    result = trainer.fit()
    t_returned = time.time()
    if result.error:
        raise result.error
    fetch_run_dir(result, out_dir)
    summary = json.loads((out_dir / schema.METRICS_FILE).read_text())
    # Where a training's wall time outside its workers goes (the clocks of one machine or of
    # NTP-synced nodes): Ray Train's start-up and teardown, and the driver's own work.
    t = summary.setdefault("timings", {})
    if "started_at" in t and "finished_at" in t:
        t["ray_start_s"] = t["started_at"] - t_fit
        t["ray_end_s"] = t_returned - t["finished_at"]
    t["driver_s"] = (t_fit - t_called) + (time.time() - t_returned)  # copying the run out (+ MLflow, later)
    return summary


def _log_run_dir(cfg: Config, run_id: str, out_dir: Path, summary: dict[str, Any]) -> None:
    """Final metrics, notes and the run directory as artifacts (weights only if asked)."""
    uri = cfg.tracking.tracking_uri
    metrics = final_metrics(summary)
    if metrics:
        tracking.log_metrics(uri, run_id, metrics)
    for note in summary.get("notes", []):
        tracking.set_tags(uri, run_id, {"r2d.note": note})
    dirs = [schema.PREDICTIONS_DIR] + (["model"] if cfg.tracking.log_model else [])
    tracking.log_artifacts(uri, run_id, out_dir, RUN_FILES, dirs)


def train_stage1(cfg: Config, callbacks: list | None = None) -> dict[str, Any]:
    """Train (or find) the Stage 1 result of `cfg` on Ray Train, into the Stage 1 store; not a run
    of its own in MLflow (the Stage 2 runs that load it record its key and location)."""
    ensure_ray(cfg)
    store = Stage1Store(cfg)
    trainer = make_trainer(cfg, f"stage1-{store.key}", None, callbacks, {"stage1_only": True})
    result = trainer.fit()
    if result.error:
        raise result.error
    return {"location": store.location, **(result.metrics or {})}


@contextmanager
def sweep_run(uri: str, experiment: str, state: dict[str, Any], tags: dict[str, str], params: dict[str, Any],
              artifacts: list[Path]) -> Iterator[str]:
    """A sweep's parent run: created (or reopened on resume, its orphaned children KILLED), yielded
    for the children, and always ended: FINISHED, KILLED (interrupted) or FAILED with r2d.error; if
    it did not finish, its children still RUNNING end KILLED."""
    sweep_id = state["sweep_id"]
    if "parent_run_id" not in state:
        state["parent_run_id"] = tracking.start_run(uri, experiment, sweep_id, params, tags)
        for path in artifacts:
            tracking.log_artifacts(uri, state["parent_run_id"], path.parent, [path.name], [])
    else:
        tracking.reopen_run(uri, state["parent_run_id"])
        closed = tracking.close_running(uri, experiment, sweep_id, state["parent_run_id"],
                                        "interrupted: its sweep driver died; the trial is rerun on --resume")
        if closed:
            print(f"resume: {closed} interrupted child run(s) marked KILLED in MLflow")
    try:
        yield state["parent_run_id"]
    except BaseException as err:
        status, why = end_state(err)
        # the trials it was running die with the driver: their runs are not left RUNNING
        tracking.close_running(uri, experiment, sweep_id, state["parent_run_id"],
                               f"its sweep ended {status} ({why}); the trial is rerun on --resume")
        tracking.end_run(uri, state["parent_run_id"], status, why)
        raise
    tracking.end_run(uri, state["parent_run_id"])
