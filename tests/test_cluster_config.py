"""cluster.yaml and cluster-onprem.yaml, checked by Ray's own autoscaler validator (nothing is launched)."""

import copy

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from .conftest import ROOT


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-onprem.yaml"])
def test_launcher_config_is_valid(name):
    config = yaml.safe_load((ROOT / name).read_text())
    prepared = prepare_config(copy.deepcopy(config))  # fills defaults as `ray up` does, then
    validate_config(prepared)  # the autoscaler's JSON schema and its consistency checks
    assert any("scripts/install.sh" in c for c in config["setup_commands"])
    head_cmds = " ".join(config["head_start_ray_commands"])
    assert "ray start --head" in head_cmds and "mlflow server" in head_cmds
    assert "--dashboard-host=127.0.0.1" in head_cmds and "--host 0.0.0.0" not in head_cmds
    assert "~/r2d" in config["file_mounts"]


def test_aws_cluster_has_autoscaling_gpu_workers():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    assert config["provider"]["type"] == "aws"
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    gpu_types = [t for t in config["available_node_types"].values() if t.get("resources", {}).get("GPU")]
    assert gpu_types and all(t["min_workers"] == 0 and t["max_workers"] > 0 for t in gpu_types)
    assert any(t["node_config"].get("InstanceMarketOptions", {}).get("MarketType") == "spot" for t in gpu_types)
    assert "s3://" in " ".join(config["setup_commands"] + config["head_start_ray_commands"])


def test_broken_config_is_rejected():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config["available_node_types"]["gpu_worker"]["max_workers"] = "many"
    with pytest.raises(Exception, match="'many' is not of type 'integer'"):
        validate_config(prepare_config(config))
