"""Ray Train (real local Ray, gloo DDP on CPU) and MLflow (a real server on 127.0.0.1)."""

import json
import os
import signal
import threading
import time

import pytest

from r2d.config import load_config
from r2d.run import runner
from r2d.run.distributed import LOCAL_TRAIN_ENV

from .conftest import tiny_overrides

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def local_train_env():
    """The Train settings `r2d` gives a Ray it starts (r2d/run/distributed.py), for these tests' own Rays too:
    no preemption watcher or metrics actors, 0.5 s polling; each fit() starts seconds sooner."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in LOCAL_TRAIN_ENV.items():
            mp.setenv(key, value)
        yield


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield
    ray.shutdown()


def cfg_for(cache_dir, tmp, uri, **extra):
    base = {"resources.storage_path": str(tmp / "storage"), "tracking.enabled": "true",
            "tracking.tracking_uri": uri, "tracking.experiment": "test-distributed",
            "resources.cpus_per_worker": 0.5}
    base.update(extra)
    return load_config(None, tiny_overrides(cache_dir, **base))


def history(uri, run_id, key):
    from mlflow import MlflowClient

    return [(m.step, m.value) for m in MlflowClient(uri).get_metric_history(run_id, key)]


def test_two_workers_match_one_worker(ray_local, cache_dir, tmp_path, mlflow_server):
    """Same global batch split over 2 ranks; per-example losses averaged: same steps as 1 worker.

    Tolerance: the only difference is float32 summation order in gloo's all-reduce (about 1e-7
    relative per step); after 6 Adam steps losses agree to 1e-4 and predictions exactly.
    """
    one = runner.train(cfg_for(cache_dir, tmp_path, mlflow_server, **{"resources.num_workers": 1}), tmp_path / "one",
                       on_ray=True)
    assert one["runtime"]["world_size"] == 1
    two = runner.train(cfg_for(cache_dir, tmp_path, mlflow_server, **{"resources.num_workers": 2}), tmp_path / "two",
                       on_ray=True)
    assert two["runtime"]["world_size"] == 2 and len(two["runtime"]["workers"]) == 2
    run1 = json.loads((tmp_path / "one/run.json").read_text())["mlflow_run_id"]
    run2 = json.loads((tmp_path / "two/run.json").read_text())["mlflow_run_id"]
    h1, h2 = history(mlflow_server, run1, "stage2/loss"), history(mlflow_server, run2, "stage2/loss")
    assert [s for s, _ in h1] == [s for s, _ in h2] == list(range(6))
    for (_, a), (_, b) in zip(h1, h2):
        assert a == pytest.approx(b, rel=1e-4)
    # evaluation covers the whole test split on both (each worker decodes a shard, gathered)
    p1 = (tmp_path / "one/predictions/test.csv").read_text().splitlines()
    p2 = (tmp_path / "two/predictions/test.csv").read_text().splitlines()
    assert len(p1) == len(p2) == 25
    assert [r.split(",")[:3] for r in p1] == [r.split(",")[:3] for r in p2]


def test_mlflow_run_over_http_is_complete(ray_local, cache_dir, tmp_path, mlflow_server):
    from mlflow import MlflowClient

    cfg = cfg_for(cache_dir, tmp_path, mlflow_server, seed=3)
    runner.train(cfg, tmp_path / "run")
    run_id = json.loads((tmp_path / "run/run.json").read_text())["mlflow_run_id"]
    c = MlflowClient(mlflow_server)
    run = c.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["stage2.schedule.shape"] == "linear" and run.data.params["seed"] == "3"
    assert run.data.tags["r2d.variant"] == "r2d" and run.data.tags["r2d.seed"] == "3"
    assert "test/macro_f1" in run.data.metrics and "best_dev_macro_f1" in run.data.metrics
    assert [s for s, _ in history(mlflow_server, run_id, "stage2/p")] == list(range(6))
    assert [s for s, _ in history(mlflow_server, run_id, "stage2/dev_macro_f1")] == [2, 5]
    names = {a.path for a in c.list_artifacts(run_id)} | {a.path for a in c.list_artifacts(run_id, "predictions")}
    assert {"run.json", "config.yaml", "metrics.json", "predictions/test.csv"} <= names


def test_nan_loss_under_ray_ends_failed_with_reason(ray_local, cache_dir, tmp_path, mlflow_server):
    from mlflow import MlflowClient

    cfg = cfg_for(cache_dir, tmp_path, mlflow_server, **{"debug.inject_nan_at_step": 1, "resources.max_failures": 0})
    with pytest.raises(Exception, match="non-finite loss"):
        runner.train(cfg, tmp_path / "nan", on_ray=True)
    record = json.loads((tmp_path / "nan/run.json").read_text())
    assert record["status"] == "FAILED"
    runs = MlflowClient(mlflow_server).search_runs(
        [MlflowClient(mlflow_server).get_experiment_by_name("test-distributed").experiment_id],
        filter_string="attributes.status = 'FAILED'")
    assert any("non-finite loss" in r.data.tags.get("r2d.error", "") for r in runs)


def test_killed_worker_resumes_without_repeating_steps(ray_local, cache_dir, tmp_path):
    """Kill the Ray Train worker by PID mid-run: it restarts from the last checkpoint and every
    Stage 2 step appears exactly once in the logged step sequence."""
    from ray._private import state  # the GCS's actor table; the state API would need the dashboard

    uri = f"sqlite:///{tmp_path / 'kill.db'}"
    cfg = cfg_for(cache_dir, tmp_path, uri, seed=5, **{"resources.num_workers": 1, "resources.max_failures": 2,
                                                        "stage2.max_steps": 120, "stage2.eval_every": 10,
                                                        "stage2.batch_size": 16})
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(runner.train(cfg, tmp_path / "killed", on_ray=True)),
                              daemon=True)
    thread.start()
    from mlflow import MlflowClient

    killed_pid = None
    deadline = time.time() + 240
    while time.time() < deadline and thread.is_alive():
        c = MlflowClient(uri)
        exp = c.get_experiment_by_name("test-distributed")
        runs = c.search_runs([exp.experiment_id]) if exp else []
        steps = history(uri, runs[0].info.run_id, "stage2/step") if runs else []
        if steps and max(s for s, _ in steps) >= 19:  # two checkpoints are in
            actors = [a for a in state.actors().values()
                      if a["ActorClassName"] == "RayTrainWorker" and a["State"] == "ALIVE"]
            if actors:
                killed_pid = actors[0]["Pid"]
                os.kill(killed_pid, signal.SIGKILL)
                break
        time.sleep(0.3)
    thread.join(timeout=300)
    assert killed_pid is not None, "the run finished before the worker could be killed"
    assert result, "the run did not complete after the worker was killed"
    run_id = json.loads((tmp_path / "killed/run.json").read_text())["mlflow_run_id"]
    steps = [s for s, _ in history(uri, run_id, "stage2/step")]
    ran = result["stage2"]["steps"]  # 120, or fewer if early stopping ended it
    assert sorted(steps) == list(range(ran)), "a step was logged twice or skipped"
    assert MlflowClient(uri).get_run(run_id).info.status == "FINISHED"


def test_workers_on_two_nodes(tmp_path, cache_dir):
    """A local two-node Ray cluster (one CPU each): a 2-worker training spans both nodes."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address)
        cfg = load_config(None, tiny_overrides(cache_dir, **{
            "resources.num_workers": 2, "resources.cpus_per_worker": 1, "resources.storage_path": str(tmp_path)}))
        summary = runner.train(cfg, tmp_path / "multi", on_ray=True)
        nodes = {w["node_id"] for w in summary["runtime"]["workers"]}
        assert len(nodes) == 2
        assert (tmp_path / "multi/predictions/test.csv").exists()
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_ray_cold_and_warm_stage1_store_match_in_process(ray_local, cache_dir, tmp_path):
    """Under Ray Train too, Stage 2 depends on the Stage 1 result, not on whether it was cached."""
    extra = {"resources.storage_path": str(tmp_path / "storage"), "resources.cpus_per_worker": 1,
             "stage1.cache_dir": str(tmp_path / "store"), "model.tiny.dropout_rate": 0.2, "seed": 23}
    cfg = load_config(None, tiny_overrides(cache_dir, **extra))
    cold = runner.train(cfg, tmp_path / "cold", on_ray=True)
    warm = runner.train(cfg, tmp_path / "warm", on_ray=True)
    runner.train(cfg, tmp_path / "here")
    assert cold["stage1"]["reused"] is False and warm["stage1"]["reused"] is True
    predictions = {name: (tmp_path / name / "predictions/test.csv").read_bytes() for name in ("cold", "warm", "here")}
    assert predictions["cold"] == predictions["warm"] == predictions["here"]

