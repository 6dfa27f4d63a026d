"""A quiet, informative sweep console: one progress line when the counts change, one line per
finished trial; Ray's and Tune's own output goes to a log file in the sweep's directory.

With `--verbose` nothing is redirected and Tune prints its status tables as before.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from ray import tune

from r2d.scoring.health import UNHEALTHY

RAY_LOGGERS = ("ray", "ray.tune", "ray.train", "ray.data", "filelock")


def send_ray_logs_to(path: Path) -> None:
    """Ray's and Tune's driver-side log records go to `path` instead of the console."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False


def _duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def describe_point(config: dict[str, Any]) -> str:
    """`shape=linear transition=0.3 seed=0` from a trial's config (grid point or Optuna suggestion)."""
    point = config.get("trial", {})
    settings = {**point.get("overrides", {}), **{k: v for k, v in config.items() if k != "trial"}}
    text = " ".join(f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
                    for k, v in settings.items())
    return (text + f" seed={point['seed']}").strip() if "seed" in point else text


class TrialLines(tune.Callback):
    """Tune callback: a progress line whenever the done / running / pending counts change, and a
    line per finished trial (settings, seed, status, dev macro-F1, health, time)."""

    def __init__(self, phase: str, total: int, concurrency: int):
        self.phase, self.total, self.concurrency = phase, total, concurrency
        self.started = time.time()
        self.last_counts: tuple[int, int, int] | None = None
        self.finished_times: list[float] = []

    def _print(self, text: str) -> None:
        print(text, file=sys.stdout, flush=True)  # looked up when printing: the callback is pickled

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        done = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
        running = sum(t.status == "RUNNING" for t in trials)
        pending = max(self.total - done - running, 0)
        counts = (done, running, pending)
        if counts == self.last_counts:
            return
        self.last_counts = counts
        elapsed = time.time() - self.started
        eta = ""
        if self.finished_times:
            per_trial = sum(self.finished_times) / len(self.finished_times)
            waves = (pending + running) / max(self.concurrency, 1)
            eta = f", ETA {_duration(waves * per_trial)}"
        self._print(f"[{self.phase}] {done}/{self.total} done, {running} running, {pending} pending "
                    f"| {_duration(elapsed)} elapsed{eta}")

    def _trial_line(self, trial, status: str) -> None:
        result = trial.last_result or {}
        seconds = float(result.get("time_total_s") or 0.0)
        if seconds:
            self.finished_times.append(seconds)
        if self.phase == "stage1":
            self._print(f"  stage 1 {describe_point(trial.config)}: {status} in {_duration(seconds)}")
            return
        objective = result.get("objective")
        health = "failed" if status == "ERROR" else (
            ",".join(f for f in UNHEALTHY if result.get(f"health/{f}")) or "healthy")
        score = f"dev macro-F1 {objective:.3f}" if isinstance(objective, float) else "dev macro-F1 -"
        self._print(f"  {describe_point(trial.config)}: {status}, {score}, {health}, {_duration(seconds)}")

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self._trial_line(trial, "done")

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._trial_line(trial, "ERROR")
