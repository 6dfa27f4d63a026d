"""Issue 24 item 5: both cluster files pass Ray's own cluster config schema, and carry every setting the
sweep relies on: shared (s3://) storage, the head's MLflow server on PostgreSQL as the tracking URI, the
Postgres start-up, the ports, resources per node type, and the password only from a secrets file."""

import re

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

FILES = ["cluster.yaml", "cluster-onprem.yaml"]


def load(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def commands(cfg: dict, key: str) -> str:
    return "\n".join(cfg.get(key) or [])


@pytest.mark.parametrize("path", FILES)
def test_ray_schema_accepts_the_file(path):
    # as `ray up` does: Ray's defaults filled in (prepare_config), then its schema and checks applied
    validate_config(prepare_config(load(path)))  # raises on an unknown or mistyped key


def test_ray_schema_is_really_applied():
    bad = {**load("cluster.yaml"), "head_start_ray_comands": []}  # a typo Ray must reject
    with pytest.raises(Exception, match="head_start_ray_comands"):
        validate_config(prepare_config(bad))


@pytest.mark.parametrize("path", FILES)
def test_every_setting_the_sweep_relies_on_is_there(path):
    cfg = load(path)
    setup, head_setup = commands(cfg, "setup_commands"), commands(cfg, "head_setup_commands")
    head_start, worker_start = commands(cfg, "head_start_ray_commands"), commands(cfg, "worker_start_ray_commands")
    assert re.search(r"export R2D_STORAGE=s3://", setup), "storage: s3:// on every node"
    assert re.search(r"export MLFLOW_TRACKING_URI=http://[^:]+:5000", head_setup), "tracking: the head's server"
    assert "apt-get install" in head_setup and "postgresql" in head_setup and "CREATE DATABASE mlflow" in head_setup
    assert "--port=6379" in head_start and ":6379" in worker_start, "Ray's GCS port, head and workers"
    store = 'MLFLOW_BACKEND_STORE_URI="postgresql+psycopg://mlflow:${R2D_PG_PASSWORD}@127.0.0.1:5432/mlflow"'
    assert store in head_start
    assert "--port 5000" in head_start and "--artifacts-destination s3://" in head_start
    assert "--backend-store-uri" not in head_start, "the URI with its password stays off argv"
    assert "sqlite" not in head_start
    assert cfg["file_mounts"]["~/.r2d-secrets"] == "~/.r2d-secrets", "the password comes from a secrets file"
    assert "R2D_PG_PASSWORD=" not in open(path, encoding="utf-8").read().replace("echo \"export R2D_PG_PASSWORD=", "")
    if cfg["provider"]["type"] != "local":  # the local provider takes the machines as they are
        for name, node in cfg["available_node_types"].items():
            assert node["resources"].get("CPU", 0) > 0, f"{name}: resources per node"
