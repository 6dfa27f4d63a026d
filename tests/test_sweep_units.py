"""The sweep's pure pieces: grids, trial keys, per-trial configs and the Stage 1 plan."""

import pytest

from r2d.config import load_config, read_config
from r2d.sweep.cli import format_table, print_summary, runs_table_link
from r2d.sweep.placement import trials_that_fit
from r2d.sweep.plan import PlannedTrial, plan_trials, stage1_points, study_question
from r2d.sweep.run import SweepFailed, check_something_finished
from r2d.sweep.study import Study, grid_points, trial_config, trial_key

BASE = load_config("configs/triage-tiny-sweep.yaml")
RAW = read_config("configs/triage-tiny-sweep.yaml")


def test_grid_is_the_full_factorial():
    points = grid_points({"a": [1, 2, 3], "b": ["x", "y"]})
    assert len(points) == 6 and {"a": 3, "b": "y"} in points


def test_trial_config_applies_overrides_and_seed():
    cfg = trial_config(RAW, {"stage2.schedule.shape": "step", "data.rationale_source": "nurse"}, 7)
    assert (cfg.stage2.schedule.shape, cfg.data.rationale_source, cfg.seed) == ("step", "nurse", 7)
    assert trial_key({"x": 1}, 0) == trial_key({"x": 1}, 0) != trial_key({"x": 1}, 1)


def test_stage1_plan_one_per_seed_and_source():
    per_seed = {**RAW, "stage1": {**RAW["stage1"], "seed": None}}  # each seed its own Stage 1

    def stage1_of(study, raw=per_seed):
        return stage1_points(plan_trials([study_question(study)], raw))

    schedule = Study("s", "unused", grid={"stage2.schedule.shape": ["linear", "step"],
                                          "stage2.schedule.transition": [0.3, 0.6]}, seeds=[0, 1])
    assert len(stage1_of(schedule)) == 2  # 8 configs x 2 seeds share 2
    assert len(stage1_of(schedule, RAW)) == 1  # the preset's fixed stage1.seed: one for the study
    sources = Study("r", "unused", grid={"variant": ["r2d", "dss"], "data.rationale_source": ["llm", "nurse"]},
                    seeds=[0, 1, 2])
    points = stage1_of(sources)
    assert len(points) == 6  # dss has no Stage 1; r2d: 2 sources x 3 seeds
    assert len(stage1_of(sources, RAW)) == 2  # a shared Stage 1 per rationale source
    assert all(set(p["overrides"]) == {"data.rationale_source"} for p in points)
    assert stage1_of(Study("n", "unused", grid={"variant": ["sft", "combined_ft"]})) == []


def test_table_lists_every_trial():
    rows = [{"settings": {"stage2.schedule.shape": "linear", "seed": 0}, "status": "TERMINATED", "health": "healthy",
             "objective": 0.5,
             "test_macro_f1": 0.4, "test_accuracy": 0.6, "test_bleu": 30.0, "test_bertscore_f1": None},
            {"settings": {"stage2.schedule.shape": "step", "seed": 0}, "status": "ERROR", "objective": None,
             "test_macro_f1": None, "test_accuracy": None, "test_bleu": None, "test_bertscore_f1": None}]
    table = format_table(rows)
    assert table.count("\n") == 3 and "| 0 | linear | TERMINATED | healthy | 0.5000 | 0.4000 |" in table


def test_concurrency_leaves_room_for_workers_wherever_drivers_land():
    two_small_nodes = [{"CPU": 1.0}, {"CPU": 1.0}]
    # 0.1-CPU drivers + 0.9-CPU workers: two drivers on one node leave it 0.8, no room for a worker
    assert trials_that_fit(two_small_nodes, {"CPU": 0.1}, 1, {"CPU": 0.9}) == 1
    assert trials_that_fit(two_small_nodes, {"CPU": 0.05}, 1, {"CPU": 0.9}) == 2
    assert trials_that_fit([{"CPU": 2.0}], {"CPU": 0.1}, 1, {"CPU": 0.9}) == 2
    assert trials_that_fit([{"CPU": 2.0}], {"CPU": 0.1}, 2, {"CPU": 0.9}) == 1
    assert trials_that_fit([{"CPU": 1.0}], {"CPU": 0.1}, 1, {"CPU": 1.0}) == 0
    gpu_worker = {"CPU": 2.0, "GPU": 1.0}
    gpu_nodes = [{"CPU": 8.0, "GPU": 4.0}] * 2
    assert trials_that_fit(gpu_nodes, {"CPU": 1.0}, 2, gpu_worker) == 2  # CPU-bound: 3 drivers leave 2 slots a node
    assert trials_that_fit([{"CPU": 64.0, "GPU": 4.0}] * 2, {"CPU": 1.0}, 2, gpu_worker) == 4  # GPU-bound
    assert trials_that_fit([{"CPU": 64.0}], {"CPU": 1.0}, 1, gpu_worker) == 0  # no GPU node at all


def test_worker_resources_are_one_definition():
    r = BASE.resources
    assert r.worker_resources() == {"CPU": 0.9}
    gpu = r.model_copy(update={"use_gpu": True})
    assert gpu.worker_resources() == {"CPU": 0.9, "GPU": 1.0}
    assert gpu.model_copy(update={"gpus_per_worker": 0.5}).worker_resources() == {"CPU": 0.9, "GPU": 0.5}


def test_a_sweep_with_no_finished_trial_fails_with_the_first_error(tmp_path):
    def row(status, error=""):
        return {"settings": {}, "status": status, "error": error}

    planned = [PlannedTrial({}, seed, f"s{seed}", None, 6) for seed in (0, 1)]
    failed = [row("ERROR", "RuntimeError: spiece.model not found"), row("ERROR", "FloatingPointError: nan")]
    first_in_order = r"no trial finished \(2 failed; first error: RuntimeError: spiece.model not found\)"
    with pytest.raises(SweepFailed, match=first_in_order):
        check_something_finished(failed, planned, tmp_path)
    check_something_finished([*failed, row("TERMINATED")], planned, tmp_path)  # one finished: analysed
    reused = [PlannedTrial({}, 0, "s0", None, 6, reused_run_id="abc"), planned[1]]
    check_something_finished(failed[:1], reused, tmp_path)  # a reused run is analysed too


def test_summary_links_the_runs_table_in_the_machine_learning_view(capsys):
    """MLflow 3.17.2's UI opens an experiment on the GenAI traces view without ?workflowType=machine_learning."""
    summary = {"sweep_id": "sw-1", "table": [], "concurrency": 1, "timings": {"total_s": 3.0}, "report": None,
               "sweep_dir": "/tmp/sw-1", "tracking_uri": "sqlite:////tmp/mlflow.db", "experiment_id": "7"}
    print_summary(summary)
    out = capsys.readouterr().out.splitlines()
    assert "browse:  mlflow ui --backend-store-uri sqlite:////tmp/mlflow.db --host 127.0.0.1 --port 5000" in out
    assert "runs:    http://127.0.0.1:5000/#/experiments/7?workflowType=machine_learning" in out
    # an MLflow server serves its own UI: the link goes there
    assert runs_table_link("http://head:5000/", "3") == "http://head:5000/#/experiments/3?workflowType=machine_learning"
    print_summary({k: v for k, v in summary.items() if k != "experiment_id"})  # an older summary: no link
    assert "runs:" not in capsys.readouterr().out
