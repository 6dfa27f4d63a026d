"""Plans as pure functions: which trials a plan needs, which are shared, which are reused from
MLflow; the referee's composition; --dry-run starts nothing and creates nothing."""

import dataclasses
import runpy
import sys
import time
from pathlib import Path

import pytest
import ray
from mlflow import MlflowClient

from r2d.config import read_config
from r2d.run import tracking
from r2d.sweep.plan import Estimate, Question, describe, mark_reused, plan_json, plan_trials, stage1_points, to_train
from r2d.sweep.run import dry_run
from r2d.sweep.study import Study, SweepOptions

ROOT = Path(__file__).resolve().parents[1]
PRESET = str(ROOT / "configs" / "triage-tiny-sweep.yaml")
RAW = read_config(PRESET)
sys.path.insert(0, str(ROOT / "sweeps"))
import referee  # noqa: E402  (a script's module, importable once sweeps/ is on the path)


def _q(qid: str, grid: dict, seeds=(0, 1)) -> Question:
    return Question(qid, 1, qid, qid, Study(qid, PRESET, grid=grid, seeds=list(seeds)))


def test_a_configuration_asked_twice_is_one_trial():
    # r2d with the preset's own schedule (linear 0.6) is the same system in both questions
    controls = _q("controls", {"variant": ["r2d", "teacher_forcing"]})
    schedule = _q("schedule", {"stage2.schedule.shape": ["linear"], "stage2.schedule.transition": [0.3, 0.6]})
    trials = plan_trials([controls, schedule], RAW)
    assert len(trials) == 6  # (r2d, tf, linear 0.3) x 2 seeds: linear 0.6 == r2d
    shared = [t for t in trials if len(t.questions) == 2]
    assert len(shared) == 2 and all(t.overrides == {"variant": "r2d"} for t in shared)
    assert len({t.system_id for t in trials}) == 3
    # the preset fixes stage1.seed: one Stage 1 for every seed and system; unset, one per seed
    assert len(stage1_points(trials)) == 1
    per_seed = {**RAW, "stage1": {**RAW["stage1"], "seed": None}}
    assert len(stage1_points(plan_trials([controls, schedule], per_seed))) == 2


def test_reused_trials_are_not_trained_and_need_no_stage1():
    trials = plan_trials([_q("q", {"variant": ["r2d", "combined_ft"]})], RAW)
    r2d_seed0 = next(t for t in trials if t.overrides == {"variant": "r2d"} and t.seed == 0)
    mark_reused(trials, {(r2d_seed0.system_id, 0): "run-a"})
    assert r2d_seed0.reused_run_id == "run-a" and r2d_seed0 not in to_train(trials)
    assert len(to_train(trials)) == 3
    assert [p["seed"] for p in stage1_points(trials)] == [1]  # combined_ft has no Stage 1
    combined = next(t for t in trials if t.overrides == {"variant": "combined_ft"})
    assert combined.steps == RAW["stage1"]["max_steps"] + RAW["stage2"]["max_steps"]  # equal budgets


def test_the_referee_plan_composes_the_studies():
    trials = plan_trials(referee.PLANS[None], RAW)
    by_q = {q.id: [t for t in trials if q.id in t.questions] for q in referee.PLANS[None]}
    seeds = len(referee.SEEDS)
    assert len(by_q["controls"]) == len(referee.CONTROLS) * seeds
    assert {t.overrides.get("variant") for t in by_q["controls"]} == set(referee.CONTROLS)
    # r2d on the llm source with the paper's schedule answers all three questions
    assert sum(len(t.questions) == 3 for t in trials) == seeds
    plan = plan_json("sw", referee.PLANS[None], trials)
    assert [q["point"] for q in plan["questions"]] == [1, 3, 3] and plan["seeds"] == referee.SEEDS
    assert sum(len(q["trials"]) for q in plan["questions"]) > len(trials)  # shared trials listed per question


def test_estimate_and_description():
    trials = plan_trials([_q("q", {"variant": ["r2d", "combined_ft"]}, seeds=[0])], RAW)
    est = Estimate(stage1_s=100, trial_s=50, steps=100, source="test")
    # combined_ft (no Stage 1) trains Stage 1's steps more: its time scales with them
    stage2, total = RAW["stage2"]["max_steps"], RAW["stage1"]["max_steps"] + RAW["stage2"]["max_steps"]
    assert sorted(t.steps for t in trials) == [stage2, total]
    assert est.wall_s(1, trials, 1) == 100 + 50 * stage2 / 100 + 50 * total / 100
    lines = describe([_q("q", {"variant": ["r2d"]})], trials, 2, est, "nowhere")
    assert lines[0].startswith("plan: 2 distinct trials") and "Stage 1 trainings: 1" in lines[2]


def _finished_run(client, exp_id, system_id, seed, status="FINISHED"):
    run = client.create_run(exp_id, tags={"r2d.system_id": system_id, "r2d.seed": str(seed)})
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def test_finished_trials_read_from_mlflow(tmp_path):
    missing = f"sqlite:///{tmp_path}/none.db"
    assert tracking.finished_trials(missing, "x") == {} and not (tmp_path / "none.db").exists()
    uri = f"sqlite:///{tmp_path}/m.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("x", artifact_location=(tmp_path / "art").as_uri())
    old = _finished_run(client, exp, "abc", 0)
    time.sleep(0.01)
    new = _finished_run(client, exp, "abc", 0)
    _finished_run(client, exp, "abc", 1, status="FAILED")
    _finished_run(client, exp, "abc", 2, status="KILLED")
    client.create_run(exp, tags={"r2d.kind": "sweep"})  # a parent: no identity
    found = tracking.finished_trials(uri, "x")
    assert set(found) == {("abc", 0)} and found[("abc", 0)]["run_id"] == new != old
    assert tracking.finished_trials(uri, "no-such-experiment") == {}


def test_dry_run_starts_and_creates_nothing(tmp_path):
    opts = SweepOptions(storage_path=str(tmp_path / "ray"), tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    lines = dry_run(referee.DEFAULT, opts, referee.PLANS[None])
    assert lines[0].startswith("plan: ") and any("Stage 1 trainings" in x for x in lines)
    assert any("wall time: about" in x and "preset's own estimate" in x for x in lines)
    assert not ray.is_initialized() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("script", ["referee.py", "schedule_sensitivity.py", "ablations.py", "rationale_source.py"])
def test_every_sweep_script_has_dry_run(tmp_path, script, monkeypatch, capsys):
    """The script as `python sweeps/<script> --dry-run` runs it, in this process (its imports are
    already here; a subprocess per script spent 11-13 s importing them): it prints the plan and
    starts no Ray, writes no file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [script, "--dry-run", "--storage-path", str(tmp_path / "ray"),
                                      "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(ROOT / "sweeps" / script), run_name="__main__")
    out = capsys.readouterr()
    assert exited.value.code == 0, out.err
    assert out.out.startswith("plan: ") and "wall time" in out.out
    assert not ray.is_initialized() and list(tmp_path.iterdir()) == []


def test_fresh_with_resume_is_refused(capsys):
    assert referee.main_for(referee.DEFAULT, ["--fresh", "--resume"], referee.PRESETS, referee.PLANS) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--fresh" in err and "--resume" in err


def test_dry_run_scales_the_preset_estimate_to_the_sweeps_steps(tmp_path):
    """The preset's trial time was measured at the preset's Stage 2 steps: a sweep at a tenth of them
    is estimated shorter (Stage 1 and the study's trials unchanged)."""
    opts = SweepOptions(storage_path=str(tmp_path / "ray"), tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    preset_steps = RAW["stage2"]["max_steps"]
    full = dry_run(referee.DEFAULT, opts, referee.PLANS[None])
    short = dry_run(referee.DEFAULT, dataclasses.replace(opts, overrides=[f"stage2.max_steps={preset_steps // 10}"]),
                    referee.PLANS[None])
    minutes = [int(next(x for x in lines if "wall time: about" in x).split("about ")[1].split(" min")[0])
               for lines in (full, short)]
    assert minutes[1] < minutes[0]
    assert f"a {preset_steps}-step trial" in next(x for x in short if "wall time" in x)
