"""--until-decided: a grid study run in planned looks, seeds added only where a comparison is open.

The loop composes the library and the analysis layer (like `_common.analyse_sweep`): each look is one
ordinary sweep (`r2d.sweep.run_sweep`) of the configurations that still need seeds, at the look's
seed count (the baseline always among them, so a new seed runs on both sides of every comparison);
FINISHED runs of earlier looks are reused, never retrained. After each look the group-sequential test
(`analysis.sequential.evaluate_look`: Lan-DeMets spending over the planned looks, t boundaries
calibrated by simulation, Bonferroni across comparisons, equivalence by repeated intervals) closes
what it can. Look times are the design's seed counts only. The loop stops when every comparison is
closed, at the last look, or when the next look would not fit the budget.

The adaptive study has its own MLflow parent run (tag r2d.kind=adaptive): the design, each look's
decision table and the state (the spent error budget) as artifacts, the verdicts as its description;
each look's sweep is tagged with its id. `--resume` reloads the state and continues at the next look.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from analysis.load.mlflow_runs import load_mlflow_runs
from analysis.load.selection import choose_baselines
from analysis.load.systems import match_systems
from analysis.metrics import resolve_metric
from analysis.sequential import (
    Design,
    LookResult,
    evaluate_look,
    expected_trials,
    margins_from_options,
    per_seed_values,
    start_state,
    state_from_json,
)
from r2d.config import ConfigError, load_config, validate_config
from r2d.run import tracking
from r2d.sweep.placement import trials_on
from r2d.sweep.plan import Question, estimate
from r2d.sweep.run import run_sweep
from r2d.sweep.storage import SweepStorage
from r2d.sweep.study import AdaptiveOptions, Study, SweepOptions, base_config, grid_points, trial_config
from r2d.train.record import system_id

PLANNING_SD = 3.0  # points: the sd of a per-seed difference --dry-run plans with (measured: 2-4)


def design_for(adaptive: AdaptiveOptions) -> Design:
    """The group-sequential design of --until-decided; bad input is a one-line ConfigError."""
    for option in adaptive.margins:
        metric = option.partition("=")[0]
        if resolve_metric(metric) is None:
            raise ConfigError(f"--margin {option}: unknown metric {metric!r}; expected one of the report's "
                              f"metrics, e.g. correct, macro_f1, corpus_bleu, bertscore_f1, consistent")
    try:
        return Design(looks=adaptive.looks, margins=margins_from_options(list(adaptive.margins)))
    except ValueError as err:  # a metric without a known margin, ... : bad input, before anything starts
        raise ConfigError(str(err)) from None


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


def describe(study: Study, opts: SweepOptions, adaptive: AdaptiveOptions, design: Design) -> str:
    """--dry-run: the look schedule, the most trials, and the expected trials under planning assumptions."""
    configs = len(grid_points(study.grid))
    planned = expected_trials(design, configs - 1, PLANNING_SD, {"no difference": 0.0, "a 6-point difference": 6.0})
    first = configs * adaptive.first_look
    looks = ", ".join(map(str, design.looks))
    lines = [f"until decided: {configs} configurations (one the baseline), looks at {looks} seeds per "
             "configuration; each look trains only the configurations with an open comparison",
             f"  design: {design.signature()}",
             f"  trials: at most {planned['maximum']:.0f}; expected (normal, sd of a per-seed difference "
             f"{PLANNING_SD:g} points): {planned['no difference']:.1f} if nothing differs, "
             f"{planned['a 6-point difference']:.1f} if every configuration differs by 6 points",
             f"  first look: {first} trials, about {_round_seconds(study, opts, first) / 60:.0f} min"]
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


def _points_of(names: list[str], matched, points: list[dict], base: dict) -> list[dict]:
    """The grid points behind the analysis' system names (by the configuration fingerprint)."""
    by_id = {system_id(trial_config(base, point, 0)): point for point in points}
    wanted = {s.system_id for s in matched.systems if s.name in names}
    return [point for sid, point in by_id.items() if sid in wanted]


def _look_questions(study: Study, points: list[dict], seeds: int) -> list[Question]:
    return [Question(f"c{i}", 0, study.name, "", dataclasses.replace(
        study, grid={k: [v] for k, v in point.items()}, seeds=list(range(seeds)))) for i, point in enumerate(points)]


def _load(uri: str, study: Study, record: dict[str, Any], cache: Path):
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


def _save(uri: str, parent: str, where: Path, record: dict, result: LookResult | None,
          store: SweepStorage) -> None:
    (where / "state.json").write_text(json.dumps(record, indent=1))
    files = ["state.json"]
    if result is not None:
        (where / f"look-{result.look}.md").write_text(result.table() + "\n")
        files.append(f"look-{result.look}.md")
    store.publish(where, where.name)  # on remote storage: where a --resume (from any machine) finds it
    tracking.log_artifacts(uri, parent, where, files, [])


def _start(study: Study, opts: SweepOptions, design: Design, uri: str, points: list[dict]):
    """(local folder, storage, record, state): a new adaptive study with its MLflow parent, or (--resume) the saved one,
    its state and spent error budget as they were, its parent reopened."""
    store, adaptive_id, saved = _state_dir(study, opts)
    where = store.local_dir(adaptive_id)
    where.mkdir(parents=True, exist_ok=True)
    if saved is not None:
        tracking.reopen_run(uri, saved["parent_run_id"])
        return where, store, saved, state_from_json(saved["state"]) if saved["state"] else None
    record = {"adaptive_id": where.name, "design": design.to_dict(), "sweep_ids": [], "reused": [], "open": points,
              "state": None, "spent_s": 0.0}
    record["parent_run_id"] = tracking.start_run(
        uri, study.name, where.name, {"looks": ",".join(map(str, design.looks)), "alpha": design.alpha,
                                      "spending": design.spending, "correction": design.correction},
        {"r2d.kind": "adaptive", "r2d.adaptive_id": where.name, "r2d.design": design.signature()})
    (where / "state.json").write_text(json.dumps(record, indent=1))
    store.publish(where, adaptive_id)
    return where, store, record, None


def run_until_decided(study: Study, opts: SweepOptions, adaptive: AdaptiveOptions, dry_run: bool) -> str:
    """The adaptive loop; returns the final decision table (or, with `dry_run`, the plan)."""
    design = design_for(adaptive)
    configs = len(grid_points(study.grid))
    if configs < 2:
        raise ConfigError("--until-decided: the grid has one configuration; there is nothing to compare")
    first = _round_seconds(study, opts, configs * adaptive.first_look)
    if adaptive.budget_s is not None and first > adaptive.budget_s:
        raise ConfigError(f"--budget {adaptive.budget_s / 60:.0f}m: smaller than the first look's estimate "
                          f"({first / 60:.0f} min for {configs * adaptive.first_look} trials)")
    if dry_run:
        return describe(study, opts, adaptive, design)
    base = base_config(study, opts)
    uri, points = base["tracking"]["tracking_uri"], grid_points(study.grid)
    where, store, record, state = _start(study, opts, design, uri, points)
    design = state.design if state is not None else design  # resumed: the design it started with
    parent, result, started = record["parent_run_id"], None, time.time() - record["spent_s"]
    try:
        for look in range(state.looks_done if state else 0, len(design.looks)):
            seeds = design.looks[look]
            added = seeds - (design.looks[look - 1] if look else 0)
            needed = _round_seconds(study, opts, len(record["open"]) * added)
            if adaptive.budget_s is not None and look and time.time() - started + needed > adaptive.budget_s:
                values = per_seed_values(_load(uri, study, record, where / "cache"), list(design.margins))
                result = evaluate_look(values, state, stop_reason="budget spent")
                break
            summary = run_sweep(study, dataclasses.replace(opts, resume=False, fresh=False, analysis=False,
                                                           parent_tags={"r2d.adaptive_id": where.name}),
                                _look_questions(study, record["open"], seeds))
            record["sweep_ids"].append(summary["sweep_id"])
            record["reused"] += [r["run_id"] for r in summary["reused"]]
            matched = _load(uri, study, record, where / "cache")
            values = per_seed_values(matched, list(design.margins))
            if state is None:
                baseline = next(iter(choose_baselines(matched, None).values()))
                state = start_state(design, baseline.name)
            result = evaluate_look(values, state)
            record.update(state=result.state.to_json(), spent_s=time.time() - started,
                          open=_points_of(result.needs_seeds, matched, points, base))
            _save(uri, parent, where, record, result, store)
            closed = sum(not c.is_open for c in result.decisions)
            print(f"look {result.look} ({seeds} seeds): {closed}/{len(result.decisions)} closed", flush=True)
            if result.done:
                break
    except BaseException as err:
        tracking.end_run(uri, parent, "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED", str(err)[:500])
        raise
    if result is None:  # --resume of a study whose looks were all done
        tracking.end_run(uri, parent)
        raise ConfigError(f"--resume: adaptive study {where.name} is already closed ({where / 'state.json'})")
    record.update(state=result.state.to_json(), spent_s=time.time() - started)
    _save(uri, parent, where, record, result, store)
    trials = sum(len(seeds) for seeds in next(iter(values.values())).values())  # the last look's runs
    final = result.table() + f"\n\nadaptive study {where.name}: {len(record['sweep_ids'])} looks, {trials} " \
        f"trials, {(time.time() - started) / 60:.1f} min; state in {where / 'state.json'}"
    tracking.set_tags(uri, parent, {"mlflow.note.content": final})
    tracking.end_run(uri, parent)
    return final
