"""Issue 24 item 3: a sweep on two Ray nodes of this machine, with S3-compatible storage and an MLflow server.

The head is a `ray.cluster_utils.Cluster` head in this process's Ray; the added node is a `ray start`
of its own, in a private mount namespace (`unshare --mount`), carrying the custom resource {"node2": 1}
that the sweep's trials request (`resources.custom_resources`), so every trial runs there.

Both nodes share this machine's filesystem, so the test hides the head's local state from the added
node. The driver's working directory (`head/`: its sweep folder under outputs/sweeps, the Stage 1
run directory) is an empty *read-only* tmpfs in the added node's namespace: a trial that reads a
path of the head's finds nothing, and one that writes there (the old sweep handed trials
`<sweep folder>/runs`) fails with EROFS; either fails the test. The model cache (`cache/`, a path
every node's config names) is a fresh empty tmpfs there, as a second machine's own cache would be:
the trial builds its own tokenizer and can get Stage 1 only from storage. Storage is moto's S3
server (s3://, through pyarrow.fs as on AWS); MLflow is a real server both nodes reach over HTTP.
Last, the sweep is resumed with its local folder deleted: found on S3 and restored from there.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import ray
from ray import cloudpickle
from ray.cluster_utils import Cluster

from r2d.run.distributed import LOCAL_TRAIN_ENV, SHARED_FILESYSTEM_ENV
from r2d.sweep.run import run_sweep
from r2d.sweep.study import Study, SweepOptions, base_config, trial_config
from r2d.train.loop import run
from r2d.train.runtime import Runtime

from .servers import mlflow_server, moto_s3

pytestmark = pytest.mark.slow
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the probe task below, without importing tests/

BUCKET, STUDY = "r2d-two-nodes", "two-nodes"
STEPS, EVAL_EVERY, KILL_AT = 160, 10, 29  # the trial's worker is killed once steps 0..29 are logged
TINY = [
    "data.triage.size=300", "data.max_eval_examples=24", "model.tiny.d_model=32", "model.tiny.d_ff=64",
    "model.tiny.d_kv=8", "model.tiny.num_heads=2", "model.tiny.num_layers=1", "model.tiny.num_decoder_layers=1",
    "stage1.max_steps=4", "stage1.batch_size=8", "stage1.eval_every=2", "stage2.batch_size=8",
    f"stage2.max_steps={STEPS}", f"stage2.eval_every={EVAL_EVERY}", "stage2.patience=100",
    "evaluation.bertscore.enabled=false", "evaluation.max_rationale_tokens=8",
    "resources.max_failures=1", "resources.custom_resources={node2: 1}",
]


def mount_namespace(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/mnt")


def stop_namespace(namespace: str, sig: int = signal.SIGTERM) -> None:
    """Signal, by PID, every process in the added node's mount namespace (its raylet, agents, workers)."""
    if namespace == mount_namespace(os.getpid()):  # never this process's own (everything else's too)
        raise RuntimeError(f"{namespace} is the test's own mount namespace, not the added node's")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns" / "mnt") == namespace:
                    os.kill(int(entry.name), sig)
            except OSError:
                pass


def start_added_node(address: str, hidden: Path, own_cache: Path, log: Path) -> subprocess.Popen:
    ray_bin = Path(sys.executable).with_name("ray")
    resources = json.dumps({"node2": 1})
    script = (f"mount -t tmpfs -o ro tmpfs '{hidden}' && mount -t tmpfs tmpfs '{own_cache}' && "
              f"exec '{ray_bin}' start --address={address} --num-cpus=1 --resources='{resources}' "
              "--node-ip-address=127.0.0.1 --disable-usage-stats --block")
    with open(log, "w") as out:
        return subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                stdout=out, stderr=out, start_new_session=True)


def stop_added_node(node: subprocess.Popen, namespace: str | None) -> None:
    """`ray start --block` and every process of its namespace: SIGTERM, then SIGKILL what is left."""
    if namespace is None and node.poll() is None:  # it never joined: its namespace is its PID's
        try:
            namespace = mount_namespace(node.pid)
        except OSError:  # gone meanwhile
            return
    if namespace is None or namespace == mount_namespace(os.getpid()):
        return
    stop_namespace(namespace)
    try:
        node.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    stop_namespace(namespace, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """moto S3 + bucket, a Cluster head (1 CPU), the added node ({"node2": 1}, 1 CPU, own namespace) and
    an MLflow server (sqlite behind it, artifacts kept by the server), all stopped by PID at the end."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--mount", "true"]).returncode != 0:
        pytest.skip("needs `unshare --mount` (root or CAP_SYS_ADMIN) to hide the head's folder from the added node")
    tmp = tmp_path_factory.mktemp("two-nodes")
    head, cache = tmp / "head", tmp / "cache"
    head.mkdir()
    cache.mkdir()
    with pytest.MonkeyPatch.context() as mp, moto_s3(tmp) as endpoint, ExitStack() as stack:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint,
                           "RAY_AUTH_MODE": "disabled", **LOCAL_TRAIN_ENV}.items():
            mp.setenv(key, value)  # both nodes' processes inherit these: S3 is reached as on AWS
        mp.delenv(SHARED_FILESYSTEM_ENV, raising=False)  # the guard must see real shared storage
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        if ray.is_initialized():
            ray.shutdown()
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        node = start_added_node(c.address, head, cache, tmp / "node2.log")
        namespace = None
        try:  # the MLflow server starts while the added node does
            mlflow = stack.enter_context(mlflow_server(f"sqlite:///{tmp / 'mlflow.db'}", tmp / "artifacts", 1))
            ray.init(address=c.address, log_to_driver=False)
            deadline = time.time() + 90
            while sum(n["Alive"] for n in ray.nodes()) < 2:
                assert time.time() < deadline and node.poll() is None, (tmp / "node2.log").read_text()[-2000:]
                time.sleep(0.5)
            namespace = mount_namespace(node.pid)
            node2 = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "node2" in n["Resources"])
            yield {"head": head, "cache": cache, "node2": node2, "namespace": namespace, "tmp": tmp, "mlflow": mlflow}
        finally:
            ray.shutdown()
            stop_added_node(node, namespace)
            c.shutdown()


@ray.remote(num_cpus=0, resources={"node2": 0.01})
def probe(head: str, cache: str) -> dict:
    """What the added node sees of the head's folder and of the model cache."""
    try:
        open(os.path.join(head, "written-by-node2"), "w").close()
        writable = True
    except OSError:
        writable = False
    return {"node": ray.get_runtime_context().get_node_id(), "head": os.listdir(head), "cache": os.listdir(cache),
            "head_writable": writable}


def bucket_keys(prefix: str) -> list[str]:
    import boto3

    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def stage1_done() -> dict[str, object]:
    """The Stage 1 store's DONE markers on S3, each with its last-modified time."""
    import boto3

    s3 = boto3.client("s3")
    return {k: s3.head_object(Bucket=BUCKET, Key=k)["LastModified"]
            for k in bucket_keys("sweeps/stage1/") if k.endswith("/DONE")}


def kill_trial_after_checkpoint(uri: str, namespace: str, found: dict, stop: threading.Event) -> None:
    """SIGKILL the trial's process once Stage 2 steps 0..KILL_AT are logged: MetricLogger logs a report's
    steps only after its checkpoint is in storage, so at least one checkpoint is there by then."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    while not stop.is_set() and "killed" not in found:
        exp = client.get_experiment_by_name(STUDY)
        for r in client.search_runs([exp.experiment_id]) if exp else []:
            if r.data.tags.get("r2d.kind") == "sweep" or "r2d.trial_pid" not in r.data.tags:
                continue
            steps = [m.step for m in client.get_metric_history(r.info.run_id, "stage2/step")]
            if steps and max(steps) >= KILL_AT:
                pid = int(r.data.tags["r2d.trial_pid"])
                found["namespace"] = mount_namespace(pid)
                os.kill(pid, signal.SIGKILL)
                found.update(killed=pid, at=max(steps))
        time.sleep(0.2)


def test_sweep_on_two_nodes_with_s3_storage_resumes_a_killed_trial(cluster, monkeypatch):
    head, tmp, mlflow_server = cluster["head"], cluster["tmp"], cluster["mlflow"]
    (head / "marker").write_text("the head's")
    seen = ray.get(probe.remote(str(head), str(cluster["cache"])))  # the isolation is real
    assert seen == {"node": cluster["node2"], "head": [], "cache": [], "head_writable": False}

    monkeypatch.chdir(head)  # the driver's working directory: its local sweep folder lands here
    storage = f"s3://{BUCKET}/sweeps"
    study = Study(STUDY, "configs/triage-tiny-sweep.yaml", grid={"stage2.schedule.shape": ["linear"]}, seeds=[0])
    study.config = str(Path(__file__).resolve().parents[1] / study.config)
    opts = SweepOptions(address=ray.get_runtime_context().gcs_address, storage_path=storage,
                        tracking_uri=mlflow_server, analysis=False,
                        overrides=TINY + [f"model.cache_dir={cluster['cache']}"])
    # Stage 1, trained once, here on the head (this driver process), into the store on S3
    cfg = trial_config(base_config(study, opts), {"stage2.schedule.shape": "linear"}, 0)
    run(cfg, head / "stage1-run", Runtime(), stage1_only=True)
    shutil.rmtree(head / "stage1-run")
    stage1 = stage1_done()
    assert len(stage1) == 1

    found: dict = {}
    stop = threading.Event()
    killer = threading.Thread(target=kill_trial_after_checkpoint,
                              args=(mlflow_server, cluster["namespace"], found, stop), daemon=True)
    killer.start()
    try:
        summary = run_sweep(study, opts)  # the main thread: run_sweep installs a SIGTERM handler
    finally:
        stop.set()
        killer.join(timeout=10)

    assert summary["sweep_uri"] == f"{storage}/{summary['sweep_id']}"
    assert [r["status"] for r in summary["table"]] == ["TERMINATED"]
    assert "killed" in found, "the trial finished before its worker could be killed"
    assert found["namespace"] == cluster["namespace"]  # the killed process was the added node's

    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name(STUDY).experiment_id])
    parents = [r for r in runs if r.data.tags.get("r2d.kind") == "sweep"]
    kids = [r for r in runs if r.data.tags.get("r2d.kind") != "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(kids) == 1 and kids[0].info.status == "FINISHED"  # the restarted trial continued its run
    metrics = json.loads(Path(client.download_artifacts(kids[0].info.run_id, "metrics.json",
                                                        str(tmp / "dl"))).read_text())
    worker = metrics["runtime"]["workers"][0]
    assert metrics["runtime"]["path"] == "tune_trial" and worker["node_id"] == cluster["node2"]
    assert worker["pid"] != found["killed"]  # a new trial process ...
    resumed = metrics["stage2"]["resumed_at_step"]  # ... that went on from a checkpoint, not from step 0
    assert resumed is not None and KILL_AT <= resumed <= found["at"] + EVAL_EVERY
    steps = [m.step for m in client.get_metric_history(kids[0].info.run_id, "stage2/step")]
    assert sorted(steps) == list(range(metrics["stage2"]["steps"])) == list(range(STEPS))
    # Stage 1 was trained once: the added node fetched it from S3 (its cache is empty, the head's folder
    # hidden), and trained none of its own (that would have published it again: a newer DONE)
    assert metrics["stage1"]["resumed_in_stage2"] and metrics["stage1"]["location"].startswith(f"{storage}/stage1/")
    assert f"/{metrics['stage1']['key']}/" in next(iter(stage1)) and stage1_done() == stage1

    keys = bucket_keys(f"sweeps/{summary['sweep_id']}/")
    assert f"sweeps/{summary['sweep_id']}/sweep.json" in keys
    assert any("/stage2/" in k and "/checkpoint_" in k for k in keys)  # the trial's checkpoints
    assert any(k.endswith("/result.json") for k in keys)  # and its results
    assert not any(f"/{summary['sweep_id']}/stage1/" in k for k in keys)  # phase 1 found Stage 1 stored
    # the head's folder holds only the driver's own files: nothing a trial wrote
    local = Path(summary["sweep_dir"])
    assert local.parent == head / "outputs" / "sweeps" and not (local / "runs").exists()
    assert sorted(p.name for p in head.iterdir()) == ["marker", "outputs"]

    # --resume from storage alone (the driver's folder deleted): the sweep is found on S3 and Tune restores
    # its finished experiment from there; nothing is trained again
    shutil.rmtree(local)
    again = run_sweep(study, dataclasses.replace(opts, resume=True))
    assert again["sweep_id"] == summary["sweep_id"] and [r["status"] for r in again["table"]] == ["TERMINATED"]
    after = client.search_runs([kids[0].info.experiment_id])
    assert [r.info.run_id for r in after if r.data.tags.get("r2d.kind") != "sweep"] == [kids[0].info.run_id]
    assert stage1_done() == stage1
