"""A sweep's trial: the Tune function trainable, and where its training runs.

`sweep_trial` is one Tune trial: one configuration on one seed (grid) or on every seed (Optuna).
A trial whose config asks for one worker (the CPU default, a one-GPU trial on a cluster) trains in
its own Tune trial process, Ray's idiom for single-worker training: resources from
`tune.with_resources` (`trial_resources`), metrics and checkpoints through `tune.report`, a
restarted trial continuing from `tune.get_checkpoint()`. No Ray Train start-up (four actors per
fit), and with `reuse_actors` the process keeps its imports from one trial to the next. A trial with
2 or more workers is a Tune trial that drives Ray Train's `TorchTrainer` (r2d.run.runner, on_ray=True).
Both run the same loop (r2d.train.run), so a configuration and seed give the same predictions on
either path.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from r2d.config import Config
from r2d.run import runner, tracking
from r2d.sweep.placement import in_trial_process
from r2d.sweep.study import OPTUNA_KEYS, trial_config, trial_key
from r2d.train.loop import run
from r2d.train.record import final_metrics
from r2d.train.runtime import Runtime

RUN_ID_FILE = "mlflow_run_id"  # in a Tune-path checkpoint: the MLflow run a restarted trial continues


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a sweep shares; handed to the trainable once (tune.with_parameters)."""

    base: dict[str, Any]  # the user's config (r2d.config.read_config): trial settings go on top
    seeds: tuple[int, ...]
    sweep_id: str
    parent_run_id: str
    tracking_uri: str
    experiment: str
    runs_dir: str  # where trials write run directories; "": each trial node's own temporary directory
    stage1_only: bool = False  # phase 1: train (or find) the Stage 1 result and stop


@dataclass
class TuneRuntime(Runtime):
    """The runtime of a training inside a Tune trial process: one worker, checkpoints kept by Tune."""

    def describe(self) -> dict[str, Any]:
        me = {"rank": 0, "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}
        return {"world_size": 1, "device": str(self.device), "path": "tune_trial", "workers": [me]}

    def report(self, step: int, metrics: list[tuple[int, dict]], checkpoint: Path | None) -> None:
        latest = {k: v for _, rec in metrics for k, v in rec.items() if isinstance(v, (int, float))}
        latest["step"] = step
        # Tune searchers (Optuna) and ASHA read their metric from every result, mid-training ones included.
        latest["objective"] = latest.get("stage2/best_dev_macro_f1", float("nan"))
        ckpt = None
        if checkpoint is not None:
            if self.run_id:
                (checkpoint / RUN_ID_FILE).write_text(self.run_id)
            ckpt = tune.Checkpoint.from_directory(str(checkpoint))
        tune.report(latest, checkpoint=ckpt)  # the checkpoint is persisted to storage before it returns
        if self.on_report is not None:
            self.on_report(step, metrics)  # after the checkpoint is safe: a restart re-logs nothing


def _finished_child(ctx: TrialContext, key: str) -> dict | None:
    """A FINISHED child run of this sweep for this (configuration, seed), if a previous attempt made one."""
    runs = tracking.search_runs(ctx.tracking_uri, ctx.experiment,
                                f"tags.`r2d.sweep_id` = '{ctx.sweep_id}' and tags.`r2d.trial_key` = '{key}' "
                                "and attributes.status = 'FINISHED'", max_results=1)
    return runs[0].data.metrics if runs else None


def _train_here(cfg: Config, out_dir: Path, ctx: TrialContext, tags: dict[str, str]) -> dict[str, Any]:
    """One training in this trial process; after a restart, from Tune's last checkpoint, same MLflow run.
    (The config's thread count wins over the OMP threads Ray set: r2d.train.prepare applies it.)"""
    runtime = TuneRuntime()
    run_id = None
    restored = tune.get_checkpoint()
    if restored is not None:
        resume_dir = Path(tempfile.mkdtemp(prefix="r2d-resume-"))
        restored.to_directory(str(resume_dir))
        runtime.resume_from = resume_dir
        run_file = resume_dir / RUN_ID_FILE
        run_id = run_file.read_text().strip() if run_file.exists() else None
    return runner.train(cfg, out_dir, runtime=runtime, run_id=run_id, parent_run_id=ctx.parent_run_id, tags=tags)


def _stage1(cfg: Config) -> dict[str, Any]:
    """Phase 1 for one seed: train (or find) its Stage 1 result in the store."""
    if not in_trial_process(cfg.resources):
        return runner.train_stage1(cfg)
    with tempfile.TemporaryDirectory(prefix="r2d-stage1-") as tmp:
        summary = run(cfg, Path(tmp), Runtime(), stage1_only=True)
    return {"stage1_reused": float(summary["stage1"].get("reused", False))}


def _runs_dir(ctx: TrialContext) -> Path:
    """The sweep's runs folder if it is on a path every node has, else this node's temporary directory."""
    return Path(ctx.runs_dir) if ctx.runs_dir else Path(tempfile.gettempdir()) / "r2d-runs" / ctx.sweep_id


def sweep_trial(config: dict[str, Any], ctx: TrialContext) -> None:
    """The Tune function trainable: one configuration, on one seed (grid) or on all seeds (Optuna)."""
    point = config.get("trial", {})
    overrides = {**point.get("overrides", {}), **{OPTUNA_KEYS[k]: v for k, v in config.items() if k in OPTUNA_KEYS}}
    seeds = [point["seed"]] if "seed" in point else list(ctx.seeds)
    if ctx.stage1_only:
        for seed in seeds:
            info = _stage1(trial_config(ctx.base, overrides, seed))
            tune.report({"stage1_done": 1, "stage1_reused": info.get("stage1_reused", 0.0)})
        return
    trial_id = tune.get_context().get_trial_id()
    objectives, finals = [], {}
    for seed in seeds:
        key = trial_key(overrides, seed)
        done = _finished_child(ctx, key)
        if done is not None:  # a resumed trial: this seed already finished and is logged; don't redo
            objectives.append(done.get("best_dev_macro_f1", float("nan")))
            continue
        tags = {"r2d.sweep_id": ctx.sweep_id, "r2d.trial_key": key, "r2d.trial_id": trial_id,
                "r2d.overrides": json.dumps(overrides, sort_keys=True), "r2d.trial_pid": str(os.getpid())}
        cfg, out_dir = trial_config(ctx.base, overrides, seed), _runs_dir(ctx) / key
        if in_trial_process(cfg.resources):
            summary = _train_here(cfg, out_dir, ctx, tags)
        else:
            summary = runner.train(cfg, out_dir, on_ray=True, parent_run_id=ctx.parent_run_id, tags=tags,
                                   callbacks=[TuneReportCallback()])
        objectives.append(summary["stage2"]["best_dev_macro_f1"])
        finals = final_metrics(summary)
        finals.update({f"health/{name}": float(value) for name, value in summary.get("health", {}).items()})
        finals.update({"timing/" + k: v for k, v in summary.get("timings", {}).items()})
    tune.report({"objective": float(sum(objectives) / len(objectives)), "seeds_done": len(objectives), **finals})
