"""Concurrent trial loggers against an MLflow tracking server, as a sweep's trials log: params, a
per-step metric history, a predictions artifact, a final state. Each logger is its own process;
the load is bounded in count (loggers x steps) and each logger in time (the client's own timeouts)."""

from __future__ import annotations

import multiprocessing
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

METRIC = "dev_macro_f1"
ARTIFACT = "predictions.jsonl"


def log_one_trial(uri: str, experiment_id: str, index: int, steps: int, out) -> None:
    """One trial's logging; puts (index, error or '', latencies of each log call) on `out`."""
    latencies: list[float] = []

    def timed(call, *args, **kwargs):
        t = time.perf_counter()
        result = call(*args, **kwargs)
        latencies.append(time.perf_counter() - t)
        return result

    try:
        client = MlflowClient(uri)
        run_id = timed(client.create_run, experiment_id, run_name=f"trial-{index}").info.run_id
        timed(client.log_param, run_id, "seed", index)
        timed(client.log_param, run_id, "stage2.schedule.shape", "linear")
        for step in range(steps):
            timed(client.log_metric, run_id, METRIC, step / steps, step=step)
        with tempfile.TemporaryDirectory() as tmp:
            predictions = Path(tmp) / ARTIFACT
            predictions.write_text("".join(f'{{"id": {i}, "pred": "yes"}}\n' for i in range(50)))
            timed(client.log_artifact, run_id, str(predictions))
        timed(client.set_terminated, run_id, "FINISHED")
        out.put((index, "", latencies))
    except Exception:  # the load's result counts errors; the first line says which
        out.put((index, traceback.format_exc(limit=3), latencies))


@dataclass
class LoadResult:
    wall_s: float
    errors: list[str]
    latencies: list[float]


def run_load(uri: str, experiment: str, loggers: int, steps: int, timeout_s: float = 300.0) -> LoadResult:
    """`loggers` concurrent logger processes; waits at most `timeout_s` for all of them."""
    experiment_id = MlflowClient(uri).create_experiment(experiment)
    ctx = multiprocessing.get_context("fork")  # mlflow is already imported: no per-process import cost
    out = ctx.Queue()
    procs = [ctx.Process(target=log_one_trial, args=(uri, experiment_id, i, steps, out)) for i in range(loggers)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    results, deadline = [], time.monotonic() + timeout_s
    while len(results) < loggers and time.monotonic() < deadline:
        try:
            results.append(out.get(timeout=max(deadline - time.monotonic(), 0.1)))
        except Exception:  # queue.Empty at the deadline
            break
    wall = time.perf_counter() - start
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
    errors = [err for _, err, _ in results if err] + ["no result"] * (loggers - len(results))
    return LoadResult(wall, errors, [t for _, _, lat in results for t in lat])
