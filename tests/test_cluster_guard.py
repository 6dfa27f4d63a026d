"""Issue 24 item 4: a sweep against a Ray cluster of more than one node refuses a storage path local to
the head, or a sqlite tracking store, in one line and before anything (sweep folder, MLflow store) exists."""

import pytest
import ray
from ray.cluster_utils import Cluster

from r2d.overrides import ConfigError
from r2d.run.distributed import SHARED_FILESYSTEM_ENV, refuse_local_state_on_cluster
from r2d.sweep.run import run_sweep
from r2d.sweep.study import Study, SweepOptions


@pytest.fixture(scope="module")
def two_nodes():
    """A real two-node Ray cluster on this machine (the added node carries a custom resource)."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1, resources={"worker_node": 1})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_shared_storage_and_a_tracking_server_pass(two_nodes):
    assert sum(n["Alive"] for n in ray.nodes()) == 2
    refuse_local_state_on_cluster("s3://r2d-bucket/sweeps", "http://127.0.0.1:5000")


@pytest.mark.parametrize(
    "storage, uri, named",
    [
        ("/work/outputs", "http://127.0.0.1:5000", "resources.storage_path '/work/outputs' is a local path"),
        ("file:///work/outputs", "http://127.0.0.1:5000", "resources.storage_path 'file:///work/outputs'"),
        ("s3://b/p", "sqlite:////work/mlflow.db", "tracking.tracking_uri 'sqlite:////work/mlflow.db' is a local store"),
    ],
)
def test_local_state_is_refused_in_one_line(two_nodes, storage, uri, named, monkeypatch):
    monkeypatch.delenv(SHARED_FILESYSTEM_ENV, raising=False)
    with pytest.raises(ConfigError, match="a Ray cluster of 2 nodes") as err:
        refuse_local_state_on_cluster(storage, uri)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_the_sweep_stops_before_anything_exists(two_nodes, tmp_path, monkeypatch):
    monkeypatch.delenv(SHARED_FILESYSTEM_ENV, raising=False)
    study = Study("guard", "configs/triage-tiny-sweep.yaml", grid={"stage2.schedule.shape": ["linear"]}, seeds=[0])
    opts = SweepOptions(
        address=two_nodes.address,
        storage_path=str(tmp_path / "outputs"),
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        analysis=False,
    )
    with pytest.raises(ConfigError, match="storage_path .* is a local path.*tracking_uri .* is a local store"):
        run_sweep(study, opts)
    assert list(tmp_path.iterdir()) == []  # no sweep folder, no MLflow store


def test_a_path_mounted_on_every_node_can_be_declared(two_nodes, monkeypatch):
    monkeypatch.setenv(SHARED_FILESYSTEM_ENV, "1")  # e.g. NFS, or these two nodes on one machine
    refuse_local_state_on_cluster("/mnt/shared/r2d", "sqlite:////mnt/shared/mlflow.db")
