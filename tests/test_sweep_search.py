"""Sweeps that choose their trials, end to end on the same kind of two-node local Ray cluster as
test_sweeps.py (a file of its own so that `make test`'s two workers each run one of the long sweep files):
an Optuna search whose trials drive Ray Train, and --until-decided's planned looks."""

import json
from pathlib import Path

import pytest

from . import test_sweeps
from .test_sweeps import children, run_sweep

# test_sweeps' fixture under its own name here: this module starts (and stops) a cluster of its own, so
# the two files can run at the same time on the suite's two workers
ray_cluster = test_sweeps.ray_cluster

pytestmark = pytest.mark.slow


def test_optuna_sweep_runs_each_configuration_on_every_seed(ray_cluster, tmp_path):
    # the schedule without Stage 1 (r2d_no_stage1): the search is what is tested, not the Stage 1 phase;
    # two workers per trial: the trial drives Ray Train's TorchTrainer (DDP across the two nodes)
    run_sweep("schedule_sensitivity.py", tmp_path, ray_cluster, "--search", "optuna", "--samples", "2",
              "--seeds", "0", "1", "--set", "variant=r2d_no_stage1", "--set", "resources.num_workers=2",
              "--set", "resources.cpus_per_worker=0.45")
    c, parents, kids = children(tmp_path, "schedule_sensitivity")
    finished = [k for k in kids if k.info.status == "FINISHED"]
    assert len(finished) == 4  # 2 configurations x 2 seeds, each seed its own MLflow run
    metrics = c.download_artifacts(finished[0].info.run_id, "metrics.json", str(tmp_path / "dl"))
    runtime = json.loads(Path(metrics).read_text())["runtime"]
    assert runtime["world_size"] == 2 and runtime.get("path") != "tune_trial"
    by_trial = {}
    for k in finished:
        by_trial.setdefault(k.data.tags["r2d.trial_id"], set()).add(k.data.tags["r2d.seed"])
    assert len(by_trial) == 2 and all(seeds == {"0", "1"} for seeds in by_trial.values())
    space = json.loads((next((tmp_path / "storage").glob("schedule_sensitivity-*")) / "search_space.json")
                       .read_text())
    assert space["optuna"] and space["samples"] == 2


def test_until_decided_runs_planned_looks_and_records_the_design(ray_cluster, tmp_path):
    """--until-decided on two configurations, one look of 3 seeds (--max-seeds 3): the look trains both
    sides, the adaptive parent run holds the design, the look's table and the state, and whatever is
    still open at the last look ends undecided with its reason."""
    out = run_sweep("schedule_sensitivity.py", tmp_path, ray_cluster, "--grid", "stage2.schedule.shape=linear",
                    "--grid", "stage2.schedule.transition=0.3,0.6", "--until-decided", "--max-seeds", "3")
    assert "| metric | system | decision |" in out and "O'Brien-Fleming" in out
    c, parents, kids = children(tmp_path, "schedule_sensitivity")
    adaptive = [r for r in c.search_runs([c.get_experiment_by_name("schedule_sensitivity").experiment_id])
                if r.data.tags.get("r2d.kind") == "adaptive"]
    assert len(adaptive) == 1 and adaptive[0].info.status == "FINISHED"
    trainings = [k for k in kids if k.data.tags.get("r2d.kind") != "adaptive"]
    assert len([k for k in trainings if k.info.status == "FINISHED"]) == 6  # 2 configurations x 3 seeds
    assert all(p.data.tags["r2d.adaptive_id"] == adaptive[0].data.tags["r2d.adaptive_id"] for p in parents)
    names = {a.path for a in c.list_artifacts(adaptive[0].info.run_id)}
    assert {"state.json", "look-1.md"} <= names
    record = json.loads(Path(c.download_artifacts(adaptive[0].info.run_id, "state.json", str(tmp_path / "dl")))
                        .read_text())
    assert record["looks_done"] == 1 and list(record["states"]) == ["schedule_sensitivity"]  # one family
    state = json.loads(record["states"]["schedule_sensitivity"])
    assert state["looks_done"] == 1 and state["design"]["looks"] == [3]
    for comparison in state["comparisons"]:
        assert comparison["status"] in ("better", "worse", "equivalent", "undecided")
        assert comparison["status"] != "undecided" or "maximum seeds" in comparison["reason"]
