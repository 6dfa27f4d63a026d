"""Sweeps on Ray Tune: a study is data (a preset config, a grid or an Optuna space, seeds).

`run_sweep` reads as its phases: set up (config, storage, Ray, the parent MLflow run), phase 1
(every distinct Stage 1, once), phase 2 (the Stage 2 trials), then the table, timings and the
significance report. Each trial is a Tune function trainable, `r2d.sweep.trial.sweep_trial`, handed a
frozen `TrialContext` and one `{"trial": {"overrides", "seed"}}` point (Optuna: its suggested
settings): a one-worker training runs in the trial's own process, a multi-worker one on Ray Train
inside the trial. Seeds are repeats, never searched: a grid trial is one
(configuration, seed); an Optuna trial is one configuration run on every seed, its objective the
mean best dev macro-F1. Each training is its own MLflow child run under the sweep's parent run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import ray
import torch
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from r2d.config import Config, load_config, validate_config
from r2d.run import runner, tracking
from r2d.run.distributed import ensure_ray, refuse_local_state_on_cluster
from r2d.scoring.health import UNHEALTHY
from r2d.sweep.console import TrialLines, send_ray_logs_to
from r2d.sweep.placement import in_trial_process, max_concurrent_trials, trial_resources, trials_on
from r2d.sweep.plan import (
    PlannedTrial,
    Question,
    describe,
    estimate,
    mark_reused,
    plan_json,
    plan_trials,
    stage1_points,
    study_question,
    to_train,
    write_plan,
)
from r2d.sweep.storage import SweepStorage, new_sweep_id
from r2d.sweep.study import (
    OPTUNA_KEYS,
    Study,
    SweepOptions,
    base_config,
    check_study,
    default_optuna_space,
    trial_config,
)
from r2d.sweep.trial import TrialContext, sweep_trial
from r2d.train.stage1_store import Stage1Store

# A training's wall time outside its workers, as `r2d.run.runner` splits it into timings.
OVERHEAD_PARTS = ("ray_start_s", "ray_end_s", "driver_s")


class SweepFailed(RuntimeError):
    """The sweep ran, but no trial finished and none was reused: there is nothing to analyse."""


# --------------------------------------------------------------------------- the driver
def _sweep_dir(storage: SweepStorage, study: Study, opts: SweepOptions) -> tuple[Path, dict]:
    """A new sweep's (driver-side) directory and state, or (--resume) the latest / named one's."""
    if opts.resume:
        found = storage.latest(study.name, opts.sweep_id)
        if found is None:
            raise FileNotFoundError(f"--resume: no sweep of study {study.name} under {storage.storage}")
        return storage.local_dir(found[0]), found[1]
    sweep_id = new_sweep_id(study.name)
    return storage.local_dir(sweep_id), {"sweep_id": sweep_id}


def _stage2_search(study: Study, opts: SweepOptions, trials: list[PlannedTrial]) -> tuple[dict, Any, Any, int]:
    """(param_space, search_alg, scheduler, num_samples) of phase 2; grid: the plan's trials to train."""
    scheduler = ASHAScheduler(metric="stage2/dev_macro_f1", mode="max", grace_period=2) if opts.asha else None
    if opts.search == "grid":
        return {"trial": tune.grid_search([t.point for t in to_train(trials)])}, None, scheduler, 1
    search_alg = OptunaSearch(space=study.optuna_space or default_optuna_space, metric="objective", mode="max",
                              sampler=optuna.samplers.TPESampler(seed=opts.search_seed))
    return {}, search_alg, scheduler, opts.samples


def _run_tune(sweep_uri: str, phase: str, ctx: TrialContext, cfg: Config, param_space: dict,
              concurrency: int, opts: SweepOptions, search_alg=None, scheduler=None, num_samples: int = 1):
    path = f"{sweep_uri}/{phase}"  # a local path or a URI (s3://...): Tune's storage either way
    total = len(param_space["trial"]["grid_search"]) if "trial" in param_space else num_samples
    callbacks = [] if opts.verbose else [TrialLines(phase, total, concurrency)]
    trainable = tune.with_resources(tune.with_parameters(sweep_trial, ctx=ctx), trial_resources(cfg.resources))
    # A trial that trains in its own process is restarted by Tune from its last checkpoint; one that
    # drives Ray Train has Train restart its workers (r2d.run.distributed), so Tune must not restart it too.
    retries = cfg.resources.max_failures if in_trial_process(cfg.resources) else 0
    if opts.resume and tune.Tuner.can_restore(path):
        # Finished trials are kept, unfinished ones continue, errored ones rerun only if asked;
        # the searcher (Optuna's study) is restored with the experiment state.
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=False,
                                   restart_errored=opts.rerun_errored, param_space=param_space)
    else:
        stage2 = phase == "stage2"
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(metric="objective" if stage2 else None, mode="max" if stage2 else None,
                                        search_alg=search_alg, scheduler=scheduler, num_samples=num_samples,
                                        max_concurrent_trials=concurrency,
                                        reuse_actors=True),  # a trial process (and its imports) serves many
            run_config=tune.RunConfig(name=phase, storage_path=sweep_uri, verbose=1 if opts.verbose else 0,
                                      failure_config=tune.FailureConfig(max_failures=retries),
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=2), callbacks=callbacks),
        )
    return tuner.fit()


def results_table(results) -> list[dict[str, Any]]:
    """One row per trial: its settings, status, objective and test metrics."""
    rows = []
    for r in results:
        cfg = dict(r.config or {})
        point = cfg.get("trial", {})
        settings = {**point.get("overrides", {}), **{OPTUNA_KEYS[k]: v for k, v in cfg.items() if k in OPTUNA_KEYS}}
        if "seed" in point:
            settings["seed"] = point["seed"]
        m = r.metrics or {}
        rows.append({"settings": settings, "status": "ERROR" if r.error else "TERMINATED",
                     "error": (str(r.error).strip().splitlines() or [""])[-1][:200] if r.error else "",
                     "objective": m.get("objective"), "test_macro_f1": m.get("test/macro_f1"),
                     "test_accuracy": m.get("test/accuracy"), "test_bleu": m.get("test/corpus_bleu"),
                     "test_bertscore_f1": m.get("test/bertscore_f1"),
                     "health": "failed" if r.error else (",".join(
                         name for name in UNHEALTHY if m.get(f"health/{name}")) or "healthy"),
                     # wall time of the trial vs time inside the training workers: the rest is Ray's
                     "trial_s": m.get("time_total_s"), "train_s": m.get("timing/total_s"),
                     **{part: m.get(f"timing/{part}") for part in OVERHEAD_PARTS}})
    return rows


def overhead_timings(table: list[dict[str, Any]]) -> dict[str, float]:
    """Ray's share of trial time (trial wall time minus time inside the workers), and its split:
    Train start-up (fit() to the worker's first line of r2d), teardown, the driver's MLflow and
    copying; the rest is Tune's (trial start, reporting)."""
    timed = [r for r in table if r["trial_s"] and r["train_s"]]
    if not timed:
        return {}
    overhead = sum(r["trial_s"] - r["train_s"] for r in timed)
    out = {"ray_overhead_per_trial_s": overhead / len(timed),
           "ray_overhead_share_of_trial_time": overhead / sum(r["trial_s"] for r in timed)}
    for part in OVERHEAD_PARTS:
        values = [r[part] for r in timed if r.get(part) is not None]
        if values:
            out[f"{part.removesuffix('_s')}_per_trial_s"] = sum(values) / len(values)
    return out


def plan_for(study: Study, questions: list[Question] | None, opts: SweepOptions, base: dict[str, Any],
             uri: str) -> list[PlannedTrial]:
    """The grid's trials, each distinct (system_id, seed) once, minus those a FINISHED run of the
    experiment already answers (unless --fresh). Optuna searches have no plan: their points come later."""
    if opts.search != "grid":
        return []
    trials = plan_trials(questions or [study_question(study)], base)
    if not opts.fresh:
        mark_reused(trials, {k: v["run_id"] for k, v in tracking.finished_trials(uri, study.name).items()})
    return trials


def _check_all(study: Study, opts: SweepOptions, questions: list[Question] | None) -> None:
    """Every trial config of the study, or of each question of a plan (r2d.study.check_study). The
    data's warnings go to stderr, each once, before anything starts."""
    warnings: set[str] = set()
    for checked in [q.study for q in questions] if questions else [study]:
        warnings.update(check_study(checked, opts))
    for line in sorted(warnings):
        print(f"warning: {line}", file=sys.stderr)


def dry_run(study: Study, opts: SweepOptions, questions: list[Question] | None = None) -> list[str]:
    """What the sweep would do, before anything starts: nothing is created, started or logged (the
    tracking store is only read, and only if it exists; Ray is only asked if --address names a cluster)."""
    _check_all(study, opts, questions)
    base = base_config(study, opts)
    cfg, uri = validate_config(base), base["tracking"]["tracking_uri"]
    finished = {} if opts.fresh else tracking.finished_trials(uri, study.name)
    trials = plan_for(study, questions, dataclasses.replace(opts, fresh=True), base, uri)
    mark_reused(trials, {k: v["run_id"] for k, v in finished.items()})
    if opts.address:  # a running cluster: its nodes as they are now
        ray.init(address=opts.address, logging_level="ERROR", log_to_driver=False)
        refuse_local_state_on_cluster(base["resources"]["storage_path"], uri)
        nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    else:  # the local Ray r2d would start: this machine's CPUs (and GPUs, if torch sees any)
        nodes = [{"CPU": float(os.cpu_count() or 1), "GPU": float(cfg.resources.use_gpu and torch.cuda.device_count())}]
    concurrency = min(trials_on(nodes, cfg.resources), opts.max_concurrent or math.inf)
    if opts.search != "grid":
        return [f"plan: an Optuna search of {opts.samples} configurations x {len(study.seeds)} seeds; no plan "
                "before it runs (each configuration is suggested from the results so far), no reuse"]
    where = f"experiment {study.name!r} on {uri}"
    preset_steps = load_config(study.config).stage2.max_steps if study.config else None
    guess = estimate(study, finished, cfg.stage2.max_steps, preset_steps)
    stored = sum(Stage1Store(trial_config(base, p["overrides"], p["seed"])).done() for p in stage1_points(trials))
    return describe(questions or [study_question(study)], trials, concurrency, guess, where, stored)


def _restored_plan(state: dict[str, Any]) -> list[PlannedTrial] | None:
    """The plan a resumed sweep started with (None: a sweep.json from before plans were saved)."""
    return [PlannedTrial(**t) for t in state["trials"]] if "trials" in state else None


@dataclass(frozen=True)
class FinishedSweep:
    """What an analysis of a finished sweep needs (handed to `run_sweep`'s `analyse`): the tracking
    store, the experiment and sweep, the parent run to attach to, and the plan (reused runs included)."""

    tracking_uri: str
    experiment: str
    sweep_id: str
    parent_run_id: str
    sweep_dir: Path
    questions: list[Question] | None
    trials: list[PlannedTrial]
    plan_file: Path | None  # plan.json, for a plan of questions


# The study scripts' analysis (sweeps/_common.py composes r2d and analysis/): the library never
# imports the analysis layer; it calls what it is handed, inside the parent run's life.
Analyse = Callable[[FinishedSweep], Any]


def run_sweep(study: Study, opts: SweepOptions, questions: list[Question] | None = None,
              analyse: Analyse | None = None) -> dict[str, Any]:
    """Run (or resume) a study, or a plan of questions over one preset (sweeps/referee.py); returns a
    summary with the results table and `analyse`'s report (None without one, or with --no-analysis)."""
    _check_all(study, opts, questions)  # before anything is created
    base = base_config(study, opts)
    uri, storage = base["tracking"]["tracking_uri"], base["resources"]["storage_path"]
    base_cfg = validate_config(base)
    if base_cfg.resources.ray_address or ray.is_initialized():  # a cluster: its size decides what storage works
        ensure_ray(base_cfg, log_to_driver=opts.verbose)
        refuse_local_state_on_cluster(storage, uri)  # before the sweep's directory, runs or trials exist
    store = SweepStorage(storage)
    sweep_dir, state = _sweep_dir(store, study, opts)
    sweep_id = state["sweep_id"]
    # a resumed sweep keeps the plan it started with (Tune restores the same grid)
    trials = (_restored_plan(state) if opts.resume else None) or plan_for(
        study, questions, dataclasses.replace(opts, fresh=opts.fresh or opts.resume), base, uri)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    if not opts.verbose:  # Ray's and Tune's own output goes to a file; the console gets TrialLines
        send_ray_logs_to(sweep_dir / "ray.log")
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's experiment boxes and result paths: off at verbose 0
    # Ctrl-C interrupts the sweep as SIGTERM does (parent KILLED, resumable). Tune's own SIGINT handler
    # would stop the trials and return from fit() as if the sweep had ended: the driver then analysed a
    # partial sweep (or none) and ended the parent FINISHED or FAILED.
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    ensure_ray(base_cfg, log_to_driver=opts.verbose)
    concurrency = min(max_concurrent_trials(base_cfg), opts.max_concurrent or math.inf)
    space = ({"grid": study.grid, "seeds": study.seeds} if opts.search == "grid" else
             {"optuna": "default_optuna_space (shape, transition, cap, alpha, steepness|shape)",
              "samples": opts.samples, "seeds": study.seeds, "search_seed": opts.search_seed})
    (sweep_dir / "search_space.json").write_text(json.dumps(space, indent=1, default=str))
    tags = {"r2d.sweep_id": sweep_id, "r2d.study": study.name, "r2d.search": opts.search, "r2d.kind": "sweep",
            **opts.parent_tags}
    params = {"search": opts.search, "study": study.name, "max_concurrent_trials": concurrency}
    timings: dict[str, float] = {}
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with runner.sweep_run(uri, study.name, state, tags, params, [sweep_dir / "search_space.json"]) as parent:
            state.update(study=study.name, search=opts.search, base=base, seeds=study.seeds,
                         trials=[dataclasses.asdict(t) for t in trials])
            (sweep_dir / "sweep.json").write_text(json.dumps(state, indent=1))
            store.publish(sweep_dir, sweep_id)  # on remote storage: what a resume elsewhere needs
            # run directories: the sweep's folder on a local (or mounted) storage path, else each
            # trial node's own temporary directory (the runs are in MLflow; the driver's disk is not shared)
            runs_dir = str(sweep_dir / "runs") if store.local else ""
            ctx = TrialContext(base, tuple(study.seeds), sweep_id, parent, uri, study.name, runs_dir)
            results = _train(study, opts, trials, ctx, store.uri(sweep_id), base_cfg, concurrency, timings)
            orphans = tracking.close_running(uri, study.name, sweep_id, parent,
                                             "stopped: its trial ended without finishing (early stopping or error)")
            # ---- the table, timings and the significance report
            table = results_table(results)
            check_something_finished(table, trials, sweep_dir)
            timings.update(overhead_timings(table))
            report, plan_file = None, None
            if questions and any(q.point for q in questions):  # a plan: its questions and trials, kept
                plan_file = write_plan(sweep_dir / "plan.json", plan_json(sweep_id, questions, trials))
                tracking.log_artifacts(uri, parent, sweep_dir, ["plan.json"], [])
            if opts.analysis and analyse is not None:
                t = time.time()
                report = analyse(FinishedSweep(uri, study.name, sweep_id, parent, sweep_dir, questions, trials,
                                               plan_file))
                timings["analysis_s"] = time.time() - t
            timings["total_s"] = time.time() - t_start
            state["timings"] = timings
            _record_on_parent(uri, parent, sweep_dir, timings, table)
    finally:
        signal.signal(signal.SIGTERM, previous)
        (sweep_dir / "sweep.json").write_text(json.dumps(state, indent=1, default=str))
        store.publish(sweep_dir, sweep_id)
    return {"sweep_id": sweep_id, "sweep_dir": str(sweep_dir), "sweep_uri": store.uri(sweep_id),
            "table": table, "report": report, "timings": timings, "parent_run_id": parent, "tracking_uri": uri,
            "experiment": study.name, "orphans_closed": orphans, "concurrency": concurrency,
            # the parent's experiment: the summary's link to its runs table in the MLflow UI
            "experiment_id": tracking.client(uri).get_run(parent).info.experiment_id,
            "reused": [t.point | {"run_id": t.reused_run_id} for t in trials if t.reused_run_id],
            "ray_resources": ray.cluster_resources()}


def _record_on_parent(uri: str, parent: str, sweep_dir: Path, timings: dict[str, float],
                      table: list[dict[str, Any]]) -> None:
    """timings.json (file and artifact), the timings as metrics and the trial count tag of the parent run."""
    (sweep_dir / "timings.json").write_text(json.dumps(timings, indent=1))
    tracking.log_artifacts(uri, parent, sweep_dir, ["timings.json"], [])
    tracking.log_metrics(uri, parent, {f"timing/{k}": v for k, v in timings.items()})
    failed = [r for r in table if r["status"] != "TERMINATED"]
    tracking.set_tags(uri, parent, {"r2d.trials": f"{len(table) - len(failed)} finished, {len(failed)} failed"})


def _train(study: Study, opts: SweepOptions, trials: list, ctx: TrialContext, sweep_uri: str,
           cfg: Config, concurrency: int, timings: dict[str, float]) -> list:
    """Phase 1, every distinct Stage 1 once; phase 2, the Stage 2 trials. Returns Tune's results and
    records each phase's wall time in ``timings``."""
    # ---- phase 1: every distinct Stage 1, once
    t = time.time()
    # Optuna: each seed's Stage 1 of the preset (its searched settings are all Stage 2's)
    stage1_plan = trials if opts.search == "grid" else plan_trials([study_question(
        dataclasses.replace(study, grid={}))], ctx.base)
    points = stage1_points(stage1_plan)
    if not opts.resume:  # a Stage 1 already in the store needs no fit (a resume keeps its grid)
        points = [p for p in points if not Stage1Store(trial_config(ctx.base, p["overrides"], p["seed"])).done()]
    if points:
        _run_tune(sweep_uri, "stage1", dataclasses.replace(ctx, stage1_only=True), cfg,
                  {"trial": tune.grid_search(points)}, concurrency, opts)
    timings["stage1_s"] = time.time() - t
    # ---- phase 2: the Stage 2 trials
    t = time.time()
    param_space, search_alg, scheduler, samples = _stage2_search(study, opts, trials)
    results = [] if opts.search == "grid" and not to_train(trials) else _run_tune(
        sweep_uri, "stage2", ctx, cfg, param_space, concurrency, opts, search_alg, scheduler, samples)
    timings["stage2_trials_s"] = time.time() - t
    return results


def check_something_finished(table: list[dict[str, Any]], trials: list[PlannedTrial], sweep_dir: Path) -> None:
    """Raise SweepFailed (the parent run ends FAILED) when no trial finished and none was reused."""
    if any(r["status"] == "TERMINATED" for r in table) or any(t.reused_run_id for t in trials):
        return
    first = next((r["error"] for r in table if r["error"]), "none given")  # in the table's order
    raise SweepFailed(f"no trial finished ({len(table)} failed; first error: {first}); "
                      f"each trial's error is in MLflow (tag r2d.error) and in {sweep_dir / 'ray.log'}")


def _interrupt(signum, frame):  # SIGTERM ends the sweep like Ctrl-C: parent marked KILLED, resumable
    raise KeyboardInterrupt(f"signal {signum}")
