"""Shared fixtures. Tests read real PubMedQA from ../shared (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .servers import free_port  # noqa: F401  (tests import it from here)
from .servers import mlflow_server as start_mlflow_server

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("R2D_SHARED", ROOT.parent / "shared"))
PUBMEDQA = SHARED / "data" / "pubmedqa"

os.chdir(ROOT)  # configs/ and relative cache paths resolve from the repo root
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# One auth mode for every Ray this test process starts or joins. Observed: after test_distributed's
# default ray.init in this process, test_two_nodes' no-token cluster logged "Missing authorization
# header" from the driver, the GCS declared the driver failed and cancelled every actor it created;
# alone, or with this setting, it passes. These clusters are on 127.0.0.1 only.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# Longest first. `make test` runs `-n 2 --dist loadfile`: a file runs whole on one worker (its module
# fixtures, e.g. test_sweeps' two-node Ray cluster, start once), so the files that take minutes start
# at once and the many short ones fill in beside them; collected last, test_sweeps alone was the tail.
HEAVY_FIRST = ("test_sweeps.py", "test_sweep_search.py", "test_distributed.py", "test_train.py", "test_reproducible.py",
               "test_two_nodes.py", "test_gpu_path_cpu.py", "test_analysis_e2e.py", "test_tracking_load.py")


def pytest_collection_modifyitems(items: list) -> None:
    rank = {name: index for index, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def pubmedqa_dir() -> Path:
    if not (PUBMEDQA / "ori_pqal.json").exists():
        pytest.fail(f"PubMedQA not found at {PUBMEDQA}: the shared data must sit beside the repo")
    return PUBMEDQA


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One model cache (tokenizers, Stage 1 results) for the whole session."""
    return tmp_path_factory.mktemp("r2d-cache")


def tiny_overrides(cache_dir: Path, **extra) -> list[str]:
    """A config small enough for a unit test: a few steps on a few hundred synthetic examples."""
    base = {
        "data.dataset": "triage",
        "data.triage.size": 300,
        "data.max_input_tokens": 64,
        "data.max_target_tokens": 32,
        "data.max_eval_examples": 24,
        "model.cache_dir": str(cache_dir),
        "stage1.cache_dir": str(cache_dir / "stage1"),
        "resources.storage_path": str(cache_dir / "ray"),
        "model.tiny.d_model": 32,
        "model.tiny.d_ff": 64,
        "model.tiny.d_kv": 8,
        "model.tiny.num_heads": 2,
        "model.tiny.num_layers": 1,
        "model.tiny.num_decoder_layers": 1,
        "model.tiny.dropout_rate": 0.0,
        "stage1.max_steps": 4,
        "stage1.batch_size": 8,
        "stage1.eval_every": 2,
        "stage1.lr": 1e-3,
        "stage2.max_steps": 6,
        "stage2.batch_size": 8,
        "stage2.eval_every": 3,
        "stage2.lr": 1e-3,
        "stage2.schedule.warmup": 0.0,
        "stage2.schedule.transition": 0.5,
        "evaluation.splits": "[test]",
        "evaluation.batch_size": 24,
        "evaluation.max_rationale_tokens": 8,
        "evaluation.bertscore.enabled": "false",
        "resources.torch_threads": 1,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def stop_pid(proc, timeout: float = 20.0) -> None:
    """SIGTERM the process (group) we started, then SIGKILL if it lingers."""
    import signal
    import subprocess

    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)



@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1 (sqlite backend, one worker), stopped by PID at the end."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with start_mlflow_server(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts", workers=1) as url:
        yield url
