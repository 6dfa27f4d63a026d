"""The same trainer under Ray Train (V2): `TorchTrainer` with N workers, DDP (gloo on CPU, nccl on GPU).

Worker side: `train_loop_per_worker` builds a `RayRuntime` (device from Ray, DDP via
`prepare_model`, evaluation shards gathered with `all_gather_object`) and calls `r2d.train.run`.
Checkpoints go through `ray.train.report` from rank 0 at each evaluation, so `FailureConfig`
restarts resume from the last one. The finished run directory (predictions, metrics, model) is
reported as the final checkpoint: the storage path is the only thing nodes share.

Driver side: `ensure_ray` (join a cluster or start a local Ray), `make_trainer`, `fetch_run_dir`;
r2d/run/runner.py owns a run's life around them (MLflow run, end state).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from r2d.config import REPRODUCIBLE_PINS, Config, ResourcesConfig, validate_config
from r2d.overrides import ConfigError
from r2d.train.loop import run
from r2d.train.record import final_metrics
from r2d.train.runtime import Runtime

FINAL_MARKER = "r2d_final"
LOCAL_TRAIN_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0", "RAY_TRAIN_METRICS_ENABLED": "0",
                   "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"}


# --------------------------------------------------------------------------- worker side
@dataclass
class RayRuntime(Runtime):
    """Runtime inside a Ray Train worker."""

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        return ray.train.torch.prepare_model(module) if self.world_size > 1 else module.to(self.device)

    def gather(self, items: list) -> list:
        if self.world_size == 1:
            return items
        parts: list[list] = [[] for _ in range(self.world_size)]
        torch.distributed.all_gather_object(parts, items)
        return [x for part in parts for x in part]

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        if self.world_size == 1:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)  # gloo/nccl sum over workers
        return {k: float(v) / self.world_size for k, v in zip(keys, t.tolist())}

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def describe(self) -> dict[str, Any]:
        me = {"rank": self.rank, "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}
        return {"world_size": self.world_size, "device": str(self.device), "workers": self.gather([me])}

    def report(self, step: int, metrics: list[tuple[int, dict]], checkpoint: Path | None) -> None:
        latest = {k: v for _, rec in metrics for k, v in rec.items() if isinstance(v, (int, float))}
        latest["step"] = step
        # Tune searchers (Optuna) read their metric from every result, mid-training ones included.
        latest["objective"] = latest.get("stage2/best_dev_macro_f1", float("nan"))
        # Every worker calls report (it is a barrier); rank 0 brings the checkpoint.
        ckpt = ray.train.Checkpoint.from_directory(str(checkpoint)) if checkpoint is not None else None
        ray.train.report(latest, checkpoint=ckpt)
        if self.on_report is not None and self.is_main:
            self.on_report(step, metrics)  # after the checkpoint is safe: a restart re-logs nothing


def train_loop_per_worker(config: dict[str, Any]) -> None:
    cfg = validate_config(config["cfg"])
    ctx = ray.train.get_context()
    runtime = RayRuntime(device=ray.train.torch.get_device(), rank=ctx.get_world_rank(),
                         world_size=ctx.get_world_size())
    torch.set_num_threads(cfg.resources.torch_threads)  # resolved at config load, never None
    if config.get("tracking") and runtime.is_main:
        # Imported here: mlflow is heavy and a worker without tracking (Stage 1 phase) need not load it.
        from r2d.run.tracking import MetricLogger

        runtime.on_report = MetricLogger(*config["tracking"])
    local = Path(tempfile.mkdtemp(prefix="r2d-worker-"))
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        resume_dir = local / "resume"
        checkpoint.to_directory(str(resume_dir))
        if (resume_dir / FINAL_MARKER).exists():  # died after finishing: hand the result back again
            mine = checkpoint if runtime.is_main else None
            ray.train.report({"final": 1, "objective": float("nan")}, checkpoint=mine)
            return
        runtime.resume_from = resume_dir
    out_dir = local / "run"
    summary = run(cfg, out_dir, runtime, stage1_only=config.get("stage1_only", False))
    if config.get("stage1_only"):  # the result lives in the Stage 1 cache (shared storage)
        ray.train.report({"final": 1, "objective": float("nan"),
                          "stage1_reused": float(summary["stage1"].get("reused", False))})
        shutil.rmtree(local, ignore_errors=True)
        return
    final = None
    if runtime.is_main:
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
        (out_dir / FINAL_MARKER).write_text(json.dumps({"splits": list(summary.get("splits", {}))}))
        final = ray.train.Checkpoint.from_directory(str(out_dir))
    ray.train.report({"final": 1, "objective": summary["stage2"]["best_dev_macro_f1"], **final_metrics(summary)},
                     checkpoint=final)
    shutil.rmtree(local, ignore_errors=True)


# --------------------------------------------------------------------------- driver side
def worker_env(resources: ResourcesConfig) -> dict[str, Any] | None:
    """The runtime_env Ray workers need for this config: reproducible mode's CPU pins (a Ray worker is
    a fresh process, started by its node's raylet, so the switches reach it before its torch starts)."""
    return {"env_vars": dict(REPRODUCIBLE_PINS)} if resources.reproducible else None


def ensure_ray(cfg: Config, log_to_driver: bool = True) -> None:
    """Join `resources.ray_address` (e.g. "auto") or start a local Ray on 127.0.0.1. Without
    `log_to_driver` the workers' output stays in Ray's session logs, off this console. In reproducible
    mode the job's runtime_env carries the CPU pins to every worker (Tune trials and what they start);
    a Ray this process joined earlier without them is not changed, and a worker then stops in
    r2d.train.prepare.check_pins."""
    if ray.is_initialized():
        return
    job_env = worker_env(cfg.resources)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Train reports mid-training metrics (dev F1 per evaluation) before a trial's final objective.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    if cfg.resources.ray_address:
        ray.init(address=cfg.resources.ray_address, log_to_driver=log_to_driver, runtime_env=job_env)
    else:
        # A local Ray has no spot preemption to watch and no metrics scraper; Train's watcher actor
        # and metrics exporters cost each fit() processes, and its 2 s polling adds seconds to both
        # ends (measured in a 4-trial sweep, 2 at once: start-up + teardown per trial 25 s -> 17 s).
        for var, value in LOCAL_TRAIN_ENV.items():
            os.environ.setdefault(var, value)
        ray.init(dashboard_host="127.0.0.1", _temp_dir=os.environ.get("R2D_RAY_TMPDIR") or None,
                 log_to_driver=log_to_driver, logging_level="WARNING" if not log_to_driver else "INFO",
                 runtime_env=job_env,
                 num_cpus=int(os.environ["R2D_RAY_NUM_CPUS"]) if os.environ.get("R2D_RAY_NUM_CPUS") else None)


def make_trainer(cfg: Config, name: str, tracking: tuple[str, str] | None = None, callbacks: list | None = None,
                 extra_config: dict | None = None):
    r = cfg.resources
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": cfg.to_dict(), "tracking": tracking, **(extra_config or {})},
        scaling_config=ScalingConfig(num_workers=r.num_workers, use_gpu=r.use_gpu,
                                     resources_per_worker=r.worker_resources()),
        run_config=RunConfig(
            name=name,
            storage_path=r.storage_path,  # absolute since the config was loaded
            failure_config=FailureConfig(max_failures=r.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=callbacks or [],
            worker_runtime_env=worker_env(r),  # Train workers, whatever Ray they run on
        ),
    )


def fetch_run_dir(result, out_dir: Path) -> None:
    """Copy the final checkpoint (the run directory) from storage to `out_dir`."""
    if result.checkpoint is None:
        raise RuntimeError("the training returned no final checkpoint")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        result.checkpoint.to_directory(tmp)
        if not (Path(tmp) / FINAL_MARKER).exists():
            raise RuntimeError(f"the last checkpoint ({result.checkpoint.path}) is not a finished run")
        for item in Path(tmp).iterdir():
            target = out_dir / item.name
            if target.is_dir():
                shutil.rmtree(target)
            shutil.move(str(item), str(target))


SHARED_FILESYSTEM_ENV = "R2D_NODES_SHARE_FILESYSTEM"


def _is_local(uri: str) -> bool:
    """A plain path or file:// URI: readable only on the machine that wrote it."""
    return "://" not in uri or uri.startswith("file://")


def refuse_local_state_on_cluster(storage_path: str, tracking_uri: str) -> None:
    """On a Ray cluster of more than one live node, a storage path local to the head is not reachable
    from worker nodes (Ray fails a worker's checkpoint at run time, or drops its artifacts), and a sqlite
    tracking store queues concurrent writers ('database is locked'): refuse both before anything starts.
    Call it once connected (ray.nodes() needs a Ray), before any directory, run or trial is created."""
    nodes = sum(1 for n in ray.nodes() if n["Alive"])
    # R2D_NODES_SHARE_FILESYSTEM=1: the user states the path is the same on every node (an NFS mount,
    # or Ray nodes on one machine, as tests/test_sweeps.py runs them)
    if nodes <= 1 or os.environ.get(SHARED_FILESYSTEM_ENV) == "1":
        return
    wrong = []
    if _is_local(storage_path):
        wrong.append(f"resources.storage_path {storage_path!r} is a local path: use shared storage "
                     "(s3://bucket/prefix, gs://..., or a path mounted on every node)")
    if tracking_uri.startswith("sqlite:") or _is_local(tracking_uri):
        wrong.append(f"tracking.tracking_uri {tracking_uri!r} is a local store: use the head's MLflow server "
                     "(http://HEAD:5000, backed by PostgreSQL; see cluster.yaml)")
    if wrong:
        raise ConfigError(f"a Ray cluster of {nodes} nodes: " + "; ".join(wrong)
                          + f" (or {SHARED_FILESYSTEM_ENV}=1 if that path is mounted on every node)")
