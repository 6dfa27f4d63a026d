"""The referee plan: which trials answer which of the referee's questions (`plan.json`, written by r2d's plan).

r2d composes the three studies (controls, schedule, rationale source) into one set of trials and
writes `plan.json` into the sweep's directory:

    {"plan": "referee", "sweep_id": "...", "seeds": [0, 1, 2],
     "questions": [{"id": "controls", "point": 1, "title": "...", "question": "...",
                    "baseline": "variant=r2d",
                    "trials": [{"system_id": "3fa2c1d0e9ab", "seed": 0, "settings": {...}}, ...]}, ...]}

A question's runs are exactly those whose (system_id, seed) is among its trials; one run can answer
several questions (a shared trial is trained once). Errors are one line naming the file and the field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.errors import InputError
from analysis.load.runs import Run

PLAN_KIND = "referee"
POINTS = (1, 2, 3)

_KINDS = {int: "an integer", str: "a string", list: "a list", dict: "an object"}
TrialKey = tuple[str, int]
"""(system_id, seed): one training."""


@dataclass(frozen=True)
class Trial:
    """One training a question needs: a configuration (`system_id`) on one seed; `settings` name it."""

    system_id: str
    seed: int
    settings: dict[str, Any]

    @property
    def key(self) -> TrialKey:
        return (self.system_id, self.seed)

    def label(self) -> str:
        """`variant=teacher_forcing (system 3fa2c1d0e9ab) seed 2`."""
        named = " ".join(f"{key}={value}" for key, value in self.settings.items())
        return f"{named + ' ' if named else ''}(system {self.system_id}) seed {self.seed}"


@dataclass(frozen=True)
class Question:
    """One of the referee's questions: its point (1-3), words, baseline (`--baseline` syntax) and trials."""

    id: str
    point: int
    title: str
    question: str
    baseline: str | None
    trials: tuple[Trial, ...]
    where: str  # "<plan.json>: questions[i]", for errors about this question

    @property
    def keys(self) -> set[TrialKey]:
        return {trial.key for trial in self.trials}


@dataclass(frozen=True)
class RefereePlan:
    """The whole plan: the sweep it belongs to, its seeds and its questions (in the plan's order)."""

    sweep_id: str
    seeds: tuple[int, ...]
    questions: tuple[Question, ...]
    path: Path | None = None

    @property
    def trials(self) -> set[TrialKey]:
        """Every distinct training of the plan."""
        return {key for question in self.questions for key in question.keys}

    @property
    def shared(self) -> set[TrialKey]:
        """The trainings that answer more than one question."""
        counts: dict[TrialKey, int] = {}
        for question in self.questions:
            for key in question.keys:
                counts[key] = counts.get(key, 0) + 1
        return {key for key, count in counts.items() if count > 1}


class _Fields:
    """Typed reads of a JSON object; each failure is one `InputError` naming the file and the field's path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> InputError:
        return InputError(str(self.path), f"{where}: {message}")

    def get(self, data: dict, key: str, kind: type | tuple[type, ...], where: str, *, required: bool = True) -> Any:
        if key not in data:
            if required:
                raise self.fail(f"{where}.{key}".lstrip("."), "missing")
            return None
        value = data[key]
        expected = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int to Python, never a seed or a point here
        if isinstance(value, bool) and bool not in expected or not isinstance(value, expected):
            names = " or ".join(_KINDS[k] for k in expected)
            raise self.fail(f"{where}.{key}".lstrip("."), f"expected {names}, got {json.dumps(value)[:60]}")
        return value


def load_plan(path: str | Path) -> RefereePlan:
    """Read and check `plan.json`; raises `InputError("<path>", "<field>: <what is wrong>")` on one line."""
    path = Path(path)
    fields = _Fields(path)
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise fields.fail("file", f"cannot be read ({error.strerror or error})") from None
    except json.JSONDecodeError as error:
        raise fields.fail("file", f"not JSON (line {error.lineno}, column {error.colno}: {error.msg})") from None
    if not isinstance(data, dict):
        raise fields.fail("file", "expected a JSON object with plan, sweep_id, seeds, questions")
    kind = fields.get(data, "plan", str, "")
    if kind != PLAN_KIND:
        raise fields.fail("plan", f"expected {PLAN_KIND!r}, got {kind!r}")
    sweep_id = fields.get(data, "sweep_id", str, "")
    seeds = fields.get(data, "seeds", list, "")
    for index, seed in enumerate(seeds):
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise fields.fail(f"seeds[{index}]", f"expected an integer, got {json.dumps(seed)[:60]}")
    if not seeds:
        raise fields.fail("seeds", "expected at least one seed")
    questions = fields.get(data, "questions", list, "")
    if not questions:
        raise fields.fail("questions", "expected at least one question")
    parsed = tuple(_question(fields, raw, index, seeds) for index, raw in enumerate(questions))
    ids = [question.id for question in parsed]
    duplicated = sorted({name for name in ids if ids.count(name) > 1})
    if duplicated:
        raise fields.fail("questions", f"duplicate id(s) {', '.join(duplicated)}; each question needs its own id")
    return RefereePlan(sweep_id, tuple(seeds), parsed, path)


def _question(fields: _Fields, raw: Any, index: int, seeds: Sequence[int]) -> Question:
    """One entry of `questions`, checked."""
    where = f"questions[{index}]"
    if not isinstance(raw, dict):
        raise fields.fail(where, "expected an object with id, point, title, question, baseline, trials")
    question_id = fields.get(raw, "id", str, where)
    if not question_id.strip() or "/" in question_id or question_id.startswith("."):
        raise fields.fail(f"{where}.id", f"expected a name usable as a directory, got {question_id!r}")
    point = fields.get(raw, "point", int, where)
    if point not in POINTS:
        raise fields.fail(f"{where}.point", f"expected one of the referee's points 1, 2, 3, got {point}")
    baseline = fields.get(raw, "baseline", str, where, required=False)
    trials_raw = fields.get(raw, "trials", list, where)
    if not trials_raw:
        raise fields.fail(f"{where}.trials", "expected at least one trial")
    trials: dict[TrialKey, Trial] = {}
    for number, trial_raw in enumerate(trials_raw):
        trial_where = f"{where}.trials[{number}]"
        if not isinstance(trial_raw, dict):
            raise fields.fail(trial_where, "expected an object with system_id, seed, settings")
        system_id = fields.get(trial_raw, "system_id", str, trial_where)
        seed = fields.get(trial_raw, "seed", int, trial_where)
        if seed not in seeds:
            raise fields.fail(f"{trial_where}.seed", f"{seed} is not one of the plan's seeds {list(seeds)}")
        settings = fields.get(trial_raw, "settings", dict, trial_where, required=False) or {}
        trials.setdefault((system_id, seed), Trial(system_id, seed, dict(settings)))  # a repeated trial counts once
    return Question(
        id=question_id,
        point=point,
        title=fields.get(raw, "title", str, where),
        question=fields.get(raw, "question", str, where),
        baseline=baseline,
        trials=tuple(trials.values()),
        where=f"{fields.path}: {where} ({question_id})",
    )


def runs_for_question(question: Question, runs: Sequence[Run], notes: list[str] | None = None) -> list[Run]:
    """The runs of `question`: those whose (system_id, seed) is one of its trials, usable or not (the report says
    why a run is unusable). Each trial with no run at all is added to `notes`; fewer than two configurations
    with a usable run is an `InputError` (nothing to compare)."""
    keys = question.keys
    chosen = [run for run in runs if run.system_id is not None and run.seed is not None and _key(run) in keys]
    found = {_key(run) for run in chosen}
    if notes is not None:
        notes += [
            f"plan: no run of trial {trial.label()} was found under --runs; left out"
            for trial in question.trials
            if trial.key not in found
        ]
    usable = {run.system_id for run in chosen if run.usable}
    if len(usable) < 2:
        raise InputError(
            question.where,
            f"{len(usable)} configuration(s) with a usable run of {len({t.system_id for t in question.trials})} "
            "planned; a comparison needs at least 2 (check --runs)",
        )
    return chosen


def _key(run: Run) -> TrialKey:
    return (str(run.system_id), int(run.seed))  # type: ignore[arg-type]
