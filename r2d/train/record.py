"""The run record (run.json) and what identifies a run elsewhere: system, tags, flat final metrics.

Pure bookkeeping over a resolved config and a run's summary (metrics.json); the file format is
r2d/schema.py, the one contract with analysis/.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from r2d import schema
from r2d.config import Config, flatten
from r2d.scoring import health
from r2d.variants import VARIANTS


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# Distributions whose version can change a run's numbers (issue 25): recorded with every training.
VERSIONED = ("torch", "transformers", "ray", "mlflow", "optuna", "sacrebleu", "bert-score")
# Switches that pin PyTorch's CPU code paths (ATen's vector ISA, oneDNN's ISA cap, MKL's reproducibility).
ISA_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict[str, Any]:
    """What a run's numbers may depend on beyond its config: versions, CPU model, the vector path ATen
    took in this process (AVX512, AVX2, DEFAULT, ...) and the ISA switches set."""
    return {"python": platform.python_version(), **{name: _version(name) for name in VERSIONED},
            "git_commit": git_commit(), "cpu_model": cpu_model(),
            "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            **{var: os.environ[var] for var in ISA_ENV if var in os.environ}}


def environment_tags(env: dict[str, Any]) -> dict[str, str]:
    """MLflow tags r2d.env.<name> of environment() (values that are None are left out)."""
    return {f"r2d.env.{name}": str(value) for name, value in env.items() if value is not None}


# Resolved settings that cannot change a result, so they are not part of a system's identity: the
# seed (a system is compared across seeds), names, where things are stored or logged, how many
# processes and threads run it (1 vs 2 DDP workers give identical predictions: tests/test_distributed),
# fault tolerance, which splits are written, and how the LLM judge is reached (its model stays).
# resources.reproducible is one of these: like the thread count it picks how the CPU computes, not
# what is trained (and keeping it out leaves every earlier run's system id as it was).
NOT_IDENTITY = (
    "run_name", "seed", "tracking.", "model.cache_dir", "stage1.cache_dir", "evaluation.splits",
    "resources.num_workers", "resources.use_gpu", "resources.cpus_per_worker", "resources.gpus_per_worker",
    "resources.trial_cpus", "resources.torch_threads", "resources.storage_path", "resources.max_failures",
    "resources.ray_address", "resources.custom_resources.", "resources.reproducible", "evaluation.judge.endpoint",
    "evaluation.judge.api_key_env",
    "evaluation.judge.timeout_s",
)


def system_settings(cfg: Config) -> dict[str, Any]:
    """Every resolved setting that can change a result, flat ("stage2.schedule.cap": 0.9, ...)."""
    # data.labels unset is left out: every system fingerprinted before it existed keeps its id. Declared,
    # it counts (a label declared but absent from a JSONL/CSV file is still a class the model scores).
    return {k: v for k, v in sorted(flatten(cfg.to_dict()).items())
            if not any(k == x or (x.endswith(".") and k.startswith(x)) for x in NOT_IDENTITY)
            and not (k == "data.labels" and v is None)}


def system_id(cfg: Config) -> str:
    """Fingerprint of a system: two runs share it iff they differ in nothing but the seed and bookkeeping."""
    return hashlib.sha256(json.dumps(system_settings(cfg), sort_keys=True).encode()).hexdigest()[:12]


def system_of(cfg: Config) -> dict[str, Any]:
    """The settings that identify a system for analysis: variant, schedule (when it has one), source."""
    system: dict[str, Any] = {"variant": cfg.variant}
    variant = VARIANTS[cfg.variant]
    if variant.objective == "joint" and not variant.overrides:  # r2d / r2d_no_stage1: schedule varies
        sch = cfg.stage2.schedule
        system.update(shape=sch.shape, transition=sch.transition, cap=sch.cap, warmup=sch.warmup)
        if sch.steepness is not None:
            system["steepness"] = sch.steepness
    system["rationale_source"] = cfg.data.rationale_source
    return system


def run_tags(cfg: Config, extra: dict[str, str] | None = None) -> dict[str, str]:
    """MLflow tags of a training's run."""
    tags = {
        "r2d.variant": cfg.variant,
        "r2d.dataset": cfg.data.dataset,
        "r2d.rationale_source": cfg.data.rationale_source,
        "r2d.seed": str(cfg.seed),
        "r2d.schedule_shape": cfg.stage2.schedule.shape,
        "r2d.system_id": system_id(cfg),
    }
    env = environment()
    if env["git_commit"]:
        tags["mlflow.source.git.commit"] = env["git_commit"]
    tags.update(environment_tags(env))
    tags.update(extra or {})
    return tags


def final_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """metrics.json's numbers flattened: {"test/macro_f1": ..., "best_dev_macro_f1": ...}."""
    flat = {f"{split}/{k}": float(v) for split, m in summary.get("splits", {}).items()
            for k, v in m.items() if isinstance(v, (int, float))}
    if "stage2" in summary:  # the model-selection score, the sweep's objective
        flat["best_dev_macro_f1"] = float(summary["stage2"]["best_dev_macro_f1"])
    return flat


def health_tags(flags: dict[str, bool]) -> dict[str, str]:
    """MLflow tags: r2d.health (the unhealthy flags, or "healthy") and one r2d.health.<flag> each."""
    return {"r2d.health": ",".join(health.unhealthy(flags)) or "healthy",
            **{f"r2d.health.{name}": str(value).lower() for name, value in flags.items()}}


def write_run_record(cfg: Config, out_dir: Path, status: str, splits: list[str], labels: list[str],
                     error: str | None = None, **more: Any) -> dict[str, Any]:
    sch = cfg.stage2.schedule
    record = {
        "schema_version": schema.SCHEMA_VERSION,
        "run_name": cfg.run_name or Path(out_dir).name,
        "status": status,
        "variant": cfg.variant,
        "dataset": cfg.data.dataset,
        "rationale_source": cfg.data.rationale_source,
        "seed": cfg.seed,
        "schedule": {"shape": sch.shape, "warmup": sch.warmup, "transition": sch.transition, "cap": sch.cap,
                     "steepness": sch.steepness, "alpha": cfg.stage2.alpha},
        "system": system_of(cfg),
        "system_id": system_id(cfg),
        "settings": system_settings(cfg),  # what system_id fingerprints
        "labels": labels,
        "splits": splits,
        "git_commit": git_commit(),
        "torch_threads": cfg.resources.torch_threads,
        "environment": environment(),
        "sweep_id": None,
        "mlflow_run_id": None,
        **more,
    }
    if error:
        record["error"] = error
    unknown = set(record) - set(schema.RUN_KEYS)
    if unknown:  # the format analysis/ reads is schema.RUN_KEYS: extend it there first
        raise ValueError(f"run.json: keys {sorted(unknown)} are not in r2d.schema.RUN_KEYS")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / schema.RUN_FILE).write_text(json.dumps(record, indent=1))
    return record


def annotate_run_record(out_dir: Path, **fields: Any) -> None:
    path = Path(out_dir) / schema.RUN_FILE
    if path.exists():
        record = json.loads(path.read_text())
        record.update(fields)
        path.write_text(json.dumps(record, indent=1))
