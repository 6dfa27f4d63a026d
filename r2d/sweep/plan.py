"""A plan: the trials a sweep needs, before anything runs. Pure functions over studies and configs.

A trial's identity is (system_id, seed): `r2d.train.record.system_id` fingerprints every resolved setting
that can change a result, so two grid points that resolve to the same configuration (r2d with the
default linear 0.6 schedule in the ablations and in the schedule grid) are one trial. A plan is
- `plan_trials`: the union of its questions' grid points x seeds, each distinct trial once, with the
  questions that use it;
- `mark_reused`: trials a FINISHED MLflow run of the same experiment already answers (unless --fresh);
- `estimate`: Stage 1 trainings and wall time on the cluster's concurrency;
- `plan_json`: what `python -m analysis referee` reads (analysis/referee/plan.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r2d.sweep.study import Study, grid_points, trial_config
from r2d.train.record import system_id
from r2d.train.stage1_store import stage1_key


@dataclass(frozen=True)
class Question:
    """One question of a plan: a study's grid (the study script stays its single source), answered
    against a baseline (`python -m analysis report --baseline` syntax)."""

    id: str
    point: int  # the referee's point it answers (1-3); 0 for a plain study
    title: str
    question: str
    study: Study
    baseline: str | None = None


@dataclass
class PlannedTrial:
    overrides: dict[str, Any]  # the first grid point that asked for it
    seed: int
    system_id: str
    stage1_key: str | None  # None: the variant has no Stage 1
    steps: int  # Stage 2 steps (a variant without Stage 1 may train more: stage2.equal_total_steps)
    questions: list[str] = field(default_factory=list)
    reused_run_id: str | None = None  # a FINISHED run of an earlier invocation answers it

    @property
    def point(self) -> dict[str, Any]:
        """The Tune grid point of this trial (r2d.sweep.sweep_trial)."""
        return {"overrides": self.overrides, "seed": self.seed}


def study_question(study: Study) -> Question:
    """A plain study as a one-question plan (every sweeps/*.py script)."""
    return Question(id=study.name, point=0, title=study.name, question=study.description.strip(), study=study)


def plan_trials(questions: list[Question], base: dict[str, Any]) -> list[PlannedTrial]:
    """Every distinct (system_id, seed) the questions need, in first-asked order."""
    trials: dict[tuple[str, int], PlannedTrial] = {}
    for q in questions:
        for overrides in grid_points(q.study.grid):
            for seed in q.study.seeds:
                cfg = trial_config(base, overrides, seed)
                key = (system_id(cfg), seed)
                if key not in trials:
                    s1 = stage1_key(cfg) if cfg.stage1.enabled else None
                    trials[key] = PlannedTrial(dict(overrides), seed, key[0], s1, cfg.stage2.max_steps)
                if q.id not in trials[key].questions:
                    trials[key].questions.append(q.id)
    return list(trials.values())


def mark_reused(trials: list[PlannedTrial], finished: dict[tuple[str, int], str]) -> None:
    """Mark the trials a FINISHED run answers; `finished` maps (system_id, seed) -> MLflow run id."""
    for t in trials:
        t.reused_run_id = finished.get((t.system_id, t.seed))


def to_train(trials: list[PlannedTrial]) -> list[PlannedTrial]:
    return [t for t in trials if t.reused_run_id is None]


def stage1_points(trials: list[PlannedTrial]) -> list[dict[str, Any]]:
    """One Tune point per distinct Stage 1 the trials to train need (only what shapes Stage 1)."""
    seen, out = set(), []
    for t in to_train(trials):
        if t.stage1_key is None or t.stage1_key in seen:
            continue
        seen.add(t.stage1_key)
        shaping = {k: v for k, v in t.overrides.items() if k.startswith(("data.", "model.", "stage1."))}
        out.append({"overrides": shaping, "seed": t.seed})
    return out


@dataclass(frozen=True)
class Estimate:
    stage1_s: float
    trial_s: float  # a trial of the preset's Stage 2 steps
    steps: int  # the preset's Stage 2 steps
    source: str  # "measured on this tracking store (N runs)" or "the preset's own estimate"

    def wall_s(self, n_stage1: int, trials: list[PlannedTrial], concurrency: int) -> float:
        """Stage 1 trainings, then the trials, `concurrency` at a time, each trial's time in proportion
        to its Stage 2 steps (a lower bound: the last wave may run part-empty)."""
        c = max(concurrency, 1)
        stage2 = sum(self.trial_s * t.steps / self.steps for t in trials)
        return math.ceil(n_stage1 / c) * self.stage1_s + stage2 / c


def estimate(study: Study, finished: dict[tuple[str, int], dict[str, Any]], steps: int,
             preset_steps: int | None = None) -> Estimate | None:
    """Trial time from the experiment's earlier FINISHED runs on this store (their median wall time,
    Ray's start-up included; taken as a trial of `steps`, this sweep's Stage 2 steps) if it has any,
    else the preset's own estimate, which was measured at the preset's Stage 2 steps (`preset_steps`),
    so `--set stage2.max_steps=...` scales it; Stage 1 from the preset (a Stage 1 is not a run of its
    own in MLflow), else taken as one trial."""
    durations = sorted(v["duration_s"] for v in finished.values() if v.get("duration_s"))
    preset = study.estimate_s
    if durations:
        trial = durations[len(durations) // 2]
        return Estimate(preset[0] if preset else trial, trial, steps,
                        f"trial time measured on this store ({len(durations)} runs)"
                        + ("; Stage 1: the preset's own estimate" if preset else "; Stage 1 taken as one trial"))
    if preset:
        return Estimate(preset[0], preset[1], preset_steps or steps,
                        "the preset's own estimate, measured where it was sized")
    return None


def plan_json(sweep_id: str, questions: list[Question], trials: list[PlannedTrial]) -> dict[str, Any]:
    """The plan as `python -m analysis referee` reads it (analysis/referee/plan.py)."""
    seeds = sorted({t.seed for t in trials})
    return {
        "plan": "referee",
        "sweep_id": sweep_id,
        "seeds": seeds,
        "questions": [
            {"id": q.id, "point": q.point, "title": q.title, "question": q.question, "baseline": q.baseline,
             "trials": [{"system_id": t.system_id, "seed": t.seed, "settings": t.overrides}
                        for t in trials if q.id in t.questions]}
            for q in questions
        ],
    }


def describe(questions: list[Question], trials: list[PlannedTrial], concurrency: int, estimate: Estimate | None,
             where: str, stage1_stored: int = 0) -> list[str]:
    """The plan as --dry-run prints it: per question, shared and reused trials, Stage 1s, wall time."""
    lines = [f"plan: {len(trials)} distinct trials (configuration x seed) over {len(questions)} question(s); "
             f"{len(to_train(trials))} to train, {len(trials) - len(to_train(trials))} reused from {where}"]
    for q in questions:
        mine = [t for t in trials if q.id in t.questions]
        shared = sum(len(t.questions) > 1 for t in mine)
        reused = sum(t.reused_run_id is not None for t in mine)
        head = f"point {q.point}, " if q.point else ""
        lines.append(f"  {q.id} ({head}{len(q.study.seeds)} seeds): {len(mine)} trials, {shared} shared with "
                     f"another question, {reused} reused")
    n_stage1 = len(stage1_points(trials)) - stage1_stored
    lines.append(f"  Stage 1 trainings: {n_stage1} (one per distinct Stage 1, shared by its trials; "
                 f"{stage1_stored} others already in the Stage 1 store, not retrained)")
    if estimate is None:
        lines.append("  wall time: no estimate (no earlier runs on this store, and the preset has none)")
    else:
        wall = estimate.wall_s(n_stage1, to_train(trials), concurrency)
        lines.append(f"  wall time: about {wall / 60:.0f} min at {concurrency} trial(s) at once "
                     f"(Stage 1 {estimate.stage1_s:.0f} s, a {estimate.steps}-step trial {estimate.trial_s:.0f} s, "
                     f"longer trials in proportion: {estimate.source})")
    return lines


def write_plan(path: Path, plan: dict[str, Any]) -> Path:
    path.write_text(json.dumps(plan, indent=1, default=str))
    return path
