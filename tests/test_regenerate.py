"""`r2d regenerate` re-trains a recorded run and compares its predictions byte for byte."""

from __future__ import annotations

import json

from r2d.cli import main
from r2d.config import load_config
from r2d.run import runner
from r2d.run.regenerate import setting_differences

from .conftest import tiny_overrides


def test_regenerate_a_recorded_run_is_identical(cache_dir, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = load_config(None, tiny_overrides(cache_dir, **{"tracking.enabled": "true", "tracking.tracking_uri": uri,
                                                        "seed": 4}))
    runner.train(cfg, tmp_path / "run")
    run_id = json.loads((tmp_path / "run/run.json").read_text())["mlflow_run_id"]
    capsys.readouterr()
    code = main(["regenerate", "--run-id", run_id, "--tracking-uri", uri, "--out", str(tmp_path / "again")])
    assert capsys.readouterr().out.splitlines()[0] == "identical" and code == 0


def test_differences_name_the_recorded_settings():
    recorded = {"r2d.env.torch": "2.12.0", "r2d.env.cpu_model": "A", "r2d.env.MKL_CBWR": "AVX2", "r2d.seed": "0"}
    here = {"r2d.env.torch": "2.13.0", "r2d.env.cpu_model": "A"}
    assert setting_differences(recorded, here) == ["MKL_CBWR: recorded AVX2, here (unset)",
                                                   "torch: recorded 2.12.0, here 2.13.0"]


def test_unknown_run_id_is_one_line(tmp_path, capsys):
    code = main(["regenerate", "--run-id", "0" * 32, "--tracking-uri", f"sqlite:///{tmp_path / 'empty.db'}"])
    ours = [line for line in capsys.readouterr().err.splitlines() if line.startswith("r2d:")]  # not MLflow's logs
    assert code == 2 and len(ours) == 1 and ours[0].startswith("r2d: error: --run-id 000") and "not found" in ours[0]
