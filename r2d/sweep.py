"""Sweeps on Ray Tune: a study is data (a preset config, a grid or an Optuna space, seeds).

Each trial is a Tune function trainable that runs its training(s) through Ray Train
(`r2d.distributed.fit`, Train V2 inside Tune, metrics forwarded by `TuneReportCallback`). Seeds are
repeats, never searched: a grid trial is one (configuration, seed); an Optuna trial is one
configuration run on every seed, its objective the mean best dev macro-F1. Each training is its
own MLflow child run under the sweep's parent run (tag `r2d.sweep_id`).

Stage 1 is shared: before any Stage 2 trial, every distinct Stage 1 (one per seed and rationale
source) is trained once and kept by hash on the storage; the trials then reuse it.
"""

from __future__ import annotations

import itertools
import json
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r2d.config import Config, apply_overrides, load_config, validate_config
from r2d.variants import resolve

# A training's wall time outside its workers, as `r2d.distributed.fit` splits it into timings.
OVERHEAD_PARTS = ("ray_start_s", "ray_end_s", "driver_s")

# Optuna's names -> config keys. The space is conditional: steepness exists only for the shapes
# that have one.
OPTUNA_KEYS = {
    "shape": "stage2.schedule.shape",
    "transition": "stage2.schedule.transition",
    "cap": "stage2.schedule.cap",
    "alpha": "stage2.alpha",
    "steepness": "stage2.schedule.steepness",
}


def default_optuna_space(trial) -> None:
    """Define-by-run space for OptunaSearch (TPE): shape, rate, cap, alpha; steepness where it applies."""
    shape = trial.suggest_categorical("shape", ["linear", "exponential", "inverse_sigmoid", "step"])
    trial.suggest_float("transition", 0.1, 1.0)
    trial.suggest_float("cap", 0.5, 1.0)
    trial.suggest_float("alpha", 0.3, 0.9)
    if shape in ("exponential", "inverse_sigmoid"):
        trial.suggest_float("steepness", 1.0, 20.0, log=True)


@dataclass
class Study:
    name: str  # the MLflow experiment, and the prefix of the sweep's directory
    config: str  # preset YAML
    grid: dict[str, list] = field(default_factory=dict)  # dotted key -> values (full factorial)
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    optuna_space: Callable | None = None
    description: str = ""


@dataclass
class SweepOptions:
    search: str = "grid"  # grid | optuna
    samples: int = 8  # Optuna configurations
    search_seed: int = 0
    asha: bool = False
    address: str | None = None
    resume: bool = False
    rerun_errored: bool = False
    sweep_id: str | None = None  # resume this one (default: the latest of the study)
    overrides: list[str] = field(default_factory=list)
    storage_path: str | None = None
    tracking_uri: str | None = None
    analysis: bool = True
    max_concurrent: int | None = None  # cap below what the cluster fits (benchmarks: 1 vs 2)


# --------------------------------------------------------------------------- configurations
def trial_config(base: dict[str, Any], overrides: dict[str, Any], seed: int) -> Config:
    data = json.loads(json.dumps(base))
    apply_overrides(data, [f"{k}={json.dumps(v)}" for k, v in overrides.items()] + [f"seed={seed}"])
    return validate_config(data, source="sweep trial")


def trial_key(overrides: dict[str, Any], seed: int) -> str:
    import hashlib

    return hashlib.sha256(json.dumps([sorted(overrides.items()), seed], default=str).encode()).hexdigest()[:12]


def grid_points(grid: dict[str, list]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def trials_that_fit(nodes: list[dict[str, float]], driver: dict[str, float], num_workers: int,
                    worker: dict[str, float]) -> int:
    """How many trials can run at once with no placement of theirs able to deadlock.

    A trial is a small Tune driver plus its Ray Train workers, which its TrainController requests
    later as a separate placement group. Ray places the drivers wherever they fit, so the drivers
    of concurrent trials can all land on one node and leave it too fragmented for a worker (two
    1-CPU nodes, 0.1-CPU drivers, 0.9-CPU workers: driver, worker, driver, worker hangs forever).
    So count each node's worker slots as if every concurrent driver sat on it.
    """
    eps = 1e-9  # Ray accounts resources in 1/10000 units; don't lose a slot to float error

    def worker_slots(node: dict[str, float], drivers: int) -> int:
        free = {k: node.get(k, 0.0) - drivers * driver.get(k, 0.0) for k in worker}
        return max(min(math.floor(free[k] / need + eps) for k, need in worker.items()), 0)

    n = 0
    while sum(worker_slots(node, n + 1) for node in nodes) >= (n + 1) * num_workers:
        n += 1
    return n


def max_concurrent_trials(cfg: Config) -> int:
    """How many trials fit the cluster at once, so that trials never wait on each other's workers."""
    import ray

    r = cfg.resources
    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    n = trials_that_fit(nodes, {"CPU": r.trial_cpus}, r.num_workers, r.worker_resources())
    if n < 1:
        have = [(node.get("CPU", 0), node.get("GPU", 0)) for node in nodes]
        raise RuntimeError(f"resources: a trial needs a driver of {r.trial_cpus} CPU and {r.num_workers} x "
                           f"{r.worker_resources()} but the cluster's nodes have (CPU, GPU) {have}")
    return n


# --------------------------------------------------------------------------- the trainable
def _finished_child(ctx: dict, key: str) -> dict | None:
    """A FINISHED child run of this sweep for this (configuration, seed), if a previous attempt made one."""
    from r2d.tracking import client

    c = client(ctx["tracking_uri"])
    runs = c.search_runs(
        [ctx["experiment_id"]],
        filter_string=f"tags.`r2d.sweep_id` = '{ctx['sweep_id']}' and tags.`r2d.trial_key` = '{key}' "
        "and attributes.status = 'FINISHED'",
        max_results=1,
    )
    return runs[0].data.metrics if runs else None


def sweep_trial(config: dict[str, Any]) -> None:
    """The Tune function trainable: one configuration, on one seed (grid) or on all seeds (Optuna)."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from r2d.distributed import fit, fit_stage1

    ctx = config["ctx"]
    overrides = dict(config.get("overrides", {}))
    overrides.update({OPTUNA_KEYS[k]: v for k, v in config.items() if k in OPTUNA_KEYS})
    seeds = [config["seed"]] if "seed" in config else ctx["seeds"]
    if ctx.get("mode") == "stage1":
        for seed in seeds:
            info = fit_stage1(trial_config(ctx["base"], overrides, seed))
            tune.report({"stage1_done": 1, "stage1_reused": info.get("stage1_reused", 0.0)})
        return
    trial_id = tune.get_context().get_trial_id()
    objectives, finals = [], {}
    for seed in seeds:
        key = trial_key(overrides, seed)
        done = _finished_child(ctx, key)
        if done is not None:  # a resumed trial: this seed already finished and is logged; don't redo
            objectives.append(done.get("best_dev_macro_f1", float("nan")))
            continue
        cfg = trial_config(ctx["base"], overrides, seed)
        tags = {"r2d.sweep_id": ctx["sweep_id"], "r2d.trial_key": key, "r2d.trial_id": trial_id,
                "r2d.overrides": json.dumps(overrides, sort_keys=True)}
        summary = fit(cfg, Path(ctx["runs_dir"]) / f"{key}", parent_run_id=ctx["parent_run_id"], tags=tags,
                      callbacks=[TuneReportCallback()])
        objective = summary["stage2"]["best_dev_macro_f1"]
        objectives.append(objective)
        finals = {f"{s}/{k}": v for s, m in summary["splits"].items() for k, v in m.items()
                  if isinstance(v, (int, float))}
        finals.update({"timing/" + k: v for k, v in summary.get("timings", {}).items()})
    tune.report({"objective": float(sum(objectives) / len(objectives)), "seeds_done": len(objectives), **finals})


# --------------------------------------------------------------------------- the driver
def _sweep_dir(storage: str, study: Study, opts: SweepOptions) -> tuple[Path, dict]:
    root = Path(storage)
    if opts.resume:
        candidates = sorted(root.glob(f"{study.name}-*/sweep.json"), key=lambda p: p.stat().st_mtime)
        if opts.sweep_id:
            candidates = [p for p in candidates if p.parent.name == opts.sweep_id]
        if not candidates:
            raise FileNotFoundError(f"--resume: no sweep of study {study.name} under {root}")
        state = json.loads(candidates[-1].read_text())
        return candidates[-1].parent, state
    sweep_id = f"{study.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return root / sweep_id, {"sweep_id": sweep_id}


def _close_orphans(uri: str, experiment_id: str, sweep_id: str, parent: str, why: str) -> int:
    """Child runs left RUNNING by a dead process (killed driver, ASHA stop) end as KILLED, with why."""
    from r2d.tracking import client

    c = client(uri)
    runs = c.search_runs([experiment_id], filter_string=f"tags.`r2d.sweep_id` = '{sweep_id}' and "
                         "attributes.status = 'RUNNING'")
    n = 0
    for r in runs:
        if r.info.run_id == parent:
            continue
        c.set_tag(r.info.run_id, "r2d.error", why)
        c.set_terminated(r.info.run_id, status="KILLED")
        n += 1
    return n


def run_sweep(study: Study, opts: SweepOptions) -> dict[str, Any]:
    """Run (or resume) a study; returns a summary with the results table and the report paths."""
    import ray
    from ray import tune

    from r2d import tracking as trk
    from r2d.distributed import absolute_paths, ensure_ray, storage_uri

    overrides = list(opts.overrides)
    if opts.storage_path:
        overrides.append(f"resources.storage_path={opts.storage_path}")
    if opts.tracking_uri:
        overrides.append(f"tracking.tracking_uri={opts.tracking_uri}")
    if opts.address:
        overrides.append(f"resources.ray_address={opts.address}")
    base = load_config(study.config, overrides + [f"tracking.experiment={study.name}", "tracking.enabled=true"])
    base = absolute_paths(base)
    uri = trk.tracking_uri(base)  # resolved here: trials run with another working directory
    base = validate_config({**base.to_dict(), "tracking": {**base.tracking.model_dump(), "tracking_uri": uri}})
    storage = storage_uri(base.resources.storage_path)
    sweep_dir, state = _sweep_dir(storage, study, opts)
    sweep_id = state["sweep_id"]
    sweep_dir.mkdir(parents=True, exist_ok=True)
    experiment_id = trk.experiment_id(uri, study.name)
    c = trk.client(uri)

    t_start = time.time()
    ensure_ray(base)
    concurrency = max_concurrent_trials(base)
    if opts.max_concurrent:
        concurrency = min(concurrency, opts.max_concurrent)
    space = ({"grid": study.grid, "seeds": study.seeds} if opts.search == "grid" else
             {"optuna": "default_optuna_space (shape, transition, cap, alpha, steepness|shape)",
              "samples": opts.samples, "seeds": study.seeds, "search_seed": opts.search_seed})
    if "parent_run_id" not in state:
        from mlflow.entities import Param

        parent = c.create_run(experiment_id, run_name=sweep_id, tags={
            "r2d.sweep_id": sweep_id, "r2d.study": study.name, "r2d.search": opts.search,
            "r2d.kind": "sweep"})
        state["parent_run_id"] = parent.info.run_id
        c.log_batch(parent.info.run_id, params=[Param("search", opts.search), Param("study", study.name),
                                                Param("max_concurrent_trials", str(concurrency))])
        (sweep_dir / "search_space.json").write_text(json.dumps(space, indent=1, default=str))
        c.log_artifact(parent.info.run_id, str(sweep_dir / "search_space.json"))
    else:
        c.update_run(state["parent_run_id"], status="RUNNING")
        closed = _close_orphans(uri, experiment_id, sweep_id, state["parent_run_id"],
                                "interrupted: its sweep driver died; the trial is rerun on --resume")
        if closed:
            print(f"resume: {closed} interrupted child run(s) marked KILLED in MLflow")
    state.update(study=study.name, search=opts.search, base=base.to_dict(), seeds=study.seeds)
    (sweep_dir / "sweep.json").write_text(json.dumps(state, indent=1))
    parent_run_id = state["parent_run_id"]

    ctx = {"base": base.to_dict(), "seeds": study.seeds, "sweep_id": sweep_id, "parent_run_id": parent_run_id,
           "tracking_uri": uri, "experiment_id": experiment_id, "runs_dir": str(sweep_dir / "runs")}
    timings: dict[str, float] = {}

    def _interrupt(signum, frame):  # SIGTERM ends the sweep like Ctrl-C: parent marked, resumable
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        # ---- phase 1: every distinct Stage 1, once
        t = time.time()
        stage1_points = _stage1_points(study, opts, base)
        if stage1_points:
            points = [{"overrides": p, "seed": s} for p, s in stage1_points]
            _run_tune(sweep_dir, "stage1", {**ctx, "mode": "stage1"}, {"point": tune.grid_search(points)},
                      concurrency, opts, search_alg=None, scheduler=None)
        timings["stage1_s"] = time.time() - t
        # ---- phase 2: the Stage 2 trials
        t = time.time()
        if opts.search == "grid":
            param_space = {"overrides": tune.grid_search(grid_points(study.grid)),
                           "seed": tune.grid_search(study.seeds)}
            search_alg = None
        else:
            import optuna
            from ray.tune.search.optuna import OptunaSearch

            search_alg = OptunaSearch(space=study.optuna_space or default_optuna_space, metric="objective",
                                      mode="max", sampler=optuna.samplers.TPESampler(seed=opts.search_seed))
            param_space = {}
        scheduler = None
        if opts.asha:
            from ray.tune.schedulers import ASHAScheduler

            scheduler = ASHAScheduler(metric="stage2/dev_macro_f1", mode="max", grace_period=2)
        results = _run_tune(sweep_dir, "stage2", ctx, param_space, concurrency, opts,
                            search_alg=search_alg, scheduler=scheduler,
                            num_samples=opts.samples if opts.search == "optuna" else 1)
        timings["stage2_trials_s"] = time.time() - t
        orphans = _close_orphans(uri, experiment_id, sweep_id, parent_run_id,
                                 "stopped: its trial ended without finishing (early stopping or error)")
        table = results_table(results)
        timed = [r for r in table if r["trial_s"] and r["train_s"]]
        if timed:
            overhead = sum(r["trial_s"] - r["train_s"] for r in timed)
            timings["ray_overhead_per_trial_s"] = overhead / len(timed)
            timings["ray_overhead_share_of_trial_time"] = overhead / sum(r["trial_s"] for r in timed)
            # its split: Train start-up (fit() to the worker's first line of r2d), Train teardown,
            # the driver's MLflow and copying; the rest is Tune's (trial start, reporting).
            for part in OVERHEAD_PARTS:
                values = [r[part] for r in timed if r.get(part) is not None]
                if values:
                    timings[f"{part.removesuffix('_s')}_per_trial_s"] = sum(values) / len(values)
        state["timings"] = timings
        report = None
        if opts.analysis:
            t = time.time()
            report = _analyse(uri, study, sweep_id, parent_run_id, sweep_dir)
            timings["analysis_s"] = time.time() - t
        timings["total_s"] = time.time() - t_start
        (sweep_dir / "timings.json").write_text(json.dumps(timings, indent=1))
        c.log_artifact(parent_run_id, str(sweep_dir / "timings.json"))
        c.log_batch(parent_run_id, metrics=_timing_metrics(timings))
        failed = [r for r in table if r["status"] != "TERMINATED"]
        c.set_tag(parent_run_id, "r2d.trials", f"{len(table) - len(failed)} finished, {len(failed)} failed")
        c.set_terminated(parent_run_id, status="FINISHED")
    except BaseException as err:
        c.set_tag(parent_run_id, "r2d.error", f"{type(err).__name__}: {err}"[:5000])
        c.set_terminated(parent_run_id, status="KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        (sweep_dir / "sweep.json").write_text(json.dumps(state, indent=1, default=str))
    return {"sweep_id": sweep_id, "sweep_dir": str(sweep_dir), "table": table, "report": report,
            "timings": timings, "parent_run_id": parent_run_id, "tracking_uri": uri,
            "experiment": study.name, "orphans_closed": orphans, "concurrency": concurrency,
            "ray_resources": ray.cluster_resources()}


def _timing_metrics(timings: dict[str, float]):
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(f"timing/{k}", float(v), now, 0) for k, v in timings.items()]


def _stage1_points(study: Study, opts: SweepOptions, base: Config) -> list[tuple[dict, int]]:
    """One (overrides, seed) per distinct Stage 1 that some trial of the study will need."""
    from r2d.train import stage1_key

    points = grid_points(study.grid) if opts.search == "grid" else [{}]
    seen, out = set(), []
    base_dict = base.to_dict()
    for p in points:
        for seed in study.seeds:
            cfg = resolve(trial_config(base_dict, p, seed))
            if not cfg.stage1.enabled:
                continue
            key = stage1_key(cfg)
            if key not in seen:
                seen.add(key)
                # the Stage 1 fit only needs what shapes Stage 1: data, model, stage1 settings
                out.append(({k: v for k, v in p.items() if k.startswith(("data.", "model.", "stage1."))}, seed))
    return out


def _trial_entry(config: dict[str, Any], ctx: dict[str, Any]) -> None:
    """Tune's entry point: phase 1 bundles (overrides, seed) as one grid axis, "point"."""
    if "point" in config:
        config = {**config, **config.pop("point")}
    sweep_trial({**config, "ctx": ctx})


def _run_tune(sweep_dir: Path, phase: str, ctx: dict, param_space: dict, concurrency: int,
              opts: SweepOptions, search_alg, scheduler, num_samples: int = 1):
    from ray import tune

    path = sweep_dir / phase
    # ctx (base config, sweep and MLflow ids) rides along as a parameter, not as a searched config.
    trainable = tune.with_resources(tune.with_parameters(_trial_entry, ctx=ctx),
                                    {"cpu": float(ctx["base"]["resources"]["trial_cpus"])})
    if opts.resume and tune.Tuner.can_restore(str(path)):
        # Finished trials are kept, unfinished ones continue, errored ones rerun only if asked;
        # the searcher (Optuna's study) is restored with the experiment state.
        tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_errored=False,
                                   restart_errored=opts.rerun_errored, param_space=param_space)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(metric="objective" if phase == "stage2" else None,
                                        mode="max" if phase == "stage2" else None,
                                        search_alg=search_alg, scheduler=scheduler, num_samples=num_samples,
                                        max_concurrent_trials=concurrency,
                                        reuse_actors=True),  # a trial process (and its imports) serves many
            run_config=tune.RunConfig(name=phase, storage_path=str(sweep_dir), verbose=1,
                                      failure_config=tune.FailureConfig(max_failures=0)),
        )
    return tuner.fit()


def results_table(results) -> list[dict[str, Any]]:
    """One row per trial: its settings, status, objective and test metrics."""
    rows = []
    for r in results:
        cfg = dict(r.config or {})
        settings = dict(cfg.get("overrides", {}))
        settings.update({OPTUNA_KEYS[k]: v for k, v in cfg.items() if k in OPTUNA_KEYS})
        if "seed" in cfg:
            settings["seed"] = cfg["seed"]
        m = r.metrics or {}
        rows.append({"settings": settings, "status": "ERROR" if r.error else "TERMINATED",
                     "error": (str(r.error).strip().splitlines() or [""])[-1][:200] if r.error else "",
                     "objective": m.get("objective"), "test_macro_f1": m.get("test/macro_f1"),
                     "test_accuracy": m.get("test/accuracy"), "test_bleu": m.get("test/corpus_bleu"),
                     "test_bertscore_f1": m.get("test/bertscore_f1"),
                     # wall time of the trial vs time inside the training workers: the rest is Ray's
                     "trial_s": m.get("time_total_s"), "train_s": m.get("timing/total_s"),
                     **{part: m.get(f"timing/{part}") for part in OVERHEAD_PARTS}})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    def fmt(v):
        return "" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))

    keys = sorted({k for r in rows for k in r["settings"]})
    header = [k.split(".")[-1] for k in keys] + ["status", "dev F1 (obj)", "test F1", "test acc", "BLEU", "BERTScore"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in sorted(rows, key=lambda r: [str(r["settings"].get(k)) for k in keys]):
        cells = [fmt(r["settings"].get(k)) for k in keys] + [r["status"], fmt(r["objective"]), fmt(r["test_macro_f1"]),
                                                            fmt(r["test_accuracy"]), fmt(r["test_bleu"]),
                                                            fmt(r["test_bertscore_f1"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _analyse(uri: str, study: Study, sweep_id: str, parent_run_id: str, sweep_dir: Path):
    """The significance report over the sweep's finished runs (analysis/), attached to the parent."""
    try:
        from analysis.report import report_for_sweep
    except ImportError:  # analysis/ not installed: the per-trial table is printed instead
        return None
    return report_for_sweep(sweep_id, out_dir=sweep_dir / "report", tracking_uri=uri, experiment=study.name,
                            cache_dir=sweep_dir / "report" / "cache")


def mlflow_ui_command(uri: str) -> str:
    return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"


def main_for(study: Study, argv: list[str] | None = None, presets: dict[str, Study] | None = None) -> int:
    """The command line every sweeps/*.py script shares."""
    import argparse
    import sys

    p = argparse.ArgumentParser(description=study.description or study.name)
    p.add_argument("--preset", choices=sorted(presets or {}), help="a bigger study for a GPU cluster")
    p.add_argument("--search", choices=["grid", "optuna"], default="grid")
    p.add_argument("--samples", type=int, default=8, help="Optuna: configurations to try (each on every seed)")
    p.add_argument("--search-seed", type=int, default=0, help="Optuna TPE sampler seed")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (repeats), e.g. --seeds 0 1 2")
    p.add_argument("--asha", action="store_true", help="ASHA early stopping on dev macro-F1")
    p.add_argument("--address", help="join a running Ray cluster ('auto'); default: start a local Ray")
    p.add_argument("--resume", action="store_true", help="continue the latest (or --sweep-id) sweep of this study")
    p.add_argument("--rerun-errored", action="store_true", help="with --resume: rerun trials that errored")
    p.add_argument("--sweep-id", help="with --resume: which sweep")
    p.add_argument("--storage-path", help="Ray storage (local dir or s3://...); default from the preset")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override the preset's config, e.g. --set stage2.max_steps=50")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="replace one grid axis, e.g. --grid stage2.schedule.shape=linear,step")
    p.add_argument("--no-analysis", action="store_true")
    p.add_argument("--max-concurrent", type=int, help="at most this many trials at once (default: what fits)")
    args = p.parse_args(argv)
    chosen = (presets or {}).get(args.preset, study) if args.preset else study
    if args.seeds:
        chosen.seeds = args.seeds
    for axis in args.grid:
        key, _, values = axis.partition("=")
        if not key or not values:
            print(f"--grid {axis!r}: expected KEY=V1,V2", file=sys.stderr)
            return 2
        import yaml

        chosen.grid[key] = [yaml.safe_load(v) for v in values.split(",")]
    opts = SweepOptions(search=args.search, samples=args.samples, search_seed=args.search_seed, asha=args.asha,
                        address=args.address, resume=args.resume, rerun_errored=args.rerun_errored,
                        sweep_id=args.sweep_id, overrides=args.overrides, storage_path=args.storage_path,
                        tracking_uri=args.tracking_uri, analysis=not args.no_analysis,
                        max_concurrent=args.max_concurrent)
    from r2d.config import ConfigError
    from r2d.data import DataError

    try:
        summary = run_sweep(chosen, opts)
    except (ConfigError, DataError, FileNotFoundError) as err:
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 2
    print_summary(summary)
    return 0


def print_summary(summary: dict[str, Any]) -> None:
    print(f"\nsweep {summary['sweep_id']}: {len(summary['table'])} trials "
          f"(max {summary['concurrency']} at once) in {summary['timings'].get('total_s', 0):.0f} s")
    print(format_table(summary["table"]))
    failed = [r for r in summary["table"] if r["status"] != "TERMINATED"]
    for r in failed:
        print(f"failed: {r['settings']}: {r['error']}")
    report = summary.get("report")
    if report is not None:
        print("\n" + getattr(report, "markdown", str(report)))
    t = summary["timings"]
    print("\ntimings: " + ", ".join(f"{k} {v:.2f}" if "share" in k else f"{k} {v:.0f} s" for k, v in t.items()))
    print(f"results: {summary['sweep_dir']}")
    print(f"browse:  {mlflow_ui_command(summary['tracking_uri'])}")
