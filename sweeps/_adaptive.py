"""--until-decided: a grid study or a plan of questions run in planned looks, seeds added only where a
comparison is open.

The loop composes the library and the analysis layer (like `_common.analyse_sweep`): each look is one
ordinary sweep (`r2d.sweep.run_sweep`) of the configurations that still need seeds, at the look's
seed count (each family's baseline among them, so a new seed runs on both sides of every comparison);
FINISHED runs of earlier looks are reused, never retrained. After each look the group-sequential test
(`analysis.sequential.evaluate_look`: Lan-DeMets spending over the planned looks, t boundaries
calibrated by simulation, Bonferroni across comparisons, equivalence by repeated intervals) closes
what it can. Look times are the design's seed counts only. The loop stops when every comparison is
closed, at the last look, or when the next look would not fit the budget.

A *family* is one baseline and the configurations compared with it: a question's configurations in one
stratum (rationale source). A plain study is a one-question plan. Each family has its own sequential
state; the error rate is per question, as in the fixed-design referee report, and a question with
several strata splits its alpha over them (Bonferroni). A configuration shared by two questions (r2d in
the controls and in the rationale-source question) is trained once per seed and read by both.

The adaptive study has its own MLflow parent run (tag r2d.kind=adaptive): the design, each look's
decision tables and the state (the spent error budget) as artifacts, the verdicts as its description;
each look's sweep is tagged with its id. `--resume` reloads the state and continues at the next look.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from analysis.load.mlflow_runs import load_mlflow_runs
from analysis.load.selection import choose_baselines, stratum_label
from analysis.load.systems import MatchedSystems, match_systems
from analysis.metrics import resolve_metric
from analysis.sequential import (
    Design,
    LookResult,
    SequentialState,
    evaluate_look,
    expected_trials,
    margins_from_options,
    per_seed_values,
    start_state,
    state_from_json,
)
from analysis.sequential.design import design_from_dict
from r2d.config import ConfigError, load_config, validate_config
from r2d.run import tracking
from r2d.sweep.placement import trials_on
from r2d.sweep.plan import Question, estimate, plan_trials, study_question
from r2d.sweep.run import run_sweep
from r2d.sweep.storage import SweepStorage
from r2d.sweep.study import AdaptiveOptions, Study, SweepOptions, base_config, grid_points, trial_config
from r2d.train.record import system_id

STRATUM_KEY = "data.rationale_source"  # the setting behind analysis.load.systems.STRATUM_SETTINGS
PLANNING_SD = 3.0  # points: the sd of a per-seed difference --dry-run plans with (measured: 2-4)


@dataclasses.dataclass
class Family:
    """A baseline and the systems compared with it: one question's systems in one stratum."""

    key: str  # the question id, with the stratum when the question has several
    question: Question
    matched: MatchedSystems  # only this family's systems
    baseline: str
    strata: int  # strata of its question: the question's alpha is split over them


def design_for(adaptive: AdaptiveOptions) -> Design:
    """The group-sequential design of --until-decided; bad input is a one-line ConfigError."""
    for option in adaptive.margins:
        metric = option.partition("=")[0]
        if resolve_metric(metric) is None:
            raise ConfigError(f"--margin {option}: unknown metric {metric!r}; expected one of the report's "
                              f"metrics, e.g. correct, macro_f1, corpus_bleu, bertscore_f1, consistent")
    try:
        return Design(looks=adaptive.looks, margins=margins_from_options(list(adaptive.margins)),
                      futility=adaptive.futility)
    except ValueError as err:  # a metric without a known margin, ... : bad input, before anything starts
        raise ConfigError(str(err)) from None


def _configurations(study: Study, opts: SweepOptions, questions: list[Question]) -> int:
    """Distinct configurations over the questions (two grid points that resolve alike are one)."""
    once = [dataclasses.replace(q, study=dataclasses.replace(q.study, seeds=[0])) for q in questions]
    return len(plan_trials(once, base_config(study, opts)))


def _round_seconds(study: Study, opts: SweepOptions, trials: int) -> float:
    """A look's expected wall time from the preset's measured trial time (r2d.sweep.plan.estimate) on the
    local Ray r2d would start (a cluster: as if one trial ran at a time, the cautious guess)."""
    cfg = validate_config(base_config(study, opts))
    guess = estimate(study, {}, cfg.stage2.max_steps, load_config(study.config).stage2.max_steps)
    if guess is None:
        return 0.0
    local = [{"CPU": float(os.cpu_count() or 1)}]
    concurrency = 1 if opts.address else max(trials_on(local, cfg.resources), 1)
    return guess.trial_s * -(-trials // concurrency)


def describe(study: Study, opts: SweepOptions, adaptive: AdaptiveOptions, design: Design,
             questions: list[Question]) -> str:
    """--dry-run: the look schedule, the most trials, and the expected trials under planning assumptions."""
    configs = _configurations(study, opts, questions)
    scenarios = {"no difference": 0.0, "a 6-point difference": 6.0}
    planned = []
    for q in questions:  # a family per rationale source (the analysis' stratum), the question's alpha split
        sizes = Counter(str(point.get(STRATUM_KEY)) for point in grid_points(q.study.grid)).values()
        family = dataclasses.replace(design, alpha=design.alpha / len(sizes))
        planned += [expected_trials(family, size - 1, PLANNING_SD, scenarios) for size in sizes if size > 1]
    expected = {name: min(sum(p[name] for p in planned), configs * design.max_seeds) for name in scenarios}
    shared = " (a configuration shared by two questions counted in each: an upper bound)" if len(questions) > 1 else ""
    looks = ", ".join(map(str, design.looks))
    lines = [f"until decided: {configs} configurations in {len(questions)} question(s), each with its baseline; "
             f"looks at {looks} seeds per configuration; each look trains only the configurations with an "
             "open comparison",
             f"  design: {design.signature()}",
             f"  trials: at most {configs * design.max_seeds}; expected (normal, sd of a per-seed difference "
             f"{PLANNING_SD:g} points){shared}: {expected['no difference']:.1f} if nothing differs, "
             f"{expected['a 6-point difference']:.1f} if every configuration differs by 6 points",
             f"  first look: {configs * adaptive.first_look} trials, about "
             f"{_round_seconds(study, opts, configs * adaptive.first_look) / 60:.0f} min"]
    if adaptive.budget_s:
        lines.append(f"  budget: {adaptive.budget_s / 60:.0f} min; a look that would not fit is not started")
    return "\n".join(lines)


def _state_dir(study: Study, opts: SweepOptions) -> tuple[SweepStorage, str, dict | None]:
    """The storage (local or s3://), the adaptive study's id and (--resume) its saved record."""
    store = SweepStorage(base_config(study, opts)["resources"]["storage_path"])
    if opts.resume:
        found = store.latest(f"{study.name}-adaptive", filename="state.json")
        if found is None:
            raise FileNotFoundError(f"--resume: no adaptive study {study.name} under {store.storage}")
        return store, found[0], found[1]
    return store, f"{study.name}-adaptive-{time.strftime('%Y%m%d-%H%M%S')}", None


def _families(matched: MatchedSystems, questions: list[Question], base: dict) -> list[Family]:
    """Each question's systems (by the configuration fingerprint of its grid points), per stratum."""
    families = []
    for q in questions:
        ids = {system_id(trial_config(base, point, 0)) for point in grid_points(q.study.grid)}
        mine = dataclasses.replace(matched, systems=[s for s in matched.systems if s.system_id in ids])
        baselines = {stratum: chosen for stratum, chosen in choose_baselines(mine, q.baseline).items() if chosen}
        for stratum, chosen in baselines.items():
            members = [s for s in mine.systems if s.stratum == stratum]
            key = q.id if len(baselines) == 1 else f"{q.id} ({stratum_label(stratum)})"
            families.append(Family(key, q, dataclasses.replace(matched, systems=members), chosen.name,
                                   len(baselines)))
    return families


def _points_of(family: Family, names: list[str], base: dict) -> list[dict]:
    """The grid points of the family's question behind the analysis' system names."""
    by_id = {system_id(trial_config(base, point, 0)): point for point in grid_points(family.question.study.grid)}
    wanted = {s.system_id for s in family.matched.systems if s.name in names}
    return [point for sid, point in by_id.items() if sid in wanted]


def _look_questions(study: Study, points: list[dict], seeds: int) -> list[Question]:
    return [Question(f"c{i}", 0, study.name, "", dataclasses.replace(
        study, grid={k: [v] for k, v in point.items()}, seeds=list(range(seeds)))) for i, point in enumerate(points)]


def _load(uri: str, study: Study, record: dict[str, Any], cache: Path) -> MatchedSystems:
    runs = []
    for sweep_id in record["sweep_ids"]:
        runs += load_mlflow_runs(experiment=study.name, sweep_id=sweep_id, tracking_uri=uri, cache_dir=cache).runs
    if record["reused"]:
        ids = ", ".join(f"'{r}'" for r in sorted(set(record["reused"])))
        runs += load_mlflow_runs(experiment=study.name, filter_string=f"attributes.run_id IN ({ids})",
                                 tracking_uri=uri, cache_dir=cache).runs
    seen, unique = set(), []
    for run in runs:  # a reused run may also be in a look's own sweep ("mlflow:<run id>")
        if run.source not in seen:
            seen.add(run.source)
            unique.append(run)
    return match_systems(unique)


def _evaluate(matched: MatchedSystems, questions: list[Question], base: dict, record: dict, design: Design,
              stop_reason: str | None = None) -> None:
    """Read this look in every family still open: updates record["states"], ["open"] and ["looks_done"]."""
    still_open: list[dict] = []
    for family in _families(matched, questions, base):
        saved = record["states"].get(family.key)
        state: SequentialState = state_from_json(saved) if saved else start_state(
            dataclasses.replace(design, alpha=design.alpha / family.strata), family.baseline)
        if saved and not any(c.is_open for c in state.comparisons):
            continue  # closed at an earlier look: nothing to read
        values = per_seed_values(family.matched, list(design.margins))
        result = evaluate_look(values, state, stop_reason=stop_reason)
        record["states"][family.key] = result.state.to_json()
        still_open += [p for p in _points_of(family, result.needs_seeds, base) if p not in still_open]
    record["open"] = still_open
    record["looks_done"] += 1


def _tables(record: dict) -> str:
    """Every family's decisions at its last look (a heading per family when there are several)."""
    states = {key: state_from_json(text) for key, text in record["states"].items()}
    parts = []
    for key, state in states.items():
        table = LookResult(state, state.looks_done, state.comparisons, [], None, True).table()
        parts.append(table if len(states) == 1 else f"### {key} (baseline {state.baseline})\n\n{table}")
    return "\n\n".join(parts)


def _save(uri: str, parent: str, where: Path, record: dict, store: SweepStorage) -> None:
    (where / "state.json").write_text(json.dumps(record, indent=1))
    look = f"look-{record['looks_done']}.md"
    (where / look).write_text(_tables(record) + "\n")
    store.publish(where, where.name)  # on remote storage: where a --resume (from any machine) finds it
    tracking.log_artifacts(uri, parent, where, ["state.json", look], [])


def _close_dead_look(uri: str, experiment: str, adaptive_id: str, parent: str) -> int:
    """The look a killed driver was running: its sweep's parent and in-flight trials, left RUNNING, end
    KILLED (its FINISHED trials stay and the resumed look reuses them)."""
    why = "interrupted: the adaptive study's driver died; --resume runs the look again"
    running = tracking.search_runs(uri, experiment,
                                   f"tags.`r2d.adaptive_id` = '{adaptive_id}' and attributes.status = 'RUNNING'")
    looks = [r for r in running if r.info.run_id != parent]
    trials = sum(tracking.close_running(uri, experiment, look.data.tags["r2d.sweep_id"], look.info.run_id, why)
                 for look in looks)
    for look in looks:
        tracking.end_run(uri, look.info.run_id, "KILLED", why)
    return len(looks) + trials


def _start(study: Study, opts: SweepOptions, design: Design, uri: str, points: list[dict]):
    """(local folder, storage, record): a new adaptive study with its MLflow parent, or (--resume) the saved
    one, its states and spent error budget as they were, its parent reopened."""
    store, adaptive_id, saved = _state_dir(study, opts)
    where = store.local_dir(adaptive_id)
    where.mkdir(parents=True, exist_ok=True)
    if saved is not None:
        if "states" not in saved:  # saved by the one-family loop of 2026-12-04: its one state, the study's
            state = saved.pop("state")
            saved["states"] = {study.name: state} if state else {}
            saved["looks_done"] = state_from_json(state).looks_done if state else 0
        tracking.reopen_run(uri, saved["parent_run_id"])
        closed = _close_dead_look(uri, study.name, where.name, saved["parent_run_id"])
        if closed:
            print(f"resume: {closed} run(s) of the interrupted look marked KILLED in MLflow")
        return where, store, saved
    record = {"adaptive_id": where.name, "design": design.to_dict(), "sweep_ids": [], "reused": [], "open": points,
              "states": {}, "looks_done": 0, "spent_s": 0.0}
    record["parent_run_id"] = tracking.start_run(
        uri, study.name, where.name, {"looks": ",".join(map(str, design.looks)), "alpha": design.alpha,
                                      "spending": design.spending, "correction": design.correction,
                                      "futility": design.futility},
        {"r2d.kind": "adaptive", "r2d.adaptive_id": where.name, "r2d.design": design.signature()})
    (where / "state.json").write_text(json.dumps(record, indent=1))
    store.publish(where, adaptive_id)
    return where, store, record


def _checked(study: Study, opts: SweepOptions, adaptive: AdaptiveOptions, questions: list[Question]) -> Design:
    """The design, with the options checked against the study before anything starts."""
    design = design_for(adaptive)
    for q in questions:
        if len(grid_points(q.study.grid)) < 2:
            raise ConfigError(f"--until-decided: {q.id} has one configuration; there is nothing to compare")
    first = _configurations(study, opts, questions) * adaptive.first_look
    if adaptive.budget_s is not None and _round_seconds(study, opts, first) > adaptive.budget_s:
        raise ConfigError(f"--budget {adaptive.budget_s / 60:.0f}m: smaller than the first look's estimate "
                          f"({_round_seconds(study, opts, first) / 60:.0f} min for {first} trials)")
    return design


def run_until_decided(study: Study, opts: SweepOptions, adaptive: AdaptiveOptions, dry_run: bool,
                      questions: list[Question] | None = None) -> str:
    """The adaptive loop over `questions` (a plan; None: the study itself); returns the final decision
    tables (or, with `dry_run`, the plan)."""
    questions = questions or [study_question(study)]
    design = _checked(study, opts, adaptive, questions)
    if dry_run:
        return describe(study, opts, adaptive, design, questions)
    base = base_config(study, opts)
    uri = base["tracking"]["tracking_uri"]
    where, store, record = _start(study, opts, design, uri, [p for q in questions for p in grid_points(q.study.grid)])
    design = design_from_dict(record["design"])  # resumed: the design it started with
    parent, started, matched = record["parent_run_id"], time.time() - record["spent_s"], None
    try:
        for look in range(record["looks_done"], len(design.looks)):
            seeds = design.looks[look]
            added = seeds - (design.looks[look - 1] if look else 0)
            needed = _round_seconds(study, opts, len(record["open"]) * added)
            if adaptive.budget_s is not None and look and time.time() - started + needed > adaptive.budget_s:
                matched = _load(uri, study, record, where / "cache")
                _evaluate(matched, questions, base, record, design, stop_reason="budget spent")
                break
            summary = run_sweep(study, dataclasses.replace(opts, resume=False, fresh=False, analysis=False,
                                                           parent_tags={"r2d.adaptive_id": where.name}),
                                _look_questions(study, record["open"], seeds))
            record["sweep_ids"].append(summary["sweep_id"])
            record["reused"] += [r["run_id"] for r in summary["reused"]]
            matched = _load(uri, study, record, where / "cache")
            _evaluate(matched, questions, base, record, design)
            record["spent_s"] = time.time() - started
            _save(uri, parent, where, record, store)
            decisions = [c for text in record["states"].values() for c in state_from_json(text).comparisons]
            print(f"look {look + 1} ({seeds} seeds): {sum(not c.is_open for c in decisions)}/{len(decisions)} "
                  "closed", flush=True)
            if not record["open"]:
                break
    except BaseException as err:
        tracking.end_run(uri, parent, "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED", str(err)[:500])
        raise
    if matched is None:  # --resume of a study whose looks were all done
        tracking.end_run(uri, parent)
        raise ConfigError(f"--resume: adaptive study {where.name} is already closed ({where / 'state.json'})")
    record["spent_s"] = time.time() - started
    _save(uri, parent, where, record, store)
    trials = sum(len(system.seeds) for system in matched.systems)
    final = _tables(record) + f"\n\nadaptive study {where.name}: {len(record['sweep_ids'])} looks, {trials} " \
        f"trials, {(time.time() - started) / 60:.1f} min; state in {where / 'state.json'}"
    tracking.set_tags(uri, parent, {"mlflow.note.content": final})
    tracking.end_run(uri, parent)
    return final
